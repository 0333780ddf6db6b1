"""manage.py seed_fleet --domains N --clients M: a demo client tree built with bulk inserts.

Clients get loopback addresses on the discard port (agents_app/fleet_seed.py)
and versions around the server's (updates_app/seed.py), counted at once.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from agents_app.fleet_seed import SEED_LISTENER_PORT, FleetSeedError, listener_answers
from agents_app.models import Domain
from updates_app.seed import fleet_seed_with_versions


class Command(BaseCommand):
    help = "Create a demo client tree: N domains (a few sites with departments below) and M clients spread over them."

    def add_arguments(self, parser):
        parser.add_argument("--domains", type=int, default=20, help="Number of domains (default 20).")
        parser.add_argument("--clients", type=int, default=200, help="Number of clients (default 200).")
        parser.add_argument("--top-level", type=int, default=5, help="How many of the domains are top-level sites.")
        parser.add_argument("--prefix", default="", help="Prefix for names, to add a second fleet beside the first.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when domains exist already (for a demo start script)."
        )

    def handle(self, *args, domains: int, clients: int, top_level: int, prefix: str, if_empty: bool, **options):
        if top_level < 1:
            raise CommandError("--top-level must be at least 1.")
        if if_empty and Domain.objects.exists():
            self.stdout.write("Domains exist already: nothing seeded (--if-empty).")
            return
        if listener_answers():
            self.stderr.write(
                f"Warning: something listens on 127.1.0.1:{SEED_LISTENER_PORT}; notifications to seeded clients "
                "will reach it (they stay on this machine)."
            )
        started = time.perf_counter()
        try:
            result = fleet_seed_with_versions(domains=domains, clients=clients, top_level=top_level, prefix=prefix)
        except FleetSeedError as exc:
            raise CommandError(str(exc)) from None
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(f"Created {result.domains} domains and {result.clients} clients in {elapsed:.1f} s.")
        )
