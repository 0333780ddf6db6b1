"""Which clients are behind: the server's latest component versions against what agents report.

Agents report ``{component slug: version}``: the number (an int, or digits in
a string) or its label ("18.523.00"), read by ``version_labels.reported_number``.
A client that reports nothing, or something that cannot be read, for a
component the server has is counted as outdated: nothing shows it is current;
so is a client still holding a version withdrawn by a rollback.
The Update Summary, Manual Update and the restart rule of the engine all ask
this module, so "outdated" means one thing everywhere.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Max

from agents_app.models import Client
from updates_app.models import ComponentVersion
from updates_app.version_labels import reported_number


def latest_version_numbers(*, held_back: Collection[int] = ()) -> dict[str, int]:
    """{component slug: the server's current version number (withdrawn versions never count)}, in one query.

    ``held_back``: versions a staged roll-out does not offer to the client asking.
    """
    offered = ComponentVersion.objects.offered().exclude(pk__in=held_back)
    rows = offered.values("component__slug").annotate(latest=Max("number"))
    return {row["component__slug"]: row["latest"] for row in rows}


def is_behind(reported_value: object, latest: int) -> bool:
    """Is a client that reported ``reported_value`` for a component not on the server's current ``latest``?

    Behind it, or ahead of it: a version above the current one exists only
    because a rollback withdrew it (agents may only report versions the
    server has), so a client holding one must go back and counts as outdated.
    """
    have = reported_number(reported_value)
    return have is None or have != latest


def outdated_slugs(reported: object, latest: dict[str, int]) -> list[str]:
    """The components for which ``reported`` is behind ``latest``."""
    versions = reported if isinstance(reported, dict) else {}
    return [slug for slug, number in latest.items() if is_behind(versions.get(slug), number)]


def outdated_client_ids() -> list[int]:
    """Active clients behind on at least one component: one pass over the fleet's reports."""
    latest = latest_version_numbers()
    if not latest:
        return []
    return [
        pk
        for pk, reported in Client.objects.active().values_list("pk", "component_versions").iterator(chunk_size=2000)
        if outdated_slugs(reported, latest)
    ]
