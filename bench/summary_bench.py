"""Update Summary and Manual Update at fleet scale: how long the outdated counts take.

Usage (from the project folder):

    .venv/bin/python bench/summary_bench.py            # SQLite file under /tmp
    .venv/bin/python bench/summary_bench.py --clients 100000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/summary_bench.py

It REPLACES the fleet of the database it runs on. The fleet comes from
seed_fleet: versions around the server's (mostly current, some behind, a few
ahead, some unknown) for the four catalogue components, the server holding
five Virus Pattern versions. The pages count from the version tallies
(updates_app/compliance.py), so their time should not grow with the fleet;
the figures show by how much it does, with 1,000 clients measured in the same
run as the baseline. "confirm" is Manual Update's "Clients with outdated
components" (the outdated selection, counted for its confirmation).
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
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CONSOLE_VAR_DIR", str(Path(tempfile.gettempdir()) / "summary_bench"))
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.gettempdir()}/summary_bench.sqlite3"

import django  # noqa: E402

django.setup()

from client_tree_bench import wipe  # noqa: E402 - the same fast reset (bench/ is on sys.path)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402

from updates_app.compliance import compliance_counts  # noqa: E402
from updates_app.components import component_download, component_resolve  # noqa: E402
from updates_app.models import AutoUpdateSettings, UpdateRun  # noqa: E402


def seed(clients: int) -> None:
    UpdateRun.objects.all().delete()
    wipe()
    call_command("seed_fleet", domains=100, clients=clients, verbosity=0)
    # Statistics now, and no autovacuum of the fresh rows during the measurement.
    with django.db.connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if django.db.connection.vendor == "postgresql" else "ANALYZE")


def server_components() -> None:
    """Five Virus Pattern versions on the server (downloaded once; later runs reuse them)."""
    component = component_resolve("virus_pattern")
    while component.versions.count() < 5:
        component_download(component=component)


def timed_ms(http: HttpClient, method: str, url: str, data=None, repeat: int = 40) -> tuple[float, float]:
    """(median, fastest) in ms: on a shared, busy machine the fastest is the cost without waiting for a core."""
    getattr(http, method)(url, data) if data else getattr(http, method)(url)  # warm caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = getattr(http, method)(url, data) if data else getattr(http, method)(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    auto = AutoUpdateSettings.load()
    auto.notify_on_download = False  # seeding versions must not start runs
    auto.save()
    # force_login below: the account needs no usable password.
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    server_components()
    http = HttpClient()
    http.force_login(user)
    rows = []
    # 1,000 before and after the big fleet: the baseline is their mean, so a
    # busy moment of this shared machine shows up as a gap between the two.
    for clients in (1_000, args.clients, 1_000):
        seed(clients)
        compliance = compliance_counts()
        assert compliance.clients == clients, compliance.clients
        rows.append(
            (
                clients,
                timed_ms(http, "get", "/updates/summary/"),
                timed_ms(http, "get", "/updates/manual/"),
                timed_ms(http, "post", "/updates/manual/", {"target": "outdated"}),
            )
        )
        print(f"seeded {clients}: {compliance.outdated_clients} with outdated components", flush=True)
    print(f"database: {django.db.connection.vendor}")
    print(f"{'clients':>8} {'summary ms':>16} {'manual ms':>16} {'confirm ms':>16}   (median / fastest)")
    for clients, *times in rows:
        print(f"{clients:>8} " + " ".join(f"{m:>7.1f} / {f:>6.1f}" for m, f in times))
    for kind, index in (("median", 0), ("fastest", 1)):
        base = [(a[index] + b[index]) / 2 for a, b in zip(rows[0][1:], rows[2][1:], strict=True)]
        ratios = [t[index] / b for t, b in zip(rows[1][1:], base, strict=True)]
        print(
            f"ratio of {args.clients:,} to 1,000 clients, {kind} (summary, manual, confirm = outdated selection): "
            + ", ".join(f"{r:.2f}x" for r in ratios)
        )


if __name__ == "__main__":
    main()
