"""Privileges and Other Settings: what a selection in the tree stands for, what
its clients currently have, and the one bulk save.

A selection is the root (every client), domains (every client under them, found
with one range query over the tree) and single clients. Saving is a handful of
statements whatever the size of the selection: no query per client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, Q

from agents_app.models import Client, ClientQuerySet, ClientSettings, Domain, FutureDomainDefaults
from console.audit import audit_record

SETTING_FIELDS: tuple[str, ...] = ClientSettings.SETTING_FIELDS

# How a root selection applies (the dialog's two choices).
SCOPE_ALL = "all"
SCOPE_FUTURE = "future"
ROOT_SCOPES = {SCOPE_ALL: "Apply to All Clients", SCOPE_FUTURE: "Apply to Future Domains Only"}

# The settings as the audit log names them: the dialog's labels, the two
# "Enable scheduled update" options told apart by the tab they are on.
AUDIT_LABELS = {
    "roaming_privilege": "Enable roaming mode",
    "update_now_privilege": 'Perform "Update Now"',
    "scheduled_update_privilege": "Enable scheduled update (Privileges tab)",
    "download_from_activeupdate": "Clients download updates from the ActiveUpdate server",
    "scheduled_update_setting": "Enable scheduled update (Other Settings tab)",
    "components_only": "Clients can update components but not upgrade the client program or deploy hot fixes",
}


def audit_label(name: str) -> str:
    """A setting as the audit log names it: the table above, else the field's own label."""
    return AUDIT_LABELS.get(name) or str(ClientSettings._meta.get_field(name).verbose_name)  # type: ignore[union-attr]


# A save names its clients on the audit log up to this many; beyond, it counts them and links to the list.
AUDIT_NAMED_CLIENTS = 10
# Ticked clients kept with an entry for that link; a longer list of ticks is only counted.
AUDIT_SELECTION_IDS = 1000


def _selection_record(selection: Selection) -> dict[str, Any]:
    """What the selection stood for, so the audit log can link to its clients (the client list reads it)."""
    if len(selection.client_ids) > AUDIT_SELECTION_IDS:
        return {}
    return {
        "selection": {
            "root": selection.root,
            "domains": [d.pk for d in selection.domains],
            "clients": list(selection.client_ids),
        }
    }


class SelectionError(Exception):
    """The selection cannot be used: empty, or naming domains/clients that do not exist."""


class StaleSelectionError(Exception):
    """The selected clients' settings changed after the dialog was opened."""


@dataclass(frozen=True)
class Selection:
    root: bool = False
    domains: tuple[Domain, ...] = ()
    client_ids: tuple[int, ...] = ()
    # Every domain inside the selected subtrees (the selected ones included).
    covered_domain_ids: tuple[int, ...] = field(default=())

    def clients(self) -> ClientQuerySet:
        if self.root:
            return Client.objects.all()
        return Client.objects.filter(Q(domain_id__in=self.covered_domain_ids) | Q(pk__in=self.client_ids))

    def describe(self) -> str:
        if self.root:
            return "Server (all domains)"
        parts = []
        if self.domains:
            names = ", ".join(sorted(d.name for d in self.domains)[:5])
            more = f" and {len(self.domains) - 5} more" if len(self.domains) > 5 else ""
            parts.append(f"{len(self.domains)} domain{'s' if len(self.domains) != 1 else ''} ({names}{more})")
        if self.client_ids:
            parts.append(f"{len(self.client_ids)} client{'s' if len(self.client_ids) != 1 else ''}")
        return " and ".join(parts)


def ticked_client_ids(data) -> list[str]:
    """The clients ticked in a tree form: one box per row (``client``) and, per
    page of rows, "all clients on this page" (``client_page``: their ids,
    comma-separated), which works without JavaScript."""
    ids = list(data.getlist("client"))
    for page in data.getlist("client_page"):
        ids.extend(part for part in str(page).split(",") if part)
    return ids


def _int_ids(values: Iterable[Any], what: str) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise SelectionError(f"The selection names {what} that do not exist ({str(value)[:40]!r}).") from None
    return sorted(set(ids))


