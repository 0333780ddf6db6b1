"""Staged roll-out: rings, the halt rule, holding the version back, resuming, stopping, starting a ring once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from console.models import AuditEntry
from tests.updates_app.workers import database_url
from updates_app.compliance import client_versions_record, latest_version_numbers
from updates_app.components import component_download, component_manifest, component_resolve
from updates_app.engine import rings as rings_module
from updates_app.engine.handover import actions_for_checkin
from updates_app.engine.reports import delivery_mark_failed
from updates_app.engine.rings import (
    RolloutSuperseded,
    client_bucket,
    held_back_version_ids,
    ring_start,
    rollout_resume,
    rollout_stop,
    rollouts_advance,
    rollouts_superseded_by,
    threshold_reached,
)
from updates_app.models import (
    AutoUpdateSettings,
    Delivery,
    Rollout,
    RolloutMember,
    RolloutPolicy,
    RolloutRing,
    RolloutState,
    RunTrigger,
    UpdateRun,
)
from updates_app.rollback import component_rollback, rollout_roll_back
from updates_app.staged import rollouts_for_summary
from updates_app.version_labels import version_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet_of_ten(component_storage, django_capture_on_commit_callbacks, settings):
    settings.ROLLOUT_SOAK_SECONDS = 60
    canary = Domain.objects.create(name="Canary")
    office = Domain.objects.create(name="Office")
    component = component_resolve("virus_pattern")
    with django_capture_on_commit_callbacks(execute=True):
        first = component_download(component=component)
    label = version_label(first.number)
    clients = [
        Client.objects.create(
            domain=canary if i < 2 else office,
            hostname=f"pc-{i}",
            ip_address="127.0.0.1",
            status=ConnectionStatus.ONLINE,
            component_versions={"virus_pattern": label},
        )
        for i in range(10)
    ]
    policy = RolloutPolicy.load()
    policy.enabled = True
    policy.ring1_percent = 0
    policy.ring2_percent = 0
    policy.halt_percent = 50
    policy.halt_min_count = 2
    policy.save()
    policy.ring1_domains.set([canary])
    return component, first, clients


def download(component, capture):
    with capture(execute=True):
        return component_download(component=component)


def test_the_policy_is_off_by_default(db):
    assert RolloutPolicy.load().enabled is False


def test_without_the_policy_the_whole_fleet_is_notified_at_once(fleet_of_ten, django_capture_on_commit_callbacks):
    component, _first, _clients = fleet_of_ten
    RolloutPolicy.objects.filter(pk=1).update(enabled=False)
    version = download(component, django_capture_on_commit_callbacks)
    run = UpdateRun.objects.get(component_version=version)
    assert run.deliveries.count() == 10
    assert not Rollout.objects.exists()


def test_ring_1_is_the_chosen_domains_and_the_version_is_held_back_from_everyone_else(
    fleet_of_ten, django_capture_on_commit_callbacks
):
    component, first, clients = fleet_of_ten
    new = download(component, django_capture_on_commit_callbacks)
    rollout = Rollout.objects.get(version=new)
    assert rollout.run.trigger == RunTrigger.EVENT
    assert set(rollout.run.deliveries.values_list("client__hostname", flat=True)) == {"pc-0", "pc-1"}
    assert [(r.number, r.final, r.started_at is not None) for r in rollout.rings.all()] == [
        (1, False, True),
        (2, True, False),
    ]
    outsider, canary = clients[5], clients[0]
    assert held_back_version_ids(outsider.pk) == {new.pk}
    assert held_back_version_ids(canary.pk) == set()
    [item] = component_manifest({"virus_pattern": version_label(first.number)}, client_id=outsider.pk)
    assert item["latest_version"] == version_label(first.number) and item["up_to_date"]
    [item] = component_manifest({"virus_pattern": version_label(first.number)}, client_id=canary.pk)
    assert item["latest_version"] == version_label(new.number)
    assert latest_version_numbers(held_back={new.pk}) == {"virus_pattern": first.number}
    # Restart: an outsider is not told to update; a canary is.
    reported = {"virus_pattern": version_label(first.number)}
    assert actions_for_checkin(outsider, event="restart", reported_versions=reported) == []


def test_the_next_ring_starts_only_after_the_soak(fleet_of_ten, django_capture_on_commit_callbacks):
    component, _first, _clients = fleet_of_ten
    new = download(component, django_capture_on_commit_callbacks)
    rollout = Rollout.objects.get(version=new)
    ring1 = rollout.rings.get(number=1)
    assert rollouts_advance(now=ring1.started_at + dt.timedelta(seconds=59)) == {"halted": 0, "started": 0}
    assert rollouts_advance(now=ring1.started_at + dt.timedelta(seconds=60)) == {"halted": 0, "started": 1}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.COMPLETED
    assert rollout.run.deliveries.count() == 10
    assert held_back_version_ids(None) == set()


def test_failures_past_the_threshold_halt_the_roll_out_with_the_evidence(
    fleet_of_ten, django_capture_on_commit_callbacks
):
    component, _first, clients = fleet_of_ten
    new = download(component, django_capture_on_commit_callbacks)
    rollout = Rollout.objects.get(version=new)
    ring1 = rollout.rings.get(number=1)
    one = Delivery.objects.get(run=rollout.run, client=clients[0])
    delivery_mark_failed(client=clients[0], delivery_id=one.pk, at=timezone.now(), message="service crashed")
    # One client alone is below the minimum count of 2: no halt, and the soak is not over.
    assert rollouts_advance(now=ring1.started_at + dt.timedelta(seconds=1)) == {"halted": 0, "started": 0}
    # The second one fell silent after updating.
    two = Delivery.objects.get(run=rollout.run, client=clients[1])
    Delivery.objects.filter(pk=two.pk).update(update_reported_at=timezone.now())
    Client.objects.filter(pk=clients[1].pk).update(status=ConnectionStatus.OFFLINE)
    assert rollouts_advance(now=ring1.started_at + dt.timedelta(seconds=2)) == {"halted": 1, "started": 0}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.HALTED
    assert [(e["hostname"], e["kind"]) for e in rollout.halt_evidence] == [("pc-0", "failure"), ("pc-1", "silent")]
    assert rollout.halt_evidence[0]["message"] == "service crashed"
    # Halted: past the soak, nothing more starts; the version is still held back from the rest.
    assert rollouts_advance(now=ring1.started_at + dt.timedelta(hours=2)) == {"halted": 0, "started": 0}
    assert rollout.run.deliveries.count() == 2
    assert held_back_version_ids(clients[5].pk) == {new.pk}
    assert AuditEntry.objects.filter(action="staged roll-out halted").count() == 1


@pytest.mark.parametrize(
    ("bad", "size", "expected"), [(1, 2, False), (2, 2, True), (2, 30, False), (3, 30, True), (2, 0, True)]
)
def test_the_threshold_needs_both_the_share_and_the_count(fleet_of_ten, bad, size, expected):
    rollout = Rollout(halt_percent=10, halt_min_count=2)
    assert threshold_reached(bad=bad, ring_size=size, rollout=rollout) is expected


def _halted(component, capture, clients):
    new = download(component, capture)
    rollout = Rollout.objects.get(version=new)
    for client in clients[:2]:
        d = Delivery.objects.get(run=rollout.run, client=client)
        delivery_mark_failed(client=client, delivery_id=d.pk, at=timezone.now(), message="crash")
    rollouts_advance()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.HALTED
    return new, rollout


def test_resume_starts_the_next_ring_now(fleet_of_ten, django_capture_on_commit_callbacks, admin_user):
    component, _first, clients = fleet_of_ten
    _new, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    assert rollout_resume(rollout=rollout, actor=admin_user) is True
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.COMPLETED
    assert rollout.run.deliveries.count() == 10
    assert rollout_resume(rollout=rollout, actor=admin_user) is False


def test_stop_keeps_the_version_from_everyone_else(fleet_of_ten, django_capture_on_commit_callbacks, admin_user):
    component, _first, clients = fleet_of_ten
    new, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    assert rollout_stop(rollout=rollout, actor=admin_user) is True
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.STOPPED
    assert rollouts_advance(now=timezone.now() + dt.timedelta(days=1)) == {"halted": 0, "started": 0}
    assert held_back_version_ids(clients[5].pk) == {new.pk}
    assert AuditEntry.objects.filter(action="staged roll-out stopped").count() == 1


def test_roll_back_from_a_halted_roll_out_withdraws_its_version(
    fleet_of_ten, django_capture_on_commit_callbacks, admin_user
):
    component, first, clients = fleet_of_ten
    new, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    Client.objects.filter(pk__in=[c.pk for c in clients[:2]]).update(
        component_versions={"virus_pattern": version_label(new.number)}
    )
    for c in clients[:2]:
        client_versions_record(client=c, reported={"virus_pattern": version_label(new.number)})
    run = rollout_roll_back(rollout=rollout, actor=admin_user)
    assert run.trigger == RunTrigger.ROLLBACK and run.component_version == first
    assert set(run.deliveries.values_list("client__hostname", flat=True)) == {"pc-0", "pc-1"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert held_back_version_ids(clients[5].pk) == set()
    assert latest_version_numbers() == {"virus_pattern": first.number}


def test_a_newer_download_stops_the_older_roll_out(fleet_of_ten, django_capture_on_commit_callbacks):
    component, first, clients = fleet_of_ten
    older = download(component, django_capture_on_commit_callbacks)
    newer = download(component, django_capture_on_commit_callbacks)
    assert Rollout.objects.get(version=older).state == RolloutState.STOPPED
    assert Rollout.objects.get(version=newer).state == RolloutState.ACTIVE
    # An outsider still gets neither.
    [item] = component_manifest({"virus_pattern": version_label(first.number)}, client_id=clients[5].pk)
    assert item["latest_version"] == version_label(first.number)


def test_a_client_bucket_is_stable_and_shares_are_roughly_right():
    import uuid

    guid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert client_bucket(guid) == client_bucket(str(guid))
    buckets = [client_bucket(uuid.UUID(int=i * 7919 + 1)) for i in range(4000)]
    under_10_percent = sum(1 for b in buckets if b < 1000)
    assert 300 < under_10_percent < 500


def test_a_worker_killed_while_a_ring_starts_leaves_it_unstarted_then_it_starts_once(
    fleet_of_ten, django_capture_on_commit_callbacks, monkeypatch
):
    component, _first, _clients = fleet_of_ten
    new = download(component, django_capture_on_commit_callbacks)
    rollout = Rollout.objects.get(version=new)
    ring2 = rollout.rings.get(number=2)

    def die(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(rings_module, "deliveries_create", die)
    with pytest.raises(SystemExit):
        ring_start(ring=ring2)
    ring2.refresh_from_db()
    assert ring2.started_at is None and not ring2.members.exists()
    monkeypatch.undo()
    assert ring_start(ring=ring2) is True
    assert ring_start(ring=ring2) is False
    assert rollout.run.deliveries.count() == 10
    assert RolloutMember.objects.filter(rollout=rollout).count() == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_postgresql_start_a_ring_once(component_storage, settings):
    settings.ROLLOUT_SOAK_SECONDS = 60
    AutoUpdateSettings.load()
    domain = Domain.objects.create(name="Canary")
    component = component_resolve("virus_pattern")
    component_download(component=component)
    for i in range(30):
        Client.objects.create(domain=domain, hostname=f"pc-{i}", ip_address="127.0.0.1", status=ConnectionStatus.ONLINE)
    policy = RolloutPolicy.load()
    policy.enabled = True
    policy.ring1_percent = 0
    policy.save()
    new = component_download(component=component)
    rollout = Rollout.objects.get(version=new)
    ring2 = RolloutRing.objects.get(rollout=rollout, number=2)
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def worker():
        try:
            barrier.wait()
            results.append(ring_start(ring=ring2))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert rollout.run.deliveries.count() == 30
    assert RolloutMember.objects.filter(rollout=rollout).count() == 30


def test_a_newer_download_leaves_a_halted_roll_out_halted(fleet_of_ten, django_capture_on_commit_callbacks):
    component, _first, clients = fleet_of_ten
    bad, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    download(component, django_capture_on_commit_callbacks)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.HALTED
    assert bad.pk in held_back_version_ids(clients[5].pk)


KILLED_STARTER = """
import sys, time, django
django.setup()
from updates_app.engine import rings
from updates_app.models import RolloutRing

