"""A halted staged roll-out on the Update Summary, in headless Chromium: the evidence, then one-click roll back."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from tests.console.test_pages_browser import axe_violations
from updates_app.compliance import client_versions_record
from updates_app.components import component_download, component_resolve
from updates_app.engine.reports import delivery_mark_failed
from updates_app.engine.rings import rollouts_advance
from updates_app.models import Delivery, Rollout, RolloutPolicy, RolloutState, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def halted_rollout(settings) -> Rollout:
    """A roll-out halted after ring 1 (3 canaries, 2 reported failures); 3 desks wait for ring 2."""
    settings.ROLLOUT_SOAK_SECONDS = 3600
    canary = Domain.objects.create(name="Canary")
    component = component_resolve("virus_pattern")
    first = component_download(component=component)
    clients = [
        Client.objects.create(
            domain=canary if i < 3 else Domain.objects.get_or_create(name="Office")[0],
            hostname=f"{'canary' if i < 3 else 'desk'}-{i}",
            ip_address="127.0.0.1",
            listener_port=9,
            status=ConnectionStatus.ONLINE,
            component_versions={"virus_pattern": version_label(first.number)},
        )
        for i in range(6)
    ]
    policy = RolloutPolicy.load()
    policy.enabled, policy.ring1_percent, policy.halt_percent, policy.halt_min_count = True, 0, 50, 2
    policy.save()
    policy.ring1_domains.set([canary])
    bad = component_download(component=component)
    rollout = Rollout.objects.get(version=bad)
    for client in clients[:2]:
        delivery = Delivery.objects.get(run=rollout.run, client=client)
        delivery_mark_failed(client=client, delivery_id=delivery.pk, at=timezone.now(), message="scan service crashed")
        Client.objects.filter(pk=client.pk).update(component_versions={"virus_pattern": version_label(bad.number)})
        client_versions_record(client=client, reported={"virus_pattern": version_label(bad.number)})
    assert rollouts_advance() == {"halted": 1, "started": 0}
    return rollout


def test_a_halted_roll_out_shows_its_evidence_and_rolls_back_in_one_action(
    logged_in_page, live_server, component_storage, settings
):
    rollout = halted_rollout(settings)

    page = logged_in_page
    page.goto(f"{live_server.url}/updates/summary/")
    card = page.locator(f"#rollout-{rollout.pk}")
    assert card.locator(".rollout-state").inner_text() == "Halted"
    halt = card.get_by_role("alert")
    assert "Ring 1: 2 of 3 clients" in halt.inner_text()
    evidence = card.locator("table.rollout-evidence")
    assert evidence.locator("tbody tr").count() == 2
    assert "canary-0" in evidence.inner_text() and "scan service crashed" in evidence.inner_text()
    rings = card.locator(".rollout-rings li")
    assert "3 clients" in rings.nth(0).inner_text() and "not started" in rings.nth(1).inner_text()

    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Roll back").click()
    run = UpdateRun.objects.get(trigger=RunTrigger.ROLLBACK)
    page.wait_for_url(f"{live_server.url}/updates/runs/{run.pk}/")
    assert "2 clients holding" in page.locator(".alert-success").inner_text()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    page.goto(f"{live_server.url}/updates/summary/")
    assert card.locator(".rollout-state").inner_text() == "Rolled back"
    # The rest of the fleet never got a delivery for the bad version.
    assert not Delivery.objects.filter(run=rollout.run, client__hostname__startswith="desk-").exists()


def test_the_staged_roll_out_form_saves_from_the_automatic_update_screen(logged_in_page, live_server):
    Domain.objects.create(name="Canary")
    page = logged_in_page
    page.goto(f"{live_server.url}/updates/automatic/")
    section = page.locator("#staged-rollout")
    assert "Improvement" in section.inner_text()
    section.get_by_label("Roll new components out in stages").check()
    section.get_by_label("Ring 1 domains").select_option(label="Canary")
    section.get_by_label("Soak time (minutes)").fill("45")
    section.get_by_role("button", name="Apply staged roll-out settings").click()
    page.wait_for_url(f"{live_server.url}/updates/automatic/")
    assert "Staged roll-out saved" in page.locator(".alert-success").inner_text()
    policy = RolloutPolicy.load()
    assert policy.enabled and policy.soak_minutes == 45
    assert [d.name for d in policy.ring1_domains.all()] == ["Canary"]


@pytest.mark.parametrize("width", [1280, 390])
def test_a_superseded_roll_out_says_so_and_offers_no_resume(
    logged_in_page, live_server, component_storage, settings, width
):
    rollout = halted_rollout(settings)
    newer = component_download(component=rollout.version.component)
    page = logged_in_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/updates/summary/")
    card = page.locator(f"#rollout-{rollout.pk}")
    assert card.locator(".rollout-superseded").inner_text() == f"Superseded by {newer.label}"
    assert "it can be stopped or rolled back, but not resumed" in card.locator(".rollout-superseded-why").inner_text()
    assert card.get_by_role("button", name="Resume").count() == 0
    assert card.get_by_role("button", name="Stop").is_visible()
    assert card.get_by_role("button", name="Roll back").is_visible()
    assert "post-update check-in within 5 minutes" in card.locator(".rollout-silence-rule").inner_text()
    # Nothing runs off a phone's screen, and nothing serious for assistive technology.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    serious = [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]
    assert serious == []
