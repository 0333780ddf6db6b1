"""Template filters for the console's words: ``{% load wording %}``.

- ``{{ n|plural:"client" }}`` -> "1 client" / "3 clients" (``"delivery"`` -> "deliveries");
  ``{{ n|plural_word:"client" }}`` -> the word alone;
- ``{{ interval|duration }}`` -> "2 hours 30 minutes"; ``{{ interval|every }}`` -> "every minute";
- ``{{ value|when }}`` -> "2026-11-26 14:05:09 CET" (server time zone), ``when_minutes`` without seconds,
  wrapped in ``<time datetime="...">``;
- ``{{ name|field_label }}`` and ``{{ value|value_words }}`` for stored identifiers and values;
- ``{{ versions|components_named:component_names }}`` -> [(name, version)] sorted by name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django import template
from django.utils.html import format_html

from console import wording

register = template.Library()


@register.filter
def plural(count, singular: str) -> str:
    try:
        number = int(count)
    except (TypeError, ValueError):
        return ""
    return wording.plural(number, singular)


@register.filter
def plural_word(count, singular: str) -> str:
    try:
        number = int(count)
    except (TypeError, ValueError):
        number = 0
    return wording.plural_word(number, singular)


@register.filter
def duration(value) -> str:
    return "" if value is None else wording.duration(value)


@register.filter
def every(value) -> str:
    return "" if value is None else wording.every(value)


def _time(value, *, seconds: bool) -> str:
    if not isinstance(value, dt.datetime):
        return ""
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), wording.moment(value, seconds=seconds))


@register.filter
def when(value) -> str:
    return _time(value, seconds=True)


@register.filter
def when_minutes(value) -> str:
    return _time(value, seconds=False)


@register.filter
def field_label(name) -> str:
    return wording.field_label(name)


@register.filter
def value_words(value) -> str:
    return wording.value_words(value)


@register.filter
def components_named(versions, names) -> list[tuple[str, str]]:
    """A client's reported versions under the components' names (an unknown slug keeps its words)."""
    if not isinstance(versions, Mapping):
        return []
    lookup = names if isinstance(names, Mapping) else {}
    named = [(lookup.get(slug) or wording.field_label(slug).title(), version) for slug, version in versions.items()]
    return sorted(named)