def stuck(**kwargs):
    # Inside ring_start's transaction, after the conditional UPDATE and the members' INSERT.
    open(sys.argv[2], "w").write("inside")
    time.sleep(120)

rings.deliveries_create = stuck
rings.ring_start(ring=RolloutRing.objects.get(pk=int(sys.argv[1])))
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_sigkilled_while_starting_a_ring_leaves_it_to_be_started_once(
    component_storage, settings, tmp_path
):
    settings.ROLLOUT_SOAK_SECONDS = 60
    domain = Domain.objects.create(name="Desks")
    component = component_resolve("virus_pattern")
    component_download(component=component)
    for i in range(5):
        Client.objects.create(domain=domain, hostname=f"pc-{i}", ip_address="127.0.0.1", status=ConnectionStatus.ONLINE)
    policy = RolloutPolicy.load()
    policy.enabled, policy.ring1_percent = True, 0
    policy.save()
    policy.ring1_domains.set([])
    rollout = Rollout.objects.get(version=component_download(component=component))
    ring2 = rollout.rings.get(number=2)
    marker = tmp_path / "inside"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "CONSOLE_VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "true",
    }
    env.pop("REDIS_URL", None)
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", KILLED_STARTER, str(ring2.pk), str(marker)], cwd=root, env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the child never got inside ring_start"
        # when: the process dies mid-start (no cleanup, no commit)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    # then: nothing of the start survived; the next beat starts the ring, once
    ring2.refresh_from_db()
    assert ring2.started_at is None and not ring2.members.exists()
    assert rollouts_advance(now=timezone.now() + dt.timedelta(seconds=61)) == {"halted": 0, "started": 1}
    assert rollouts_advance(now=timezone.now() + dt.timedelta(seconds=61)) == {"halted": 0, "started": 0}
    assert rollout.run.deliveries.count() == 5
    assert RolloutMember.objects.filter(rollout=rollout).count() == 5


