"""Client tree benchmark: page times, query counts and the bulk save at fleet scale.

Usage (from the project folder):

    # SQLite (a fresh file under /tmp unless DATABASE_URL is set)
    .venv/bin/python bench/client_tree_bench.py
    # PostgreSQL
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt3 .venv/bin/python bench/client_tree_bench.py

It REPLACES the domains and clients of the database it runs on. For each scale
(1,000 clients as the baseline, then 100,000 clients, both in 500 domains) it
seeds the fleet with seed_fleet's bulk builder, then measures in-process with
django.test.Client (server time: request handling, queries, rendering; no
network): the Client Management page, an expanded domain holding 1,000
clients, and the dialog's save for a domain holding every client.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.gettempdir()}/client_tree_bench.sqlite3"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402
from django.urls import reverse  # noqa: E402

from agents_app.fleet_seed import fleet_seed  # noqa: E402
from agents_app.models import Client, Domain, FutureDomainDefaults  # noqa: E402
from agents_app.privileges import selection_resolve, selection_summary  # noqa: E402
from console.models import AuditEntry  # noqa: E402

SETTINGS = (
    "roaming_privilege",
    "update_now_privilege",
    "scheduled_update_privilege",
    "download_from_activeupdate",
    "scheduled_update_setting",
    "components_only",
)
BIG_DOMAIN = 1000


def wipe() -> None:
    """Remove the fleet with plain SQL: the ORM's cascading delete would take minutes at 100,000 rows."""
    with connection.cursor() as cursor:
        for table in (
            "updates_app_clientcomponent",
            "updates_app_clientprofile",
            "updates_app_versionprofile",
            "updates_app_delivery",
            "agents_app_client",
            "agents_app_domain",
        ):
            if table in connection.introspection.table_names():
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    FutureDomainDefaults.objects.all().delete()
    AuditEntry.objects.filter(action__startswith="privileges.").delete()


def seed(clients: int, domains: int, top_level: int = 1) -> tuple[float, Domain, Domain]:
    wipe()
    started = time.perf_counter()
    fleet_seed(domains=domains, clients=clients, top_level=top_level, prefix="bench-")
    seconds = time.perf_counter() - started
    site = Domain.objects.get(parent=None, name="bench-Site-001")
    big = Domain.objects.filter(parent=site).order_by("name").first() or Domain.objects.exclude(pk=site.pk).first()
    # Gather clients from other domains so that one domain holds 1,000 clients.
    missing = BIG_DOMAIN - big.clients.count()
    if missing > 0:
        movers = list(Client.objects.exclude(domain__in=[big, site]).values_list("pk", flat=True)[:missing])
        Client.objects.filter(pk__in=movers).update(domain=big)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE agents_app_client; ANALYZE agents_app_domain")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return seconds, site, big


