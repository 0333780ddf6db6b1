"""The Proxy Settings screen in a real browser: a save with a password, and the README's screenshot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console.encryption import decrypt
from updates_app.models import ProxySettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "proxy-settings.png"


def test_an_administrator_sets_the_internal_proxy_and_the_password_is_not_shown_again(logged_in_page, live_server):
    page = logged_in_page
    page.goto(f"{live_server.url}/updates/proxy/")
    page.check("#id_internal_enabled")
    page.fill("#id_internal_host", "proxy.example.test")
    page.fill("#id_internal_port", "3128")
    page.fill("#id_internal_username", "agent")
    page.fill("#id_internal_password", "pa55-word")
    page.click("input[type=submit][name=save]")
    page.wait_for_selector(".alert-success")
    assert "Proxy settings saved" in page.inner_text(".alert-success")
    assert page.input_value("#id_internal_password") == ""
    assert "pa55-word" not in page.content()
    assert page.inner_text("#internal-password-state") == "A password is stored."
    assert decrypt(ProxySettings.load().internal_password) == "pa55-word"


def test_screenshot_for_the_readme(logged_in_page, live_server, tmp_path):
    """Renders the screen to a PNG; with UPDATE_SCREENSHOTS=1 it refreshes the README's copy."""
    ProxySettings.load()
    ProxySettings.objects.filter(pk=1).update(
        use_pac=True,
        pac_url="http://wpad.example.test/proxy.pac",
        internal_enabled=True,
        internal_host="proxy.example.test",
        internal_port=3128,
    )
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / SCREENSHOT.name
    page = logged_in_page
    page.goto(f"{live_server.url}/updates/proxy/")
    page.set_viewport_size({"width": 1280, "height": 1000})
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