def test_the_evidence_kept_is_capped_but_the_counts_cover_every_client(
    fleet_of_ten, django_capture_on_commit_callbacks, monkeypatch
):
    component, _first, clients = fleet_of_ten
    monkeypatch.setattr(rings_module, "EVIDENCE_SHOWN", 1)
    monkeypatch.setattr(rings_module.ring_evidence, "__kwdefaults__", {"limit": 1})
    _new, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    assert len(rollout.halt_evidence) == 1
    assert rollout.halt_summary.startswith("Ring 1: 2 of 2 clients — 2 reported a failed update")


def test_the_summary_lists_live_roll_outs_and_only_the_last_few_others(
    fleet_of_ten, django_capture_on_commit_callbacks
):
    component, _first, _clients = fleet_of_ten
    for _ in range(6):
        download(component, django_capture_on_commit_callbacks)
    views = rollouts_for_summary()
    assert [v.rollout.state for v in views] == [RolloutState.ACTIVE] + [RolloutState.STOPPED] * 3


def test_a_superseded_halted_roll_out_is_never_resumed_but_can_be_stopped(
    fleet_of_ten, django_capture_on_commit_callbacks, admin_user
):
    # given: 18.501 halted after ring 1, then 18.502 downloaded (its own roll-out running)
    component, _first, clients = fleet_of_ten
    older, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    newer = download(component, django_capture_on_commit_callbacks)
    assert Rollout.objects.get(version=newer).state == RolloutState.ACTIVE
    assert rollouts_superseded_by([rollout]) == {rollout.pk: newer.label}
    # when: the administrator resumes the older one
    with pytest.raises(RolloutSuperseded, match=f"superseded by {newer.label}: it can be stopped or rolled back"):
        rollout_resume(rollout=rollout, actor=admin_user)
    # then: nothing changed: still halted, no further ring, nobody else notified of 18.501
    rollout.refresh_from_db()
    assert (rollout.state, rollout.resolved_at) == (RolloutState.HALTED, None)
    assert rollout.rings.get(number=2).started_at is None
    assert rollout.run.deliveries.count() == 2
    assert not AuditEntry.objects.filter(action="staged roll-out resumed").exists()
    assert older.pk in held_back_version_ids(clients[5].pk)
    # beat does not advance it either, however long it waits
    rollouts_advance(now=timezone.now() + dt.timedelta(days=1))
    assert rollout.rings.get(number=2).started_at is None and rollout.run.deliveries.count() == 2
    # stopping it still works
    assert rollout_stop(rollout=rollout, actor=admin_user) is True


