"""CSV export of the client list at fleet scale: time, and the memory the download holds while it streams.

Usage (from the project folder):

    .venv/bin/python bench/export_bench.py            # SQLite file under /tmp, 1,000 vs 100,000 clients
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/export_bench.py

It REPLACES the fleet of the database it runs on. The download
(/updates/clients/?export=csv) is consumed chunk by chunk, as a browser would,
while tracemalloc records the peak of Python memory; the figure to read is the
ratio of that peak at 100,000 clients to the peak at 1,000, measured in the same
run: a streamed export stays near 1x, where a list built in memory grows with
the fleet (its peak is printed beside it for comparison).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("CONSOLE_VAR_DIR", str(Path(tempfile.gettempdir()) / "export_bench"))
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.gettempdir()}/export_bench.sqlite3"

import django  # noqa: E402

django.setup()

from client_tree_bench import wipe  # noqa: E402 - the same fast reset (bench/ is on sys.path)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client as HttpClient  # noqa: E402

from agents_app.models import Client  # noqa: E402
from updates_app.client_list import ClientListForm, client_csv  # noqa: E402

URL = "/updates/clients/?export=csv"


def seed(clients: int) -> None:
    wipe()
    call_command("seed_fleet", domains=100, clients=clients, verbosity=0)
    # Loopback addresses only: nothing is sent to them, but no bench client gets a routable address.
    Client.objects.update(ip_address="127.0.0.1")


def streamed(http: HttpClient) -> tuple[float, int, int]:
    """(seconds, peak bytes, lines) of consuming the download chunk by chunk."""
    tracemalloc.start()
    started = time.perf_counter()
    response = http.get(URL)
    assert response.status_code == 200 and response.streaming
    lines = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, lines


def in_memory() -> int:
    """Peak bytes of the same rows built as one list (what streaming avoids)."""
    form = ClientListForm({})
    assert form.is_valid()
    tracemalloc.start()
    _, rows = client_csv(form.clients())
    everything = list(rows)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del everything
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    http = HttpClient()
    http.force_login(user)
    results = []
    for clients in (1_000, args.clients):
        seed(clients)
        streamed(http)  # warm-up: imports, URL resolver and templates load on the first request
        seconds, peak, lines = streamed(http)
        assert lines == clients + 1, (lines, clients)
        results.append((clients, seconds, peak, in_memory()))
    print(f"database: {django.db.connection.vendor}")
    print(f"{'clients':>8} {'stream s':>9} {'stream peak MB':>15} {'list peak MB':>13}")
    for clients, seconds, peak, listed in results:
        print(f"{clients:>8} {seconds:>9.2f} {peak / 1e6:>15.1f} {listed / 1e6:>13.1f}")
    (_, _, small_peak, small_list), (_, _, big_peak, big_list) = results
    print(
        f"ratio {args.clients:,} / 1,000 clients: streamed peak {big_peak / small_peak:.1f}x, "
        f"list peak {big_list / small_list:.1f}x"
    )


if __name__ == "__main__":
    main()