def selection_resolve(*, root: bool, domain_ids: Iterable[Any] = (), client_ids: Iterable[Any] = ()) -> Selection:
    """Check the ticked ids against the database; at most three queries."""
    domain_pks = _int_ids(domain_ids, "domains")
    client_pks = _int_ids(client_ids, "clients")
    if root:
        # The root stands for everything; ticks below it add nothing.
        return Selection(root=True)
    if not domain_pks and not client_pks:
        raise SelectionError("Select at least one domain or client in the client tree first.")
    domains = tuple(Domain.objects.filter(pk__in=domain_pks)) if domain_pks else ()
    missing = sorted(set(domain_pks) - {d.pk for d in domains})
    if missing:
        raise SelectionError(
            f"Domains with these ids do not exist (any more): {', '.join(map(str, missing[:10]))}. Reload the tree."
        )
    if client_pks:
        found = set(Client.objects.filter(pk__in=client_pks).values_list("pk", flat=True))
        missing = sorted(set(client_pks) - found)
        if missing:
            raise SelectionError(
                f"Clients with these ids do not exist (any more): {', '.join(map(str, missing[:10]))}. Reload the tree."
            )
    covered: tuple[int, ...] = ()
    if domains:
        ranges = Q(pk__in=[])
        for d in domains:
            ranges |= Q(tree_id=d.tree_id, lft__gte=d.lft, rght__lte=d.rght)
        covered = tuple(Domain.objects.filter(ranges).values_list("pk", flat=True))
    return Selection(root=False, domains=domains, client_ids=tuple(client_pks), covered_domain_ids=covered)


@dataclass(frozen=True)
class SelectionSummary:
    count: int
    on_counts: dict[str, int]

    def state(self, name: str) -> bool | None:
        """True/False when every selected client agrees, None when they are mixed (or there are none)."""
        on = self.on_counts[name]
        if self.count == 0:
            return None
        if on == self.count:
            return True
        if on == 0:
            return False
        return None

    def fingerprint(self) -> str:
        """Changes whenever a selected client's setting (or the selection's size) changes."""
        doc = {"count": self.count, **self.on_counts}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def selection_summary(selection: Selection) -> SelectionSummary:
    """One aggregate query: how many selected clients have each setting on."""
    aggregates = {name: Count("pk", filter=Q(**{name: True})) for name in SETTING_FIELDS}
    row = selection.clients().aggregate(total=Count("pk"), **aggregates)
    return SelectionSummary(count=row["total"], on_counts={name: row[name] for name in SETTING_FIELDS})


def selection_initial_states(selection: Selection, summary: SelectionSummary) -> dict[str, bool | None]:
    """What the dialog opens with: the clients' agreement, or, with no clients
    selected (empty domains), the selected domains' defaults."""
    if summary.count or not (selection.domains or selection.root):
        return {name: summary.state(name) for name in SETTING_FIELDS}
    sources = [d.settings_dict() for d in selection.domains] or [FutureDomainDefaults.load().settings_dict()]
    return {
        name: sources[0][name] if all(src[name] == sources[0][name] for src in sources) else None
        for name in SETTING_FIELDS
    }


@dataclass(frozen=True)
class SaveResult:
    clients_selected: int
    clients_changed: int
    domains_changed: int
    changes: dict[str, bool]


def _differs_q(changes: dict[str, bool]) -> Q:
    q = Q(pk__in=[])
    for name, value in changes.items():
        q |= ~Q(**{name: value})
    return q


@dataclass(frozen=True)
class Impact:
    """What a save would write: clients and domains whose settings would change."""

    clients: int
    domains: int


def privileges_impact(*, selection: Selection, changes: dict[str, bool], scope: str = SCOPE_ALL) -> Impact:
    """Count, without writing, what ``privileges_save`` would change (two queries at most)."""
    if not changes or (selection.root and scope == SCOPE_FUTURE):
        return Impact(clients=0, domains=0)
    clients = selection.clients().filter(_differs_q(changes)).count()
    if selection.root:
        domains = Domain.objects.filter(_differs_q(changes)).count()
    elif selection.covered_domain_ids:
        domains = Domain.objects.filter(pk__in=selection.covered_domain_ids).filter(_differs_q(changes)).count()
    else:
        domains = 0
    return Impact(clients=clients, domains=domains)


