"""The Rollback screen in headless Chromium: choose a kept version, confirm, watch the run; the summary shows it."""

from __future__ import annotations

import pytest

from agents_app.models import Client, ConnectionStatus, Domain
from console.models import AuditEntry
from updates_app.compliance import client_versions_record
from updates_app.components import component_download, component_resolve
from updates_app.models import AutoUpdateSettings, ComponentVersion, RunTrigger, UpdateRun
from updates_app.version_labels import version_label

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_rolling_back_from_the_screen_withdraws_the_newer_version_and_shows_the_run(
    logged_in_page, live_server, component_storage
):
    AutoUpdateSettings.objects.update_or_create(pk=1, defaults={"notify_on_download": False})
    component = component_resolve("virus_pattern")
    first, second, third = (component_download(component=component) for _ in range(3))
    domain = Domain.objects.create(name="Desks")
    for i in range(2):
        desk = Client.objects.create(
            domain=domain,
            hostname=f"desk-{i}",
            ip_address="127.0.0.1",
            listener_port=9,  # nothing listens: the run shows retries
            status=ConnectionStatus.ONLINE,
            component_versions={"virus_pattern": version_label(third.number)},
        )
        client_versions_record(client=desk, reported=desk.component_versions)
    page = logged_in_page
    page.goto(f"{live_server.url}/")
    page.locator("nav summary", has_text="Updates").click()
    page.get_by_role("link", name="Rollback").click()
    page.wait_for_url(f"{live_server.url}/updates/rollback/")

    row = page.locator("tr[data-component=virus_pattern]")
    assert version_label(third.number) in row.inner_text()
    select = page.get_by_label("Version of Virus Pattern to roll back to")
    assert select.locator("option").all_inner_texts()[0].startswith(version_label(second.number))
    select.select_option(version_label(first.number))
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Roll back").click()

    run = UpdateRun.objects.get(trigger=RunTrigger.ROLLBACK)
    page.wait_for_url(f"{live_server.url}/updates/runs/{run.pk}/")
    assert "rolled back to" in page.locator(".alert-success, .alert").first.inner_text()
    assert f"roll back to Virus Pattern {version_label(first.number)}" in page.content()
    assert page.locator(f"[data-run-id='{run.pk}'][data-field=total]").first.inner_text() == "2"
    assert set(ComponentVersion.objects.filter(withdrawn_at__isnull=False)) == {second, third}
    assert AuditEntry.objects.filter(action="rollback").count() == 1

    # The Update Summary shows the rolled-back component and the rollback run.
    page.goto(f"{live_server.url}/updates/summary/")
    note = page.locator(".rolled-back[data-component=virus_pattern]")
    assert f"rolled back from {version_label(third.number)}" in note.inner_text()
    assert "2 clients still on a withdrawn version" in note.inner_text()
    assert f"back to Virus Pattern {version_label(first.number)}" in page.locator("#runs").inner_text()

    # Back on the screen: the withdrawn versions are listed, and nothing newer than current can be chosen.
    page.goto(f"{live_server.url}/updates/rollback/")
    assert version_label(third.number) in row.locator("td").nth(1).inner_text()
    assert "no earlier version kept" in row.inner_text()
