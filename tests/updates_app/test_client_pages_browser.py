"""In Chromium: from an Overview number to the clients behind it, to one client, to Update Now; and the CSV."""

from __future__ import annotations

import csv
import io
import os
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus
from agents_app.services import domain_create
from updates_app.models import Component, ComponentVersion, Delivery, RunTrigger, UpdateRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "client-page.png"


def test_an_overview_card_leads_to_its_clients_then_to_one_client_and_update_now(logged_in_page, live_server, tmp_path):
    virus = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    ComponentVersion.objects.create(component=virus, number=18_523, sha256="0" * 64, released_at=timezone.now())
    hq = domain_create(name="Headquarters")
    Client.objects.bulk_create(
        [
            Client(
                guid=uuid.uuid4(),
                domain=hq,
                hostname=f"ws-{i:02d}",
                ip_address=f"127.1.0.{i + 1}",
                status=ConnectionStatus.OFFLINE if i < 3 else ConnectionStatus.ONLINE,
                component_versions={"virus_pattern": "18.522.00"},
            )
            for i in range(8)
        ]
    )
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    Delivery.objects.create(run=run, client=Client.objects.get(hostname="ws-01"), next_attempt_at=timezone.now())
    page = logged_in_page

    # The Overview's "Offline" card is a link to the offline clients.
    page.goto(f"{live_server.url}/")
    page.click('a[data-card="offline"]')
    page.wait_for_url("**/updates/clients/?status=offline")
    assert page.inner_text("#client-list-heading") == "Offline clients"
    assert page.locator("#client-list tbody tr").all_inner_texts()[0].startswith("ws-00")
    assert page.locator("#client-list tbody tr").count() == 3
    assert "Virus Pattern 18.522.00" in page.inner_text("#client-list")

    # The list downloads as CSV, with the same filter.
    with page.expect_download() as download:
        page.click("#client-list-csv")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert [r[1] for r in rows[1:]] == ["ws-00", "ws-01", "ws-02"]

    # One client: its page, then Update Now.
    page.click("text=ws-01")
    page.wait_for_url("**/updates/clients/*/")
    assert "127.1.0.2" in page.inner_text("#client-facts")
    assert "Outdated" in page.inner_text("#client-components")
    assert f"#{run.pk}" in page.inner_text("#client-history")
    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "client-page.png"
    page.screenshot(path=str(shot), full_page=True)
    page.click("#client-update-now")
    page.wait_for_selector("#confirm-count")
    assert page.inner_text("#confirm-count") == "1"

    # The Overview's recent runs lead to their run pages.
    page.goto(f"{live_server.url}/")
    page.click(f'#recent-runs a[href="/updates/runs/{run.pk}/"]')
    page.wait_for_url(f"**/updates/runs/{run.pk}/")
