from __future__ import annotations

import uuid

import pytest

from agents_app.models import Client, ConnectionStatus, Domain
from tests.updates_app.fleet import Fleet


@pytest.fixture
def component_storage(settings, tmp_path):
    """Component files under a temporary folder, with small generated patterns."""
    settings.COMPONENT_STORAGE_DIR = tmp_path / "components"
    settings.COMPONENT_PATTERN_INITIAL_RECORDS = 2000
    settings.COMPONENT_PATTERN_RECORDS_ADDED = 40
    settings.COMPONENT_PATTERN_RECORDS_REMOVED = 4
    return settings.COMPONENT_STORAGE_DIR


@pytest.fixture
def fleet():
    running = Fleet().start()
    yield running
    running.stop()


@pytest.fixture
def domain(db):
    return Domain.objects.create(name="Workstations")


@pytest.fixture
def make_client(domain, fleet):
    """A client whose listener is a fleet agent (or a closed port when down)."""
    counter = iter(range(1, 100000))

    def make(*, status=ConnectionStatus.ONLINE, failures=0, delay=0.0, down=False, **fields):
        client = Client.objects.create(
            domain=domain,
            hostname=fields.pop("hostname", None) or f"pc-{next(counter):05d}",
            ip_address="127.0.0.1",
            status=status,
            **fields,
        )
        agent = fleet.add(str(client.guid), failures=failures, delay=delay, down=down)
        client.listener_port = agent.port
        client.save(update_fields=["listener_port"])
        client.agent = agent
        return client

    return make


@pytest.fixture
def private_queue():
    """A broker queue of this test's own: its tasks go there, and the worker processes it starts read only it.

    Tests run in parallel on one Redis database: a shared queue would hand
    one test's tasks to another test's worker (whose database does not hold
    their rows). Deleted afterwards, with whatever is left in it.
    """
    from console.celery import app

    name = f"test-{uuid.uuid4().hex[:16]}"
    default = app.conf.task_default_queue
    app.conf.task_default_queue = name
    try:
        yield name
    finally:
        app.conf.task_default_queue = default
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(name)
