"""Every console page in real Chromium: no page wider than a 390 px phone, and
axe-core finds no serious or critical accessibility violation.

The pages come from the URLconf (like tests/console/test_access.py), plus the
pages that need an id or a selection, over one small fleet. axe-core's script
comes from the axe-playwright-python package (no CDN). ``-s`` prints the
figures per page (the widest page at 390 px, axe's findings).
"""

from __future__ import annotations

from pathlib import Path

import axe_playwright_python
import pytest
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Client
from tests.agents_app.factories import add_clients, make_domain
from tests.console.test_access import console_page_names
from updates_app.engine.runs import run_create_manual

AXE_JS = Path(axe_playwright_python.__file__).with_name("axe.min.js")
PHONE = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")


def small_fleet(admin) -> list[str]:
    """A fleet with long names and every status; returns the extra pages to visit."""
    hq = make_domain("Headquarters")
    sales = make_domain("Sales and Marketing, Europe Middle East and Africa", parent=hq)
    make_domain("Branch Office")
    versions = {"virus_pattern": "18.523.00", "smart_scan_agent_pattern": "18.523.00", "scan_engine": "22.660.1007"}
    add_clients(hq, 3, component_versions=versions, last_contact_at=timezone.now())
    add_clients(hq, 1, status="offline")
    add_clients(sales, 120, status="roaming", component_versions=versions)
    Client.objects.filter(pk=Client.objects.order_by("pk").first().pk).update(roaming_privilege=True)
    client = Client.objects.filter(domain=hq).order_by("pk").first()
    run = run_create_manual(created_by=admin, clients=Client.objects.filter(domain=hq))
    tree = reverse("agents:client-management")
    return [
        f"{tree}?open={hq.pk},{sales.pk}:2",
        f"{tree}?q=pc-&status=roaming",
        f"{reverse('agents:privileges')}?domain={hq.pk}",
        f"{reverse('agents:privileges')}?root=1",
        f"{reverse('updates:manual-update')}?domain={hq.pk}",
        reverse("updates:run-detail", args=[run.pk]),
        reverse("updates:client-deliveries", args=[client.pk]),
    ]


def log_in(context, live_server) -> object:
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def axe_violations(page) -> list[dict]:
    # Evaluated through the DevTools protocol, not added as an inline <script>: the
    # pages' Content-Security-Policy (rightly) refuses inline scripts.
    page.evaluate(AXE_JS.read_text())
    return page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            if (!result.passes.length) throw new Error("axe-core checked nothing");
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
            }));
        }"""
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_console_page_fits_a_phone_and_has_no_serious_accessibility_violation(
    browser, live_server, admin_user_obj
):
    extra = small_fleet(admin_user_obj)
    urls = [reverse(name) for name in console_page_names()] + extra
    widths: dict[str, int] = {}
    findings: dict[str, list[dict]] = {}
    for viewport in (PHONE, {"width": 1440, "height": 900}):
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(15_000)
        page = log_in(context, live_server)
        for url in urls:
            response = page.goto(f"{live_server.url}{url}")
            assert response.ok, url
            if "text/html" not in response.headers.get("content-type", "") or not page.locator("main#main").count():
                continue  # a fragment or JSON behind a page (e.g. the schedule preview)
            if viewport is PHONE:
                widths[url] = page.evaluate("document.documentElement.scrollWidth")
            else:
                findings[url] = axe_violations(page)
        context.close()

    print("\nWidth at 390 px (document.documentElement.scrollWidth) and axe-core violations at 1440 px:")
    for url in widths:
        counts = {level: sum(1 for v in findings[url] if v["impact"] == level) for level in BLOCKING}
        others = sorted({f"{v['id']} ({v['impact']})" for v in findings[url] if v["impact"] not in BLOCKING})
        print(f"  {url}: {widths[url]} px; serious {counts['serious']}, critical {counts['critical']}; other: {others}")
    widest = max(widths, key=widths.__getitem__)
    print(f"Widest page at 390 px: {widest} ({widths[widest]} px)")

    assert len(widths) >= 12, widths
    too_wide = {url: w for url, w in widths.items() if w > PHONE["width"]}
    assert not too_wide, too_wide
    blocking = {url: [v for v in found if v["impact"] in BLOCKING] for url, found in findings.items()}
    assert not any(blocking.values()), {url: v for url, v in blocking.items() if v}


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_without_javascript_the_menus_and_the_load_preview_work(browser, live_server, admin_user_obj):
    context = browser.new_context(java_script_enabled=False, viewport=PHONE)
    page = log_in(context, live_server)
    # At phone width without JavaScript the navigation is shown, not behind a toggler that needs scripts.
    page.locator("nav summary", has_text="Updates").click()
    page.get_by_role("link", name="Automatic Update").click()
    page.wait_for_url("**/updates/automatic/")
    page.get_by_role("button", name="Show the load preview for these values").click()
    page.wait_for_url("**/updates/automatic/preview/?**")
    assert page.locator(".schedule-preview[data-preview-status=ok]").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    context.close()
