"""console/compiled.py: a hot query compiled once gives what the ORM gives."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents_app.models import Client, Domain
from console.compiled import CompiledQuery, CompiledQueryMismatch

pytestmark = pytest.mark.django_db


def by_hostname() -> CompiledQuery[Client]:
    return CompiledQuery(
        Client,
        build=lambda name: Client.objects.filter(hostname=name).order_by("pk")[:1],
        params=lambda connection, name: [name],
    )


def test_the_instance_equals_the_orms_field_for_field(django_assert_num_queries):
    domain = Domain.objects.create(name="HQ")
    for n in (1, 2):
        Client.objects.create(
            domain=domain,
            hostname=f"pc-{n}",
            ip_address=f"127.0.0.{n}",
            component_versions={"virus_pattern": f"18.50{n}.00"},
            last_contact_at=timezone.now(),
            roaming_privilege=n == 2,
        )
    query = by_hostname()
    for name in ("pc-1", "pc-2", "pc-2"):
        with django_assert_num_queries(1):
            found = query.first(name=name)
        expected = Client.objects.get(hostname=name)
        assert found is not None and found.pk == expected.pk
        for field in Client._meta.concrete_fields:
            assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
        assert not found._state.adding
    assert query.first(name="nobody") is None


def test_parameters_that_do_not_match_the_orm_are_refused():
    query = CompiledQuery(
        Client,
        build=lambda name: Client.objects.filter(hostname=name)[:1],
        params=lambda connection, name: [name, "extra"],
    )
    with pytest.raises(CompiledQueryMismatch):
        query.first(name="pc-1")


def test_literal_parameters_are_written_into_the_statement_and_answer_the_same(django_assert_num_queries):
    from django.db import connections

    from console.compiled import Literal

    connection = connections["default"]
    domain = Domain.objects.create(name="HQ")
    # A quote and a percent sign: quoted as the driver quotes, and never read as a placeholder.
    awkward = "it's 100% pc-1"
    for name in (awkward, "pc-2"):
        Client.objects.create(domain=domain, hostname=name, ip_address="127.0.0.1", listener_port=9)
    query = CompiledQuery(
        Client,
        build=lambda name, port: Client.objects.filter(hostname=name, listener_port=port).order_by("pk")[:1],
        params=lambda connection, name, port: [Literal(name), port],
    )
    with django_assert_num_queries(1):
        found = query.first(name=awkward, port=9)
    assert found is not None and found.hostname == awkward
    sql = query._compiled[connection].sql
    if connection.vendor == "postgresql":
        # In the statement (its % doubled, as psycopg reads it); only the port is bound.
        assert "'it''s 100%% pc-1'" in sql and sql.count("%s") == 1
    else:
        assert sql.count("%s") == 2
    assert query.first(name=awkward, port=10) is None


def test_a_literal_that_does_not_match_the_orm_is_refused():
    from console.compiled import Literal

    query = CompiledQuery(
        Client,
        build=lambda name: Client.objects.filter(hostname=name)[:1],
        params=lambda connection, name: [Literal("someone else")],
    )
    with pytest.raises(CompiledQueryMismatch):
        query.first(name="pc-1")


def test_any_of_matches_what_in_matches_with_one_statement_for_every_length(django_assert_num_queries):
    from django.db import connections
    from django.db.models import F

    from console.compiled import AnyOf, any_of_parameter

    domain = Domain.objects.create(name="HQ")
    for n in range(1, 6):
        Client.objects.create(domain=domain, hostname=f"pc-{n}", ip_address="127.0.0.1", listener_port=n)
    query = CompiledQuery(
        Client,
        build=lambda ports: Client.objects.filter(AnyOf(F("listener_port"), ports)).order_by().values_list("hostname"),
        params=lambda connection, ports: [any_of_parameter(connection, ports)],
    )
    for ports in ([3], [1, 5, 99], [], list(range(100))):
        with django_assert_num_queries(1):
            found = sorted(hostname for (hostname,) in query.rows(ports=ports))
        assert found == sorted(Client.objects.filter(listener_port__in=ports).values_list("hostname", flat=True))
    # One statement for every length: compiled once on this connection.
    assert len(query._compiled) == 1 and query._compiled[connections["default"]].sql.count("%s") == 1
    # Text values too (the component slugs of compliance.known_versions).
    assert Client.objects.filter(AnyOf(F("hostname"), ["pc-2", "nobody"])).count() == 1
