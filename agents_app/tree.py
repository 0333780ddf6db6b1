"""Reads for the client tree page: a constant number of queries whatever the fleet size.

Domains come with cumulative client counts from one statement
(``add_related_count(..., cumulative=True)``); client rows are paginated; the
children of a domain are only read when it is expanded.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber
from django.http import QueryDict
from django.urls import reverse

from agents_app.models import Client, ConnectionStatus, Domain

CLIENTS_PER_PAGE = 100
RESULTS_PER_PAGE = 100
CLIENT_COLUMNS = ("pk", "hostname", "ip_address", "status", "component_versions", "domain__name")


def _with_counts(domains: QuerySet[Domain]) -> QuerySet[Domain]:
    # Revoked clients (inactive ones among them) have left the tree.
    return Domain.objects.add_related_count(
        domains, Client, "domain", "client_count", cumulative=True, extra_filters={"revoked_at__isnull": True}
    )


def top_level_domains(*, counted: bool = True) -> QuerySet[Domain]:
    """The top-level domains; ``counted`` adds their cumulative client counts.

    Counting reads every client's row (about 100 ms for 100,000 clients on
    PostgreSQL, whose client rows each fill a page): a tree that is only there
    to tick domains (Manual Update) goes without.
    """
    domains = Domain.objects.filter(parent=None)
    return (_with_counts(domains) if counted else domains).order_by("name")


def subdomains(domain: Domain) -> QuerySet[Domain]:
    return _with_counts(Domain.objects.filter(parent=domain)).order_by("name")


def _client_rows(clients: QuerySet[Client]) -> QuerySet[Client]:
    # Only the columns a row shows; the effective state comes from
    # Client.scheduled_state (agents_app.scheduled_state), no extra query.
    return clients.select_related("domain").only(
        "hostname",
        "ip_address",
        "status",
        "component_versions",
        "scheduled_update_privilege",
        "scheduled_update_setting",
        "user_disabled_scheduled_update",
        "last_contact_at",
        "domain__name",
    )


def client_search_page(*, query: str, status: str, page_number: str | int | None, sort: str = "name") -> Page:
    """Clients whose hostname or IP address contains ``query``, optionally of one status."""
    clients = Client.objects.active()
    query = query.strip()
    if query:
        clients = clients.filter(Q(hostname__icontains=query) | Q(ip_address__startswith=query))
    if status:
        clients = clients.filter(status=status)
    return Paginator(_client_rows(clients).order_by(*SORTS[valid_sort(sort)]), RESULTS_PER_PAGE).get_page(page_number)


def valid_status(value: str) -> str:
    return value if value in ConnectionStatus.values else ""


# --- Sorting, and the expanded tree rendered by the server (links work without JavaScript).

SORTS: dict[str, tuple[Any, ...]] = {
    "name": ("hostname", "pk"),
    "status": ("status", "hostname", "pk"),
    # Most recent first; clients that never made contact last.
    "contact": (F("last_contact_at").desc(nulls_last=True), "hostname", "pk"),
}
SORT_LABELS = {"name": "Name", "status": "Status", "contact": "Last contact"}
DEFAULT_SORT = "name"
# An address bar holds a few hundred expanded domains at most; more are ignored.
MAX_OPEN = 200
_OPEN_TOKEN = re.compile(r"([0-9]{1,12})(?::([0-9]{1,6}))?")


def valid_sort(value: str) -> str:
    return value if value in SORTS else DEFAULT_SORT


def parse_open(value: str) -> dict[int, int]:
    """``open=5,9:3`` -> {5: 1, 9: 3}: the expanded domains and the page of clients each shows.

    Anything that is not an id (or id:page) is ignored: it only decides what is shown.
    """
    result: dict[int, int] = {}
    for token in value.split(","):
        match = _OPEN_TOKEN.fullmatch(token.strip())
        if match and len(result) < MAX_OPEN:
            result[int(match.group(1))] = max(1, int(match.group(2) or 1))
    return result


def format_open(open_pages: dict[int, int]) -> str:
    return ",".join(f"{pk}:{page}" if page > 1 else str(pk) for pk, page in open_pages.items())


class _Counted:
    """A sequence of known length, so that a Paginator pages a count read elsewhere."""

    def __init__(self, count: int) -> None:
        self.count_value = count

    def __len__(self) -> int:
        return self.count_value


def domain_clients_page(domain: Domain, page_number: str | int | None, sort: str = DEFAULT_SORT) -> Page:
    clients = _client_rows(Client.objects.active().filter(domain=domain)).order_by(*SORTS[valid_sort(sort)])
    return Paginator(clients, CLIENTS_PER_PAGE).get_page(page_number)


@dataclass
class ExpandedTree:
    """Subdomains and one page of clients for every expanded domain reachable from the top."""

    open_pages: dict[int, int]  # reachable expanded domains only, in the order given
    subdomains: dict[int, list[Domain]]
    pages: dict[int, Page]


def expanded_tree(top_level: Iterable[Domain], open_pages: dict[int, int], sort: str = DEFAULT_SORT) -> ExpandedTree:
    """Three queries however many domains are expanded: their subdomains (with
    cumulative counts), their direct client counts, and one page of clients
    each (one window query)."""
    if not open_pages:
        return ExpandedTree(open_pages={}, subdomains={}, pages={})
    subdomains: dict[int, list[Domain]] = defaultdict(list)
    for domain in _with_counts(Domain.objects.filter(parent_id__in=list(open_pages))).order_by("name"):
        if domain.parent_id is not None:
            subdomains[domain.parent_id].append(domain)
    reachable: list[int] = []
    stack = [d for d in top_level if d.pk in open_pages]
    while stack:
        domain = stack.pop()
        reachable.append(domain.pk)
        stack.extend(child for child in subdomains[domain.pk] if child.pk in open_pages)
    if not reachable:
        return ExpandedTree(open_pages={}, subdomains={}, pages={})
    counts = dict(
        Client.objects.active()
        .filter(domain_id__in=reachable)
        .order_by()
        .values("domain_id")
        .annotate(n=Count("pk"))
        .values_list("domain_id", "n")
    )
    paginators: dict[int, Paginator] = {
        pk: Paginator(_Counted(counts.get(pk, 0)), CLIENTS_PER_PAGE)  # type: ignore[arg-type]
        for pk in reachable
    }
    numbers = {pk: min(open_pages[pk], paginators[pk].num_pages) for pk in reachable}
    rows: dict[int, list[Client]] = defaultdict(list)
    with_clients = [pk for pk in reachable if counts.get(pk)]
    if with_clients:
        first_row = Case(
            *(When(domain_id=pk, then=Value((numbers[pk] - 1) * CLIENTS_PER_PAGE)) for pk in with_clients),
            output_field=IntegerField(),
        )
        window = Window(RowNumber(), partition_by=[F("domain_id")], order_by=list(SORTS[valid_sort(sort)]))
        query = (
            _client_rows(Client.objects.active().filter(domain_id__in=with_clients))
            .annotate(row=window, first_row=first_row)
            .filter(row__gt=F("first_row"), row__lte=F("first_row") + CLIENTS_PER_PAGE)
            .order_by("domain_id", "row")
        )
        for client in query:
            rows[client.domain_id].append(client)
    pages = {pk: Page(rows[pk], numbers[pk], paginators[pk]) for pk in reachable}
    return ExpandedTree(
        open_pages={pk: numbers[pk] for pk in open_pages if pk in pages},
        subdomains={pk: subdomains[pk] for pk in reachable},
        pages=pages,
    )


@dataclass
class JumpForm:
    """A "go to page" form (outside the tree's form: forms do not nest), with the state to keep."""

    id: str
    hidden: list[tuple[str, str]]
    page_field: str
    max_page: int


def tree_links(
    *,
    path: str,
    top_level: list[Domain],
    query: dict[str, str],
    fragment_url: Callable[[Domain], str],
    expanded: ExpandedTree,
) -> list[JumpForm]:
    """Give every shown domain the links that expand, collapse and page it without JavaScript.

    ``query`` is the rest of the page's state (the sort); ``open`` is rebuilt
    per link. Sets ``is_open``, ``toggle_url``, ``subdomain_list``,
    ``client_page``, ``page_href`` (to which a page number is appended) and
    ``page_data`` (the fragment URL for JavaScript) on each domain.
    """
    open_pages = expanded.open_pages
    jumps: list[JumpForm] = []

    def url(pages: dict[int, int], tail: str = "") -> str:
        params = {**query, "open": format_open(pages)} if pages else dict(query)
        text = urlencode({k: v for k, v in params.items() if v})
        return f"{path}?{text}{tail}" if text or tail else path

    def visit(domain: Domain) -> None:
        domain.is_open = domain.pk in open_pages
        others = {pk: page for pk, page in open_pages.items() if pk != domain.pk}
        domain.toggle_url = (
            url(others) if domain.is_open else url({**open_pages, domain.pk: 1})
        ) + f"#domain-{domain.pk}"
        domain.page_data = f"{fragment_url(domain)}?{urlencode({'sort': query.get('sort', DEFAULT_SORT)})}&page="
        if not domain.is_open:
            return
        rest = format_open(others)
        domain.page_href = url({}, ("&" if query else "") + "open=" + (rest + "," if rest else "") + f"{domain.pk}:")
        domain.subdomain_list = expanded.subdomains.get(domain.pk, [])
        domain.client_page = expanded.pages[domain.pk]
        if domain.client_page.paginator.num_pages > 1:
            domain.jump_id = f"jump-{domain.pk}"
            jumps.append(
                JumpForm(
                    id=f"jump-{domain.pk}",
                    hidden=[*((k, v) for k, v in query.items() if v), ("open", rest), ("jump", str(domain.pk))],
                    page_field="page",
                    max_page=domain.client_page.paginator.num_pages,
                )
            )
        for child in domain.subdomain_list:
            visit(child)

    for domain in top_level:
        visit(domain)
    return jumps


def tree_state(params: QueryDict, *, path: str, counted: bool = True) -> dict[str, Any]:
    """The tree's expanded domains, their pages and the sort, from the address (``open``, ``sort``).

    Shared with Manual Update, which shows the same tree without the top-level
    domains' client counts (``counted=False``: counting reads every client row).
    Constant queries: see ``expanded_tree``.
    """
    sort = valid_sort(params.get("sort", ""))
    open_pages = parse_open(params.get("open", ""))
    jump = _OPEN_TOKEN.fullmatch(f"{params.get('jump', '')}:{params.get('page', '')}")
    if jump and jump.group(2) and len(open_pages) < MAX_OPEN:
        open_pages[int(jump.group(1))] = max(1, int(jump.group(2)))  # "Go to page" of one domain
    domains = list(top_level_domains(counted=counted))
    expanded = expanded_tree(domains, open_pages, sort)
    query = {"sort": sort} if sort != DEFAULT_SORT else {}
    jumps = tree_links(
        path=path,
        top_level=domains,
        query=query,
        fragment_url=lambda d: reverse("agents:domain-children", args=[d.pk]),
        expanded=expanded,
    )
    return {
        "domains": domains,
        "total_clients": sum(d.client_count for d in domains) if counted else None,
        "uncounted": not counted,
        "sort": sort,
        "open_domains": format_open(expanded.open_pages),
        "jump_forms": jumps,
        "sort_links": sort_links(path, {"open": format_open(expanded.open_pages)}, sort),
    }


def sort_links(path: str, keep: dict[str, str], current: str) -> dict[str, dict[str, Any]]:
    """Column-header links that sort the client rows (by name, status or last contact), keeping the rest."""
    links = {}
    for key, label in SORT_LABELS.items():
        params = {k: v for k, v in {**keep, "sort": key if key != DEFAULT_SORT else ""}.items() if v}
        url = f"{path}?{urlencode(params)}" if params else path
        links[key] = {"label": label, "url": url, "current": key == current}
    return links
