"""Which clients are behind: the server's latest component versions vs what agents report.

Agents report ``{component slug: version number}`` (an int, or the number as a
string). A client that reports no number, or one we cannot read, for a
component the server has is counted as outdated: nothing shows it is current.
"""

from __future__ import annotations

from django.db.models import Max

from updates_app.models import ComponentVersion


def latest_version_numbers() -> dict[str, int]:
    """{component slug: the server's latest version number}, in one query."""
    rows = ComponentVersion.objects.values("component__slug").annotate(latest=Max("number"))
    return {row["component__slug"]: row["latest"] for row in rows}


def reported_number(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def outdated_slugs(reported: dict | None, latest: dict[str, int]) -> list[str]:
    """The components for which ``reported`` is behind ``latest``."""
    reported = reported if isinstance(reported, dict) else {}
    behind = []
    for slug, number in latest.items():
        have = reported_number(reported.get(slug))
        if have is None or have < number:
            behind.append(slug)
    return behind
