"""Realistic versions for a seeded fleet: around the server's, mostly current.

Per client and component (deterministic for a client number): 80% report the
server's latest version, 15% one of the up to three versions before it, 3% a
version one ahead (a client updated from elsewhere: inconsistent) and 2% do not
report the component (unknown). A component the server has not downloaded yet
counts from its catalogue's first version, so the demo fleet looks like one
that was installed with it (inconsistent until the server downloads it).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from django.db import transaction

from agents_app.fleet_seed import FleetSeedResult, fleet_seed
from agents_app.models import Client
from updates_app.compliance import clients_versions_load
from updates_app.components import CATALOGUE
from updates_app.models import ComponentVersion
from updates_app.version_labels import version_label

CURRENT, BEHIND, AHEAD = 0.80, 0.15, 0.03  # the rest: not reported


def server_versions() -> dict[str, list[int]]:
    """{slug: the server's version numbers, newest first}, with catalogue components it has not downloaded."""
    held: dict[str, list[int]] = {}
    for slug, number in ComponentVersion.objects.order_by("component__slug", "-number").values_list(
        "component__slug", "number"
    ):
        held.setdefault(slug, []).append(number)
    for slug, (_name, _kind, first) in CATALOGUE.items():
        held.setdefault(slug, [first])
    return held


def seeded_versions(held: dict[str, list[int]]) -> Callable[[int], dict[str, str]]:
    """A function giving the n-th seeded client's reported versions."""

    def versions(n: int) -> dict[str, str]:
        rng = random.Random(n)
        reported = {}
        for slug, numbers in sorted(held.items()):
            draw = rng.random()
            if draw < CURRENT:
                number = numbers[0]
            elif draw < CURRENT + BEHIND:
                older = numbers[1:4] or [max(numbers[0] - 1, 0)]
                number = rng.choice(older)
            elif draw < CURRENT + BEHIND + AHEAD:
                number = numbers[0] + 1
            else:
                continue
            reported[slug] = version_label(number)
        return reported

    return versions


@transaction.atomic
def fleet_seed_with_versions(*, domains: int, clients: int, top_level: int = 5, prefix: str = "") -> FleetSeedResult:
    """``agents_app.fleet_seed`` with realistic versions, recorded for the compliance counts."""
    before = Client.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    result = fleet_seed(
        domains=domains,
        clients=clients,
        top_level=top_level,
        prefix=prefix,
        versions=seeded_versions(server_versions()),
    )
    clients_versions_load(Client.objects.filter(pk__gt=before).values_list("pk", "component_versions").iterator())
    return result
