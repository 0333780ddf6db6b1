"""manage.py seed_fleet: a demo tree built with bulk inserts and correct MPTT columns."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.management import CommandError, call_command

from agents_app.fleet_seed import LOOPBACK, SEED_LISTENER_PORT, listener_answers, loopback_address
from agents_app.models import Client, Domain, FutureDomainDefaults
from tests.updates_app.conftest import component_storage  # noqa: F401

pytestmark = pytest.mark.django_db


def mptt_columns():
    return list(Domain.objects.order_by("pk").values_list("pk", "parent_id", "tree_id", "lft", "rght", "level"))


def test_it_builds_the_requested_tree_with_consistent_mptt_columns(capsys):
    call_command("seed_fleet", "--domains", "12", "--clients", "300", "--top-level", "3")

    assert Domain.objects.count() == 12
    assert Domain.objects.filter(parent=None).count() == 3
    assert Client.objects.count() == 300
    computed = mptt_columns()
    Domain.objects.rebuild()  # django-mptt's own computation must agree with ours
    assert mptt_columns() == computed
    site = Domain.objects.get(name="Site-001")
    assert Client.objects.in_domains([site]).count() == sum(d.clients.count() for d in site.get_descendants(True))
    assert "Created 12 domains and 300 clients" in capsys.readouterr().out


def test_a_second_fleet_goes_beside_the_first_and_starts_from_future_defaults():
    call_command("seed_fleet", "--domains", "4", "--clients", "10", "--top-level", "2")
    FutureDomainDefaults.objects.update_or_create(pk=1, defaults={"roaming_privilege": True})
    call_command("seed_fleet", "--domains", "4", "--clients", "10", "--top-level", "2", "--prefix", "b-")

    before = mptt_columns()
    Domain.objects.rebuild()
    assert mptt_columns() == before
    assert Client.objects.filter(hostname__startswith="b-", roaming_privilege=True).count() == 10
    assert not Client.objects.exclude(hostname__startswith="b-").filter(roaming_privilege=True).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--domains", "0"], "at least 1"),
        (["--clients", "-5"], "cannot be negative"),
        (["--top-level", "0"], "at least 1"),
    ],
)
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_fleet", *args)
    assert not Domain.objects.exists()


def test_it_refuses_to_duplicate_existing_site_names():
    call_command("seed_fleet", "--domains", "2", "--clients", "4", "--top-level", "1")
    with pytest.raises(CommandError, match="already exist"):
        call_command("seed_fleet", "--domains", "2", "--clients", "4", "--top-level", "1")
    assert Domain.objects.count() == 2 and Client.objects.count() == 4


def test_if_empty_leaves_an_existing_fleet_alone(capsys):
    call_command("seed_fleet", "--domains", "2", "--clients", "4", "--top-level", "1")
    call_command("seed_fleet", "--domains", "2", "--clients", "4", "--top-level", "1", "--if-empty")
    assert Domain.objects.count() == 2 and Client.objects.count() == 4
    assert "nothing seeded" in capsys.readouterr().out


def test_seeded_clients_stay_on_loopback_on_a_port_where_nothing_listens():
    call_command("seed_fleet", "--domains", "3", "--clients", "600", "--top-level", "1")
    addresses = list(Client.objects.values_list("ip_address", "listener_port"))
    assert len(addresses) == 600
    assert all(ipaddress.ip_address(ip) in LOOPBACK for ip, _ in addresses)
    assert {port for _, port in addresses} == {SEED_LISTENER_PORT}
    assert "127.0.0.1" not in {ip for ip, _ in addresses}  # where real test agents listen
    assert not listener_answers()
    # Far beyond any demo fleet, addresses are still loopback ones.
    assert all(ipaddress.ip_address(loopback_address(n)) in LOOPBACK for n in (0, 1, 2**16, 2**24 - 1, 2**24, 10**9))


@pytest.mark.usefixtures("component_storage")
def test_seeded_versions_are_around_the_servers_and_counted():
    from updates_app.compliance import INCONSISTENT, OUTDATED, UNKNOWN, UP_TO_DATE, compliance_counts
    from updates_app.components import component_download, component_resolve

    virus = component_resolve("virus_pattern")
    for _ in range(5):
        component_download(component=virus)
    call_command("seed_fleet", "--domains", "2", "--clients", "2000", "--top-level", "1")

    compliance = compliance_counts()
    assert compliance.clients == 2000
    [row] = [r for r in compliance.components if r.slug == "virus_pattern"]
    share = {state: row.counts[state] / 2000 for state in (UP_TO_DATE, OUTDATED, INCONSISTENT, UNKNOWN)}
    assert 0.75 < share[UP_TO_DATE] < 0.85  # mostly current
    assert 0.11 < share[OUTDATED] < 0.19  # some behind
    assert 0.01 < share[INCONSISTENT] < 0.05  # a few ahead
    assert 0.005 < share[UNKNOWN] < 0.04
    # Components the server has not downloaded are reported too: the catalogue's first versions.
    assert {"spyware_pattern", "virus_scan_engine"} <= {r.slug for r in compliance.components}
