"""The Automatic Update screen: rules, bad input, audit, permissions, a stale save.

The save every settings screen shares (revision check, concurrent saves, audit
words) is tested once, in test_settings_save.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.urls import reverse

from console.models import AuditEntry
from updates_app.models import AutoUpdateSettings, Frequency

pytestmark = pytest.mark.django_db

URL = reverse("updates:automatic-update")


def form_data(**overrides) -> dict:
    """What the browser posts for the stored settings, with overrides."""
    auto = AutoUpdateSettings.load()
    data = {
        "revision": auto.revision,
        "frequency": auto.frequency,
        "interval_minutes": auto.interval_minutes,
        "interval_hours": auto.interval_hours,
        "start_time": auto.start_time.strftime("%H:%M"),
        "period_hours": auto.period_hours,
        "weekday": "" if auto.weekday is None else auto.weekday,
    }
    for name in ("notify_on_download", "include_roaming_offline", "update_on_restart", "scan_after_update"):
        if getattr(auto, name):
            data[name] = "on"
    if auto.config_once_per_day:
        data["config_once_per_day"] = "on"
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def snapshot() -> dict:
    return {k: v for k, v in AutoUpdateSettings.load().__dict__.items() if not k.startswith("_")}


@pytest.fixture
def change_client(client, django_user_model):
    user = django_user_model.objects.create_user("editor", password="pw-correct-horse", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="change_autoupdatesettings"),
        Permission.objects.get(codename="view_autoupdatesettings"),
    )
    client.force_login(user)
    client.user = user
    return client


# --- Defaults and the screen ----------------------------------------------------------------------------


def test_a_new_server_has_documented_defaults():
    auto = AutoUpdateSettings.load()
    assert auto.notify_on_download is True
    assert auto.include_roaming_offline is False
    assert auto.update_on_restart is True
    assert auto.scan_after_update is False
    assert auto.frequency == Frequency.DAILY
    assert auto.start_time == dt.time(12, 0)
    assert auto.period_hours == 2
    assert auto.revision == 1


def test_the_screen_shows_the_seeds_wording(superuser_client):
    html = superuser_client.get(URL).content.decode()
    for text in (
        "Initiate component update on clients immediately after the server downloads a new component",
        "Include roaming and offline client(s)",
        "Let clients initiate component update when they restart and connect to the server "
        "(roaming clients are excluded)",
        "Perform Scan Now after updating (excluding roaming clients)",
        "Minute(s)",
        "Hour(s)",
        "Daily",
        "Weekly",
        "Update client configurations only once per day",
        "Start time",
        "Time period",
        # Help from the seed's table.
        "A client that missed an update immediately downloads components",
        "Consider enabling this option if a particular update is a response to a security risk",
    ):
        assert text in html, text
    assert 'id="schedule-preview"' in html
    assert 'name="save"' in html


def test_start_time_shows_the_server_time_zone(superuser_client, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    html = superuser_client.get(URL).content.decode()
    assert "Europe/Berlin (server time zone)" in html


def test_fields_carry_the_frequencies_they_apply_to(superuser_client):
    html = superuser_client.get(URL).content.decode()
    assert 'data-frequencies="minutes"' in html
    assert 'data-frequencies="hours"' in html
    assert 'data-frequencies="minutes hours"' in html
    assert 'data-frequencies="weekly"' in html
    assert 'data-frequencies="daily weekly"' in html
    assert 'data-parent="id_notify_on_download"' in html


# --- Saving -----------------------------------------------------------------------------------------------


def test_a_good_save_stores_the_values_and_confirms(superuser_client):
    response = superuser_client.post(
        URL, form_data(frequency="weekly", weekday="2", start_time="22:30", period_hours="5", scan_after_update="on")
    )
    assert response.status_code == 302
    auto = AutoUpdateSettings.load()
    assert (auto.frequency, auto.weekday, auto.start_time, auto.period_hours) == ("weekly", 2, dt.time(22, 30), 5)
    assert auto.scan_after_update is True
    assert auto.revision == 2
    page = superuser_client.get(URL).content.decode()
    assert "Automatic Update settings saved (5 changes)" in page
    assert "will apply the new configuration with their next update" in page


def test_the_confirmation_says_when_configurations_arrive_once_a_day(superuser_client):
    response = superuser_client.post(URL, form_data(frequency="minutes"), follow=True)
    assert "will apply the new configuration within a day" in response.content.decode()


def test_minutes_and_hours_intervals_are_saved(superuser_client):
    superuser_client.post(URL, form_data(frequency="minutes", interval_minutes="59", config_once_per_day=None))
    auto = AutoUpdateSettings.load()
    assert (auto.frequency, auto.interval_minutes, auto.config_once_per_day) == ("minutes", 59, False)
    superuser_client.post(URL, form_data(frequency="hours", interval_hours="24"))
    auto = AutoUpdateSettings.load()
    assert (auto.frequency, auto.interval_hours) == ("hours", 24)


def test_a_no_op_save_writes_nothing(superuser_client):
    before = snapshot()
    response = superuser_client.post(URL, form_data(), follow=True)
    assert "No changes to save" in response.content.decode()
    assert snapshot() == before
    assert AuditEntry.objects.count() == 0


def test_values_of_fields_hidden_by_the_frequency_are_kept_not_rejected(superuser_client):
    # given Daily with a stored 30-minute interval
    # when the browser sends a nonsense interval along with a Daily schedule
    response = superuser_client.post(URL, form_data(interval_minutes="0", interval_hours="99", start_time="08:00"))
    # then it saves the start time and keeps the stored intervals
    assert response.status_code == 302
    auto = AutoUpdateSettings.load()
    assert (auto.start_time, auto.interval_minutes, auto.interval_hours) == (dt.time(8, 0), 30, 1)
    # and switching to Minute(s) later brings the stored interval back
    superuser_client.post(URL, form_data(frequency="minutes", start_time="25:99"))
    auto = AutoUpdateSettings.load()
    assert (auto.frequency, auto.interval_minutes, auto.start_time) == ("minutes", 30, dt.time(8, 0))


def test_a_missing_hidden_field_is_fine_too(superuser_client):
    response = superuser_client.post(URL, form_data(interval_minutes=None, interval_hours=None, start_time="07:15"))
    assert response.status_code == 302
    assert AutoUpdateSettings.load().start_time == dt.time(7, 15)


# --- Bad input: a field error and nothing saved -----------------------------------------------------------

BAD_INPUT = [
    ({"frequency": "minutes", "interval_minutes": "0"}, "interval_minutes", "Enter 1 to 59 minutes."),
    ({"frequency": "minutes", "interval_minutes": "60"}, "interval_minutes", "Enter 1 to 59 minutes."),
    ({"frequency": "minutes", "interval_minutes": "ten"}, "interval_minutes", "Enter 1 to 59 minutes."),
    ({"frequency": "hours", "interval_hours": "0"}, "interval_hours", "Enter 1 to 24 hours."),
    ({"frequency": "hours", "interval_hours": "25"}, "interval_hours", "Enter 1 to 24 hours."),
    ({"start_time": "25:00"}, "start_time", "Enter a time as HH:MM"),
    ({"start_time": "12:60"}, "start_time", "Enter a time as HH:MM"),
    ({"start_time": ""}, "start_time", "This field is required."),
    ({"frequency": "weekly", "weekday": ""}, "weekday", "Choose the day of the week"),
    ({"frequency": "weekly", "weekday": "7"}, "weekday", "Select a valid choice"),
    ({"period_hours": "0"}, "period_hours", "Enter a time period of 1 to 24 hours."),
    ({"period_hours": "25"}, "period_hours", "Enter a time period of 1 to 24 hours."),
    ({"frequency": "weekly", "weekday": "1", "period_hours": "25"}, "period_hours", "1 to 24 hours"),
    ({"notify_on_download": None, "include_roaming_offline": "on"}, "include_roaming_offline", "needs"),
    ({"frequency": "yearly"}, "frequency", "Select a valid choice"),
    ({"frequency": None}, "frequency", "This field is required."),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_INPUT)
def test_bad_input_gets_a_field_error_and_saves_nothing(superuser_client, overrides, field, message):
    before = snapshot()
    response = superuser_client.post(URL, form_data(**overrides))
    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert message in " ".join(form.errors[field])
    assert "The Automatic Update settings were not saved" in response.content.decode()
    assert snapshot() == before
    assert AuditEntry.objects.count() == 0


def test_unknown_fields_are_refused(superuser_client):
    before = snapshot()
    response = superuser_client.post(URL, form_data(revision_hack="1", updated_by="1", start_time="09:00"))
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert "Unknown fields: revision_hack, updated_by" in errors[0]
    assert "Unknown fields: revision_hack, updated_by" in response.content.decode()
    assert snapshot() == before


def test_unknown_field_names_are_escaped(superuser_client):
    response = superuser_client.post(URL, form_data(**{"<script>x</script>": "1"}))
    html = response.content.decode()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_a_missing_revision_is_refused(superuser_client):
    before = snapshot()
    response = superuser_client.post(URL, form_data(revision=None, start_time="09:00"))
    assert response.status_code == 200
    assert "missing its revision" in response.content.decode()
    assert snapshot() == before


def test_a_failed_save_keeps_what_was_typed(superuser_client):
    response = superuser_client.post(URL, form_data(start_time="09:45", period_hours="25", scan_after_update="on"))
    html = response.content.decode()
    assert 'value="09:45"' in html
    assert 'value="25"' in html
    assert 'name="scan_after_update" class="checkboxinput form-check-input" aria-describedby' in html
    assert response.context["form"]["scan_after_update"].value() is True


def test_the_database_refuses_what_the_form_refuses():
    AutoUpdateSettings.load()
    for values in (
        {"interval_minutes": 60},
        {"interval_hours": 0},
        {"period_hours": 25},
        {"frequency": "yearly"},
        {"frequency": "weekly", "weekday": None},
        {"weekday": 9},
        {"notify_on_download": False, "include_roaming_offline": True},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            AutoUpdateSettings.objects.filter(pk=1).update(**values)
    with pytest.raises(IntegrityError), transaction.atomic():
        AutoUpdateSettings.objects.create(pk=2)


# --- Audit ---------------------------------------------------------------------------------------------------


def test_a_save_writes_one_audit_entry_field_by_field(change_client):
    change_client.post(URL, form_data(frequency="weekly", weekday="4", start_time="03:00", update_on_restart=None))
    entry = AuditEntry.objects.get()
    assert entry.actor == change_client.user
    assert entry.action == "automatic_update.save"
    assert entry.target == "Automatic Update settings"
    assert entry.changes == {
        "frequency": {"label": "Update frequency", "old": "Daily", "new": "Weekly"},
        "weekday": {"label": "Day of the week", "old": "(not set)", "new": "Friday"},
        "start_time": {"label": "Start time", "old": "12:00", "new": "03:00"},
        "update_on_restart": {
            "label": "Let clients initiate component update when they restart",
            "old": "on",
            "new": "off",
        },
    }
    assert entry.created_at is not None


def test_the_audit_log_shows_the_entry_newest_first(superuser_client):
    superuser_client.post(URL, form_data(start_time="01:00"))
    superuser_client.post(URL, form_data(period_hours="9"))
    html = superuser_client.get(reverse("audit-log")).content.decode()
    assert html.index("Time period (hours)") < html.index("Start time")
    assert "12:00" in html and "01:00" in html
    assert "root" in html


def test_the_audit_log_pages(superuser_client, admin_user_obj):
    for n in range(55):
        AuditEntry.objects.create(actor=admin_user_obj, action="test", target=f"target-{n}", changes={})
    first = superuser_client.get(reverse("audit-log")).content.decode()
    assert "target-54" in first and "target-4<" not in first
    assert "Page 1 of 2" in first
    second = superuser_client.get(reverse("audit-log") + "?page=2").content.decode()
    assert "target-4<" in second


def test_the_audit_log_has_an_empty_state(superuser_client):
    assert "No changes recorded yet" in superuser_client.get(reverse("audit-log")).content.decode()


# --- Permissions -----------------------------------------------------------------------------------------


def test_staff_with_view_permission_see_it_read_only(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-correct-horse", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_autoupdatesettings"))
    client.force_login(user)
    response = client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="save"' not in html
    assert "You can view these settings but not change them" in html
    form = response.context["form"]
    assert all(field.disabled for field in form.fields.values())
    assert 'data-read-only="true"' in html


def test_post_without_change_permission_is_forbidden(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-correct-horse", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_autoupdatesettings"))
    client.force_login(user)
    before = snapshot()
    response = client.post(URL, form_data(start_time="01:00"))
    assert response.status_code == 403
    assert snapshot() == before
    assert AuditEntry.objects.count() == 0


def test_user_with_change_permission_saves(change_client):
    assert 'name="save"' in change_client.get(URL).content.decode()
    assert change_client.post(URL, form_data(start_time="01:00")).status_code == 302
    assert AutoUpdateSettings.load().start_time == dt.time(1, 0)


def test_csrf_is_enforced(django_user_model):
    from django.test import Client as HttpClient

    csrf_client = HttpClient(enforce_csrf_checks=True)
    csrf_client.force_login(django_user_model.objects.create_superuser("boss", password="pw-correct-horse"))
    response = csrf_client.post(URL, form_data(start_time="01:00"))
    assert response.status_code == 403
    assert AutoUpdateSettings.load().start_time == dt.time(12, 0)


# --- Concurrency -----------------------------------------------------------------------------------------


def test_a_stale_save_is_refused_and_shows_the_new_values(superuser_client, change_client):
    # given two administrators who opened the screen at revision 1
    opened = form_data()
    # when the first saves a new start time
    assert change_client.post(URL, {**opened, "start_time": "06:00"}).status_code == 302
    # and the second saves another change from the page they loaded earlier
    response = superuser_client.post(URL, {**opened, "period_hours": "8"})
    # then the second is told, nothing of theirs is saved, and they see the new values
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed since you opened them (by editor)" in html
    assert 'value="06:00"' in html
    assert 'name="revision" value="2"' in html
    assert "Time period (hours): yours 8, now 2" in html
    auto = AutoUpdateSettings.load()
    assert (auto.start_time, auto.period_hours, auto.revision) == (dt.time(6, 0), 2, 2)
    assert AuditEntry.objects.count() == 1
    # and saving again from the refreshed page works
    assert superuser_client.post(URL, form_data(period_hours="8")).status_code == 302
    assert AutoUpdateSettings.load().period_hours == 8


def test_the_audit_log_filters_by_action_and_keeps_the_filter_across_pages(superuser_client, admin_user_obj):
    AuditEntry.objects.bulk_create(
        [AuditEntry(actor=admin_user_obj, action="privileges.apply", target=f"p-{n}") for n in range(60)]
    )
    superuser_client.post(URL, form_data(start_time="01:00"))
    html = superuser_client.get(reverse("audit-log") + "?action=automatic_update.save").content.decode()
    assert "Automatic Update settings" in html and "p-1<" not in html
    html = superuser_client.get(reverse("audit-log") + "?action=privileges.apply").content.decode()
    assert "action=privileges.apply&amp;page=2" in html


def test_the_audit_log_page_costs_a_fixed_number_of_queries(
    superuser_client, admin_user_obj, django_assert_max_num_queries
):
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(actor=admin_user_obj, action="test", target=f"t-{n}", changes={"x": {"old": 1, "new": 2}})
            for n in range(50)
        ]
    )
    with django_assert_max_num_queries(8):
        superuser_client.get(reverse("audit-log"))


def test_the_screen_costs_a_fixed_number_of_queries(superuser_client, django_assert_max_num_queries):
    AutoUpdateSettings.load()
    # 6 for the screen, 8 for the staged roll-out section: its policy (created
    # on the first visit: 4), its domains (2) and its preview's two COUNTs.
    # None of them grows with the fleet.
    with django_assert_max_num_queries(14):
        assert superuser_client.get(URL).status_code == 200
