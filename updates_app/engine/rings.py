"""Staged roll-out of event-triggered updates: rings, soak, a threshold that halts by itself.

With the staged roll-out policy on (updates_app.models.RolloutPolicy; off by
default), a new component version does not go to the whole fleet at once.
Its event run gets a ``Rollout`` whose rings are notified one after another,
each through the ordinary delivery engine (same runs, same deliveries, same
15-minute retry rule, the same check-in hand-over):

1. ring 1: clients under the chosen domains and/or a share of the eligible
   clients chosen at random but stable per client (a hash of its guid, so the
   same clients are always the canaries);
2. ring 2 (optional): a larger share;
3. everyone else.

After a ring starts the server watches its reports for the soak time: update
failures the agents report, and agents that reported the update and then fell
silent (the sign of a crash an agent cannot report itself). Silence is judged
from the update report: an agent owes a check-in ("post_update") within
AGENT_POST_UPDATE_CHECKIN_SECONDS of reporting the update; one that makes
none within that bound, or that goes offline, is silent. The soak may not be shorter than the bound (the policy form refuses
it), and the next ring waits, past the soak if need be, until every update
reported during the soak has been judged: so silence in a ring is always
caught before the next ring starts, whatever the offline timer says.
When the evidence reaches the threshold (a percentage of the ring and a
minimum count) the roll-out halts: the next rings are not notified, and while
a roll-out is held (rolling out, halted or stopped) its version is offered
only to the clients of its started rings (``held_back_version_ids``, read by
the manifest and the restart rule; schedules lead to the manifest too).
Without a halt the next ring starts on its own once the soak is over
(``rollouts_advance``, run by beat).

A roll-out is superseded once a newer version of its component is current
(downloaded and not withdrawn): it may be stopped or rolled back, but it is
never resumed or advanced again (``rollouts_superseded_by``), so it cannot
push an older version to more clients.

Safety: a ring is started by a conditional UPDATE (``started_at`` IS NULL) in
the same transaction that records its members and creates its deliveries,
under a lock on the roll-out row. Two workers racing on PostgreSQL: the second
waits for the first's commit, then its UPDATE matches no row and it does
nothing. A worker killed mid-start rolls the whole transaction back: the ring
is not started, and the next beat starts it, once. Nothing waits in the broker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from console.audit import audit_record
from console.wording import duration, moment, plural
from updates_app.engine.runs import deliveries_create, event_eligible_clients, run_create_for_event
from updates_app.models import (
    HOLDING_STATES,
    AutoUpdateSettings,
    ComponentVersion,
    Delivery,
    Rollout,
    RolloutMember,
    RolloutPolicy,
    RolloutRing,
    RolloutState,
    RunTrigger,
    UpdateRun,
)
from updates_app.version_labels import version_label

logger = logging.getLogger(__name__)

BUCKETS = 10_000  # a client's bucket is 0..9999: shares in steps of 0.01 %


def client_bucket(guid: object) -> int:
    """A client's stable place in 0..9999: the same for every roll-out, spread evenly over the fleet."""
    return int(hashlib.sha256(str(guid).encode()).hexdigest()[:8], 16) % BUCKETS


def soak_seconds_for(policy: RolloutPolicy) -> int:
    # ROLLOUT_SOAK_SECONDS (tests, the demo) overrides the screen's minutes.
    return settings.ROLLOUT_SOAK_SECONDS or policy.soak_minutes * 60