def test_beat_stops_a_superseded_roll_out_still_rolling_out_instead_of_starting_its_next_ring(
    fleet_of_ten, django_capture_on_commit_callbacks
):
    # given: 18.501 rolling out, and 18.502 downloaded while event-triggered updates are off
    # (so no newer roll-out stopped the older one)
    component, _first, _clients = fleet_of_ten
    older = download(component, django_capture_on_commit_callbacks)
    rollout = Rollout.objects.get(version=older)
    AutoUpdateSettings.objects.filter(pk=1).update(notify_on_download=False)
    newer = download(component, django_capture_on_commit_callbacks)
    assert Rollout.objects.get(pk=rollout.pk).state == RolloutState.ACTIVE
    ring1, ring2 = rollout.rings.order_by("number")
    # a ring of a superseded roll-out never starts, whoever asks
    assert ring_start(ring=ring2) is False
    # when: beat runs after the soak
    assert rollouts_advance(now=ring1.started_at + dt.timedelta(seconds=61)) == {"halted": 0, "started": 0}
    # then: it is stopped, its next ring not started, and the audit log says why
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.STOPPED
    assert rollout.rings.get(number=2).started_at is None
    assert rollout.run.deliveries.count() == 2
    [entry] = AuditEntry.objects.filter(action="staged roll-out stopped")
    assert entry.changes == {"why": f"superseded by {newer.label}: no further ring"}


def test_a_roll_out_is_no_longer_superseded_once_the_newer_version_is_rolled_back(
    fleet_of_ten, django_capture_on_commit_callbacks, admin_user
):
    component, _first, clients = fleet_of_ten
    older, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    newer = download(component, django_capture_on_commit_callbacks)
    assert rollouts_superseded_by([rollout]) == {rollout.pk: newer.label}
    # The newer version is withdrawn: 18.501 is current again, and its roll-out may go on.
    component_rollback(component=component, version_label_text=older.label, actor=admin_user)
    assert rollouts_superseded_by([rollout]) == {}
    assert rollout_resume(rollout=rollout, actor=admin_user) is True
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.COMPLETED
    assert rollout.run.deliveries.count() == 10


def test_a_superseded_roll_out_can_be_rolled_back(fleet_of_ten, django_capture_on_commit_callbacks, admin_user):
    component, first, clients = fleet_of_ten
    _older, rollout = _halted(component, django_capture_on_commit_callbacks, clients)
    download(component, django_capture_on_commit_callbacks)
    run = rollout_roll_back(rollout=rollout, actor=admin_user)
    assert run.component_version == first
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    # Every newer version went with it: the previous one is current.
    assert latest_version_numbers() == {"virus_pattern": first.number}
