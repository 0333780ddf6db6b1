"""Configuration documents and versions (SPEC 3.5)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.urls import reverse

from agents_app.models import Client, ClientSettings, Domain
from updates_app.autoupdate import autoupdate_settings_save
from updates_app.configuration import (
    ConfigurationBuilder,
    client_configuration,
    client_configuration_and_version,
    clients_with_new_configuration,
    configuration_hash,
    configuration_versions,
)
from updates_app.models import AutoUpdateSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain():
    return Domain.objects.create(name="HQ")


def make_client(domain, n: int, **settings) -> Client:
    return Client.objects.create(domain=domain, hostname=f"pc-{n}", ip_address=f"127.1.0.{n}", **settings)


def save(actor=None, **values):
    auto = AutoUpdateSettings.load()
    return autoupdate_settings_save(actor=actor, revision=auto.revision, values=values)


def test_the_document_is_complete_for_the_agent(domain, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    client = make_client(domain, 1, scheduled_update_setting=False, roaming_privilege=True)
    document, version = client_configuration_and_version(client)
    assert document == {
        "schema": 1,
        "schedule": {"frequency": "daily", "start_time": "12:00", "time_zone": "Europe/Berlin", "period_hours": 2},
        "event_triggered": {"notify_on_download": True, "include_roaming_offline": False, "scan_after_update": False},
        "update_on_restart": True,
        "proxy": {"automatic": {"detect": False, "script_url": None}, "internal": None, "external": None},
        "activeupdate_url": None,
        "privileges": {"roaming": True, "update_now": True, "scheduled_update": True, "configure_proxy": False},
        "update_settings": {"download_from_activeupdate": False, "scheduled_update": False, "components_only": False},
        "scheduled_update": {"enabled": True, "user_may_disable": False},
    }
    assert version == configuration_hash(document)
    assert len(version) == 64


@pytest.mark.parametrize(
    ("values", "schedule"),
    [
        (
            {"frequency": "minutes", "interval_minutes": 15, "config_once_per_day": True},
            {"frequency": "minutes", "interval_minutes": 15, "config_once_per_day": True},
        ),
        (
            {"frequency": "hours", "interval_hours": 6, "config_once_per_day": False},
            {"frequency": "hours", "interval_hours": 6, "config_once_per_day": False},
        ),
        (
            {"frequency": "weekly", "weekday": 6, "start_time": dt.time(23, 5), "period_hours": 24},
            {"frequency": "weekly", "weekday": 6, "start_time": "23:05", "time_zone": "UTC", "period_hours": 24},
        ),
    ],
)
def test_the_schedule_part_holds_only_what_applies(domain, values, schedule):
    save(**values)
    assert client_configuration(make_client(domain, 1))["schedule"] == schedule


def test_the_version_changes_on_a_real_change_and_not_on_a_no_op_save(domain):
    client = make_client(domain, 1)
    before = client_configuration_and_version(client)[1]
    assert not save(period_hours=2).changed
    assert client_configuration_and_version(client)[1] == before
    assert save(period_hours=3).changed
    after = client_configuration_and_version(client)[1]
    assert after != before
    # Back to the old value: back to the old version (it is a content hash).
    save(period_hours=2)
    assert client_configuration_and_version(client)[1] == before


@pytest.mark.parametrize(
    "values",
    [
        {"notify_on_download": False},
        {"include_roaming_offline": True},
        {"update_on_restart": False},
        {"scan_after_update": True},
        {"frequency": "hours"},
        {"start_time": dt.time(13, 0)},
        {"frequency": "weekly", "weekday": 0},
    ],
)
def test_every_option_on_the_screen_changes_the_version(domain, values):
    client = make_client(domain, 1)
    before = client_configuration_and_version(client)[1]
    assert save(**values).changed
    assert client_configuration_and_version(client)[1] != before


def test_a_value_hidden_by_the_frequency_does_not_change_the_version(domain):
    client = make_client(domain, 1)
    before = client_configuration_and_version(client)[1]
    # Daily: the interval does not apply, so the service keeps the stored value.
    assert not save(interval_minutes=45).changed
    # Even written behind the service's back, it is not part of the document.
    AutoUpdateSettings.objects.filter(pk=1).update(interval_minutes=45)
    assert client_configuration_and_version(client)[1] == before


def test_the_server_time_zone_is_part_of_a_daily_schedule(domain, settings):
    client = make_client(domain, 1)
    before = client_configuration_and_version(client)[1]
    settings.TIME_ZONE = "America/New_York"
    assert client_configuration_and_version(client)[1] != before


def test_a_privileges_change_affects_only_the_affected_clients(domain):
    clients = [make_client(domain, n) for n in range(1, 5)]
    before = configuration_versions()
    # The privileges dialog saves a bulk update of the selected clients.
    Client.objects.filter(pk__in=[clients[0].pk, clients[2].pk]).update(scheduled_update_privilege=False)
    after = configuration_versions()
    assert {pk for pk in before if before[pk] != after[pk]} == {clients[0].pk, clients[2].pk}


def test_the_users_own_choice_is_not_configuration(domain):
    client = make_client(domain, 1)
    before = client_configuration_and_version(client)[1]
    client.user_disabled_scheduled_update = True
    assert client_configuration_and_version(client)[1] == before


def test_a_settings_change_gives_every_client_a_new_version(domain):
    clients = [make_client(domain, n, roaming_privilege=bool(n % 2)) for n in range(1, 5)]
    for client in clients:
        client.config_version = client_configuration_and_version(client)[1]
    Client.objects.bulk_update(clients, ["config_version"])
    assert clients_with_new_configuration() == []
    save(scan_after_update=True)
    assert sorted(clients_with_new_configuration()) == sorted(c.pk for c in clients)


def test_the_builder_agrees_with_the_single_client_function_for_every_combination(domain):
    fields = ClientSettings.SETTING_FIELDS
    for n, combo in enumerate(itertools.product([False, True], repeat=len(fields)), start=1):
        make_client(domain, n, **dict(zip(fields, combo, strict=True)))
    builder = ConfigurationBuilder()
    versions = builder.versions()
    assert len(versions) == 2 ** len(fields)
    assert len(set(versions.values())) == 2 ** len(fields)  # every combination is its own configuration
    for client in Client.objects.all():
        document, version = client_configuration_and_version(client)
        assert versions[client.pk] == version
        assert builder.for_client(client) == (document, version)


def test_versions_for_a_fleet_cost_one_query(domain, django_assert_num_queries):
    Client.objects.bulk_create(
        [
            Client(domain=domain, hostname=f"pc-{n}", ip_address="127.1.0.1", roaming_privilege=n % 3 == 0)
            for n in range(300)
        ]
    )
    builder = ConfigurationBuilder()
    with django_assert_num_queries(1):
        versions = builder.versions()
    assert len(versions) == 300
    assert len(set(versions.values())) == 2


def test_a_document_handed_out_can_be_changed_without_touching_the_cache(domain):
    client = make_client(domain, 1)
    builder = ConfigurationBuilder()
    document, version = builder.for_client(client)
    document["schedule"]["frequency"] = "tampered"
    assert builder.for_client(client)[0]["schedule"]["frequency"] == "daily"
    assert builder.for_client(client)[1] == version


def test_a_screen_save_changes_the_version_a_no_op_screen_save_does_not(superuser_client, domain):
    from tests.updates_app.test_automatic_update import form_data

    client = make_client(domain, 1)
    before = client_configuration_and_version(client)[1]
    superuser_client.post(reverse("updates:automatic-update"), form_data())
    assert client_configuration_and_version(client)[1] == before
    superuser_client.post(reverse("updates:automatic-update"), form_data(frequency="minutes"))
    assert client_configuration_and_version(client)[1] != before


# --- configuration_version: the check-in's cached version (issue 16) ---


def _other_value(field, value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, dt.time):
        return dt.time((value.hour + 1) % 24, value.minute)
    if field.name == "frequency":
        return "weekly" if value != "weekly" else "daily"
    if field.name == "weekday":
        return 3 if value != 3 else 4
    return value + 1 if value < 5 else value - 1


def test_the_cached_version_follows_every_settings_column_and_the_time_zone(domain, settings):
    from updates_app.configuration import _NOT_CONFIGURATION, configuration_version

    client = make_client(domain, 1)
    auto = AutoUpdateSettings.load()
    auto.frequency, auto.weekday = "weekly", 2  # every schedule field applies to the document
    assert configuration_version(client, auto) == configuration_hash(client_configuration(client, auto))
    fields = [f for f in AutoUpdateSettings._meta.concrete_fields if f.name not in _NOT_CONFIGURATION]
    for field in fields:
        setattr(auto, field.attname, _other_value(field, getattr(auto, field.attname)))
        expected = configuration_hash(client_configuration(client, auto))
        assert configuration_version(client, auto) == expected, field.name
    settings.TIME_ZONE = "Asia/Tokyo"
    assert configuration_version(client, auto) == configuration_hash(client_configuration(client, auto))
    for name in ClientSettings.SETTING_FIELDS:
        setattr(client, name, not getattr(client, name))
        assert configuration_version(client, auto) == configuration_hash(client_configuration(client, auto)), name