@transaction.atomic
def rollout_create(*, version: ComponentVersion, now: dt.datetime | None = None) -> UpdateRun | None:
    """The event run of a new version as a staged roll-out: ring 1 is notified now, the others later.

    None when "Initiate component update ... immediately" is off, as for the
    plain event run; a component's first version goes out as a plain event
    run. A roll-out of an older version of the same component still rolling
    out is stopped: its remaining rings are never notified. A halted one
    stays halted.
    """
    now = now or timezone.now()
    auto = AutoUpdateSettings.load()
    if not auto.notify_on_download:
        return None
    earlier = ComponentVersion.objects.offered().filter(component_id=version.component_id, number__lt=version.number)
    if not earlier.exists():
        # A component's first version: nothing to hold back to, so nothing to stage.
        return run_create_for_event(version=version)
    policy = RolloutPolicy.load()
    # A halted one stays halted, with its evidence, for the administrator to decide.
    Rollout.objects.filter(version__component_id=version.component_id, state=RolloutState.ACTIVE).update(
        state=RolloutState.STOPPED, resolved_at=now
    )
    run = UpdateRun.objects.create(
        trigger=RunTrigger.EVENT, scan_after=auto.scan_after_update, component_version=version
    )
    rollout = Rollout.objects.create(
        run=run,
        version=version,
        ring1_domain_ids=sorted(policy.ring1_domains.values_list("pk", flat=True)),
        ring1_percent=policy.ring1_percent,
        ring2_percent=policy.ring2_percent,
        soak_seconds=soak_seconds_for(policy),
        halt_percent=policy.halt_percent,
        halt_min_count=policy.halt_min_count,
        include_roaming_offline=auto.include_roaming_offline,
    )
    numbers = [1, 2, 3] if policy.ring2_percent > policy.ring1_percent else [1, 2]
    rings = [RolloutRing(rollout=rollout, number=n, final=(n == numbers[-1])) for n in numbers]
    RolloutRing.objects.bulk_create(rings)
    ring_start(ring=RolloutRing.objects.get(rollout=rollout, number=1), now=now)
    return run


def ring_number_of(*, guid: object, in_ring1_domains: bool, ring1_percent: int, ring2_percent: int) -> int:
    """The ring a client falls in: 1, 2 (only when ring 2 is on) or 3 (everyone else). The one place of the rule."""
    bucket = client_bucket(guid)
    if in_ring1_domains or bucket < ring1_percent * BUCKETS // 100:
        return 1
    if bucket < ring2_percent * BUCKETS // 100:
        return 2
    return 3


def _rings_of(eligible, *, domain_ids: list[int], ring1_percent: int, ring2_percent: int):
    """(client pk, ring number) for the given clients, in one pass."""
    in_domains = set(eligible.in_domains(Domain.objects.filter(pk__in=domain_ids)).values_list("pk", flat=True))
    for pk, guid in eligible.values_list("pk", "guid").iterator(chunk_size=2000):
        yield (
            pk,
            ring_number_of(
                guid=guid, in_ring1_domains=pk in in_domains, ring1_percent=ring1_percent, ring2_percent=ring2_percent
            ),
        )


def _ring_client_ids(rollout: Rollout, ring: RolloutRing) -> list[int]:
    """The eligible clients of ``ring`` now, not already in an earlier ring (one pass over the eligible clients)."""
    eligible = event_eligible_clients(include_roaming_offline=rollout.include_roaming_offline).exclude(
        pk__in=RolloutMember.objects.filter(rollout=rollout).values("client_id")
    )
    if ring.final:
        return list(eligible.values_list("pk", flat=True))
    rings = _rings_of(
        eligible,
        domain_ids=rollout.ring1_domain_ids,
        ring1_percent=rollout.ring1_percent,
        ring2_percent=rollout.ring2_percent,
    )
    return [pk for pk, number in rings if number == ring.number]


def rings_preview(*, policy: RolloutPolicy) -> list[tuple[str, int, int]]:
    """What a roll-out started now would do: (ring, about how many clients, start offset in seconds).

    Two COUNT queries whatever the fleet's size: the clients under ring 1's
    domains are exact, the random shares are their expected size (the
    hashed buckets are spread evenly, so the real rings differ by a few).
    """
    auto = AutoUpdateSettings.load()
    eligible = event_eligible_clients(include_roaming_offline=auto.include_roaming_offline)
    total = eligible.count()
    domains = list(policy.ring1_domains.all())
    in_domains = eligible.in_domains(domains).count() if domains else 0
    rest = total - in_domains
    ring2_percent = policy.ring2_percent if policy.ring2_percent > policy.ring1_percent else 0
    ring1 = in_domains + round(rest * policy.ring1_percent / 100)
    ring2 = round(rest * (ring2_percent - policy.ring1_percent) / 100) if ring2_percent else 0
    soak = soak_seconds_for(policy)
    rows = [("Ring 1", ring1, 0)]
    if ring2_percent:
        rows.append(("Ring 2", ring2, soak))
    rows.append(("Everyone else", total - ring1 - ring2, soak * len(rows)))
    return rows


