"""Words, not identifiers: counts, durations, moments, audit entries and CSV cells as people read them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from agents_app.privileges import privileges_save, selection_resolve
from agents_app.services import domain_create
from console import wording
from console.exports import safe_cell
from console.models import AuditEntry
from tests.agents_app.factories import add_clients
from updates_app.autoupdate import autoupdate_settings_save
from updates_app.models import AutoUpdateSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("count", "word", "expected"),
    [
        (0, "client", "0 clients"),
        (1, "client", "1 client"),
        (100040, "client", "100,040 clients"),
        (1, "delivery", "1 delivery"),
        (2, "delivery", "2 deliveries"),
        (3, "entry", "3 entries"),
    ],
)
def test_counts_take_the_right_plural(count, word, expected):
    assert wording.plural(count, word) == expected


@pytest.mark.parametrize(
    ("seconds", "duration", "every"),
    [
        (20, "20 seconds", "every 20 seconds"),
        (60, "1 minute", "every minute"),
        (90, "1 minute 30 seconds", "every 1 minute 30 seconds"),
        (900, "15 minutes", "every 15 minutes"),
        (3600, "1 hour", "every hour"),
        (3 * 3600 + 60 * 30 + 5, "3 hours 30 minutes", "every 3 hours 30 minutes"),
        (86400 + 7200, "1 day 2 hours", "every 1 day 2 hours"),
        (86400 + 60, "1 day", "every day"),
    ],
)
def test_durations_read_as_words(seconds, duration, every):
    assert wording.duration(seconds) == duration
    assert wording.duration(dt.timedelta(seconds=seconds)) == duration
    assert wording.every(dt.timedelta(seconds=seconds)) == every


def test_one_date_time_format_in_the_server_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    moment = dt.datetime(2026, 11, 26, 3, 58, 7, tzinfo=dt.UTC)
    assert wording.moment(moment) == "2026-11-26 04:58:07 CET"
    assert wording.moment(moment, seconds=False) == "2026-11-26 04:58 CET"
    html = Template("{% load wording %}{{ at|when }}").render(Context({"at": moment}))
    assert html == '<time datetime="2026-11-26T03:58:07+00:00">2026-11-26 04:58:07 CET</time>'


def test_no_template_formats_dates_on_its_own():
    """Every date and time goes through the ``when`` filters; only the histogram's axis shows a bare clock time."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        for match in re.finditer(r'\|date:"([^"]+)"', path.read_text()):
            if match.group(1) not in ("H:i", "l"):
                offenders.append(f"{path.name}: {match.group(0)}")
        if re.search(r"\{\{ [\w.]+_at \}\}", path.read_text()):
            offenders.append(f"{path.name}: a bare datetime")
    assert offenders == []


def test_no_screen_says_client_s_or_delivery_ies():
    pattern = re.compile(r"client\(s\)|delivery\(ies\)|change\(s\)")
    offenders = []
    for folder in ("updates_app", "agents_app", "console", "templates", "static"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".html", ".js") or "migrations" in path.parts or "vendor" in path.parts:
                continue
            for line in path.read_text().splitlines():
                # The seed's own option label keeps its wording.
                if pattern.search(line.replace("Include roaming and offline client(s)", "")):
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()[:80]}")
    assert offenders == []


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("ws-001", "ws-001"),
        (None, ""),
        (True, "yes"),
        (5, "5"),
    ],
)
def test_csv_cells_are_never_formulas(value, cell):
    assert safe_cell(value) == cell


@pytest.mark.django_db
def test_the_audit_log_says_what_happened_in_words(superuser_client, admin_user_obj):
    hq = domain_create(name="Headquarters")
    clients = add_clients(hq, 3)
    for c in clients:
        type(c).objects.filter(pk=c.pk).update(ip_address="127.0.0.1")
    selection = selection_resolve(root=False, domain_ids=[hq.pk])
    privileges_save(
        actor=admin_user_obj,
        selection=selection,
        changes={"scheduled_update_setting": False, "roaming_privilege": True},
    )
    current = AutoUpdateSettings.load()
    autoupdate_settings_save(actor=admin_user_obj, revision=current.revision, values={"scan_after_update": True})
    page = superuser_client.get(reverse("audit-log")).content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Privileges and Other Settings saved" in text and "privileges.save" not in text
    assert "Enable scheduled update (Other Settings tab): on → off" in text
    assert "Enable roaming mode: off → on" in text
    assert "Clients selected: 3" in text and "clients_selected" not in text
    # The clients are named, and the entry links to the list of them.
    assert "Clients: " + ", ".join(sorted(c.hostname for c in clients)) in text
    assert f'href="{reverse("updates:clients")}?domain={hq.pk}"' in page
    assert "Automatic Update settings saved" in text and "automatic_update.save" not in text
    assert "Perform Scan Now after updating" in text
    # The filter offers the actions by their names too.
    assert '<option value="privileges.save">Privileges and Other Settings saved</option>' in page


@pytest.mark.django_db
def test_an_old_entry_without_labels_still_reads_as_words(superuser_client):
    AuditEntry.objects.create(
        action="privileges.save",
        target="2 clients",
        changes={"roaming_privilege": {"old": False, "new": True}, "clients_selected": 2},
        created_at=timezone.now(),
    )
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", superuser_client.get(reverse("audit-log")).content.decode()))
    assert "Roaming privilege: off → on" in text and "Clients selected: 2" in text


@pytest.mark.parametrize(
    ("seconds", "attempts", "words"),
    [(900, 5, "again every 15 minutes, 5 attempts in all"), (60, 3, "again every minute, 3 attempts in all")],
)
def test_the_retry_rule_is_described_in_words(settings, seconds, attempts, words):
    from updates_app.engine import retry

    settings.NOTIFY_RETRY_INTERVAL_SECONDS, settings.NOTIFY_MAX_ATTEMPTS = seconds, attempts
    assert retry.describe() == words


@pytest.mark.django_db
def test_the_dialog_names_a_selection_of_clients_once(superuser_client):
    hq = domain_create(name="hq")
    clients = add_clients(hq, 3)
    page = superuser_client.get(
        reverse("agents:privileges"), {"client": [c.pk for c in clients], "partial": 1}
    ).content.decode()
    assert "Selected: <strong>3 clients</strong>." in page
    page = superuser_client.get(reverse("agents:privileges"), {"domain": hq.pk, "partial": 1}).content.decode()
    assert "Selected: <strong>1 domain (hq)</strong>, 3 clients in all." in page


def test_django_renders_a_bare_datetime_in_the_same_form(settings):
    settings.TIME_ZONE = "UTC"
    moment = dt.datetime(2026, 11, 26, 15, 58, 7, tzinfo=dt.UTC)
    assert Template("{{ at }}").render(Context({"at": moment})) == wording.moment(moment) == "2026-11-26 15:58:07 UTC"


@pytest.mark.django_db
def test_a_manual_update_and_its_cancellation_read_as_words_and_link_to_the_run(superuser_client, admin_user_obj):
    from agents_app.models import Client
    from updates_app.engine.runs import run_cancel, run_create_manual

    add_clients(domain_create(name="hq"), 2)
    run = run_create_manual(created_by=admin_user_obj, clients=Client.objects.all())
    run_cancel(run=run, cancelled_by=admin_user_obj)
    page = superuser_client.get(reverse("audit-log")).content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Manual Update started" in text and "Clients notified: 2" in text
    assert "Update run cancelled" in text and "Deliveries stopped: 2" in text
    assert page.count(f'class="small audit-run" href="{reverse("updates:run-detail", args=[run.pk])}"') == 2
    assert "Run: " not in text
