"""deploy/: the systemd units pass systemd-analyze and run what bin/run runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _unavailable

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
INSTALL = "/srv/update-console"


def exec_start(unit: Path) -> str:
    return re.search(r"^ExecStart=(.*)$", unit.read_text(), re.M).group(1)


def test_there_is_a_unit_for_web_worker_and_beat():
    assert [u.name for u in UNITS] == [
        "update-console-beat.service",
        "update-console-web.service",
        "update-console-worker.service",
    ]


def test_systemd_analyze_verify_is_clean(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        _unavailable("needs systemd-analyze")
    venv_bin = Path(sys.executable).parent
    for unit in UNITS:
        # Point the units at this checkout: verify checks that ExecStart's program exists.
        text = unit.read_text().replace(f"{INSTALL}/.venv/bin", str(venv_bin)).replace(INSTALL, str(ROOT))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u.name) for u in UNITS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # warnings (an unknown key, a bad value) count too


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_the_units_run_the_procfile_commands(process):
    """One stack: the demo's processes are production's (only the worker's concurrency differs)."""
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    demo = procfile[process].removeprefix("exec ").replace(".venv/bin/", f"{INSTALL}/.venv/bin/")
    production = exec_start(ROOT / "deploy" / "systemd" / f"update-console-{process}.service")
    assert re.sub(r"--concurrency \d+", "", production) == re.sub(r"--concurrency \d+", "", demo)


def test_the_example_environment_names_only_documented_variables():
    readme = (ROOT / "README.md").read_text()
    names = re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / "deploy" / "console.env.example").read_text(), re.M)
    assert names and [n for n in names if f"`{n}`" not in readme] == []
