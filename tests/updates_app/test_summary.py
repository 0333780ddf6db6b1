"""The Update Summary, a run's page, live progress, cancel and a client's delivery history."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from agents_app.models import Client, ConnectionStatus
from tests.updates_app.engine import engine_round
from tests.updates_app.test_compliance import reporting_client
from updates_app.engine.handover import actions_for_checkin
from updates_app.engine.runs import deliveries_create
from updates_app.models import Component, ComponentVersion, Delivery, DeliveryStatus, RunTrigger, UpdateRun

SUMMARY = reverse("updates:summary")


def new_run(clients=None, trigger=RunTrigger.MANUAL) -> UpdateRun:
    run = UpdateRun.objects.create(trigger=trigger)
    deliveries_create(run=run, clients=clients if clients is not None else Client.objects.all())
    return run


@pytest.fixture
def run_in_progress(make_client):
    """Two delivered (one of them reported updated), one retrying, one via check-in."""
    make_client()
    updated = make_client()
    make_client(down=True)
    make_client(status=ConnectionStatus.UNREACHABLE)
    run = new_run()
    engine_round()
    Delivery.objects.filter(client=updated).update(update_reported_at=timezone.now())
    return run


@pytest.mark.django_db
def test_components_show_each_count_over_all_clients_with_the_rate(viewer_client, domain):
    virus = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    Component.objects.create(slug="spyware_pattern", name="Spyware Pattern")
    for number in (10, 11):
        ComponentVersion.objects.create(component=virus, number=number, sha256="0" * 64, released_at=timezone.now())
    for version in (11, "11", 10, None):
        reporting_client(domain, f"h{version}", {"virus_pattern": version})
    page = viewer_client.get(SUMMARY).content.decode()
    row = page[page.index('data-component="virus_pattern"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="text-end" data-state="up_to_date">' in row
    # 2 up to date, 1 behind, 1 unreadable (inconsistent), none unknown; each with its rate.
    assert '>2</a> <small class="text-body-secondary">(50%)' in row
    assert '>1</a> <small class="text-body-secondary">(25%)' in row
    assert "none downloaded yet" in page
    # Versions read as administrators and agents know them (11 -> "0.011.00").
    assert "<code>0.011.00</code>" in page


@pytest.mark.django_db
def test_runs_show_their_progress(viewer_client, run_in_progress):
    run = run_in_progress
    page = viewer_client.get(SUMMARY).content.decode()
    assert f'data-run-id="{run.pk}" data-field="delivered">2<' in page
    assert f'data-run-id="{run.pk}" data-field="retrying">1<' in page
    assert f'data-run-id="{run.pk}" data-field="pending">1<' in page
    assert f'data-run-id="{run.pk}" data-field="updated">1<' in page
    progress = viewer_client.get(reverse("updates:run-progress"), {"run": [run.pk, "x"]}).json()
    # The server's clock in the console's one format, for the "updated at" stamp.
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+", progress.pop("at"))
    assert progress == {
        "runs": {
            str(run.pk): {
                "total": 4,
                "pending": 1,
                "delivered": 2,
                "retrying": 1,
                "gave_up": 0,
                "stopped": 0,
                "updated": 1,
            }
        }
    }


@pytest.mark.django_db
def test_the_summary_costs_the_same_queries_for_many_runs(viewer_client, make_client, django_assert_max_num_queries):
    make_client()
    new_run()
    # 14: two of them read the staged roll-outs panel (live ones, the last few finished ones).
    with django_assert_max_num_queries(14) as few:
        viewer_client.get(SUMMARY)
    for _ in range(15):
        new_run()
    with django_assert_max_num_queries(len(few.captured_queries)):
        viewer_client.get(SUMMARY)


@pytest.mark.django_db
def test_a_run_page_lists_deliveries_with_attempts_and_errors_filterable(viewer_client, run_in_progress):
    url = reverse("updates:run-detail", args=[run_in_progress.pk])
    page = viewer_client.get(url).content.decode()
    assert page.count("<tr>") == 5  # header + 4 deliveries
    assert "could not connect" in page and "waits for check-in" in page
    retrying = viewer_client.get(url, {"status": "retrying"}).content.decode()
    assert retrying.count("<tr>") == 2 and "could not connect" in retrying
    updated = viewer_client.get(url, {"status": "updated"}).content.decode()
    assert updated.count("<tr>") == 2
    nothing = viewer_client.get(url, {"q": "no-such-host"}).content.decode()
    assert "No deliveries match this filter" in nothing
    fragment = viewer_client.get(url, {"status": "retrying", "partial": 1}).content.decode()
    assert "<html" not in fragment and "could not connect" in fragment


@pytest.mark.django_db
def test_cancelling_a_run_needs_the_permission_and_stops_pending_deliveries(client, viewer_user, run_in_progress):
    client.force_login(viewer_user)
    url = reverse("updates:run-cancel", args=[run_in_progress.pk])
    assert client.post(url).status_code == 403
    assert client.get(url).status_code == 405
    viewer_user.user_permissions.add(Permission.objects.get(codename="change_updaterun"))
    response = client.post(url, follow=True)
    assert "2 pending or retrying deliveries stopped" in response.content.decode()
    statuses = sorted(run_in_progress.deliveries.values_list("status", flat=True))
    assert statuses == ["cancelled", "cancelled", "delivered", "delivered"]


@pytest.mark.django_db
def test_a_delivery_whose_push_failed_and_that_was_handed_over_at_check_in_says_so(viewer_client, run_in_progress):
    url = reverse("updates:run-detail", args=[run_in_progress.pk])
    failing = Delivery.objects.get(run=run_in_progress, status=DeliveryStatus.RETRYING)
    before = viewer_client.get(url, {"status": "retrying"}).content.decode()
    assert "handed over at check-in" not in before
    # The client checks in: its retrying notification is handed over in the answer.
    actions_for_checkin(failing.client, event="heartbeat", reported_versions={})
    page = viewer_client.get(url, {"status": "delivered"}).content.decode()
    row = next(r for r in page.split("<tr>") if failing.client.hostname in r)
    assert "Delivered" in row and "could not connect" in row and "handed over at check-in" in row
    assert "Pushing it failed" in row
    # The two delivered by push carry no such mark.
    pushed = [r for r in page.split("<tr>")[2:] if failing.client.hostname not in r]
    assert pushed and all("handed over at check-in" not in r for r in pushed)
    assert "Cancelled via check-in" not in page


@pytest.mark.django_db
def test_a_client_page_shows_its_delivery_history(viewer_client, make_client):
    client = make_client(down=True, hostname="<b>laptop</b>")
    first = new_run()
    engine_round()
    second = new_run()
    page = viewer_client.get(reverse("updates:client-deliveries", args=[client.pk])).content.decode()
    assert "&lt;b&gt;laptop&lt;/b&gt;" in page
    assert page.index(f"#{second.pk}<") < page.index(f"#{first.pk}<")
    assert "Superseded" in page and "could not connect" in page
    assert viewer_client.get(reverse("updates:client-deliveries", args=[999999])).status_code == 404


@pytest.mark.django_db
def test_empty_states_say_what_to_do(viewer_client):
    page = viewer_client.get(SUMMARY).content.decode()
    assert "No update runs yet" in page and "The server has no components yet" in page


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_run_progress_refreshes_without_a_full_reload(logged_in_page, live_server, make_client):
    page = logged_in_page
    make_client()
    make_client()
    run = new_run()
    page.goto(f"{live_server.url}{reverse('updates:run-detail', args=[run.pk])}")
    page.evaluate("window.notReloaded = true")
    delivered = page.locator(f'[data-run-id="{run.pk}"][data-field="delivered"]').first
    assert delivered.inner_text() == "0"
    engine_round()
    # Waiting with expect, not wait_for_function: the page's CSP forbids the eval that needs.
    expect(delivered).to_have_text("2", timeout=8000)
    assert page.evaluate("window.notReloaded") is True
    # The deliveries table is re-fetched as a fragment too.
    expect(page.locator("#deliveries .badge.text-bg-success")).to_have_count(2, timeout=8000)
    assert page.evaluate("window.notReloaded") is True


def test_reported_versions_are_read_as_numbers():
    from updates_app.compliance import component_state, reported_numbers
    from updates_app.version_labels import reported_number

    assert reported_number(523) == 523
    assert reported_number(" 523 ") == 523
    assert reported_number(True) is None
    assert reported_number(None) is None
    assert reported_number("not a version") is None
    assert reported_numbers({"virus_pattern": "0.523.00", "scan_engine": 8, "x": "n/a", "y": 2**40}) == {
        "virus_pattern": 523,
        "scan_engine": 8,
        "x": None,
        "y": None,
    }
    assert reported_numbers("garbage") == {}
    assert component_state(523, reported=True, latest=523, known=True) == "up_to_date"
    assert component_state(522, reported=True, latest=523, known=True) == "outdated"
    assert component_state(522, reported=True, latest=523, known=False) == "inconsistent"
    assert component_state(524, reported=True, latest=523, known=True) == "inconsistent"
    # Above the current version and withdrawn by a rollback: it must go back, so outdated.
    assert component_state(524, reported=True, latest=523, known=True, withdrawn=True) == "outdated"
    assert component_state(None, reported=True, latest=523, known=False) == "inconsistent"
    assert component_state(1, reported=True, latest=None, known=False) == "inconsistent"
    assert component_state(None, reported=False, latest=523, known=False) == "unknown"
