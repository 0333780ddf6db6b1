"""The effective scheduled-update state of a client (SPEC 2.2, the seed's rule).

| option 1 (privilege) | option 2 (other settings) | on the client                          |
|----------------------|---------------------------|----------------------------------------|
| off                  | any                       | no scheduled update                    |
| on                   | on                        | runs; the client user may turn it off  |
| on                   | off                       | always runs; the user cannot turn off  |

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


def describe_combination(*, privilege: bool, setting: bool) -> str:
    """What the dialog says under the two "Enable scheduled update" options."""
    if not privilege:
        return "Scheduled updates will not run: running scheduled updates is a privilege (option 1 is off)."
    if setting:
        return "Scheduled updates will run. Client users may turn them off (and on again) from the client console."
    return "Scheduled updates will always run. Client users cannot turn them off."
