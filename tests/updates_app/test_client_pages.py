"""Every number leads to its clients: the client list, the page for one client, Late clients, the exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.services import domain_create
from updates_app.compliance import client_versions_record
from updates_app.configuration import configuration_versions
from updates_app.models import (
    AutoUpdateSettings,
    Component,
    ComponentVersion,
    Delivery,
    DeliveryStatus,
    Frequency,
    RunTrigger,
    UpdateRun,
)

pytestmark = pytest.mark.django_db

LIST = reverse("updates:clients")


def add(domain: Domain, count: int, *, prefix: str = "ws", start: int = 0, **fields) -> list[Client]:
    """Clients on loopback addresses (nothing is ever sent to them here)."""
    values = {"status": ConnectionStatus.ONLINE, **fields}
    return Client.objects.bulk_create(
        [
            Client(
                guid=uuid.uuid4(),
                domain=domain,
                hostname=f"{prefix}-{n:04d}",
                ip_address=f"127.1.{n // 250}.{n % 250 + 1}",
                **values,
            )
            for n in range(start, start + count)
        ]
    )


@pytest.fixture
def viewer(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="correct-horse-battery", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_client"))
    client.force_login(user)
    return client


@pytest.fixture
def virus_pattern():
    component = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    ComponentVersion.objects.create(component=component, number=18_523, sha256="0" * 64, released_at=timezone.now())
    return component


def listed(response) -> list[str]:
    return re.findall(r'<tr data-client="\d+">\s*<td><a href="[^"]+">([^<]+)</a>', response.content.decode())


# --- the client list ---------------------------------------------------------------------


def test_staff_without_view_client_gets_403_on_the_client_pages(staff_client):
    hq = domain_create(name="hq")
    (one,) = add(hq, 1)
    assert staff_client.get(LIST).status_code == 403
    assert staff_client.get(LIST, {"export": "csv"}).status_code == 403
    assert staff_client.get(reverse("updates:client-detail", args=[one.pk])).status_code == 403


def test_the_list_filters_by_status_domain_search_ids_and_late(viewer):
    hq = domain_create(name="Headquarters")
    floor = domain_create(name="Floor 2", parent=hq)
    lab = domain_create(name="Lab")
    add(hq, 2, prefix="hq")
    add(floor, 2, prefix="floor", start=10)
    offline = add(lab, 3, prefix="lab", start=20, status=ConnectionStatus.OFFLINE)

    assert listed(viewer.get(LIST, {"status": "offline"})) == ["lab-0020", "lab-0021", "lab-0022"]
    # A domain stands for its subdomains too.
    assert listed(viewer.get(LIST, {"domain": hq.pk})) == ["floor-0010", "floor-0011", "hq-0000", "hq-0001"]
    assert listed(viewer.get(LIST, {"q": "floor-0011"})) == ["floor-0011"]
    assert listed(viewer.get(LIST, {"q": "127.1.0.12"})) == ["floor-0011"]  # the start of an IP address
    assert listed(viewer.get(LIST, {"client": [offline[0].pk, offline[2].pk]})) == ["lab-0020", "lab-0022"]
    page = viewer.get(LIST, {"status": "offline", "domain": lab.pk}).content.decode()
    assert "Offline clients in Lab" in page and "3 clients" in page


def test_late_means_the_late_clients_list(viewer):
    config = AutoUpdateSettings.load()
    config.frequency, config.interval_minutes = Frequency.MINUTES, 10
    config.save()
    AutoUpdateSettings.objects.filter(pk=1).update(updated_at=timezone.now() - dt.timedelta(days=1))
    hq = domain_create(name="hq")
    late = add(hq, 2, prefix="late")
    add(hq, 1, prefix="fresh", start=5, last_scheduled_update_at=timezone.now())
    Client.objects.filter(pk__in=[c.pk for c in late]).update(registered_at=timezone.now() - dt.timedelta(days=1))
    Client.objects.filter(hostname="fresh-0005").update(registered_at=timezone.now() - dt.timedelta(days=1))
    assert listed(viewer.get(LIST, {"late": "1"})) == ["late-0000", "late-0001"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "sleeping"}, "Status: Select a valid choice"),
        ({"domain": "999999"}, "Domain: No domain with id 999999"),
        ({"domain": "x"}, "Domain: “x” is not a domain id."),
        ({"client": "abc"}, "Clients: &#x27;abc&#x27; is not a client id."),
        ({"client": "424242"}, "Clients: No client with id 424242"),
        ({"q": "x" * 101}, "Hostname or IP address: Ensure this value has at most 100 characters"),
    ],
)
def test_a_bad_filter_is_an_error_that_names_the_field_and_lists_nothing(viewer, query, message):
    add(domain_create(name="hq"), 2)
    response = viewer.get(LIST, query)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert listed(response) == []


def test_the_list_pages_through_100_at_a_time_keeping_the_filter(viewer):
    hq = domain_create(name="hq")
    add(hq, 130, status=ConnectionStatus.OFFLINE)
    page = viewer.get(LIST, {"status": "offline"}).content.decode()
    assert len(re.findall(r"<tr data-client=", page)) == 100
    assert "Page 1 of 2" in page and "?status=offline&amp;page=2" in page
    assert len(listed(viewer.get(LIST, {"status": "offline", "page": 2}))) == 30


def test_the_list_costs_the_same_queries_for_20_or_200_clients(viewer, django_assert_max_num_queries, virus_pattern):
    hq = domain_create(name="hq")
    add(hq, 20, component_versions={"virus_pattern": "18.523.00"})
    with django_assert_max_num_queries(12) as few:
        assert viewer.get(LIST, {"domain": hq.pk, "status": "online"}).status_code == 200
    add(hq, 180, start=20, component_versions={"virus_pattern": "18.522.00"})
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert viewer.get(LIST, {"domain": hq.pk, "status": "online"}).status_code == 200


def test_components_are_shown_by_the_name_the_server_gives_them(viewer, virus_pattern, superuser_client):
    hq = domain_create(name="hq")
    add(hq, 1, component_versions={"virus_pattern": "18.523.00"})
    assert "Virus Pattern 18.523.00" in viewer.get(LIST).content.decode()
    # ... and in the client tree's Components column too.
    fragment = superuser_client.get(reverse("agents:domain-children", args=[hq.pk])).content.decode()
    assert "Virus Pattern 18.523.00" in fragment and "virus_pattern" not in fragment


# --- exports -------------------------------------------------------------------------------


def rows_of(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_client_list_exports_every_filtered_client_as_csv_safe_from_formulas(viewer, virus_pattern):
    hq = domain_create(name="hq")
    add(hq, 3, component_versions={"virus_pattern": "18.523.00"})
    Client.objects.create(domain=hq, hostname="=HYPERLINK(evil)", ip_address="127.0.0.9", status="online")
    add(hq, 2, prefix="gone", start=50, status=ConnectionStatus.OFFLINE)
    rows = rows_of(viewer.get(LIST, {"status": "online", "export": "csv"}))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["Client id", "Hostname", "Domain", "IP address"] and "Virus Pattern version" in header
    assert sorted(r[1] for r in body) == ["'=HYPERLINK(evil)", "ws-0000", "ws-0001", "ws-0002"]
    first = next(r for r in body if r[1] == "ws-0000")
    assert first[header.index("Virus Pattern version")] == "18.523.00"
    assert first[header.index("Status")] == "Online"
    assert first[header.index("Scheduled update")] == "Runs (user may turn it off)"


def test_the_export_reads_the_clients_with_an_iterator_not_a_list(viewer, monkeypatch):
    from django.db.models.query import QuerySet

    add(domain_create(name="hq"), 5)
    chunks = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunks.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    response = viewer.get(LIST, {"export": "csv"})
    assert chunks == []  # nothing read before the response streams
    assert len(rows_of(response)) == 6
    assert chunks == [2000]


def test_a_runs_deliveries_and_the_compliance_counts_export_as_csv(viewer_client, virus_pattern):
    hq = domain_create(name="hq")
    a, b = add(hq, 2, component_versions={"virus_pattern": "18.522.00"})
    for client in (a, b):  # as a check-in records them
        client_versions_record(client=client, reported=client.component_versions)
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    now = timezone.now()
    Delivery.objects.create(
        run=run, client=a, status=DeliveryStatus.DELIVERED, attempts=1, next_attempt_at=now, delivered_at=now,
        last_error="HTTP 503", at_checkin=True,
    )  # fmt: skip
    Delivery.objects.create(run=run, client=b, status=DeliveryStatus.GAVE_UP, attempts=5, next_attempt_at=now)
    rows = rows_of(viewer_client.get(reverse("updates:run-detail", args=[run.pk]), {"export": "csv"}))
    assert rows[0][:4] == ["Client", "IP address", "Status", "Handed over at check-in"]
    assert rows[1][:5] == ["ws-0000", "127.1.0.1", "Delivered", "yes", "1"]
    assert rows[2][:5] == ["ws-0001", "127.1.0.2", "Gave up", "no", "5"]
    only = rows_of(
        viewer_client.get(reverse("updates:run-detail", args=[run.pk]), {"export": "csv", "status": "gave_up"})
    )
    assert [r[0] for r in only[1:]] == ["ws-0001"]
    counts = rows_of(viewer_client.get(reverse("updates:summary"), {"export": "csv"}))
    assert counts[0] == [
        "Component",
        "Server version",
        "Last updated",
        "Clients",
        "Up to date clients",
        "Outdated clients",
        "Inconsistent clients",
        "Unknown clients",
    ]
    assert counts[1][:2] == ["Virus Pattern", "18.523.00"] and counts[1][3:] == [
        "2",
        "0",
        "0",
        "2",
        "0",
    ]  # 18.522.00 is a version this server never had


# --- one client ----------------------------------------------------------------------------


def test_a_client_page_shows_everything_about_it(viewer, virus_pattern, django_user_model):
    Component.objects.create(slug="virus_scan_engine", name="Virus Scan Engine")
    hq = domain_create(name="Headquarters")
    (pc,) = add(
        hq,
        1,
        listener_port=40123,
        component_versions={"virus_pattern": "18.522.00"},
        scheduled_update_setting=False,
        last_contact_at=timezone.now(),
    )
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    Delivery.objects.create(
        run=run, client=pc, status=DeliveryStatus.RETRYING, attempts=2, next_attempt_at=timezone.now()
    )
    page = viewer.get(reverse("updates:client-detail", args=[pc.pk])).content.decode()
    # Address and listener port apart.
    assert '<code data-field="ip">127.1.0.1</code>' in page and '<code data-field="port">40123</code>' in page
    assert "Headquarters" in page and '<span class="badge status-online">Online</span>' in page
    assert "agents_app/client_tree.css" in page  # the badge's colour
    # Each component's version against the server's.
    assert re.search(r"<td>Virus Pattern</td><td>18\.523\.00</td><td>18\.522\.00</td>\s*<td>.*Outdated", page)
    assert re.search(r"<td>Virus Scan Engine</td><td>—</td><td>—</td>\s*<td>.*Not reported", page)
    # The dialog's settings and the effective state.
    assert "<td>Other Settings</td><td>Enable scheduled update</td><td>off</td>" in page
    assert "Always runs (user cannot turn it off)" in page
    # The configuration it applies, not reported yet.
    assert "has not reported applying a configuration yet" in page
    assert f"#{run.pk}</a>" in page and "Retrying" in page
    # Update Now: viewer may not; an administrator gets the link to Manual Update with this client ticked.
    assert "client-update-now" not in page
    superuser = django_user_model.objects.create_superuser("boss", password="correct-horse-battery")
    viewer.force_login(superuser)
    page = viewer.get(reverse("updates:client-detail", args=[pc.pk])).content.decode()
    assert f'href="{reverse("updates:manual-update")}?client={pc.pk}"' in page
    assert viewer.get(reverse("updates:client-detail", args=[999999])).status_code == 404


def test_the_client_page_says_whether_its_configuration_is_current(viewer):
    (pc,) = add(domain_create(name="hq"), 1)
    current = configuration_versions([pc])[pc.pk]
    Client.objects.filter(pk=pc.pk).update(config_version=current)
    assert (
        "It applies the current configuration"
        in viewer.get(reverse("updates:client-detail", args=[pc.pk])).content.decode()
    )
    Client.objects.filter(pk=pc.pk).update(config_version="0" * 64)
    page = viewer.get(reverse("updates:client-detail", args=[pc.pk])).content.decode()
    assert "not current" in page and current[:12] in page


# --- the Overview and Late clients ---------------------------------------------------------


def test_overview_cards_and_recent_runs_are_links(viewer_client):
    add(domain_create(name="hq"), 2, status=ConnectionStatus.OFFLINE)
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    page = viewer_client.get(reverse("home")).content.decode()
    assert f'href="{LIST}"' in page
    assert re.search(rf'href="{LIST}\?status=offline" data-card="offline">.*?<div class="fs-4">2</div>', page, re.S)
    assert f'href="{reverse("updates:run-detail", args=[run.pk])}"' in page


def test_late_clients_most_overdue_first_offline_apart_with_update_now(superuser_client):
    config = AutoUpdateSettings.load()
    config.frequency, config.interval_minutes = Frequency.MINUTES, 1
    config.save()
    long_ago = timezone.now() - dt.timedelta(days=1)
    AutoUpdateSettings.objects.filter(pk=1).update(updated_at=long_ago)
    hq = domain_create(name="hq")
    recent, oldest = add(hq, 2, prefix="on")
    (away,) = add(hq, 1, prefix="away", start=5, status=ConnectionStatus.OFFLINE)
    Client.objects.update(registered_at=long_ago)
    Client.objects.filter(pk=recent.pk).update(last_scheduled_update_at=timezone.now() - dt.timedelta(minutes=30))
    Client.objects.filter(pk=oldest.pk).update(last_scheduled_update_at=timezone.now() - dt.timedelta(hours=5))
    page = superuser_client.get(reverse("updates:late-clients")).content.decode()
    assert "the schedule runs on the agents every minute" in page and "0:01:00" not in page
    assert "<strong data-late-count>2</strong> late clients that are not offline" in page
    assert page.index("on-0001") < page.index("on-0000")  # five hours late before thirty minutes
    assert "Offline: 1 client" in page and page.index("away-0005") > page.index("late-offline")
    link = re.search(r'id="late-update-now" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert link == f"{reverse('updates:manual-update')}?client={oldest.pk}&client={recent.pk}"
    confirm = superuser_client.get(link).content.decode()
    assert '<strong id="confirm-count">2</strong>' in confirm
    assert away.hostname not in confirm
