"""Compliance: each client's version of each component against the server's, counted in SQL.

The one place that says what "up to date", "outdated", "inconsistent" and
"unknown" mean (the Update Summary, Manual Update, the client lists behind the
counts, the engine's restart rule and the rollback run all ask this module).
For a component C whose current version on the server is L (its newest version
not withdrawn by a rollback, ``ComponentVersion.objects.offered()``):

- **up to date**: the client reports L;
- **outdated** (behind): it reports a version below L that the server had,
  or a version the server had and has **withdrawn** (a rollback took it back,
  so it lies above L): the client must go back, and the restart rule and the
  rollback run reach it as they reach any outdated client;
- **inconsistent**: it reports a version above L that was not withdrawn, a
  version the server never had (every version of a component the server does
  not hold is one), or something that is not a version at all;
- **unknown**: it never reported C.

One client's restart rule also leaves out versions a staged roll-out holds
back from it (``held_back``: a halted or rolling-out version the client is not
in a started ring of): for that client the current version is the one before.

"Clients with outdated components" are the clients outdated on at least one
component the server holds.

Three forms, one rule (a test checks that they agree on a mixed fleet):

- ``component_state`` judges one value in Python (the restart rule: one client);
- ``clients_in_state`` / ``outdated_clients`` select clients in SQL from
  ``ClientComponent`` (client, component, number), indexed by (component,
  number): the client lists and the Manual Update run;
- ``compliance_counts`` counts from ``VersionProfile``: one row per distinct
  set of versions with the number of active clients reporting it. A fleet of
  100,000 clients holds a few hundred such sets at most (most clients are
  current), so the counts cost the same at 1,000 or 100,000 clients, where a
  COUNT over the index still reads every client's row (about 20 ms per
  100,000 rows on SQLite, measured; bench/summary_bench.py has the figures).

``client_versions_record`` keeps the three tables in step whenever a client's
reported versions change; ``client_versions_forget`` takes revoked clients out.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, Field, Max, Model, OuterRef, Q, QuerySet

from agents_app.models import Client, ClientQuerySet
from console.compiled import AnyOf, CompiledQuery, RawStatement
from updates_app.models import ClientComponent, ClientProfile, Component, ComponentVersion, VersionProfile
from updates_app.version_labels import reported_number, version_label

UP_TO_DATE = "up_to_date"
OUTDATED = "outdated"
INCONSISTENT = "inconsistent"
UNKNOWN = "unknown"
STATES = (UP_TO_DATE, OUTDATED, INCONSISTENT, UNKNOWN)
STATE_LABELS = {
    UP_TO_DATE: "Up to date",
    OUTDATED: "Outdated",
    INCONSISTENT: "Inconsistent",
    UNKNOWN: "Unknown",
}

Numbers = dict[str, int | None]
MAX_NUMBER = 2**31 - 1


# --- Pure rules ---------------------------------------------------------------------------


def reported_numbers(reported: object) -> Numbers:
    """What an agent reported, as {slug: number or None (unreadable)}; anything but a dict is nothing."""
    if not isinstance(reported, Mapping):
        return {}
    numbers: Numbers = {}
    for slug, value in reported.items():
        number = reported_number(value)
        # A number no version can have (the column is a 32-bit integer) is unreadable too.
        numbers[str(slug)[:50]] = number if number is not None and 0 <= number <= MAX_NUMBER else None
    return numbers


def profile_digest(numbers: Numbers) -> str:
    """A stable name for a set of versions (the key of its VersionProfile)."""
    return hashlib.sha256(json.dumps(sorted(numbers.items()), separators=(",", ":")).encode()).hexdigest()


def component_state(
    number: int | None, *, reported: bool, latest: int | None, known: bool, withdrawn: bool = False
) -> str:
    """The state of one client for one component.

    ``reported``: the client named the component; ``number``: what it named
    (None when unreadable); ``latest``: the server's current version (None when
    the server holds none); ``known``: the server has or had ``number``;
    ``withdrawn``: ``number`` is a version the server withdrew (a rollback).
    """
    if not reported:
        return UNKNOWN
    if number is None or latest is None or not known:
        return INCONSISTENT
    if withdrawn:
        return OUTDATED  # the client holds a withdrawn version: it must roll back
    if number > latest:
        return INCONSISTENT
    return UP_TO_DATE if number == latest else OUTDATED


# --- What the server holds ------------------------------------------------------------------


def latest_version_numbers(*, held_back: Collection[int] = ()) -> dict[str, int]:
    """{component slug: the server's current version number (withdrawn versions never count)}, in one query.

    ``held_back``: ids of versions a staged roll-out does not offer to the client asking.
    """
    return {row["component__slug"]: row["latest"] for row in latest_versions_query(held_back=held_back)}


def latest_versions_query(*, held_back: Collection[int] | QuerySet[Any] = ()) -> QuerySet[Any]:
    """The query behind ``latest_version_numbers``: rows of ``component__slug`` and ``latest``.

    ``held_back`` may also be the query naming those versions (``rings.held_back_versions``), which then
    runs inside this one (``engine.handover.latest_offered_to``).
    """
    offered = ComponentVersion.objects.offered().exclude(pk__in=held_back)
    return offered.values("component__slug").annotate(latest=Max("number"))


def _known_versions_query(slugs: list[str], numbers: list[int]) -> QuerySet[Any]:
    return (
        ComponentVersion.objects.filter(AnyOf(F("component__slug"), slugs), AnyOf(F("number"), numbers))
        .order_by()
        .values_list("component__slug", "number", "withdrawn_at")
    )


# Every registration and every report that changes a client's versions asks this: compiled once.
_KNOWN_VERSIONS = CompiledQuery(ComponentVersion, build=_known_versions_query)


def known_versions(pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], bool]:
    """Which of these (slug, number) pairs the server has or had: {pair: withdrawn?}, in one query."""
    wanted = set(pairs)
    if not wanted:
        return {}
    rows = _KNOWN_VERSIONS.rows(
        slugs=sorted({slug for slug, _ in wanted}), numbers=sorted({number for _, number in wanted})
    )
    return {(slug, number): withdrawn_at is not None for slug, number, withdrawn_at in rows if (slug, number) in wanted}


# --- One client (Python) ------------------------------------------------------------------


def client_states(
    reported: object,
    *,
    held_back: Collection[int] = (),
    known: dict[tuple[str, int], bool] | None = None,
    latest: dict[str, int] | None = None,
) -> dict[str, str]:
    """{slug: state} for every component the server holds or the client reports (two queries).

    ``known``: what ``known_versions`` answered for the reported versions, and ``latest`` what
    ``latest_version_numbers`` answered for this client, when the caller asked already.
    """
    numbers = reported_numbers(reported)
    if latest is None:
        latest = latest_version_numbers(held_back=held_back)
    if known is None:
        known = known_versions((slug, n) for slug, n in numbers.items() if n is not None)
    states: dict[str, str] = {}
    for slug in sorted({*latest, *numbers}):
        number = numbers.get(slug)
        pair = (slug, number) if number is not None else None
        states[slug] = component_state(
            number,
            reported=slug in numbers,
            latest=latest.get(slug),
            known=pair in known,
            withdrawn=known.get(pair, False) if pair else False,
        )
    return states


def outdated_slugs(reported: object, *, held_back: Collection[int] = ()) -> list[str]:
    """The components the server holds on which a client that reported ``reported`` is behind."""
    return [slug for slug, state in client_states(reported, held_back=held_back).items() if state == OUTDATED]


def update_due_slugs(
    reported: object,
    *,
    latest: dict[str, int] | None = None,
    known: dict[tuple[str, int], bool] | None = None,
) -> list[str]:
    """The components an update would bring: outdated ones, and held ones the client never reported.

    The restart rule (engine/handover.py) asks this: a client that restarts
    without a component the server holds has missed an update as surely as one
    that is behind, and so has one holding a version withdrawn by a rollback
    (outdated). Clients ahead of the server (inconsistent) are left alone.
    ``latest``: the latest versions offered to this client (what a staged
    roll-out holds back excluded; read when not given); ``known`` as
    ``client_states`` takes it.
    """
    states = client_states(reported, known=known, latest=latest)
    return [slug for slug, state in states.items() if state in (OUTDATED, UNKNOWN)]


# --- Many clients (SQL) -----------------------------------------------------------------------


def _version_is_known() -> Exists:
    return Exists(ComponentVersion.objects.filter(component__slug=OuterRef("component"), number=OuterRef("number")))


def _version_is_withdrawn() -> Exists:
    return Exists(
        ComponentVersion.objects.filter(
            component__slug=OuterRef("component"), number=OuterRef("number"), withdrawn_at__isnull=False
        )
    )


def _rows_in_state(slug: str, state: str, latest: int | None) -> QuerySet[ClientComponent]:
    """ClientComponent rows of ``slug`` in ``state`` (not UNKNOWN: that is the absence of a row)."""
    rows = ClientComponent.objects.filter(component=slug)
    if state == UP_TO_DATE:
        return rows.filter(number=latest) if latest is not None else rows.none()
    if state == OUTDATED:
        if latest is None:
            return rows.none()
        return rows.filter((Q(number__lt=latest) & _version_is_known()) | _version_is_withdrawn())
    if state == INCONSISTENT:
        if latest is None:
            return rows
        return rows.filter(
            Q(number__isnull=True) | (Q(number__gt=latest) & ~_version_is_withdrawn()) | ~_version_is_known()
        )
    raise ValueError(f"no rows for state {state!r}")


def clients_in_state(*, component: str, state: str) -> ClientQuerySet:
    """Active clients in ``state`` for the component with slug ``component``, as one queryset."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    active = Client.objects.active()
    if state == UNKNOWN:
        return active.exclude(Exists(ClientComponent.objects.filter(client=OuterRef("pk"), component=component)))
    latest = latest_version_numbers().get(component)
    rows = _rows_in_state(component, state, latest)
    return active.filter(Exists(rows.filter(client=OuterRef("pk"))))


def outdated_clients() -> ClientQuerySet:
    """Active clients behind on at least one component the server holds ("clients with outdated components")."""
    latest = latest_version_numbers()
    if not latest:
        return Client.objects.none()
    behind = Q()
    for slug, number in latest.items():
        behind |= Q(component=slug, number__lt=number)
    # Behind a held component, or on a version of it the server withdrew (a rollback).
    rows = ClientComponent.objects.filter(
        (behind & _version_is_known()) | (Q(component__in=list(latest)) & _version_is_withdrawn())
    )
    return Client.objects.active().filter(Exists(rows.filter(client=OuterRef("pk"))))


# --- Counts (from the tallies) --------------------------------------------------------------------


@dataclass
class ComponentCompliance:
    """One component's row of the compliance table."""

    slug: str
    name: str
    on_server: bool  # the server knows the component (it may have no version yet)
    held: bool  # the server holds a version of it
    latest_number: int | None
    last_updated: object
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    # After a rollback: the newest withdrawn version above the current one, and
    # how many clients still hold a withdrawn version (counted as outdated).
    withdrawn_number: int | None = None
    on_withdrawn: int = 0

    @property
    def clients(self) -> int:
        return sum(self.counts.values())

    def rate(self, state: str) -> float:
        return self.counts[state] / self.clients if self.clients else 0.0

    @property
    def compliance_rate(self) -> float:
        """The share of clients up to date."""
        return self.rate(UP_TO_DATE)

    @property
    def latest_label(self) -> str | None:
        return None if self.latest_number is None else version_label(self.latest_number)

    @property
    def rolled_back_from_label(self) -> str | None:
        return None if self.withdrawn_number is None else version_label(self.withdrawn_number)

    @property
    def cells(self) -> list[tuple[str, str, int, float]]:
        """(state, label, count, percent) in the order of the table's columns."""
        return [(state, STATE_LABELS[state], self.counts[state], 100 * self.rate(state)) for state in STATES]


@dataclass
class Compliance:
    components: list[ComponentCompliance]
    clients: int  # active clients counted
    outdated_clients: int  # behind on at least one component the server holds


def compliance_counts() -> Compliance:
    """Every component the server holds or clients report, with the four counts; a few small queries."""
    profiles = list(VersionProfile.objects.filter(clients__gt=0).values_list("versions", "clients"))
    offered = Q(versions__withdrawn_at__isnull=True)
    servers = {
        c.slug: c
        for c in Component.objects.annotate(
            latest=Max("versions__number", filter=offered),
            last=Max("versions__released_at", filter=offered),
            withdrawn=Max("versions__number", filter=~offered),
        )
    }
    latest = {slug: c.latest for slug, c in servers.items() if c.latest is not None}
    reported_slugs = {slug for versions, _ in profiles for slug in versions}
    known = known_versions(
        (slug, number) for versions, _ in profiles for slug, number in versions.items() if number is not None
    )
    rows: dict[str, ComponentCompliance] = {}
    for slug in sorted({*servers, *reported_slugs}):
        component = servers.get(slug)
        rows[slug] = ComponentCompliance(
            slug=slug,
            name=component.name if component else slug,
            on_server=component is not None,
            held=slug in latest,
            latest_number=latest.get(slug),
            last_updated=component.last if component else None,
            # Rolled back: withdrawn versions above the current one (a later download clears this).
            withdrawn_number=(
                component.withdrawn
                if component
                and component.withdrawn
                and (component.latest is None or component.withdrawn > component.latest)
                else None
            ),
        )
    total = outdated_total = 0
    for versions, clients in profiles:
        total += clients
        behind = False
        for slug, row in rows.items():
            withdrawn = known.get((slug, versions.get(slug)), False)
            state = component_state(
                versions.get(slug),
                reported=slug in versions,
                latest=latest.get(slug),
                known=(slug, versions.get(slug)) in known,
                withdrawn=withdrawn,
            )
            row.counts[state] += clients
            if withdrawn and state == OUTDATED:
                row.on_withdrawn += clients
            behind = behind or state == OUTDATED
        if behind:
            outdated_total += clients
    # Components first as the server knows them (by name), then those only clients report.
    ordered = sorted(rows.values(), key=lambda r: (r.slug not in servers, r.name.lower()))
    return Compliance(components=ordered, clients=total, outdated_clients=outdated_total)


# --- Keeping the tables in step ---------------------------------------------------------------


def _profiles_ensure(changes: Mapping[str, int], versions: Mapping[str, Numbers]) -> dict[str, VersionProfile]:
    """The profiles ``changes`` names, the ones clients move into created when missing.

    Read first: a fleet holds few distinct sets of versions, so the profile
    almost always exists and this is one SELECT. A missing one is inserted
    (a concurrent insert of the same profile is waited for and skipped) and
    read back.
    """
    digests = sorted(d for d, n in changes.items() if n)
    found = {p.digest: p for p in VersionProfile.objects.filter(digest__in=digests)}
    missing = [VersionProfile(digest=d, versions=versions[d]) for d in digests if changes[d] > 0 and d not in found]
    if missing:
        VersionProfile.objects.bulk_create(missing, ignore_conflicts=True)
        created = VersionProfile.objects.filter(digest__in=[p.digest for p in missing])
        found.update({p.digest: p for p in created})
    return found


def _new_client_counted_sql(connection: BaseDatabaseWrapper) -> str:
    quote = connection.ops.quote_name

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    def column(model: type[Model], name: str) -> str:
        field = model._meta.get_field(name)
        assert isinstance(field, Field) and field.column
        return quote(field.column)

    profile, link, row = VersionProfile, ClientProfile, ClientComponent
    # The profile's count first: no profile, no link and no rows (the caller takes the long way).
    return f"""
        WITH counted AS (
            UPDATE {table(profile)} SET {column(profile, "clients")} = {column(profile, "clients")} + 1
            WHERE {column(profile, "digest")} = %s RETURNING {column(profile, "id")} AS id
        ), linked AS (
            INSERT INTO {table(link)} ({column(link, "client")}, {column(link, "profile")})
            SELECT %s, id FROM counted RETURNING {column(link, "profile")} AS profile_id
        ), stored AS (
            INSERT INTO {table(row)} ({column(row, "client")}, {column(row, "component")}, {column(row, "number")})
            SELECT %s, reported.slug, reported.number
            FROM unnest(%s::text[], %s::integer[]) AS reported(slug, number)
            WHERE EXISTS (SELECT 1 FROM linked)
        )
        SELECT profile_id FROM linked
    """  # noqa: S608 (names from the models' metadata; every value is bound)


# A fleet's registrations: PostgreSQL only (SQLite, the embedded default, has no data-modifying WITH).
_NEW_CLIENT_COUNTED = RawStatement(_new_client_counted_sql)


def _new_client_counted(client_id: int, digest: str, numbers: Numbers) -> bool:
    """A new client counted in its existing profile, linked to it, and its rows stored: one statement.

    What ``client_versions_record`` does for a client with nothing on record,
    when the fleet already holds its set of versions (the registrations of a
    fleet's start); False, with nothing written, when the profile is new.
    """
    slugs = list(numbers)
    counted = _NEW_CLIENT_COUNTED.rows([digest, client_id, client_id, slugs, [numbers[s] for s in slugs]])
    return bool(counted)


def _tally_move(changes: Mapping[str, int]) -> None:
    """Add ``changes[digest]`` clients to each profile (which must exist).

    The last writes of their transaction: many clients share one profile (a
    whole fleet registers holding the same versions), and its row stays
    locked from this UPDATE to the commit, so nothing else waits behind it.
    Rows are touched in digest order, so two check-ins moving clients between
    the same two profiles in opposite directions cannot deadlock.
    """
    for digest in sorted(d for d, n in changes.items() if n):
        VersionProfile.objects.filter(digest=digest).update(clients=F("clients") + changes[digest])


# No savepoint of its own inside a caller's transaction (a registration's, a report's): nobody
# catches its errors to go on, and two statements less for every enrolment.
@transaction.atomic(savepoint=False)
def client_versions_record(*, client: Client, reported: object, new: bool = False) -> bool:
    """Store what ``client`` reported (its full set of versions); False when nothing changed.

    Callers hold the client's row (they have just updated it in the same
    transaction), so two reports of one client do not interleave. ``new``: the
    client was created in this transaction and has nothing on record yet, so
    there is nothing to look up, move or remove (registration's fast path).
    """
    numbers = reported_numbers(reported)
    digest = profile_digest(numbers)
    if new and connection.vendor == "postgresql" and _new_client_counted(client.pk, digest, numbers):
        return True
    link = None if new else ClientProfile.objects.select_related("profile").filter(client=client).first()
    if link is not None and link.profile.digest == digest:
        return False
    changes: Counter[str] = Counter({digest: 1})
    versions = {digest: numbers}
    if link is not None:
        changes[link.profile.digest] -= 1
        versions[link.profile.digest] = link.profile.versions
    profiles = _profiles_ensure(changes, versions)
    if new:
        ClientProfile.objects.create(client=client, profile=profiles[digest])
    else:
        ClientProfile.objects.update_or_create(client=client, defaults={"profile": profiles[digest]})
        ClientComponent.objects.filter(client=client).exclude(component__in=list(numbers)).delete()
    if numbers:
        ClientComponent.objects.bulk_create(
            [ClientComponent(client=client, component=slug, number=n) for slug, n in numbers.items()],
            update_conflicts=True,
            unique_fields=["client", "component"],
            update_fields=["number"],
        )
    _tally_move(changes)
    return True


@transaction.atomic
def client_versions_forget(*, client_ids: Iterable[int]) -> int:
    """Take clients out of the counts and selections (they were revoked); returns how many were counted."""
    ids = list(client_ids)
    links = list(ClientProfile.objects.filter(client_id__in=ids).values_list("profile__digest", flat=True))
    if not links:
        ClientComponent.objects.filter(client_id__in=ids).delete()
        return 0
    changes: Counter[str] = Counter()
    for digest in links:
        changes[digest] -= 1
    ClientProfile.objects.filter(client_id__in=ids).delete()
    ClientComponent.objects.filter(client_id__in=ids).delete()
    _tally_move(changes)
    return len(links)


BULK_BATCH = 5000


@transaction.atomic
def clients_versions_load(rows: Iterable[tuple[int, object]]) -> int:
    """Replace the recorded versions of many clients at once (seed data, benchmarks), then recount.

    ``rows``: (client id, reported dict). Bulk inserts; the tallies are rebuilt
    from scratch afterwards (``compliance_rebuild``).
    """
    pending: list[ClientComponent] = []
    ids: list[int] = []
    count = 0
    for client_id, reported in rows:
        ids.append(client_id)
        count += 1
        pending.extend(
            ClientComponent(client_id=client_id, component=slug, number=number)
            for slug, number in reported_numbers(reported).items()
        )
        if len(ids) >= BULK_BATCH:
            ClientComponent.objects.filter(client_id__in=ids).delete()
            ClientComponent.objects.bulk_create(pending, batch_size=BULK_BATCH)
            pending, ids = [], []
    if ids:
        ClientComponent.objects.filter(client_id__in=ids).delete()
        ClientComponent.objects.bulk_create(pending, batch_size=BULK_BATCH)
    compliance_rebuild()
    return count


@transaction.atomic
def compliance_rebuild() -> int:
    """Recount every tally from ClientComponent (after bulk changes or to repair); returns the clients counted.

    Reads each active client's rows once: seconds for 100,000 clients, so it
    is for seeding and repairs, never for a request.
    """
    ClientComponent.objects.filter(client__revoked_at__isnull=False).delete()
    by_client: dict[int, Numbers] = defaultdict(dict)
    for client_id, slug, number in (
        ClientComponent.objects.order_by().values_list("client_id", "component", "number").iterator(chunk_size=10000)
    ):
        by_client[client_id][slug] = number
    ClientProfile.objects.all().delete()
    VersionProfile.objects.all().delete()
    members: dict[str, list[int]] = defaultdict(list)
    versions: dict[str, Numbers] = {}
    for client_id in Client.objects.active().values_list("pk", flat=True).iterator(chunk_size=10000):
        numbers = by_client.get(client_id, {})
        digest = profile_digest(numbers)
        versions.setdefault(digest, numbers)
        members[digest].append(client_id)
    profiles = VersionProfile.objects.bulk_create(
        [VersionProfile(digest=d, versions=versions[d], clients=len(ids)) for d, ids in members.items()]
    )
    if not all(p.pk for p in profiles):  # SQLite < 3.35 does not return ids
        profiles = list(VersionProfile.objects.all())
    by_digest = {p.digest: p.pk for p in profiles}
    ClientProfile.objects.bulk_create(
        [ClientProfile(client_id=cid, profile_id=by_digest[d]) for d, ids in members.items() for cid in ids],
        batch_size=BULK_BATCH,
    )
    return sum(len(ids) for ids in members.values())
