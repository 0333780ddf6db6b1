"""Test fleets for the schedule tests, made with bulk_create."""

from __future__ import annotations

from agents_app.fleet_seed import SEED_LISTENER_PORT, loopback_address
from agents_app.models import Client, ConnectionStatus, Domain


def make_fleet(count: int, *, prefix: str = "host", **fields) -> list[Client]:
    """``count`` clients, online with scheduled update on unless ``fields`` say otherwise."""
    domain = Domain.objects.filter(name="Schedule tests").first() or Domain.objects.create(name="Schedule tests")
    values = {
        "status": ConnectionStatus.ONLINE,
        "scheduled_update_privilege": True,
        "scheduled_update_setting": True,
        **fields,
    }
    start = Client.objects.count()
    return Client.objects.bulk_create(
        [
            Client(
                domain=domain,
                hostname=f"{prefix}-{n}",
                ip_address=loopback_address(n),
                listener_port=SEED_LISTENER_PORT,
                **values,
            )
            for n in range(start, start + count)
        ],
        batch_size=5000,
    )
