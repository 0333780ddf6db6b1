"""Every console page runs under the Content-Security-Policy without a single violation.

Chromium reports a blocked inline script, handler, style element or image both
as a console message ("... violates the following Content Security Policy
directive ...") and as a ``securitypolicyviolation`` event; the test listens
to both while it opens every page (and uses the tree, the dialog and the
audit filter, whose scripts run only then).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents_app.models import Client, ConnectionStatus
from console.audit import audit_record
from tests.agents_app.factories import make_domain
from tests.console.test_access import console_page_names
from updates_app.engine.runs import run_create_manual

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def test_no_console_page_violates_the_content_security_policy(logged_in_page, live_server, admin_user_obj):
    page = logged_in_page
    domain = make_domain("Headquarters")
    client = Client.objects.create(
        domain=domain, hostname="pc-csp", ip_address="127.0.0.9", listener_port=1, status=ConnectionStatus.ONLINE
    )
    run = run_create_manual(created_by=admin_user_obj, clients=Client.objects.all())
    audit_record(actor=admin_user_obj, action="privileges.apply", target="1 client", changes={})

    console_messages: list[str] = []
    page.on("console", lambda message: console_messages.append(message.text))
    page.add_init_script(LISTEN)

    urls = [reverse(name) for name in console_page_names()] + [
        reverse("updates:run-detail", args=[run.pk]),
        reverse("updates:client-deliveries", args=[client.pk]),
        reverse("updates:manual-update") + f"?client={client.pk}",
        reverse("agents:privileges") + f"?client={client.pk}",
        # The admin runs under the same policy.
        "/admin/",
        f"/admin/agents_app/client/{client.pk}/change/",
        f"/admin/agents_app/domain/{domain.pk}/change/",
        "/admin/updates_app/delivery/",
        "/admin/auth/user/add/",
    ]
    seen: dict[str, list[str]] = {}
    for url in urls:
        response = page.goto(live_server.url + url)
        assert response is not None and response.ok, url
        assert "script-src 'self'" in response.headers.get("content-security-policy", ""), url
        page.wait_for_load_state("networkidle")
        seen[url] = page.evaluate("window.__csp")

    # Sizes come from classes now: the run's one pending delivery fills its bar.
    page.goto(live_server.url + reverse("updates:run-detail", args=[run.pk]))
    pending = page.locator('[data-segment="pending"]').first
    delivered = page.locator('[data-segment="delivered"]').first
    assert pending.bounding_box()["width"] > 50 and delivered.bounding_box()["width"] == 0

    # Scripts that run on use: expand a domain, open the dialog, filter the audit log.
    page.goto(f"{live_server.url}/clients/")
    page.get_by_role("link", name="Expand Headquarters").click()
    page.locator("table.client-rows tbody tr").first.wait_for()
    page.get_by_label("Select client pc-csp").check()
    page.get_by_text("Settings", exact=True).click()
    page.get_by_role("button", name="Privileges and Other Settings").click()
    page.locator("#privileges-modal").get_by_text("Component Update Privileges", exact=True).wait_for()
    seen["/clients/ (tree and dialog)"] = page.evaluate("window.__csp")
    page.goto(f"{live_server.url}/audit/")
    with page.expect_navigation():
        page.select_option("#audit-action", "privileges.apply")
    assert "action=privileges.apply" in page.url
    seen["/audit/ (filter)"] = page.evaluate("window.__csp")

    violations = {url: found for url, found in seen.items() if found}
    assert violations == {}
    assert [m for m in console_messages if "Content Security Policy" in m] == []
    assert len(seen) == len(urls) + 2
