"""The Automatic Update screen in headless Chromium."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from updates_app.models import AutoUpdateSettings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "automatic-update.png"


def open_screen(page, live_server):
    page.goto(f"{live_server.url}/updates/automatic/")
    return page


def visible(page, field: str) -> bool:
    return page.locator(f"#id_{field}").is_visible()


def test_switching_the_frequency_shows_the_right_fields(logged_in_page, live_server):
    page = open_screen(logged_in_page, live_server)
    expected = {
        "Minute(s)": {"interval_minutes", "config_once_per_day"},
        "Hour(s)": {"interval_hours", "config_once_per_day"},
        "Daily": {"start_time", "period_hours"},
        "Weekly": {"start_time", "period_hours", "weekday"},
    }
    every = set().union(*expected.values())
    # Daily is the default: its fields show before anything is clicked.
    assert {f for f in every if visible(page, f)} == expected["Daily"]
    for label in ("Minute(s)", "Hour(s)", "Weekly", "Daily"):
        page.get_by_label(label, exact=True).check()
        assert {f for f in every if visible(page, f)} == expected[label], label


def test_the_sub_option_follows_its_parent(logged_in_page, live_server):
    page = open_screen(logged_in_page, live_server)
    parent = page.locator("#id_notify_on_download")
    sub = page.locator("#id_include_roaming_offline")
    assert parent.is_checked() and sub.is_enabled()
    sub.check()
    parent.uncheck()
    assert sub.is_disabled() and not sub.is_checked()
    parent.check()
    assert sub.is_enabled() and sub.is_checked()  # what it was comes back


def test_schedule_changes_are_announced_for_the_preview(logged_in_page, live_server):
    page = open_screen(logged_in_page, live_server)
    page.evaluate(
        """() => { window.scheduleEvents = [];
        document.getElementById('automatic-update-form')
          .addEventListener('schedule-change', (e) => window.scheduleEvents.push(e.detail)); }"""
    )
    page.get_by_label("Weekly", exact=True).check()
    page.select_option("#id_weekday", "3")
    page.fill("#id_period_hours", "6")
    last = page.evaluate("window.scheduleEvents[window.scheduleEvents.length - 1]")
    assert last["frequency"] == "weekly"
    assert last["weekday"] == 3
    assert last["periodHours"] == 6
    assert last["startTime"] == "12:00"
    assert last["initial"] is False


def test_a_save_with_an_error_keeps_what_was_typed(logged_in_page, live_server):
    page = open_screen(logged_in_page, live_server)
    page.get_by_label("Weekly", exact=True).check()
    page.fill("#id_start_time", "07:30")
    page.fill("#id_period_hours", "25")
    page.check("#id_scan_after_update")
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    assert page.get_by_text("The Automatic Update settings were not saved").is_visible()
    # The field's error (the load preview says the same in its own list).
    assert page.get_by_text("Enter a time period of 1 to 24 hours.", exact=True).is_visible()
    assert page.get_by_text("Choose the day of the week for a Weekly schedule.").is_visible()
    # What was typed is still there, and the Weekly fields still show.
    assert page.get_by_label("Weekly", exact=True).is_checked()
    assert page.input_value("#id_start_time") == "07:30"
    assert page.input_value("#id_period_hours") == "25"
    assert page.locator("#id_scan_after_update").is_checked()
    assert visible(page, "weekday") and not visible(page, "interval_minutes")
    assert AutoUpdateSettings.load().revision == 1


def test_a_good_save_confirms_and_survives_a_reload(logged_in_page, live_server):
    page = open_screen(logged_in_page, live_server)
    page.get_by_label("Hour(s)", exact=True).check()
    page.fill("#id_interval_hours", "4")
    page.uncheck("#id_config_once_per_day")
    page.uncheck("#id_notify_on_download")
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    assert page.get_by_text("Automatic Update settings saved").is_visible()
    page.reload()
    assert page.get_by_label("Hour(s)", exact=True).is_checked()
    assert page.input_value("#id_interval_hours") == "4"
    assert not page.locator("#id_config_once_per_day").is_checked()
    assert not page.locator("#id_notify_on_download").is_checked()
    assert page.locator("#id_include_roaming_offline").is_disabled()
    assert visible(page, "interval_hours") and not visible(page, "start_time")
    auto = AutoUpdateSettings.load()
    assert (auto.frequency, auto.interval_hours, auto.config_once_per_day) == ("hours", 4, False)
    assert auto.start_time == dt.time(12, 0)


def test_read_only_staff_see_disabled_inputs_and_no_save(page, live_server, django_user_model):
    django_user_model.objects.create_user("viewer", password="correct-horse-battery", is_staff=True)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    open_screen(page, live_server)
    assert page.get_by_text("You can view these settings but not change them").is_visible()
    assert page.get_by_role("button", name="Save").count() == 0
    assert page.locator("#id_notify_on_download").is_disabled()
    assert page.locator("#id_include_roaming_offline").is_disabled()
    assert page.locator("#id_start_time").is_disabled()


def test_screenshot_for_the_readme(logged_in_page, live_server, tmp_path):
    """Renders the screen to a PNG; with UPDATE_SCREENSHOTS=1 it refreshes the README's copy."""
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / SCREENSHOT.name
    page = open_screen(logged_in_page, live_server)
    page.set_viewport_size({"width": 1280, "height": 1000})
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