class QueryCounter:
    """Counts statements sent to the database (connection.queries_log is capped, this is not)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self) -> QueryCounter:
        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(*exc)


def timed_get(http: HttpClient, url: str, repeat: int, **params) -> tuple[float, float, int, int]:
    http.get(url, params)  # warm up
    with QueryCounter() as ctx:
        response = http.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        http.get(url, params)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], ctx.count, len(response.content)


def timed_save(http: HttpClient, site: Domain, repeat: int) -> tuple[list[float], int, float, int]:
    url = reverse("agents:privileges")
    times, queries = [], 0
    for i in range(repeat):
        # Alternate a setting so that every save really rewrites every client.
        fingerprint = selection_summary(selection_resolve(root=False, domain_ids=[site.pk])).fingerprint()
        data = dict.fromkeys(SETTINGS, "unchanged")
        # confirmed=1: the second question a save of more than CONFIRM_ABOVE_CLIENTS clients asks.
        data.update(
            domain=site.pk, fingerprint=fingerprint, roaming_privilege="on" if i % 2 == 0 else "off", confirmed="1"
        )
        with QueryCounter() as ctx:
            started = time.perf_counter()
            response = http.post(url, data)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 302, response.content[:500]
        queries = ctx.count
    # A save that changes nothing.
    fingerprint = selection_summary(selection_resolve(root=False, domain_ids=[site.pk])).fingerprint()
    data = dict.fromkeys(SETTINGS, "unchanged")
    data.update(domain=site.pk, fingerprint=fingerprint, update_now_privilege="on")
    with QueryCounter() as ctx:
        started = time.perf_counter()
        http.post(url, data)
        noop_ms = (time.perf_counter() - started) * 1000
    return times, queries, noop_ms, ctx.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--baseline-clients", type=int, default=1_000)
    parser.add_argument("--domains", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=30, help="requests per page measurement")
    parser.add_argument("--save-repeat", type=int, default=5)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench-admin").first() or user_model.objects.create_superuser(
        "bench-admin", password=None
    )
    http = HttpClient()
    http.force_login(user)
    engine = connection.vendor
    print(f"database: {engine} ({connection.settings_dict['NAME']}), DEBUG={django.conf.settings.DEBUG}")
    print(f"domains: {args.domains}; page repetitions: {args.repeat}; times are in-process server times\n")

    rows = []
    for clients in (args.baseline_clients, args.clients):
        seed_s, site, big = seed(clients, args.domains)
        page = timed_get(http, reverse("agents:client-management"), args.repeat)
        expanded = timed_get(http, reverse("agents:domain-children", args=[big.pk]), args.repeat)
        site_children = timed_get(http, reverse("agents:domain-children", args=[site.pk]), args.repeat)
        search = timed_get(http, reverse("agents:client-management"), args.repeat, q="host-0004", status="online")
        dialog = timed_get(http, reverse("agents:privileges"), args.repeat, domain=site.pk, partial="1")
        # The tree as it comes back after Save: the site and the big domain expanded by the address,
        # the big one on its second page, sorted by last contact.
        reopened = timed_get(
            http, reverse("agents:client-management"), args.repeat, open=f"{site.pk},{big.pk}:2", sort="contact"
        )
        saves, save_queries, noop_ms, noop_queries = timed_save(http, site, args.save_repeat)
        assert Client.objects.count() == clients
        big_count = big.clients.count()
        rows.append(
            (
                clients,
                seed_s,
                page,
                expanded,
                site_children,
                search,
                dialog,
                saves,
                save_queries,
                noop_ms,
                noop_queries,
                reopened,
            )
        )
        print(f"== {clients:,} clients in {Domain.objects.count()} domains (seeded in {seed_s:.1f} s)")
        for label, (median, p95, queries, size) in (
            ("Client Management page", page),
            (f"expanded domain ({big_count:,} clients, first page)", expanded),
            ("expanded top domain (499 subdomains + clients)", site_children),
            ("search by hostname + status filter", search),
            (f"dialog opened for a domain of {clients:,} clients", dialog),
            ("tree reopened: 2 domains expanded, page 2, by contact", reopened),
        ):
            print(
                f"  {label:<52} median {median:7.1f} ms   p95 {p95:7.1f} ms   {queries:2d} queries   {size / 1024:6.0f} KiB"
            )
        print(
            f"  {'dialog save, domain of ' + format(clients, ',') + ' clients':<52} median {statistics.median(saves):7.1f} ms"
            f"   max {max(saves):7.1f} ms   {save_queries:2d} queries   (n={len(saves)}, every client rewritten)"
        )
        print(
            f"  {'dialog save that changes nothing':<52}        {noop_ms:7.1f} ms   {'':>15}{noop_queries:2d} queries\n"
        )

    (small, large) = rows
    print("query counts, baseline vs full scale (must be equal):")
    for index, label in (
        (2, "page"),
        (3, "expanded domain"),
        (4, "top domain"),
        (5, "search"),
        (6, "dialog"),
        (11, "reopened tree"),
    ):
        print(f"  {label:<16} {small[index][2]:3d} vs {large[index][2]:3d}")
    print(f"  {'save':<16} {small[8]:3d} vs {large[8]:3d}")

    # The widest page: every domain at the top level, so the page lists 500
    # domains, each with its cumulative count.
    seed_s, site, big = seed(args.clients, args.domains, top_level=args.domains)
    page = timed_get(http, reverse("agents:client-management"), args.repeat)
    expanded = timed_get(http, reverse("agents:domain-children", args=[big.pk]), args.repeat)
    print(f"\n== flat tree: {args.clients:,} clients in {args.domains} top-level domains (seeded in {seed_s:.1f} s)")
    for label, (median, p95, queries, size) in (
        (f"Client Management page ({args.domains} domains listed)", page),
        (f"expanded domain ({BIG_DOMAIN:,} clients, first page)", expanded),
    ):
        print(
            f"  {label:<52} median {median:7.1f} ms   p95 {p95:7.1f} ms   {queries:2d} queries   {size / 1024:6.0f} KiB"
        )
    wipe()


if __name__ == "__main__":
    main()
