"""No seeded, test or benchmark client is ever given an address off this machine.

The machine may send traffic only to 127.0.0.0/8: a client with a private-range
or public address would make a notification leave it. The seed is checked in
tests/agents_app/test_seed_fleet.py; here the test factories and every IPv4
literal in tests/, bench/ and the seed module.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from agents_app.fleet_seed import LOOPBACK

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [
    *sorted((ROOT / "tests").rglob("*.py")),
    *sorted((ROOT / "bench").rglob("*.py")),
    ROOT / "agents_app/fleet_seed.py",
]
# A dotted quad, or the start of one built in an f-string (f"127.{n}...").
QUAD = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.])")
FSTRING_START = re.compile(r"""f["'](\d{1,3})\.(?:\d{1,3}\.)*\{""")
# Addresses that are not a client's: "any address" for a server to bind to.
NOT_CLIENTS = {"0.0.0.0"}  # noqa: S104


def off_machine_literals() -> list[str]:
    found = []
    for path in SCANNED:
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in QUAD.finditer(line):
                text = match.group(0)
                if any(int(part) > 255 for part in match.groups()) or text in NOT_CLIENTS:
                    continue  # a version label or the like, not an address
                if ipaddress.ip_address(text) not in LOOPBACK:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {text}")
            for match in FSTRING_START.finditer(line):
                if match.group(1) != "127":
                    found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    return found


def test_no_ipv4_literal_in_tests_bench_or_seed_leaves_loopback():
    assert off_machine_literals() == []


def test_the_check_finds_what_it_is_looking_for(tmp_path, monkeypatch):
    # Off-machine literals for the check to find, put together here so that this file, which
    # the check also reads, holds none itself (nothing ever connects to them: they are only scanned).
    private, public_prefix = ".".join(["10", "0", "0", "1"]), "192"
    bad = tmp_path / "bad.py"
    bad.write_text(
        f'a = "{private}"\nb = f"{public_prefix}.{{n}}.0.1"\nc = "18.523.00"\nd = "127.0.0.1"\ne = "999.1.1.1"\n'
    )
    monkeypatch.setattr(f"{__name__}.SCANNED", [bad])
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert off_machine_literals() == [f"bad.py:1: {private}", f'bad.py:2: f"{public_prefix}.{{']


@pytest.mark.django_db
def test_the_test_factories_give_loopback_addresses():
    from tests.agents_app.factories import add_clients, make_domain
    from tests.updates_app.schedule_fleet import make_fleet

    clients = [*add_clients(make_domain("Factory"), 300), *make_fleet(300)]
    assert all(ipaddress.ip_address(c.ip_address) in LOOPBACK for c in clients)
