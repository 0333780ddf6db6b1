"""Which clients are behind: the server's latest component versions vs what agents report.

Agents report ``{component slug: version}``: the number (an int, or digits in
a string) or its display label ("18.523.00"), read with the components
service's ``parse_version_label`` (agent protocol, issue 5). A client that
reports nothing, or something we cannot read, for a component the server has
is counted as outdated: nothing shows it is current.
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
    if not isinstance(value, str):
        return None
    if value.strip().isdigit():
        return int(value.strip())
    try:
        from updates_app.components import parse_version_label
    except ImportError:  # the components service is not installed
        return None
    try:
        return parse_version_label(value)
    except Exception:
        # Any unreadable label counts as "not current".
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
