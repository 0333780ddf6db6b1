"""Small builders for the client tree tests (bulk inserts, no per-row saves)."""

from __future__ import annotations

import itertools
import uuid

from agents_app.fleet_seed import SEED_LISTENER_PORT, loopback_address
from agents_app.models import Client, ConnectionStatus, Domain
from agents_app.services import domain_create

_numbers = itertools.count(1)


def make_domain(name: str, parent: Domain | None = None) -> Domain:
    return domain_create(name=name, parent=parent)


def add_clients(domain: Domain, count: int, *, status: str = ConnectionStatus.ONLINE, **settings) -> list[Client]:
    rows = []
    for _ in range(count):
        n = next(_numbers)
        rows.append(
            Client(
                guid=uuid.uuid4(),
                domain=domain,
                hostname=f"pc-{n:06d}",
                ip_address=loopback_address(n),
                listener_port=SEED_LISTENER_PORT,
                status=status,
                **{**domain.settings_dict(), **settings},
            )
        )
    return Client.objects.bulk_create(rows, batch_size=500)
