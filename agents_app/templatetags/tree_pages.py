"""Page numbers for the client tree's pages of clients and its search results."""

from __future__ import annotations

from django import template
from django.core.paginator import Page

register = template.Library()


@register.filter
def page_numbers(page: Page) -> list[int | str]:
    """1 … 4 5 6 … 1000: the first and last pages and two either side of the current one."""
    return list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))
