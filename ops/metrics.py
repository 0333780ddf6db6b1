"""The Prometheus endpoint, /metrics (prometheus-client text format).

What the database holds is computed from it at scrape time, as gauges: every
web process, and every web server of an installation, gives the same answer,
whichever process Prometheus reaches, and a restart loses nothing.

- ``update_console_deliveries{status}``: notifications by status.
- ``update_console_deliveries_due`` and ``..._oldest_due_delivery_age_seconds``:
  the backlog the dispatcher has not claimed yet, and how long its oldest
  row has waited (a growing age means workers fall behind or are down).
- ``update_console_deliveries_lease_expired``: notifications whose worker
  stopped answering: claimed, no outcome recorded, and their lease run out.
  The dispatcher's next round sends them again; a value that stays above 0
  means no worker or beat is taking them over.
- ``update_console_notification_attempts`` / ``..._failed_attempts`` /
  ``update_console_notifications_delivered``: push attempts counted on the
  delivery rows, those that failed, and deliveries that reached their client;
  ``update_console_notification_resends_after_lost_worker``: attempts sent
  again because their worker was lost (not counted as attempts, see
  updates_app/engine/retry.py). Gauges: deleting old runs lowers them.
- ``update_console_runs_in_progress{trigger}``: runs with a notification not
  yet delivered, given up, superseded or cancelled.
- ``update_console_clients{status}``: registered clients by connection status.

Check-ins and registrations leave no row each (a check-in only moves
``last_contact_at``), so they are counted as they are answered, by
``update_console_agent_checkins_total{code}`` and
``update_console_agent_registrations_total{code}``. Under gunicorn several
worker processes answer, so the counters live in prometheus-client's
multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by deploy/gunicorn.conf.py)
and a scrape sums every process of this web server; each web server is its
own scrape target.

Closed to the public: METRICS_TOKEN (``Authorization: Bearer ...``) or an
address in METRICS_ALLOWED_NETWORKS.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Any

from django.conf import settings
from django.db.models import Case, Count, Exists, F, IntegerField, Min, OuterRef, Q, Sum, When
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

PREFIX = "update_console"
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# In multiprocess mode the values go to files and are read back by
# MultiProcessCollector; otherwise this registry holds them in memory.
_counters = CollectorRegistry(auto_describe=True)
CHECKINS = Counter(f"{PREFIX}_agent_checkins", "Agent check-ins answered, by HTTP status", ["code"], registry=_counters)
REGISTRATIONS = Counter(
    f"{PREFIX}_agent_registrations", "Agent registrations answered, by HTTP status", ["code"], registry=_counters
)
_COUNTED = {"/agent/v1/checkin": CHECKINS, "/agent/v1/register": REGISTRATIONS}
# The labelled series by (path, status): labels() validates and locks on each call, once per check-in.
_series: dict[tuple[str, int], Any] = {}


def count_agent_request(path: str, status_code: int) -> None:
    counter = _COUNTED.get(path)
    if counter is None:
        return
    series = _series.get((path, status_code))
    if series is None:
        series = _series[(path, status_code)] = counter.labels(code=str(status_code))
    series.inc()


class DatabaseCollector:
    """Gauges computed from the delivery, run and client rows at scrape time (a few aggregate queries)."""

    def collect(self):
        from agents_app.models import Client, ConnectionStatus
        from updates_app.engine.claim import claims_held
        from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

        now = timezone.now()
        open_statuses = [DeliveryStatus.PENDING, DeliveryStatus.RETRYING]

        by_status = dict.fromkeys(DeliveryStatus.values, 0)
        for row in Delivery.objects.order_by().values("status").annotate(n=Count("id")):
            by_status[row["status"]] = row["n"]
        deliveries = GaugeMetricFamily(
            f"{PREFIX}_deliveries", "Notifications (delivery rows) by status", labels=["status"]
        )
        for status, n in by_status.items():
            deliveries.add_metric([status], n)
        yield deliveries

        # Due: what the dispatcher would claim now (open, pushable and due, or
        # sending with an expired lease); the same rule as updates_app's claim.
        due = Delivery.objects.order_by().aggregate(
            open_due=Count("id", filter=Q(status__in=open_statuses, push=True, next_attempt_at__lte=now)),
            open_since=Min("next_attempt_at", filter=Q(status__in=open_statuses, push=True, next_attempt_at__lte=now)),
            lease_due=Count("id", filter=Q(status=DeliveryStatus.SENDING, lease_expires_at__lte=now)),
            lease_since=Min("lease_expires_at", filter=Q(status=DeliveryStatus.SENDING, lease_expires_at__lte=now)),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_deliveries_due",
            "Notifications due and not yet claimed",
            value=due["open_due"] + due["lease_due"],
        )
        since = [t for t in (due["open_since"], due["lease_since"]) if t is not None]
        age = (now - min(since)).total_seconds() if since else 0.0
        yield GaugeMetricFamily(
            f"{PREFIX}_oldest_due_delivery_age_seconds", "How long the oldest due notification has waited", value=age
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_deliveries_lease_expired",
            "Notifications whose worker stopped answering (claimed, no outcome recorded, lease run out)",
            value=claims_held(now=now).lost,
        )

        in_hand = Q(status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.SENDING], attempts__gt=0)
        attempts = Delivery.objects.order_by().aggregate(
            made=Sum("attempts", default=0),
            # A delivered row's last attempt succeeded and a sending row's is
            # under way; every other counted attempt failed.
            failed=Sum(
                Case(When(in_hand, then=F("attempts") - 1), default=F("attempts"), output_field=IntegerField()),
                default=0,
            ),
            resent=Sum("lost_leases", default=0),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_notification_attempts", "Push attempts counted on the delivery rows", value=attempts["made"]
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_notification_resends_after_lost_worker",
            "Attempts sent again, with the same webhook-id, because their worker was lost before recording an outcome",
            value=attempts["resent"],
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_notification_failed_attempts",
            "Push attempts that failed (no connection, a timeout, an answer other than 2xx)",
            value=attempts["failed"],
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_notifications_delivered",
            "Notifications that reached their client (a 2xx answer, or handed over at check-in)",
            value=by_status[DeliveryStatus.DELIVERED],
        )

        unfinished = Delivery.objects.filter(
            run=OuterRef("pk"), status__in=[*open_statuses, DeliveryStatus.SENDING]
        ).order_by()
        runs = dict.fromkeys(RunTrigger.values, 0)
        for run_row in (
            UpdateRun.objects.order_by()
            .filter(Exists(unfinished), cancelled_at=None)
            .values("trigger")
            .annotate(n=Count("id"))
        ):
            runs[run_row["trigger"]] = run_row["n"]
        in_progress = GaugeMetricFamily(
            f"{PREFIX}_runs_in_progress", "Update runs with notifications still to deliver", labels=["trigger"]
        )
        for trigger, n in runs.items():
            in_progress.add_metric([trigger], n)
        yield in_progress

        clients = dict.fromkeys(ConnectionStatus.values, 0)
        for row in Client.objects.order_by().values("status").annotate(n=Count("id")):
            clients[row["status"]] = row["n"]
        family = GaugeMetricFamily(f"{PREFIX}_clients", "Registered clients by connection status", labels=["status"])
        for status, n in clients.items():
            family.add_metric([status], n)
        yield family


def registry() -> CollectorRegistry:
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector())
    if MULTIPROCESS:
        MultiProcessCollector(scrape)
    else:
        for collector in (CHECKINS, REGISTRATIONS):
            scrape.register(collector)
    return scrape


def allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    if not settings.METRICS_ALLOWED_NETWORKS:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


def view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse(
            "Forbidden: send Authorization: Bearer <METRICS_TOKEN>, or call from METRICS_ALLOWED_NETWORKS.\n",
            status=403,
            content_type="text/plain",
        )
    response = HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
