"""console/compiled.py: a hot query compiled once gives what the ORM gives, and refuses loudly what it cannot."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from agents_app.models import Client, ConnectionStatus, Domain
from console.compiled import AnyOf, Argument, CompiledQuery, CompiledQueryMismatch, Literal

pytestmark = pytest.mark.django_db


def by_hostname() -> CompiledQuery[Client]:
    return CompiledQuery(Client, build=lambda name: Client.objects.filter(hostname=name).order_by("pk")[:1])


def _clients(*names: str, **fields) -> list[Client]:
    domain = Domain.objects.create(name="HQ")
    return [
        Client.objects.create(domain=domain, hostname=name, ip_address="127.0.0.1", listener_port=n, **fields)
        for n, name in enumerate(names, start=1)
    ]


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


def test_each_argument_goes_where_the_orm_puts_it_however_often_and_in_whatever_order():
    clients = _clients("pc-1", "pc-2", "HQ", "pc-4")
    Client.objects.filter(hostname="pc-4").update(status=ConnectionStatus.OFFLINE)

    def build(port: int, name: str) -> QuerySet[Client]:
        # name twice, around a constant, and after port in the SQL though before it by name.
        return (
            Client.objects.filter(listener_port__lte=port)
            .filter(Q(hostname=name) | Q(domain__name=name))
            .exclude(status=ConnectionStatus.OFFLINE)
            .order_by("pk")
            .values_list("hostname")
        )

    query = CompiledQuery(Client, build=build)
    for port, name in ((4, "HQ"), (2, "HQ"), (4, "pc-2"), (4, "pc-4"), (1, "nobody")):
        assert query.rows(port=port, name=name) == list(build(port, name)), (port, name)
    assert [c.hostname for c in clients] == ["pc-1", "pc-2", "HQ", "pc-4"]
    slots = query._compiled[connections["default"]].bound
    arguments = [slot.name for slot in slots if isinstance(slot, Argument)]
    assert arguments == ["port", "name", "name"]
    literals = [slot.value for slot in slots if isinstance(slot, Literal)]
    # On PostgreSQL the constant is written into the statement; elsewhere it is bound with the arguments.
    assert literals == ([] if connections["default"].vendor == "postgresql" else [ConnectionStatus.OFFLINE])


def _held(name: str) -> QuerySet[Domain]:
    """A queryset another module owns (as handover's statement uses rings.held_back_versions)."""
    return Domain.objects.filter(name=name).values("pk")


def _held_changed(name: str) -> QuerySet[Domain]:
    """The same function after a change: a constant before the argument, and the argument twice."""
    return (
        Domain.objects.exclude(name="never")
        .filter(Q(name=name) | Q(name__startswith="x", level=0, name=name))
        .values("pk")
    )


def test_a_statement_follows_a_change_to_a_queryset_it_is_built_from(monkeypatch):
    _clients("pc-1")
    other = Domain.objects.create(name="Branch")
    Client.objects.create(domain=other, hostname="pc-9", ip_address="127.0.0.1", listener_port=9)

    def build(domain: str) -> QuerySet[Client]:
        return Client.objects.filter(domain__in=_held(domain)).order_by("pk").values_list("hostname")

    for held in (_held, _held_changed):
        monkeypatch.setattr(f"{__name__}._held", held)
        query = CompiledQuery(Client, build=build)  # a new process, or a new connection, compiles anew
        for name in ("HQ", "Branch", "nobody"):
            assert query.rows(domain=name) == list(build(name)), (held.__name__, name)
        assert query.rows(domain="Branch") == [("pc-9",)]


@pytest.mark.parametrize(
    ("build", "values", "says"),
    [
        # An argument the statement never binds (the build ignores it).
        (lambda name: Client.objects.filter(hostname="pc-1")[:1], {"name": "pc-1"}, "never reach"),
        # An argument the ORM transforms (contains: a LIKE pattern, escaped).
        (lambda name: Client.objects.filter(hostname__contains=name)[:1], {"name": "pc"}, "none of them"),
        # An argument the build transforms itself.
        (lambda name: Client.objects.filter(hostname=name.upper())[:1], {"name": "pc-1"}, "none of them"),
        # A clock read while building: a different constant in every compilation.
        (
            lambda name: Client.objects.filter(hostname=name, registered_at__lte=timezone.now())[:1],
            {"name": "pc-1"},
            "none of them",
        ),
        # SQL that depends on the value: the stand-ins agree, the real value does not.
        (
            lambda port: Client.objects.filter(listener_port__in=[port] if port > 100 else [port, port + 1])[:1],
            {"port": 9},
            "not the statement",
        ),
        # None would change the SQL (IS NULL): not an argument a compiled query takes.
        (lambda name: Client.objects.filter(hostname=name)[:1], {"name": None}, "takes str, int or list"),
    ],
    ids=["unbound", "orm-transformed", "build-transformed", "clock", "sql-varies", "none"],
)
def test_what_cannot_be_compiled_once_is_refused_loudly(build, values, says):
    query = CompiledQuery(Client, build=build)
    with pytest.raises(CompiledQueryMismatch, match=says):
        query.first(**values)
    assert not query._compiled  # nothing kept: the next call refuses again


def test_arguments_are_named_as_the_build_names_them():
    query = by_hostname()
    with pytest.raises(TypeError):
        query.first(hostname="pc-1")
    assert query.first(name="pc-1") is None
    with pytest.raises(TypeError):
        query.first(name="pc-1", port=1)


def test_constants_are_written_into_the_statement_and_answer_the_same(django_assert_num_queries):
    connection = connections["default"]
    # A quote and a percent sign: quoted as the driver quotes, and never read as a placeholder.
    awkward = "it's 100% pc-1"
    _clients(awkward, "pc-2")
    query = CompiledQuery(
        Client, build=lambda port: Client.objects.filter(hostname=awkward, listener_port=port).order_by("pk")[:1]
    )
    with django_assert_num_queries(1):
        found = query.first(port=1)
    assert found is not None and found.hostname == awkward
    sql = query._compiled[connection].sql
    if connection.vendor == "postgresql":
        # In the statement (its % doubled, as psycopg reads it); only the port is bound.
        assert "'it''s 100%% pc-1'" in sql and sql.count("%s") == 1
    else:
        assert sql.count("%s") == 2
    assert query.first(port=2) is None


def test_any_of_matches_what_in_matches_with_one_statement_for_every_length(django_assert_num_queries):
    _clients(*(f"pc-{n}" for n in range(1, 6)))
    query = CompiledQuery(
        Client,
        build=lambda ports: Client.objects.filter(AnyOf(F("listener_port"), ports)).order_by().values_list("hostname"),
    )
    for ports in ([3], [1, 5, 99], [], list(range(100))):
        with django_assert_num_queries(1):
            found = sorted(hostname for (hostname,) in query.rows(ports=ports))
        assert found == sorted(Client.objects.filter(listener_port__in=ports).values_list("hostname", flat=True))
    # One statement for every length: compiled once on this connection.
    assert len(query._compiled) == 1 and query._compiled[connections["default"]].sql.count("%s") == 1
    # Text values too (the component slugs of compliance.known_versions).
    assert Client.objects.filter(AnyOf(F("hostname"), ["pc-2", "nobody"])).count() == 1