@transaction.atomic
def privileges_save(
    *,
    actor,
    selection: Selection,
    changes: dict[str, bool],
    scope: str = SCOPE_ALL,
    fingerprint: str | None = None,
) -> SaveResult:
    """Apply ``changes`` (only the settings the administrator set) to the selection.

    - domains/clients: their clients, and the defaults of the selected domains
      and their subdomains (clients joining them later start from those);
    - root, "Apply to All Clients": every client, every domain's defaults and
      the defaults of future domains;
    - root, "Apply to Future Domains Only": the defaults of future domains only.

    ``fingerprint`` is the selection's summary fingerprint when the dialog was
    opened; if the clients changed since, nothing is saved.
    """
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ValueError(f"Unknown settings: {sorted(unknown)}")
    if scope not in ROOT_SCOPES:
        raise ValueError(f"Unknown scope {scope!r}")
    if scope == SCOPE_FUTURE and not selection.root:
        raise SelectionError('"Apply to Future Domains Only" needs the server (root) selected.')

    if selection.root and scope == SCOPE_FUTURE:
        defaults = FutureDomainDefaults.objects.select_for_update().get_or_create(pk=1)[0]
        old = defaults.settings_dict()
        for name, value in changes.items():
            setattr(defaults, name, value)
        defaults.save()
        diff = {
            name: {"label": audit_label(name), "old": old[name], "new": value}
            for name, value in changes.items()
            if old[name] != value
        }
        audit_record(
            actor=actor,
            action="privileges.future_domains",
            target="Defaults for future domains",
            changes={**diff, "scope": ROOT_SCOPES[SCOPE_FUTURE]},
        )
        return SaveResult(clients_selected=0, clients_changed=0, domains_changed=0, changes=changes)

    before = selection_summary(selection)
    if fingerprint is not None and fingerprint != before.fingerprint():
        raise StaleSelectionError(
            "The settings of the selected clients changed after you opened this dialog. "
            "Nothing was saved: reopen the dialog to see the current settings."
        )
    clients_changed = domains_changed = 0
    if changes:
        # Only rows that actually differ are written: a no-op save touches nothing.
        clients_changed = selection.clients().filter(_differs_q(changes)).update(**changes)
        if selection.root:
            domains_changed = Domain.objects.filter(_differs_q(changes)).update(**changes)
            FutureDomainDefaults.load()
            FutureDomainDefaults.objects.filter(pk=1).update(**changes)
        elif selection.covered_domain_ids:
            domains_changed = (
                Domain.objects.filter(pk__in=selection.covered_domain_ids).filter(_differs_q(changes)).update(**changes)
            )

    def old_value(name: str) -> bool | str | None:
        state = before.state(name)
        return "mixed" if state is None and before.count else state

    changed: dict[str, dict[str, bool | str | None]] = {
        name: {"label": audit_label(name), "old": old_value(name), "new": value}
        for name, value in changes.items()
        if old_value(name) != value
    }
    named: dict[str, list[str]] = {}
    if 0 < before.count <= AUDIT_NAMED_CLIENTS:
        named["clients"] = sorted(selection.clients().values_list("hostname", flat=True))
    audit_record(
        actor=actor,
        action="privileges.save",
        target=selection.describe(),
        changes={
            **changed,
            "scope": ROOT_SCOPES[SCOPE_ALL] if selection.root else "Selected domains and clients",
            **named,
            "clients_selected": before.count,
            "clients_changed": clients_changed,
            "domains_changed": domains_changed,
            **_selection_record(selection),
        },
    )
    return SaveResult(
        clients_selected=before.count,
        clients_changed=clients_changed,
        domains_changed=domains_changed,
        changes=changes,
    )
