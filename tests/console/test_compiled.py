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
