"""The effective scheduled-update state of a client (SPEC 2.2, the seed's rule).

| Privileges tab option | Other Settings tab option | on the client                          |
|-----------------------|---------------------------|----------------------------------------|
| off                   | any                       | no scheduled update                    |
| on                    | on                        | runs; the client user may turn it off  |
| on                    | off                       | always runs; the user cannot turn off  |

(The seed calls them option 1 and option 2; the screens name them by where
they are: Privileges tab, Component Update Privileges, and Other Settings tab,
Update Settings.)

This module is the only place that encodes the table: the Python function, the
queryset filter and the SQL annotation below must agree, and a test checks that
they do for every combination.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Case, Q, Value, When


class ScheduledState(models.TextChoices):
    NO_PRIVILEGE = "no_privilege", "No scheduled update (no privilege)"
    ALWAYS = "always", "Always runs (user cannot turn it off)"
    USER_MAY_DISABLE = "user_may_disable", "Runs (user may turn it off)"
    USER_DISABLED = "user_disabled", "Turned off by the client user"

    @property
    def runs(self) -> bool:
        return self in (ScheduledState.ALWAYS, ScheduledState.USER_MAY_DISABLE)


def effective_scheduled_state(*, privilege: bool, setting: bool, user_disabled: bool) -> ScheduledState:
    if not privilege:
        return ScheduledState.NO_PRIVILEGE
    if not setting:
        return ScheduledState.ALWAYS
    if user_disabled:
        return ScheduledState.USER_DISABLED
    return ScheduledState.USER_MAY_DISABLE


def scheduled_update_on_q(prefix: str = "") -> Q:
    """Filter for clients whose scheduled updates run."""
    return Q(**{f"{prefix}scheduled_update_privilege": True}) & (
        Q(**{f"{prefix}scheduled_update_setting": False}) | Q(**{f"{prefix}user_disabled_scheduled_update": False})
    )


def scheduled_state_case(prefix: str = "") -> Case:
    return Case(
        When(Q(**{f"{prefix}scheduled_update_privilege": False}), then=Value(ScheduledState.NO_PRIVILEGE.value)),
        When(Q(**{f"{prefix}scheduled_update_setting": False}), then=Value(ScheduledState.ALWAYS.value)),
        When(Q(**{f"{prefix}user_disabled_scheduled_update": True}), then=Value(ScheduledState.USER_DISABLED.value)),
        default=Value(ScheduledState.USER_MAY_DISABLE.value),
        output_field=models.CharField(),
    )


# Where the two options are on screen: the dialog's explanation names them so.
PRIVILEGE_OPTION = "Privileges tab, Component Update Privileges"
SETTING_OPTION = "Other Settings tab, Update Settings"


def describe_combination(*, privilege: bool | None, setting: bool | None) -> str:
    """What the dialog says under the two "Enable scheduled update" options.

    ``None`` is a mixed option: the selected clients differ and each keeps its
    own value. Every one of the nine combinations gets a whole explanation.
    """
    p, s = f"“Enable scheduled update” ({PRIVILEGE_OPTION})", f"“Enable scheduled update” ({SETTING_OPTION})"
    may_turn_off = "client users may turn them off (and on again) from the client console"
    if privilege is False:
        rest = {
            True: "is on, but it only matters with the privilege.",
            False: "is off, and it only matters with the privilege.",
            None: "differs between the selected clients and stays as each has it; it only matters with the privilege.",
        }[setting]
        return (
            f"Scheduled updates will not run on the selected clients: {p} is off, and running scheduled updates "
            f"is a privilege. {s} {rest}"
        )
    if privilege is True:
        if setting is True:
            return f"Scheduled updates will run, and {may_turn_off}: {p} and {s} are both on."
        if setting is False:
            return f"Scheduled updates will always run and client users cannot turn them off: {p} is on and {s} is off."
        return (
            f"Scheduled updates will run on every selected client ({p} is on). {s} differs between the selected "
            f"clients and stays as each has it: where it is on, {may_turn_off}; where it is off, they cannot."
        )
    without = f"{p} differs between the selected clients and stays as each has it: clients without it get no scheduled update."
    if setting is True:
        return f"{without} On the others scheduled updates run, and {may_turn_off}, because {s} is on."
    if setting is False:
        return f"{without} On the others scheduled updates always run and client users cannot turn them off, because {s} is off."
    return (
        f"{without} {s} differs too and stays as each client has it: where it is on, scheduled updates run and "
        f"{may_turn_off}; where it is off, they always run and client users cannot turn them off."
    )
