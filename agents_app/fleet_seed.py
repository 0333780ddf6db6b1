"""Build a demo fleet with bulk inserts (the seed_fleet command and the benchmarks).

Seeded clients stay on this machine: every address is in 127.0.0.0/8 (from
127.1.0.0 up, clear of 127.0.0.1 where the real agents of tests and demos
listen) and every listener port is 9, the "discard" port: a privileged port no
service of this project or of a default Debian install listens on (the
seed_fleet command checks that nothing answers there), so a notification to a
seeded client is refused by the machine's own TCP stack and retried like any
unreachable client. Nothing is ever sent off the machine.

The MPTT columns are computed here instead of letting django-mptt insert one
node at a time: every domain is a root ("site") or a child of one, so lft/rght
follow from the children's name order (the tree's ``order_insertion_by``).
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max

from agents_app.models import Client, ConnectionStatus, Domain, FutureDomainDefaults

# A few status values weighted like a real fleet: mostly online.
STATUS_CYCLE = ([ConnectionStatus.ONLINE] * 7 + [ConnectionStatus.OFFLINE] * 2 + [ConnectionStatus.ROAMING]) * 9 + [
    ConnectionStatus.UNREACHABLE
] * 10
CLIENT_BATCH = 5000
# Port 9 ("discard"): see the module's docstring.
SEED_LISTENER_PORT = 9
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class FleetSeedError(Exception):
    pass


@dataclass(frozen=True)
class FleetSeedResult:
    domains: int
    clients: int


def loopback_address(n: int) -> str:
    """The n-th seeded client's address: 127.1.0.0 onwards, always inside 127.0.0.0/8."""
    return f"127.{1 + (n >> 16) % 254}.{(n >> 8) & 255}.{n & 255}"


def listener_answers(address: str = "127.1.0.1", port: int = SEED_LISTENER_PORT) -> bool:
    """Does something accept connections there? (Seeded clients must point where nothing listens.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((address, port)) == 0


@transaction.atomic
def fleet_seed(
    *,
    domains: int,
    clients: int,
    top_level: int = 5,
    prefix: str = "",
    versions: Callable[[int], dict[str, str]] | None = None,
) -> FleetSeedResult:
    """``domains`` domains (``top_level`` of them sites, the rest below them) and ``clients`` clients spread evenly.

    ``versions(n)`` gives the n-th client's reported component versions (none by default).
    """
    if domains < 1:
        raise FleetSeedError("--domains must be at least 1.")
    if clients < 0:
        raise FleetSeedError("--clients cannot be negative.")
    top_level = max(1, min(top_level, domains))
    site_names = [f"{prefix}Site-{i:03d}" for i in range(1, top_level + 1)]
    clash = list(Domain.objects.filter(parent=None, name__in=site_names).values_list("name", flat=True)[:3])
    if clash:
        raise FleetSeedError(f"Top-level domains already exist: {', '.join(clash)}. Use --prefix for another set.")

    defaults = FutureDomainDefaults.load().settings_dict()
    base_tree_id = (Domain.objects.aggregate(m=Max("tree_id"))["m"] or 0) + 1
    # Children per site, round-robin; names zero-padded so that their sort
    # order is the numeric order used to compute lft/rght.
    children: list[list[str]] = [[] for _ in range(top_level)]
    for j in range(domains - top_level):
        children[j % top_level].append(f"{prefix}Dept-{j + 1:04d}")

    rows: list[Domain] = []
    parents: list[Domain] = []
    for i, name in enumerate(site_names):
        kids = sorted(children[i])
        site = Domain(
            name=name, parent=None, tree_id=base_tree_id + i, level=0, lft=1, rght=2 * len(kids) + 2, **defaults
        )
        parents.append(site)
        rows.append(site)
    Domain.objects.bulk_create(parents)
    if not all(p.pk for p in parents):  # SQLite < 3.35 does not return ids
        by_name = dict(Domain.objects.filter(parent=None, name__in=site_names).values_list("name", "pk"))
        for p in parents:
            p.pk = by_name[p.name]
    kids_rows: list[Domain] = []
    for i, site in enumerate(parents):
        for k, name in enumerate(sorted(children[i])):
            kids_rows.append(
                Domain(
                    name=name,
                    parent_id=site.pk,
                    tree_id=site.tree_id,
                    level=1,
                    lft=2 + 2 * k,
                    rght=3 + 2 * k,
                    **defaults,
                )
            )
    Domain.objects.bulk_create(kids_rows, batch_size=1000)
    domain_ids = list(
        Domain.objects.filter(tree_id__gte=base_tree_id, tree_id__lt=base_tree_id + top_level)
        .order_by("tree_id", "lft")
        .values_list("pk", flat=True)
    )

    start = (Client.objects.aggregate(m=Max("pk"))["m"] or 0) + 1
    batch: list[Client] = []
    for n in range(clients):
        number = start + n
        batch.append(
            Client(
                guid=uuid.uuid4(),
                domain_id=domain_ids[n % len(domain_ids)],
                hostname=f"{prefix}host-{number:06d}",
                ip_address=loopback_address(number),
                listener_port=SEED_LISTENER_PORT,
                status=STATUS_CYCLE[n % len(STATUS_CYCLE)],
                component_versions=versions(n) if versions else {},
                **defaults,
            )
        )
        if len(batch) == CLIENT_BATCH:
            Client.objects.bulk_create(batch)
            batch = []
    if batch:
        Client.objects.bulk_create(batch)
    return FleetSeedResult(domains=len(domain_ids), clients=clients)
