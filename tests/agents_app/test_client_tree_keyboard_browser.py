"""The client tree and the dialog in Chromium: without JavaScript, with a
fleet-wide change, keeping its place after Save, and by keyboard.

One small fleet (``tree_fleet``) serves every test here.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from agents_app.models import Client, Domain
from tests.agents_app.factories import add_clients, make_domain
from tests.console.test_pages_browser import axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tree_fleet():
    hq = make_domain("Headquarters")
    sales = make_domain("Sales", parent=hq)
    lab = make_domain("Lab")
    add_clients(hq, 2)
    add_clients(sales, 120)
    add_clients(lab, 3, status="offline")
    # One client differs, so "Enable roaming mode" is mixed for Headquarters' subtree.
    Client.objects.filter(pk=Client.objects.filter(domain=hq).order_by("pk").first().pk).update(roaming_privilege=True)
    return {"hq": hq, "sales": sales, "lab": lab}


def log_in(page, live_server):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_without_javascript_menus_tree_tabs_and_a_privileges_save_all_work(
    browser, live_server, admin_user_obj, tree_fleet
):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    log_in(page, live_server)
    lab = tree_fleet["lab"]

    # The top menu opens without JavaScript (<details>) and leads to the tree.
    page.locator("summary", has_text="Networked Computers").click()
    page.get_by_role("link", name="Client Management").click()
    page.wait_for_url("**/clients/")

    # Expanding is a link that reloads the page with the domain open.
    page.get_by_role("link", name="Expand Lab").click()
    page.wait_for_url(re.compile(rf"open={lab.pk}"))
    lab_node = page.locator(f"#domain-{lab.pk}")
    assert lab_node.get_attribute("aria-expanded") == "true"
    assert lab_node.locator("table.client-rows tbody tr").count() == 3

    # Settings is a menu that opens without JavaScript; its entry submits the ticks.
    lab_node.get_by_label("Select domain Lab").check()
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    page.wait_for_url("**/clients/privileges/?**")
    # Both tabs, one after the other.
    assert page.get_by_label("Clients download updates from the ActiveUpdate server").is_visible()
    assert page.get_by_label("Enable roaming mode").is_visible()
    page.get_by_label("Enable roaming mode").check()
    page.locator("#id_scheduled_update_privilege").uncheck()
    # The explanation is written by the server for the settings as opened.
    assert "client users may turn them off" in page.locator("#scheduled-description").inner_text()
    page.get_by_role("button", name="Save").click()

    page.wait_for_url(re.compile(rf"/clients/\?open={lab.pk}"))
    assert "3 of 3 clients changed" in page.locator(".alert-success").inner_text()
    # The same domain is still expanded and its rows show the new state.
    states = page.locator(f"#domain-{lab.pk} td.scheduled-state").all_inner_texts()
    assert states == ["No scheduled update (no privilege)"] * 3
    assert Client.objects.filter(domain=lab, roaming_privilege=True).count() == 3
    assert not Client.objects.filter(domain=lab, scheduled_update_privilege=True).exists()
    assert Client.objects.filter(scheduled_update_privilege=True).count() == 122  # nothing else changed

    # "Select all clients on this page" works without JavaScript too.
    page.locator(f"#domain-{lab.pk}").get_by_label("Select all clients on this page").check()
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    page.wait_for_url("**/clients/privileges/?**")
    assert "Selected: 3 clients" in page.inner_text("#privileges-form")

    # A mixed setting is three plain choices without JavaScript: "Off for all" saves off.
    hq = tree_fleet["hq"]
    page.goto(f"{live_server.url}/clients/privileges/?domain={hq.pk}")
    page.get_by_label("Off for all").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/clients/")
    assert not Client.objects.filter(domain__in=[hq, tree_fleet["sales"]], roaming_privilege=True).exists()
    context.close()


def test_a_fleet_wide_change_needs_an_explicit_button_and_a_second_confirmation(
    logged_in_page, live_server, tree_fleet, settings
):
    settings.CONFIRM_ABOVE_CLIENTS = 100
    page = logged_in_page
    page.goto(f"{live_server.url}/clients/")
    page.get_by_label("Select the server (all clients)").check()
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    dialog = page.locator("#privileges-modal")
    dialog.get_by_role("button", name="Apply to All Clients").wait_for()
    # Two explicit buttons and no preselected choice, no plain Save.
    assert dialog.get_by_role("button", name="Apply to Future Domains Only").is_visible()
    assert dialog.get_by_role("button", name="Save").count() == 0
    assert dialog.locator('input[name="scope"]').count() == 0
    dialog.get_by_role("tab", name="Other Settings").click()
    dialog.locator("#id_components_only").check()
    dialog.get_by_role("button", name="Apply to All Clients").click()

    # 125 clients > 100: the numbers, and one more question.
    page.wait_for_url("**/clients/privileges/")
    assert re.search(r"change the settings of 125 clients\s+and 3 domains", page.inner_text("#confirm-impact"))
    assert not Client.objects.filter(components_only=True).exists()
    page.get_by_role("button", name="Apply to All Clients: change 125 clients").click()
    page.wait_for_url("**/clients/")
    assert Client.objects.filter(components_only=True).count() == 125
    assert Domain.objects.filter(components_only=True).count() == 3


def test_the_tree_keeps_its_place_pages_sorts_and_selects_a_page(logged_in_page, live_server, tree_fleet):
    page = logged_in_page
    hq, sales = tree_fleet["hq"], tree_fleet["sales"]
    page.goto(f"{live_server.url}/clients/")
    page.get_by_role("link", name="Expand Headquarters").click()
    page.get_by_role("link", name="Expand Sales").click()
    sales_node = page.locator(f"#domain-{sales.pk}")
    sales_node.locator("table.client-rows tbody tr").first.wait_for()
    assert sales_node.locator("table.client-rows tbody tr").count() == 100
    # Page numbers and "Go to page".
    sales_node.get_by_role("link", name="Page 2").click()
    expect(page.locator(f"#domain-{sales.pk} tbody tr")).to_have_count(20)
    sales_node.get_by_label("Go to page").fill("1")
    sales_node.get_by_role("button", name="Go").click()
    expect(page.locator(f"#domain-{sales.pk} tbody tr")).to_have_count(100)
    sales_node.get_by_role("link", name="Page 2").click()
    expect(page.locator(f"#domain-{sales.pk} tbody tr")).to_have_count(20)
    assert f"open={hq.pk}%2C{sales.pk}%3A2" in page.url or f"open={hq.pk},{sales.pk}:2" in page.url

    # Select all on a page ticks that page's 20 clients.
    sales_node.get_by_label("Select all clients on this page").check()
    assert sales_node.locator('tbody input[name="client"]:checked').count() == 20
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    dialog = page.locator("#privileges-modal")
    dialog.locator("#id_scheduled_update_privilege").wait_for()
    assert "20 client" in dialog.inner_text()
    dialog.locator("#id_scheduled_update_privilege").uncheck()
    dialog.get_by_role("button", name="Save").click()

    # After Save: the same domains expanded, the same page, the saved rows in their new state.
    page.wait_for_url(re.compile(r"/clients/\?open="))
    sales_node = page.locator(f"#domain-{sales.pk}")
    assert page.locator(f"#domain-{hq.pk}").get_attribute("aria-expanded") == "true"
    assert sales_node.get_attribute("aria-expanded") == "true"
    assert sales_node.locator("tbody tr").count() == 20
    assert sales_node.locator("td.scheduled-state").all_inner_texts() == ["No scheduled update (no privilege)"] * 20

    # Sort by status: a header link that keeps the expanded domains.
    Client.objects.filter(pk=Client.objects.filter(domain=sales).order_by("hostname").last().pk).update(
        status="offline"
    )
    sales_node.get_by_role("link", name="Status").first.click()
    page.wait_for_url(re.compile(r"sort=status"))
    sales_node = page.locator(f"#domain-{sales.pk}")
    assert sales_node.get_attribute("aria-expanded") == "true"
    assert sales_node.locator("tbody tr").count() == 20  # still on page 2
    # Page 1 (loaded in place, in the same order): the offline client comes first.
    sales_node.get_by_role("link", name="Page 1").click()
    expect(page.locator(f"#domain-{sales.pk} tbody tr")).to_have_count(100)
    assert sales_node.locator("tbody tr").first.locator(".badge").inner_text() == "Offline"


def test_keyboard_tree_tabs_and_focus_return(logged_in_page, live_server, tree_fleet):
    page = logged_in_page
    # No fade-in: axe must judge the dialog's colours as shown, not half-way through the animation.
    page.emulate_media(reduced_motion="reduce")
    hq = tree_fleet["hq"]
    page.goto(f"{live_server.url}/clients/")
    # Skip link first.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"

    # The tree: roles from the start, arrow keys move and expand.
    tree = page.get_by_role("tree", name="Client tree")
    assert tree.count() == 1
    root = page.locator(".tree-root")
    root.focus()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.id") == f"domain-{tree_fleet['hq'].pk}"
    page.keyboard.press("ArrowRight")
    hq_node = page.locator(f"#domain-{hq.pk}")
    hq_node.locator("table.client-rows tbody tr").first.wait_for()
    assert hq_node.get_attribute("aria-expanded") == "true"
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == f"domain-{tree_fleet['sales'].pk}"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.id") == f"domain-{hq.pk}"
    page.keyboard.press(" ")
    assert hq_node.get_by_label("Select domain Headquarters").is_checked()

    # The dialog's tabs have their roles before any use and follow the arrow keys.
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    dialog = page.locator("#privileges-modal")
    first_tab = dialog.get_by_role("tab", name="Privileges")
    first_tab.wait_for()
    assert first_tab.get_attribute("aria-selected") == "true"
    assert dialog.get_by_role("tabpanel").count() == 1  # the other panel is hidden
    # axe-core on the open dialog, over an expanded tree: nothing serious or critical.
    found = axe_violations(page)
    assert not [v for v in found if v["impact"] in ("serious", "critical")], found
    first_tab.focus()
    page.keyboard.press("ArrowRight")
    other = dialog.get_by_role("tab", name="Other Settings")
    assert other.get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.textContent") == "Other Settings"
    assert dialog.get_by_label("Clients download updates from the ActiveUpdate server").is_visible()
    page.keyboard.press("Home")
    assert first_tab.get_attribute("aria-selected") == "true"

    # A mixed setting is an indeterminate checkbox with JavaScript, cycling unchanged -> on -> off.
    box = dialog.locator("#id_roaming_privilege_box")
    assert box.evaluate("el => el.indeterminate") is True
    box.click()
    assert dialog.locator("#id_roaming_privilege_on").is_checked()
    box.click()
    assert dialog.locator("#id_roaming_privilege_off").is_checked()

    # Escape closes the dialog and focus returns to the Settings menu that opened it.
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    expect(page.locator("#settings-menu")).to_be_focused()
