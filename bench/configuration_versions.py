"""How long computing every client's configuration version takes.

Compares ConfigurationBuilder.versions() (shared part once, one hash per
distinct combination of client settings, one query over the needed columns)
with the baseline of calling client_configuration_and_version() for each
client loaded as a full model instance, in the same run, on an in-memory
SQLite database.

    .venv/bin/python bench/configuration_versions.py [clients]
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django

django.setup()

from django.core.management import call_command  # noqa: E402


def main(count: int) -> None:
    call_command("migrate", verbosity=0)
    from agents_app.models import Client, ClientSettings, Domain
    from updates_app.configuration import ConfigurationBuilder, client_configuration_and_version
    from updates_app.models import AutoUpdateSettings

    rng = random.Random(4)
    domain = Domain.objects.create(name="Bench")
    Client.objects.bulk_create(
        [
            Client(
                domain=domain,
                hostname=f"pc-{n}",
                ip_address="127.1.0.1",
                listener_port=9,
                **{name: rng.random() < 0.5 for name in ClientSettings.SETTING_FIELDS},
            )
            for n in range(count)
        ],
        batch_size=2000,
    )
    auto = AutoUpdateSettings.load()

    started = time.perf_counter()
    baseline = {client.pk: client_configuration_and_version(client, auto=auto)[1] for client in Client.objects.all()}
    baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    fast = ConfigurationBuilder(auto).versions()
    fast_s = time.perf_counter() - started

    assert fast == baseline
    print(f"clients: {count}")
    print(f"baseline (per-client document + hash): {baseline_s * 1000:.1f} ms")
    print(f"ConfigurationBuilder.versions():       {fast_s * 1000:.1f} ms")
    print(f"speed-up: {baseline_s / fast_s:.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)
