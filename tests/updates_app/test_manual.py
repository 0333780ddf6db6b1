"""The Manual Update screen: components, the two targets, confirmation, permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from tests.updates_app.engine import engine_round
from tests.updates_app.test_compliance import reporting_client
from updates_app.compliance import client_versions_record
from updates_app.models import Component, ComponentVersion, Delivery, DeliveryStatus, RunTrigger, UpdateRun

URL = reverse("updates:manual-update")


@pytest.fixture
def fleet_state(domain):
    virus = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    for number in (522, 523):
        ComponentVersion.objects.create(component=virus, number=number, sha256="0" * 64, released_at=timezone.now())
    branch = Domain.objects.create(name="Branch <Office>", parent=domain)
    other = Domain.objects.create(name="Servers")

    def client(name, dom, version, **kw):
        return reporting_client(dom, name, {"virus_pattern": version}, **kw)

    return {
        "current": client("current", domain, 523),
        "behind": client("behind", branch, "522", status=ConnectionStatus.ONLINE),
        "unreadable": client("unreadable", other, "n/a"),
        "revoked": client("revoked", other, 522, revoked_at=timezone.now()),
        "branch": branch,
        "other": other,
    }


@pytest.fixture
def operator_client(client, viewer_user):
    viewer_user.user_permissions.add(Permission.objects.get(codename="add_updaterun"))
    client.force_login(viewer_user)
    return client


@pytest.mark.django_db
def test_the_screen_lists_components_with_version_and_last_update(viewer_client, fleet_state):
    page = viewer_client.get(URL).content.decode()
    assert "Virus Pattern" in page and "523" in page
    assert "Clients with outdated components" in page and "Manually selected clients" in page
    assert "may look at this page but not start updates" in page


@pytest.mark.django_db
def test_outdated_clients_are_confirmed_with_their_number_then_notified(operator_client, fleet_state):
    response = operator_client.post(URL, {"target": "outdated"})
    assert response.status_code == 200
    # Only "behind" is behind: "current" is up to date, "unreadable" inconsistent, "revoked" not counted.
    assert '<strong id="confirm-count">1</strong>' in response.content.decode()
    assert not UpdateRun.objects.exists()

    response = operator_client.post(URL, {"target": "outdated", "confirm": "yes"})
    run = UpdateRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("updates:run-detail", args=[run.pk])
    assert run.trigger == RunTrigger.MANUAL
    assert set(run.deliveries.values_list("client__hostname", flat=True)) == {"behind"}


@pytest.mark.django_db
def test_a_selected_domain_stands_for_every_client_under_it(operator_client, fleet_state, domain):
    data = {"target": "selected", "domain": [domain.pk], "client": [fleet_state["unreadable"].pk], "confirm": "yes"}
    operator_client.post(URL, data)
    run = UpdateRun.objects.get()
    assert set(run.deliveries.values_list("client__hostname", flat=True)) == {"current", "behind", "unreadable"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"target": "selected"}, "Select at least one domain or client"),
        ({"target": "everyone"}, "Select a valid choice"),
        ({"target": "selected", "client": ["999999"]}, "do not exist (any more): 999999"),
        ({"target": "selected", "client": ["abc"]}, "names clients that do not exist"),
        ({"target": "selected", "domain": ["999999"]}, "Domains with these ids do not exist"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(operator_client, fleet_state, data, error):
    response = operator_client.post(URL, {**data, "confirm": "yes"})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not UpdateRun.objects.exists()


@pytest.mark.django_db
def test_no_outdated_client_is_an_ordinary_empty_state_not_an_error(operator_client, fleet_state):
    client_versions_record(client=fleet_state["behind"], reported={"virus_pattern": "0.523.00"})
    response = operator_client.post(URL, {"target": "outdated", "confirm": "yes"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="manual-nothing-outdated"' in html and "No client has outdated components" in html
    assert "manual-errors" not in html and "alert-danger" not in html
    assert not UpdateRun.objects.exists()


@pytest.mark.django_db
def test_a_selection_that_matches_nobody_is_still_an_error(operator_client, fleet_state):
    response = operator_client.post(URL, {"target": "selected", "client": [fleet_state["revoked"].pk]})
    assert "No client matches" in response.content.decode()
    assert not UpdateRun.objects.exists()


@pytest.mark.django_db
def test_starting_an_update_needs_the_permission(viewer_client, fleet_state):
    response = viewer_client.post(URL, {"target": "outdated", "confirm": "yes"})
    assert response.status_code == 403
    assert not UpdateRun.objects.exists()


@pytest.mark.django_db
def test_the_form_is_protected_against_csrf(fleet_state, viewer_user):
    from django.test import Client as HttpClient

    browser = HttpClient(enforce_csrf_checks=True)
    viewer_user.user_permissions.add(Permission.objects.get(codename="add_updaterun"))
    browser.force_login(viewer_user)
    assert browser.post(URL, {"target": "outdated", "confirm": "yes"}).status_code == 403
    assert not UpdateRun.objects.exists()


@pytest.mark.django_db
def test_the_client_tree_can_link_its_ticks_straight_to_the_confirmation(operator_client, fleet_state):
    # Domain "Servers" holds "unreadable" and the revoked client (never notified).
    page = operator_client.get(URL, {"client": fleet_state["behind"].pk, "domain": fleet_state["other"].pk})
    html = page.content.decode()
    assert '<strong id="confirm-count">2</strong>' in html
    assert f'name="domain" value="{fleet_state["other"].pk}"' in html
    assert f'name="client" value="{fleet_state["behind"].pk}"' in html
    assert not UpdateRun.objects.exists()
    everyone = operator_client.get(URL, {"root": "1"}).content.decode()
    assert '<strong id="confirm-count">3</strong>' in everyone


@pytest.mark.django_db
def test_domain_names_in_the_tree_are_escaped(superuser_client, fleet_state):
    Domain.objects.create(name="<script>x</script>")
    page = superuser_client.get(URL).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page


@pytest.mark.django_db
def test_a_manual_run_goes_through_the_same_engine(operator_client, make_client):
    reachable = make_client()
    operator_client.post(URL, {"target": "selected", "client": [reachable.pk], "confirm": "yes"})
    engine_round()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert reachable.agent.message_ids == [f"dlv_{delivery.pk}"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_administrator_notifies_selected_clients_through_the_browser(logged_in_page, live_server, make_client):
    page = logged_in_page
    chosen = make_client(hostname="reception-pc")
    make_client(hostname="lab-pc")
    page.goto(f"{live_server.url}{URL}")
    # Expand the domain in the client tree and tick one client.
    page.click(f'[data-domain="{chosen.domain_id}"] .tree-toggle')
    page.check(f'input[name="client"][value="{chosen.pk}"]')
    assert page.is_checked("#id_target_1")  # ticking means "manually selected clients"
    page.click("text=Initiate Component Update")
    assert page.inner_text("#confirm-count") == "1"
    page.click("button:has-text('OK')")
    page.wait_for_url("**/updates/runs/*/")
    assert "Asked 1 client to update now." in page.inner_text("main")
    run = UpdateRun.objects.get()
    assert list(run.deliveries.values_list("client__hostname", flat=True)) == ["reception-pc"]
    page.goto(f"{live_server.url}{reverse('updates:summary')}")


@pytest.mark.django_db
def test_the_confirmation_counts_offline_targets_and_can_leave_them_out(superuser_client):
    from tests.agents_app.factories import add_clients, make_domain

    hq = make_domain("hq-offline")
    add_clients(hq, 3)
    add_clients(hq, 2, status="offline")
    url = reverse("updates:manual-update")
    page = superuser_client.get(url, {"domain": hq.pk}).content.decode()
    assert '<strong id="confirm-count">5</strong>' in page
    assert '<strong id="confirm-offline">2</strong> offline clients' in page
    data = {"target": "selected", "domain": hq.pk, "confirm": "yes", "skip_offline": "1"}
    assert superuser_client.post(url, data).status_code == 302
    notified = set(Delivery.objects.values_list("client_id", flat=True))
    assert notified == set(Client.objects.filter(status="online").values_list("pk", flat=True))


def test_the_screen_and_the_outdated_count_read_no_client_row(operator_client, fleet_state):
    # What keeps Manual Update as fast at 100,000 clients as at 1,000: compliance
    # comes from the version tallies, and the tree's domains are not counted.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def client_reads(request) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert request().status_code == 200
        return [q["sql"] for q in queries.captured_queries if '"agents_app_client"' in q["sql"]]

    assert client_reads(lambda: operator_client.get(URL)) == []
    # The confirmation of "outdated" reads the clients once: how many of the targets are offline.
    [offline_count] = client_reads(lambda: operator_client.post(URL, {"target": "outdated"}))
    assert "'offline'" in offline_count
