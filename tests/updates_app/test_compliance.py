"""Compliance: up to date, outdated, inconsistent and unknown, counted, listed and judged alike."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from agents_app.models import Client
from updates_app.compliance import (
    INCONSISTENT,
    OUTDATED,
    STATES,
    UNKNOWN,
    UP_TO_DATE,
    client_states,
    client_versions_forget,
    client_versions_record,
    clients_in_state,
    compliance_counts,
    compliance_rebuild,
    outdated_clients,
    update_due_slugs,
)
from updates_app.models import ClientComponent, ClientProfile, Component, ComponentKind, ComponentVersion

LIST = reverse("updates:compliance-clients")
SUMMARY = reverse("updates:summary")


def reporting_client(domain, hostname: str, versions: dict, **fields) -> Client:
    """A client that reported ``versions`` (recorded as a check-in would)."""
    client = Client.objects.create(
        domain=domain, hostname=hostname, ip_address="127.0.0.1", listener_port=9, component_versions=versions, **fields
    )
    if client.revoked_at is None:  # revoked clients are not counted
        client_versions_record(client=client, reported=versions)
    return client


def versions_of(component: Component, *numbers: int) -> None:
    for number in numbers:
        ComponentVersion.objects.create(component=component, number=number, sha256="0" * 64, released_at=timezone.now())


# Server: Virus Pattern 0.100-0.102 (latest 0.102), Spyware Pattern 0.050-0.051,
# a Virus Scan Engine with no version yet. Clients also report a component the
# server does not hold (legacy_firewall).
EXPECTED = {
    "virus_pattern": {UP_TO_DATE: {"a"}, OUTDATED: {"b", "c"}, INCONSISTENT: {"d", "e", "g"}, UNKNOWN: {"f"}},
    "spyware_pattern": {UP_TO_DATE: {"a", "b", "g"}, OUTDATED: {"e"}, INCONSISTENT: {"c"}, UNKNOWN: {"d", "f"}},
    "virus_scan_engine": {UP_TO_DATE: set(), OUTDATED: set(), INCONSISTENT: set(), UNKNOWN: set("abcdefg")},
    "legacy_firewall": {UP_TO_DATE: set(), OUTDATED: set(), INCONSISTENT: {"a"}, UNKNOWN: set("bcdefg")},
}


@pytest.fixture
def mixed_fleet(domain):
    virus = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    spyware = Component.objects.create(slug="spyware_pattern", name="Spyware Pattern")
    Component.objects.create(slug="virus_scan_engine", name="Virus Scan Engine", kind=ComponentKind.ENGINE)
    versions_of(virus, 100, 101, 102)
    versions_of(spyware, 50, 51)
    clients = {
        # current on both, and a component the server does not hold
        "a": reporting_client(domain, "a", {"virus_pattern": "0.102.00", "spyware_pattern": 51, "legacy_firewall": 3}),
        "b": reporting_client(domain, "b", {"virus_pattern": "0.101.00", "spyware_pattern": "0.051.00"}),  # behind
        "c": reporting_client(domain, "c", {"virus_pattern": 100, "spyware_pattern": 52}),  # behind / ahead
        "d": reporting_client(domain, "d", {"virus_pattern": 103}),  # ahead, never reported spyware
        "e": reporting_client(domain, "e", {"virus_pattern": 99, "spyware_pattern": 50}),  # never-had / behind
        "f": reporting_client(domain, "f", {}),  # reported nothing
        "g": reporting_client(domain, "g", {"virus_pattern": "garbled", "spyware_pattern": 51}),  # unreadable
    }
    revoked = reporting_client(domain, "revoked", {"virus_pattern": 100})
    Client.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    client_versions_forget(client_ids=[revoked.pk])
    return clients


def counts_by_component():
    return {row.slug: row.counts for row in compliance_counts().components}


def expected_counts():
    return {slug: {state: len(names) for state, names in states.items()} for slug, states in EXPECTED.items()}


@pytest.mark.django_db
def test_every_component_held_or_reported_gets_the_four_counts(mixed_fleet):
    compliance = compliance_counts()
    assert counts_by_component() == expected_counts()
    assert compliance.clients == 7  # the revoked client is not counted
    assert compliance.outdated_clients == 3  # b, c, e: behind on a component the server holds
    rows = {row.slug: row for row in compliance.components}
    assert rows["virus_pattern"].latest_label == "0.102.00"
    assert rows["virus_pattern"].compliance_rate == pytest.approx(1 / 7)
    assert rows["virus_scan_engine"].on_server and not rows["virus_scan_engine"].held
    assert not rows["legacy_firewall"].on_server
    # Held components first, by name; then those only clients report.
    assert [row.slug for row in compliance.components][-1] == "legacy_firewall"


@pytest.mark.django_db
def test_sql_selection_python_rule_and_tallies_agree_on_every_client(mixed_fleet):
    names = {c.pk: c.hostname for c in mixed_fleet.values()}
    for slug, states in EXPECTED.items():
        for state, expected in states.items():
            selected = set(clients_in_state(component=slug, state=state).values_list("hostname", flat=True))
            assert selected == expected, (slug, state)
    for client in mixed_fleet.values():
        states = client_states(client.component_versions)
        for slug, expected in EXPECTED.items():
            assert client.hostname in expected[states.get(slug, UNKNOWN)], (client.hostname, slug)
    assert {names[pk] for pk in outdated_clients().values_list("pk", flat=True)} == {"b", "c", "e"}
    # A full recount from the rows gives the same tallies as the step-by-step upkeep.
    before = counts_by_component()
    assert compliance_rebuild() == 7
    assert counts_by_component() == before


@pytest.mark.django_db
def test_a_withdrawn_version_counts_as_outdated_in_sql_python_and_tallies_alike(mixed_fleet):
    """A rollback withdrew 0.102 (0.101 is current again): a client still on 0.102 must go back."""
    ComponentVersion.objects.filter(component__slug="virus_pattern", number=102).update(withdrawn_at=timezone.now())
    expected = {
        **EXPECTED,
        # a holds the withdrawn 0.102: outdated, not inconsistent; b's 0.101 is current again.
        "virus_pattern": {UP_TO_DATE: {"b"}, OUTDATED: {"a", "c"}, INCONSISTENT: {"d", "e", "g"}, UNKNOWN: {"f"}},
    }
    names = {c.pk: c.hostname for c in mixed_fleet.values()}
    for slug, states in expected.items():
        for state, hostnames in states.items():
            selected = set(clients_in_state(component=slug, state=state).values_list("hostname", flat=True))
            assert selected == hostnames, (slug, state)
    for client in mixed_fleet.values():
        states = client_states(client.component_versions)
        for slug, by_state in expected.items():
            assert client.hostname in by_state[states.get(slug, UNKNOWN)], (client.hostname, slug)
    assert counts_by_component() == {
        slug: {state: len(hostnames) for state, hostnames in states.items()} for slug, states in expected.items()
    }
    assert {names[pk] for pk in outdated_clients().values_list("pk", flat=True)} == {"a", "c", "e"}
    compliance = compliance_counts()
    assert compliance.outdated_clients == 3
    virus = next(row for row in compliance.components if row.slug == "virus_pattern")
    assert virus.latest_label == "0.101.00"
    assert (virus.rolled_back_from_label, virus.on_withdrawn) == ("0.102.00", 1)
    # The restart rule sends a client on the withdrawn version back.
    assert update_due_slugs({"virus_pattern": "0.102.00", "spyware_pattern": 51}) == ["virus_pattern"]
    assert update_due_slugs({"virus_pattern": 101, "spyware_pattern": 51}) == []
    # A later download is current: the rolled-back note clears, 0.102 stays withdrawn (still outdated).
    versions_of(Component.objects.get(slug="virus_pattern"), 103)
    virus = next(row for row in compliance_counts().components if row.slug == "virus_pattern")
    assert (virus.latest_label, virus.rolled_back_from_label) == ("0.103.00", None)
    assert virus.counts[OUTDATED] == 3  # a (withdrawn), b, c
    assert compliance_rebuild() == 7
    assert counts_by_component()["virus_pattern"] == virus.counts


@pytest.mark.django_db
def test_a_change_of_versions_moves_the_client_between_counts(mixed_fleet):
    b = mixed_fleet["b"]
    assert client_versions_record(client=b, reported={"virus_pattern": "0.102.00", "spyware_pattern": 51})
    assert not client_versions_record(client=b, reported={"virus_pattern": 102, "spyware_pattern": 51})
    counts = counts_by_component()["virus_pattern"]
    assert (counts[UP_TO_DATE], counts[OUTDATED]) == (2, 1)
    assert set(ClientComponent.objects.filter(client=b).values_list("component", "number")) == {
        ("virus_pattern", 102),
        ("spyware_pattern", 51),
    }
    # Dropping a component makes it unknown again.
    client_versions_record(client=b, reported={"spyware_pattern": 51})
    assert counts_by_component()["virus_pattern"][UNKNOWN] == 2
    assert compliance_counts().clients == 7


@pytest.mark.django_db
def test_a_new_server_version_makes_current_clients_outdated_without_touching_them(mixed_fleet):
    versions_of(Component.objects.get(slug="virus_pattern"), 103)
    counts = counts_by_component()["virus_pattern"]
    # d reported 103 before the server had it: now it is simply current.
    assert counts == {UP_TO_DATE: 1, OUTDATED: 3, INCONSISTENT: 2, UNKNOWN: 1}
    assert set(clients_in_state(component="virus_pattern", state=UP_TO_DATE).values_list("hostname", flat=True)) == {
        "d"
    }


@pytest.mark.django_db
def test_the_restart_rule_asks_for_outdated_and_missing_components_only(mixed_fleet):
    assert update_due_slugs({"virus_pattern": 101, "spyware_pattern": 51}) == ["virus_pattern"]
    assert update_due_slugs({}) == ["spyware_pattern", "virus_pattern"]
    assert update_due_slugs({"virus_pattern": 103, "spyware_pattern": 51}) == []  # ahead: left alone
    assert update_due_slugs({"virus_pattern": 102, "spyware_pattern": 51}) == []


@pytest.mark.django_db
def test_the_summary_shows_the_counts_with_rates_and_links_to_each_list(superuser_client, mixed_fleet):
    page = superuser_client.get(SUMMARY).content.decode()
    assert 'data-component="legacy_firewall"' in page and "not on the server" in page
    assert "none downloaded yet" in page  # the engine
    assert "<code>0.102.00</code>" in page
    link = f'{LIST}?component=virus_pattern&amp;state=outdated" class="compliance-count">2</a> <small class="text-body-secondary">(29%)'
    assert link in page
    assert f'<a href="{LIST}?state=outdated" id="outdated-clients-link">3 with outdated components</a>' in page


@pytest.mark.django_db
@pytest.mark.parametrize("slug", sorted(EXPECTED))
@pytest.mark.parametrize("state", STATES)
def test_each_count_leads_to_exactly_its_clients(superuser_client, mixed_fleet, slug, state):
    response = superuser_client.get(LIST, {"component": slug, "state": state})
    assert response.status_code == 200
    listed = {client.hostname for client in response.context["page"]}
    assert listed == EXPECTED[slug][state]
    if listed:
        assert f'<strong id="compliance-count">{len(listed)}</strong>' in response.content.decode()


@pytest.mark.django_db
def test_clients_with_outdated_components_have_their_own_list(superuser_client, mixed_fleet):
    response = superuser_client.get(LIST, {"state": "outdated"})
    assert {c.hostname for c in response.context["page"]} == {"b", "c", "e"}
    assert "Clients with outdated components" in response.content.decode()


@pytest.mark.django_db
def test_the_lists_are_paginated(superuser_client, domain, settings):
    virus = Component.objects.create(slug="virus_pattern", name="Virus Pattern")
    versions_of(virus, 1, 2)
    for n in range(105):
        reporting_client(domain, f"pc-{n:03d}", {"virus_pattern": 1})
    first = superuser_client.get(LIST, {"component": "virus_pattern", "state": "outdated"})
    second = superuser_client.get(LIST, {"component": "virus_pattern", "state": "outdated", "page": 2})
    assert len(first.context["page"]) == 100 and len(second.context["page"]) == 5
    assert "component=virus_pattern&amp;state=outdated&amp;page=2" in first.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"component": "virus_pattern", "state": "late"}, "Choose a state"),
        ({"component": "virus_pattern"}, "Choose a state"),
        ({"state": "inconsistent"}, "Choose a component"),
        ({"component": "nothing_like_it", "state": "outdated"}, "No component"),
    ],
)
def test_bad_filters_get_a_clear_error(superuser_client, mixed_fleet, query, message):
    response = superuser_client.get(LIST, query)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.django_db
def test_the_lists_need_the_view_client_permission(staff_client, staff_user, mixed_fleet):
    query = {"component": "virus_pattern", "state": "outdated"}
    refused = staff_client.get(LIST, query)
    assert refused.status_code == 403 and ">b<" not in refused.content.decode()
    staff_user.user_permissions.add(Permission.objects.get(codename="view_client"))
    allowed = staff_client.get(LIST, query)
    assert allowed.status_code == 200 and ">b</a>" in allowed.content.decode()


@pytest.mark.django_db
def test_forgetting_a_client_takes_it_out_of_every_count(mixed_fleet):
    client_versions_forget(client_ids=[mixed_fleet["b"].pk, mixed_fleet["f"].pk])
    compliance = compliance_counts()
    assert compliance.clients == 5 and compliance.outdated_clients == 2
    assert not ClientProfile.objects.filter(client__in=[mixed_fleet["b"], mixed_fleet["f"]]).exists()


@pytest.mark.django_db
def test_the_recount_command_repairs_tallies_after_a_delete_behind_their_back(mixed_fleet, capsys):
    from django.core.management import call_command

    Client.objects.filter(pk=mixed_fleet["b"].pk).delete()  # the admin's delete: the tally is not told
    assert compliance_counts().clients == 7
    call_command("compliance_recount")
    assert compliance_counts().clients == 6 and compliance_counts().outdated_clients == 2
    assert "Recounted 6 active clients." in capsys.readouterr().out


@pytest.mark.django_db
def test_the_data_migration_fills_the_tables_from_what_clients_reported(domain):
    import importlib

    from django.apps import apps

    fill = importlib.import_module("updates_app.migrations.0008_fill_client_component_versions").fill
    versions_of(Component.objects.create(slug="virus_pattern", name="Virus Pattern"), 1, 2)
    for name, reported in (("x", {"virus_pattern": "0.002.00"}), ("y", {"virus_pattern": 1}), ("z", {})):
        Client.objects.create(domain=domain, hostname=name, ip_address="127.0.0.1", component_versions=reported)
    Client.objects.create(domain=domain, hostname="gone", ip_address="127.0.0.1", revoked_at=timezone.now())

    fill(apps, None)

    [row] = compliance_counts().components
    assert row.counts == {UP_TO_DATE: 1, OUTDATED: 1, INCONSISTENT: 0, UNKNOWN: 1}
    assert ClientComponent.objects.count() == 2 and ClientProfile.objects.count() == 3


@pytest.mark.django_db
def test_the_summary_counts_without_reading_a_client_row(superuser_client, mixed_fleet):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert superuser_client.get(SUMMARY).status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if '"agents_app_client"' in q["sql"]]
    assert not [q["sql"] for q in queries.captured_queries if '"updates_app_clientcomponent"' in q["sql"]]


def test_new_clients_are_counted_alike_whether_their_profile_is_new_or_held(domain, django_assert_max_num_queries):
    """A registration records a client with nothing on record (``new``); a fleet's clients share a profile.

    The first of a set of versions creates its profile; the next ones are counted into it (on
    PostgreSQL in one statement). Either way: the link, one row per reported component (a value that
    is no version stored as none) and the profile's count.
    """
    from django.db import connection

    from updates_app.models import VersionProfile

    reported = {"virus_pattern": "18.500.00", "legacy_firewall": "not a version"}
    one_statement = connection.vendor == "postgresql"
    clients = []
    for n in range(3):
        client = Client.objects.create(
            domain=domain, hostname=f"pc-{n}", ip_address="127.0.0.1", listener_port=9, component_versions=reported
        )
        # The first creates the profile (on PostgreSQL after the one statement found none).
        with django_assert_max_num_queries((1 if n else 7) if one_statement else 6):
            assert client_versions_record(client=client, reported=reported, new=True) is True
        clients.append(client)
    (profile,) = VersionProfile.objects.all()
    assert profile.clients == 3
    assert set(ClientProfile.objects.values_list("client_id", "profile_id")) == {(c.pk, profile.pk) for c in clients}
    assert sorted(ClientComponent.objects.values_list("client_id", "component", "number")) == sorted(
        (c.pk, slug, number) for c in clients for slug, number in (("legacy_firewall", None), ("virus_pattern", 18500))
    )
    # Counted as the rebuild from scratch counts them.
    before = compliance_counts()
    compliance_rebuild()
    assert compliance_counts() == before
    # A client that reported nothing is counted too (an empty set of versions).
    for name in ("silent-1", "silent-2"):
        silent = Client.objects.create(domain=domain, hostname=name, ip_address="127.0.0.1", listener_port=9)
        client_versions_record(client=silent, reported={}, new=True)
    assert VersionProfile.objects.get(versions={}).clients == 2
    assert not ClientComponent.objects.filter(client__hostname__startswith="silent").exists()
