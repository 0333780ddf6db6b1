"""mark_bad_version: the file the reference agents read, and its validation."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from agent_api.simulator.agent import AgentSpec, SimAgent
from agent_api.simulator.fleet import Fleet
from updates_app.components import component_download, component_resolve
from updates_app.version_labels import version_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def marks(settings, tmp_path, component_storage):
    settings.SIMULATOR_BAD_VERSIONS_FILE = tmp_path / "bad.json"
    return settings.SIMULATOR_BAD_VERSIONS_FILE


def test_it_marks_the_next_version_and_a_chosen_share_of_agents_is_hit(marks):
    first = component_download(component=component_resolve("virus_pattern"))
    call_command("mark_bad_version", component="Virus Pattern", next=True, share=30, mode="silent")
    nxt = version_label(first.number + 1)
    assert json.loads(marks.read_text()) == {"virus_pattern": {nxt: {"share": 30, "mode": "silent"}}}
    fleet = Fleet(server_url="http://127.0.0.1:1", enrollment_secret="x", specs=[], bad_versions_file=marks)
    agents = [SimAgent(fleet, AgentSpec(hostname=f"pc-{i}"), i) for i in range(400)]
    faults = [fleet.fault_for(a, "virus_pattern", nxt) for a in agents]
    assert set(faults) == {"silent", None}
    assert 80 < faults.count("silent") < 160
    # Stable: the same agents every time; other versions hurt nobody.
    assert faults == [fleet.fault_for(a, "virus_pattern", nxt) for a in agents]
    assert fleet.fault_for(agents[0], "virus_pattern", version_label(first.number)) is None
    call_command("mark_bad_version", component="virus_pattern", next=True, clear=True)
    assert json.loads(marks.read_text()) == {"virus_pattern": {}}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"component": "nope", "next": True}, "unknown component"),
        ({"component": "Virus Pattern", "next": True, "share": 0}, "--share must be a whole percent from 1 to 100"),
        ({"component": "Virus Pattern", "label": "18.999.00"}, "The server has no Virus Pattern version"),
        ({"component": "Virus Pattern", "label": "abc"}, "is not a version such as"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(marks, options, message):
    component_download(component=component_resolve("virus_pattern"))
    with pytest.raises(CommandError, match=message):
        call_command("mark_bad_version", **options)
    assert not marks.exists()
