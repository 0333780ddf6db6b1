"""Update runs and their deliveries: the delivery engine's rows (one per run and client)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from updates_app.models.components import ComponentVersion


class RunTrigger(models.TextChoices):
    EVENT = "event", "Event-triggered"
    SCHEDULE = "schedule", "Scheduled"
    MANUAL = "manual", "Manual"
    # Clients told to update when they restarted and checked in with outdated
    # components (one run per day collects them; see updates_app.engine.handover).
    RESTART = "restart", "Client restart"
    # Clients holding a withdrawn version, told to go back to the chosen one
    # (updates_app.rollback); component_version is the version rolled back to.
    ROLLBACK = "rollback", "Rollback"


class UpdateRun(models.Model):
    """One request to a set of clients to update (and maybe scan)."""

    trigger = models.CharField(max_length=8, choices=RunTrigger.choices)
    scan_after = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The component version that caused an event-triggered run.
    component_version = models.ForeignKey(ComponentVersion, null=True, blank=True, on_delete=models.SET_NULL)
    # Scheduled runs: one per window, so several beats cannot open it twice.
    window_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The run's progress counts, kept on the run (forever) once it is finished
    # and settled (updates_app/retention.py); until then they are counted from
    # the deliveries, which go after DELIVERY_RETENTION_DAYS. A late report of
    # an update still adds to kept_updated (engine/reports.py).
    counts_kept_at = models.DateTimeField(null=True, blank=True)
    kept_total = models.PositiveIntegerField(null=True, blank=True)
    kept_pending = models.PositiveIntegerField(null=True, blank=True)
    kept_delivered = models.PositiveIntegerField(null=True, blank=True)
    kept_retrying = models.PositiveIntegerField(null=True, blank=True)
    kept_gave_up = models.PositiveIntegerField(null=True, blank=True)
    kept_stopped = models.PositiveIntegerField(null=True, blank=True)
    kept_updated = models.PositiveIntegerField(null=True, blank=True)
    details_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} run #{self.pk}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    RETRYING = "retrying", "Retrying"
    GAVE_UP = "gave_up", "Gave up"
    SUPERSEDED = "superseded", "Superseded"
    CANCELLED = "cancelled", "Cancelled"


# Deliveries still waiting to be sent: a new run supersedes them, a check-in hands them over.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
# Deliveries not finished: open, or being sent. A claim only ever looks among
# these, through a partial index, so millions of finished rows kept for the
# retention period cost it nothing (the claim repeats this exact condition:
# SQLite uses a partial index only for a query that names its WHERE term).
UNFINISHED_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.SENDING)


class Delivery(models.Model):
    """One notification of one client in one run; the database is its source of truth."""

    run = models.ForeignKey(UpdateRun, on_delete=models.CASCADE, related_name="deliveries")
    client = models.ForeignKey("agents_app.Client", on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    # Attempts whose outcome counts under the retry rule (updates_app/engine/retry.py).
    attempts = models.PositiveSmallIntegerField(default=0)
    # Times a worker was lost while sending this notification (its lease ran
    # out, no outcome recorded) and the same attempt was sent again; capped by
    # NOTIFY_MAX_LOST_LEASES, apart from ``attempts``.
    lost_leases = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    # While status is "sending": the claim expires at this time, after which
    # another worker may take the row over and send the same attempt again.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Which claim holds the row while "sending": a worker records outcomes only
    # for rows still carrying its token, so a re-claimed row is not overwritten.
    claim_token = models.CharField(max_length=32, blank=True, db_index=True)
    # False: the client cannot be reached (behind NAT); it gets the delivery
    # in its next check-in answer and is never pushed to.
    push = models.BooleanField(default=True)
    # Delivered in the answer to a check-in rather than by a push (also after
    # pushes failed: a retrying notification is handed over when the client
    # checks in), so the screens can say how it arrived.
    at_checkin = models.BooleanField("handed over at check-in", default=False)
    # This client is not asked to scan even when its run asks for it: roaming
    # clients never are (SPEC 3.2). The notification says scan_after =
    # run.scan_after and not no_scan.
    no_scan = models.BooleanField(default=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # When the client reported that it updated in answer to this notification.
    update_reported_at = models.DateTimeField(null=True, blank=True)
    # When the client reported that its update failed (and what it said): the
    # evidence a staged roll-out watches (updates_app.engine.rings).
    failure_reported_at = models.DateTimeField(null=True, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "client"], name="delivery_unique_run_client")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=models.Q(status__in=UNFINISHED_STATUSES),
                name="delivery_unfinished_idx",
            ),
            # The check-in's "anything to hand over?" probe (engine/handover.py):
            # open rows only, so it stays small and index-only however many
            # finished deliveries the table holds.
            models.Index(
                fields=["client", "status", "next_attempt_at"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="delivery_open_client_idx",
            ),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.run} -> {self.client_id}: {self.status}"
