"""The client tree and the dialog in headless Chromium.

``UPDATE_SCREENSHOTS=1`` also writes docs/screenshots/client-management.png for the README.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from agents_app.models import Client
from tests.agents_app.factories import add_clients, make_domain

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "client-management.png"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_tick_a_domain_and_save_privileges_from_the_dialog(logged_in_page, live_server, tmp_path):
    page = logged_in_page
    hq = make_domain("Headquarters")
    sales = make_domain("Sales", parent=hq)
    branch = make_domain("Branch Office")
    versions = {"virus_pattern": "18.523.00", "scan_engine": "22.660.1007"}
    add_clients(hq, 1, component_versions=versions)
    add_clients(hq, 1, status="roaming", component_versions=versions)
    add_clients(hq, 1, status="offline")
    add_clients(sales, 2)
    add_clients(branch, 4, status="unreachable")
    # One client differs: the dialog must show roaming as mixed and leave it alone.
    odd = Client.objects.filter(domain=hq).order_by("pk").first()
    Client.objects.filter(pk=odd.pk).update(roaming_privilege=True)

    page.goto(f"{live_server.url}/clients/")
    page.get_by_role("link", name="Expand Headquarters").click()
    hq_node = page.locator(f'.tree-node[data-domain="{hq.pk}"]')
    hq_node.locator("table.client-rows tbody tr").first.wait_for()
    assert hq_node.locator("table.client-rows tbody tr").count() == 3
    assert hq_node.get_by_label("Select domain Sales").is_visible()

    hq_node.get_by_label("Select domain Headquarters").check()
    # A ticked domain stands for its clients: their boxes follow and lock.
    assert hq_node.get_by_label(f"Select client {odd.hostname}").is_disabled()
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    dialog = page.locator("#privileges-modal")
    dialog.get_by_text("Component Update Privileges", exact=True).wait_for()
    assert "5 clients" in dialog.inner_text()
    assert dialog.locator("#id_roaming_privilege_box").evaluate("el => el.indeterminate") is True
    assert dialog.locator("#div_id_roaming_privilege .tristate-mixed").is_visible()

    dialog.get_by_role("tab", name="Other Settings").click()
    dialog.get_by_text("Clients download updates from the ActiveUpdate server").wait_for(state="visible")
    assert dialog.locator("#id_scheduled_update_setting").is_checked()
    dialog.get_by_role("tab", name="Privileges").click()
    dialog.locator("#id_scheduled_update_privilege").wait_for(state="visible")
    dialog.locator("#id_scheduled_update_privilege").click()
    assert not dialog.locator("#id_scheduled_update_privilege").is_checked()
    assert "will not run" in dialog.locator("#scheduled-description").inner_text()
    dialog.locator("#id_scheduled_update_privilege").click()
    assert "user" in dialog.locator("#scheduled-description").inner_text().lower()
    dialog.locator("#id_scheduled_update_privilege").click()

    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "client-management.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    dialog.get_by_role("button", name="Save").click()
    # Back to the tree with Headquarters still expanded.
    page.wait_for_url(f"{live_server.url}/clients/?open={hq.pk}")
    assert "5 of 5 clients changed" in page.locator(".alert-success").inner_text()
    hq_node = page.locator(f'.tree-node[data-domain="{hq.pk}"]')
    hq_node.locator("table.client-rows tbody tr").first.wait_for()
    states = hq_node.locator("td.scheduled-state").all_inner_texts()
    assert states == ["No scheduled update (no privilege)"] * 3
    # The mixed setting was sent as "unchanged": the odd client still roams, the others still do not.
    assert Client.objects.filter(roaming_privilege=True).get().pk == odd.pk
    assert not Client.objects.filter(scheduled_update_privilege=True).filter(domain__in=[hq, sales]).exists()
    assert Client.objects.filter(domain=branch, scheduled_update_privilege=True).count() == 4
    tree_shot = shot.with_name("client-tree.png")
    page.screenshot(path=str(tree_shot), full_page=True)

    # Settings > Update Now opens Manual Update's confirmation for the same ticks, as a page.
    page.locator(f'.tree-node[data-domain="{sales.pk}"]').get_by_label("Select domain Sales").check()
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Update Now").click()
    page.wait_for_url(re.compile(r"/updates/manual/\?"))
    # The ticks, and the expanded domains so that the tree there opens the same way.
    assert parse_qs(urlparse(page.url).query) == {"domain": [str(sales.pk)], "open": [str(hq.pk)]}
    assert page.inner_text("#confirm-count") == "2"