@transaction.atomic
def ring_start(*, ring: RolloutRing, now: dt.datetime | None = None) -> bool:
    """Notify a ring, once: True when this call started it, False when it was started already or may not start."""
    now = now or timezone.now()
    rollout = Rollout.objects.select_for_update(of=("self",)).select_related("version").get(pk=ring.rollout_id)
    if rollout.state != RolloutState.ACTIVE or rollouts_superseded_by([rollout]):
        return False
    soak_ends = now + dt.timedelta(seconds=rollout.soak_seconds)
    # The one guard that matters: only one transaction can move started_at from NULL.
    won = RolloutRing.objects.filter(pk=ring.pk, started_at__isnull=True).update(started_at=now, soak_ends_at=soak_ends)
    if not won:
        return False
    ids = _ring_client_ids(rollout, ring)
    RolloutMember.objects.bulk_create(
        [RolloutMember(rollout=rollout, ring_id=ring.pk, client_id=pk) for pk in ids], batch_size=2000
    )
    count = deliveries_create(run=rollout.run, clients=Client.objects.filter(pk__in=ids)) if ids else 0
    RolloutRing.objects.filter(pk=ring.pk).update(clients=count)
    if ring.final:
        Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.COMPLETED)
    logger.info("%s: ring %d started with %s", rollout, ring.number, plural(count, "client"))
    return True


# Evidence rows kept with a halt and shown on the summary; the counts cover them all.
EVIDENCE_SHOWN = 200


def post_update_bound() -> dt.timedelta:
    """How long after reporting an update an agent may take to check in before it counts as silent."""
    return dt.timedelta(seconds=settings.AGENT_POST_UPDATE_CHECKIN_SECONDS)


