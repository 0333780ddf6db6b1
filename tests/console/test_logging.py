"""Logs an operator can read: one line per claim, new run, give-up and settings change; JSON on request."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

import pytest
from django.utils import timezone

from console.audit import audit_record
from console.logging import JsonFormatter
from tests.console.test_settings_env import run_manage
from tests.updates_app.conftest import component_storage, domain, fleet, make_client  # noqa: F401
from updates_app.components import component_download, component_resolve
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun
from updates_app.tasks import send_batch


def test_the_json_formatter_writes_one_object_per_line_with_extras_and_the_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("console.test", logging.ERROR, __file__, 1, "sent %d", (3,), sys.exc_info())
    record.run_id = 7
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "console.test" and entry["message"] == "sent 3"
    assert entry["run_id"] == 7 and entry["time"].endswith("+00:00")
    assert entry["exception"].startswith("Traceback") and "ValueError: boom" in entry["exception"]


def test_log_format_json_makes_every_line_json():
    result = run_manage(
        "shell", "-c", "import logging; logging.getLogger('console.probe').warning('hello %s', 'operator')",
        LOG_FORMAT="json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert {"logger": "console.probe", "message": "hello operator", "level": "WARNING"}.items() <= lines[-1].items()


def test_a_bad_log_format_or_level_names_the_variable():
    for variable, value in (("LOG_FORMAT", "xml"), ("LOG_LEVEL", "loud")):
        result = run_manage("check", **{variable: value})
        assert result.returncode != 0 and variable in result.stderr


@pytest.mark.django_db
def test_a_settings_change_is_one_line(caplog, admin_user_obj):
    with caplog.at_level(logging.INFO, logger="console.audit"):
        audit_record(actor=admin_user_obj, action="automatic_update.save", target="Automatic Update settings",
                     changes={"frequency": {"old": "daily", "new": "weekly"}, "weekday": {"old": None, "new": 1}})  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.name == "console.audit"]
    assert lines == ["automatic_update.save by root: Automatic Update settings (frequency, weekday)"]


@pytest.mark.django_db
def test_a_new_run_is_one_line_when_committed(caplog, component_storage, django_capture_on_commit_callbacks):  # noqa: F811
    engine = "updates_app.engine.runs"
    with caplog.at_level(logging.INFO, logger=engine), django_capture_on_commit_callbacks(execute=True):
        version = component_download(component=component_resolve("virus_pattern"))
    run = UpdateRun.objects.get(component_version=version)
    lines = [r.getMessage() for r in caplog.records if r.name == engine]
    assert lines == [f"new event-triggered run #{run.pk} for {version}: 0 clients"]


@pytest.mark.django_db
def test_a_give_up_is_one_line(caplog, make_client, settings):  # noqa: F811
    settings.NOTIFY_MAX_ATTEMPTS = 2
    client = make_client(down=True)  # connections refused
    run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    now = timezone.now()
    # As a claim leaves it: sending, its last attempt counted, under the claim's token.
    Delivery.objects.create(
        run=run, client=client, status=DeliveryStatus.SENDING, attempts=2, next_attempt_at=now,
        lease_expires_at=now + dt.timedelta(minutes=3), claim_token="claim-1",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="updates_app.tasks"):
        send_batch("claim-1")
    assert Delivery.objects.get(run=run).status == DeliveryStatus.GAVE_UP
    lines = [r.getMessage() for r in caplog.records if r.name == "updates_app.tasks"]
    assert lines == ["gave up 1 deliveries after 2 failed attempts"]
