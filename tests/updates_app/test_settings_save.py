"""The save every singleton settings screen shares (updates_app/settings_save.py), tested once for all three.

Each screen's own page (its rules, its wording, its 409) is tested in
test_automatic_update.py, test_proxy_settings.py and test_rollout_screens.py.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from agents_app.models import Domain
from console.audit import audit_words
from console.encryption import decrypt
from console.models import AuditEntry
from updates_app.autoupdate import AUTOMATIC_UPDATE
from updates_app.forms.automatic import AutoUpdateSettingsForm
from updates_app.forms.proxy import ProxySettingsForm
from updates_app.forms.rollouts import RolloutPolicyForm
from updates_app.forms.schedule import SchedulePreviewForm
from updates_app.forms.singleton import model_range
from updates_app.models import AutoUpdateSettings, Frequency, ProxySettings, RolloutPolicy, Weekday
from updates_app.proxy import PROXY_SETTINGS
from updates_app.settings_save import StaleSettings, Unsaved
from updates_app.staged import ROLLOUT_POLICY

pytestmark = pytest.mark.django_db

# Each screen's rules with a field and two values to save; the first differs from the default.
SCREENS = [
    pytest.param(AUTOMATIC_UPDATE, "period_hours", 5, 6, "Time period (hours)", id="automatic-update"),
    pytest.param(PROXY_SETTINGS, "internal_username", "agent", "other", "Internal proxy: user name", id="proxy"),
    pytest.param(ROLLOUT_POLICY, "soak_minutes", 90, 120, "Soak time (minutes)", id="rollout-policy"),
]


def snapshot(model) -> dict:
    return {k: v for k, v in model.load().__dict__.items() if not k.startswith("_")}


@pytest.mark.parametrize(("rules", "name", "value", "_other", "label"), SCREENS)
def test_a_save_bumps_the_revision_and_writes_one_audit_entry(admin_user_obj, rules, name, value, _other, label):
    old = getattr(rules.model.load(), name)
    result = rules.save(actor=admin_user_obj, revision=1, values={name: value})
    row = rules.model.load()
    assert (getattr(row, name), row.revision, row.updated_by) == (value, 2, admin_user_obj)
    assert result.changes == {name: {"label": label, "old": audit_words(old), "new": str(value)}}
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target, entry.changes) == (
        admin_user_obj,
        rules.action,
        str(row),
        result.changes,
    )


@pytest.mark.parametrize(("rules", "name", "value", "other", "_label"), SCREENS)
def test_a_stale_revision_is_refused_and_nothing_is_written(admin_user_obj, rules, name, value, other, _label):
    rules.save(actor=admin_user_obj, revision=1, values={name: value})
    before = snapshot(rules.model)
    with pytest.raises(StaleSettings) as refused:
        rules.save(actor=admin_user_obj, revision=1, values={name: other})
    assert getattr(refused.value.current, name) == value
    assert refused.value.current.revision == 2
    assert snapshot(rules.model) == before
    assert AuditEntry.objects.count() == 1


@pytest.mark.parametrize(("rules", "name", "_value", "_other", "_label"), SCREENS)
def test_a_save_that_changes_nothing_writes_nothing(admin_user_obj, rules, name, _value, _other, _label):
    before = snapshot(rules.model)
    result = rules.save(actor=admin_user_obj, revision=1, values={name: before[name]})
    assert not result.changed
    assert snapshot(rules.model) == before
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(("rules", "_name", "_value", "_other", "_label"), SCREENS)
def test_only_the_screens_fields_can_be_written(admin_user_obj, rules, _name, _value, _other, _label):
    before = snapshot(rules.model)
    for column in ("revision", "updated_by", "id"):
        with pytest.raises(ValueError, match=column):
            rules.save(actor=admin_user_obj, revision=1, values={column: 9})
    assert snapshot(rules.model) == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("rules", "name", "value", "other", "_label"), SCREENS)
def test_concurrent_saves_from_two_connections_one_wins(admin_user_obj, rules, name, value, other, _label):
    """Two threads (two database connections) save from the same revision at once."""
    rules.model.load()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(chosen) -> None:
        try:
            barrier.wait()
            rules.save(actor=admin_user_obj, revision=1, values={name: chosen})
            outcomes.append("saved")
        except StaleSettings:
            outcomes.append("stale")
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(chosen,)) for chosen in (value, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["saved", "stale"]
    row = rules.model.load()
    assert row.revision == 2
    assert getattr(row, name) in (value, other)
    assert AuditEntry.objects.count() == 1


# --- The hooks --------------------------------------------------------------------------------------------


def test_fields_the_frequency_does_not_use_keep_their_stored_value(admin_user_obj):
    # given Daily, the default
    # when a save sends a Minute(s) interval along with a Daily schedule
    result = AUTOMATIC_UPDATE.save(
        actor=admin_user_obj, revision=1, values={"interval_minutes": 5, "start_time": dt.time(8, 0)}
    )
    # then only the start time is saved
    assert set(result.changes) == {"start_time"}
    auto = AutoUpdateSettings.load()
    assert (auto.interval_minutes, auto.start_time) == (30, dt.time(8, 0))


def test_a_secret_is_stored_encrypted_masked_in_the_audit_and_kept_when_left_out(admin_user_obj):
    PROXY_SETTINGS.save(actor=admin_user_obj, revision=1, values={"internal_password": "pa55-word"})
    stored = ProxySettings.load().internal_password
    assert "pa55-word" not in stored and decrypt(stored) == "pa55-word"
    # Left out: kept. The same text again: nothing to save.
    assert not PROXY_SETTINGS.save(actor=admin_user_obj, revision=2, values={"internal_username": ""}).changed
    assert not PROXY_SETTINGS.save(actor=admin_user_obj, revision=2, values={"internal_password": "pa55-word"}).changed
    PROXY_SETTINGS.save(actor=admin_user_obj, revision=2, values={"internal_password": ""})
    assert ProxySettings.load().internal_password == ""
    changes = [entry.changes["internal_password"] for entry in AuditEntry.objects.order_by("pk")]
    assert changes == [
        {"label": "Internal proxy: password", "old": "(not set)", "new": "changed"},
        {"label": "Internal proxy: password", "old": "••••••", "new": "(removed)"},
    ]
    assert "pa55-word" not in str(changes)


def test_many_to_many_fields_are_compared_as_sets_and_saved_with_the_revision(admin_user_obj):
    canary, office = Domain.objects.create(name="Canary"), Domain.objects.create(name="Office")
    result = ROLLOUT_POLICY.save(actor=admin_user_obj, revision=1, values={"ring1_domains": [office, canary]})
    assert result.changes == {"ring1_domains": {"label": "Ring 1 domains", "old": "(none)", "new": "Canary, Office"}}
    policy = RolloutPolicy.load()
    assert set(policy.ring1_domains.all()) == {canary, office}
    assert policy.revision == 2
    # The same domains in another order: nothing to save.
    assert not ROLLOUT_POLICY.save(actor=admin_user_obj, revision=2, values={"ring1_domains": [canary, office]}).changed
    # A stale save changes no domain either.
    with pytest.raises(StaleSettings):
        ROLLOUT_POLICY.save(actor=admin_user_obj, revision=1, values={"ring1_domains": []})
    assert set(RolloutPolicy.load().ring1_domains.all()) == {canary, office}


def test_the_unsaved_values_are_those_that_differ_in_words(admin_user_obj):
    auto = AutoUpdateSettings.load()
    values = {
        "frequency": Frequency.WEEKLY,
        "weekday": Weekday.FRIDAY,
        "start_time": dt.time(12, 0),  # as stored: not listed
        "interval_minutes": 7,  # Weekly does not use it: not listed
        "scan_after_update": True,
    }
    assert AUTOMATIC_UPDATE.unsaved(values, auto) == [
        Unsaved("Perform Scan Now after updating", yours="on", now="off"),
        Unsaved("Update frequency", yours="Weekly", now="Daily"),
        Unsaved("Day of the week", yours="Friday", now="(not set)"),
    ]
    proxy = ProxySettings.load()
    assert PROXY_SETTINGS.unsaved({"internal_password": "typed", "external_port": 8080}, proxy) == [
        Unsaved("Internal proxy: password", yours="(not shown: type it again)", now="(not set)"),
        Unsaved("External proxy: port", yours="8080", now="(not set)"),
    ]


@pytest.mark.parametrize(
    ("value", "choices", "words"),
    [
        (None, (), "(not set)"),
        ("", (), "(not set)"),
        (True, (), "on"),
        (False, (), "off"),
        ("weekly", Frequency.choices, "Weekly"),
        (0, Weekday.choices, "Monday"),
        (dt.time(7, 5), (), "07:05"),
        ([], (), "(none)"),
        (["Office", "Canary"], (), "Canary, Office"),
        (3128, (), "3128"),
        ("proxy.example.test", (), "proxy.example.test"),
    ],
)
def test_the_audit_says_values_in_words(value, choices, words):
    assert audit_words(value, choices=choices) == words


# --- Ranges, stated once in the model -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "form_class", [AutoUpdateSettingsForm, ProxySettingsForm, RolloutPolicyForm, SchedulePreviewForm]
)
def test_forms_take_their_ranges_and_messages_from_the_models_validators(form_class):
    model = AutoUpdateSettings if form_class is SchedulePreviewForm else form_class._meta.model
    checked = 0
    for name, field in form_class().fields.items():
        if name == "revision":  # the form's own, not the editable column
            continue
        try:
            model_field = model._meta.get_field(name)
        except Exception:  # noqa: S112 - a form-only field (revision, remove the password)
            continue
        low, high = model_range(model_field)
        if low is None or high is None or not hasattr(field, "min_value"):
            continue
        assert (field.min_value, field.max_value) == (low, high), name
        for code in ("min_value", "max_value", "invalid"):
            assert f"{low} to {high}" in field.error_messages[code], (name, code)
        checked += 1
    assert checked >= 2


def test_a_range_is_written_once_the_help_text_says_it_too():
    field = AutoUpdateSettings._meta.get_field("interval_minutes")
    assert model_range(field) == (1, 59)
    assert field.help_text == "1 to 59 minutes."
    form = AutoUpdateSettingsForm(data={"frequency": "minutes", "interval_minutes": "60"})
    assert form.errors["interval_minutes"] == ["Enter 1 to 59 minutes."]