def soak_minimum_minutes() -> int:
    """The shortest soak the policy accepts: the post-update bound, in whole minutes rounded up."""
    return -(-settings.AGENT_POST_UPDATE_CHECKIN_SECONDS // 60)


# No post-update check-in since the update report. Only that check-in counts, not any contact: a
# heartbeat the agent sent before its report may arrive after it, and proves nothing about the update.
_NO_CHECKIN_SINCE_REPORT = Q(client__post_update_checkin_at__isnull=True) | Q(
    client__post_update_checkin_at__lte=F("update_reported_at")
)


def _silent(now: dt.datetime) -> Q:
    """Reported the update, then went offline or made no post-update check-in within the bound."""
    return Q(update_reported_at__isnull=False) & (
        Q(client__status=ConnectionStatus.OFFLINE)
        | (Q(update_reported_at__lte=now - post_update_bound()) & _NO_CHECKIN_SINCE_REPORT)
    )


def _ring_deliveries(ring: RolloutRing) -> QuerySet[Delivery, Delivery]:
    return Delivery.objects.filter(run_id=ring.rollout.run_id, client__in=ring.members.values("client_id"))


def _evidence_rows(ring: RolloutRing, now: dt.datetime) -> QuerySet[Delivery, Delivery]:
    """The ring's deliveries that speak against the version: failed updates, and clients silent after updating."""
    return _ring_deliveries(ring).filter(Q(failure_reported_at__isnull=False) | _silent(now))


def awaiting_post_update_checkin(ring: RolloutRing, now: dt.datetime) -> bool:
    """Is an update reported during the ring's soak still waiting for its post-update check-in (not judged yet)?

    The next ring waits for them: at most the post-update bound past the soak.
    """
    return (
        _ring_deliveries(ring)
        .filter(
            _NO_CHECKIN_SINCE_REPORT,
            update_reported_at__gt=now - post_update_bound(),
            update_reported_at__lte=ring.soak_ends_at or now,
            failure_reported_at__isnull=True,
        )
        .exclude(client__status=ConnectionStatus.OFFLINE)
        .exists()
    )


def _silence_words(client: Client) -> str:
    last = f" (last contact {moment(client.last_contact_at)})" if client.last_contact_at else ""
    if client.status == ConnectionStatus.OFFLINE:
        return f"reported the update, then fell silent: offline{last}"
    return (
        f"reported the update, then fell silent: no post-update check-in within {duration(post_update_bound())}{last}"
    )


def ring_evidence(ring: RolloutRing, *, limit: int = EVIDENCE_SHOWN, now: dt.datetime | None = None) -> list[dict]:
    """The evidence against the version in this ring, one entry per client (the first ``limit``)."""
    now = now or timezone.now()
    rows = _evidence_rows(ring, now).select_related("client").order_by("client__hostname", "pk")[:limit]
    evidence = []
    for delivery in rows:
        client = delivery.client
        at: dt.datetime | None
        if delivery.failure_reported_at is not None:
            kind, at = "failure", delivery.failure_reported_at
            message = delivery.failure_message or "the agent reported that the update failed"
        else:
            kind, at = "silent", delivery.update_reported_at
            message = _silence_words(client)
        evidence.append(
            {
                "client": str(client.guid),
                "client_pk": client.pk,
                "hostname": client.hostname,
                "ring": ring.number,
                "kind": kind,
                "message": message[:300],
                "at": at.isoformat() if at else None,
            }
        )
    return evidence


def threshold_reached(*, bad: int, ring_size: int, rollout: Rollout) -> bool:
    """The halt rule: at least ``halt_min_count`` clients and at least ``halt_percent`` % of the ring."""
    return bad >= rollout.halt_min_count and bad * 100 >= rollout.halt_percent * max(ring_size, 1)


def rollout_halt_if_bad(*, rollout: Rollout, ring: RolloutRing, now: dt.datetime) -> bool:
    rows = _evidence_rows(ring, now)
    bad = rows.count()
    if not threshold_reached(bad=bad, ring_size=ring.clients, rollout=rollout):
        return False
    failures = rows.filter(failure_reported_at__isnull=False).count()
    evidence = ring_evidence(ring, now=now)
    summary = (
        f"Ring {ring.number}: {bad} of {plural(ring.clients, 'client')} — {failures} reported a failed update, "
        f"{bad - failures} fell silent after updating (threshold {rollout.halt_percent} % and at least "
        f"{rollout.halt_min_count})."
    )
    # Conditional: a roll-out the administrator stopped meanwhile stays stopped.
    halted = Rollout.objects.filter(pk=rollout.pk, state=RolloutState.ACTIVE).update(
        state=RolloutState.HALTED, halted_at=now, halt_evidence=evidence, halt_summary=summary[:300]
    )
    if halted:
        logger.warning("%s halted: %s", rollout, summary)
        audit_record(actor=None, action="staged roll-out halted", target=str(rollout), changes={"why": summary})
    return bool(halted)


def rollouts_advance(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Beat: halt a roll-out whose current ring looks bad; otherwise start its next ring after the soak.

    The next ring starts once the soak is over and every update reported during it has been judged
    (checked in after it, or counted silent). A superseded roll-out is stopped instead.
    """
    now = now or timezone.now()
    done = {"halted": 0, "started": 0}
    active = list(Rollout.objects.filter(state=RolloutState.ACTIVE).select_related("run", "version"))
    superseded = rollouts_superseded_by(active)
    for rollout in active:
        if rollout.pk in superseded:
            _stop_superseded(rollout, by=superseded[rollout.pk], now=now)
            continue
        rings = list(rollout.rings.order_by("number"))
        started = [r for r in rings if r.started_at is not None]
        pending = [r for r in rings if r.started_at is None]
        if not pending:
            continue
        if not started:
            # Its first ring's start was lost with a worker: start it now.
            done["started"] += ring_start(ring=pending[0], now=now)
            continue
        current = started[-1]
        if rollout_halt_if_bad(rollout=rollout, ring=current, now=now):
            done["halted"] += 1
        elif (
            current.soak_ends_at is not None
            and current.soak_ends_at <= now
            and not awaiting_post_update_checkin(current, now)
        ):
            done["started"] += ring_start(ring=pending[0], now=now)
    return done


def rollouts_superseded_by(rollouts: list[Rollout]) -> dict[int, str]:
    """{roll-out pk: the label of its component's current version} for those a newer current version superseded.

    Current: the newest version not withdrawn (also while its own roll-out holds it back). One query.
    """
    component_ids = {r.version.component_id for r in rollouts}
    if not component_ids:
        return {}
    current = dict(
        ComponentVersion.objects.offered()
        .filter(component_id__in=component_ids)
        .values("component_id")
        .annotate(latest=Max("number"))
        .values_list("component_id", "latest")
    )
    return {
        r.pk: version_label(current[r.version.component_id])
        for r in rollouts
        if current.get(r.version.component_id, r.version.number) > r.version.number
    }


class RolloutSuperseded(ValueError):
    """Resuming a roll-out a newer version superseded: refused, nothing changed; the message says why."""


def superseded_words(rollout: Rollout, by: str) -> str:
    """Why a superseded roll-out is not resumed: the refusal's message and the Summary's note."""
    return (
        f"{rollout} was superseded by {by}: it can be stopped or rolled back, but not resumed "
        "(it would send an older version to more clients)."
    )


def _stop_superseded(rollout: Rollout, *, by: str, now: dt.datetime) -> None:
    # Conditional: whatever the administrator did meanwhile stands.
    if Rollout.objects.filter(pk=rollout.pk, state=RolloutState.ACTIVE).update(
        state=RolloutState.STOPPED, resolved_at=now
    ):
        why = f"superseded by {by}: no further ring"
        logger.info("%s stopped: %s", rollout, why)
        audit_record(actor=None, action="staged roll-out stopped", target=str(rollout), changes={"why": why})


@transaction.atomic
def rollout_resume(*, rollout: Rollout, actor) -> bool:
    """The administrator accepts the evidence: the roll-out goes on, its next ring starts now.

    False when it is not halted; RolloutSuperseded (nothing changed) when a newer version is current.
    """
    locked = Rollout.objects.select_for_update(of=("self",)).select_related("version__component").get(pk=rollout.pk)
    superseded = rollouts_superseded_by([locked])
    if locked.state == RolloutState.HALTED and superseded:
        raise RolloutSuperseded(superseded_words(locked, superseded[locked.pk]))
    resumed = Rollout.objects.filter(pk=rollout.pk, state=RolloutState.HALTED).update(
        state=RolloutState.ACTIVE, resolved_at=timezone.now(), resolved_by=actor
    )
    if not resumed:
        return False
    audit_record(actor=actor, action="staged roll-out resumed", target=str(rollout), changes={})
    following = rollout.rings.filter(started_at__isnull=True).order_by("number").first()
    if following is not None:
        ring_start(ring=following)
    return True


@transaction.atomic
def rollout_stop(*, rollout: Rollout, actor) -> bool:
    """No further ring: the version stays with the clients that have it and is offered to nobody else."""
    stopped = Rollout.objects.filter(pk=rollout.pk, state__in=[RolloutState.ACTIVE, RolloutState.HALTED]).update(
        state=RolloutState.STOPPED, resolved_at=timezone.now(), resolved_by=actor
    )
    if stopped:
        audit_record(actor=actor, action="staged roll-out stopped", target=str(rollout), changes={})
    return bool(stopped)


def held_back_versions(client_id: int | None) -> QuerySet[Rollout, Any]:
    """The ids (``version_id``) of versions of held roll-outs (rolling out, halted, stopped) this client
    is not in a started ring of: a query, to read or to use as a subquery (``latest_version_numbers``)."""
    held = Rollout.objects.filter(state__in=HOLDING_STATES)
    if client_id is not None:
        held = held.exclude(members__client_id=client_id)
    return held.values("version_id")


def held_back_version_ids(client_id: int | None) -> set[int]:
    """The ids ``held_back_versions`` names, read."""
    return {row["version_id"] for row in held_back_versions(client_id)}
