"""Components, the Automatic Update settings, update runs and deliveries."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from updates_app.version_labels import version_label


class Frequency(models.TextChoices):
    MINUTES = "minutes", "Minute(s)"
    HOURS = "hours", "Hour(s)"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


# Which schedule fields each frequency uses (``frequency`` itself always applies).
# The form, the save service, the preview and the configuration document all read
# this table; a field missing from a frequency's row is neither validated nor
# saved nor sent for it.
FREQUENCY_FIELDS: dict[str, tuple[str, ...]] = {
    Frequency.MINUTES: ("interval_minutes", "config_once_per_day"),
    Frequency.HOURS: ("interval_hours", "config_once_per_day"),
    Frequency.DAILY: ("start_time", "period_hours"),
    Frequency.WEEKLY: ("start_time", "period_hours", "weekday"),
}


class Weekday(models.IntegerChoices):
    # Python's date.weekday() numbering.
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class AutoUpdateSettings(models.Model):
    """The server's Automatic Update settings: a single row (pk=1).

    Defaults for a new server (what ``load()`` creates):

    - event-triggered: notify clients immediately after the server downloads a
      new component (roaming and offline clients not included), let clients
      that restart update, no Scan Now after updating;
    - schedule: Daily at 12:00 (server time zone) spread over 2 hours; the
      Minute(s)/Hour(s) intervals start at 30 minutes / 1 hour, with
      configurations fetched only once per day (the seed's recommendation);
      no weekday until Weekly is chosen.

    Fields that do not apply to the chosen frequency keep their stored value
    (see updates_app/autoupdate.py); the configuration document clients
    apply contains only the fields that apply.
    """

    # Event-triggered update
    notify_on_download = models.BooleanField(
        "Initiate component update on clients immediately after the server downloads a new component",
        default=True,
        help_text=(
            "The server notifies clients to update as soon as it completes an update. Frequently updated clients "
            "only need to download incremental patterns, thus reducing the time it takes to complete the update. "
            "However, updating frequently may adversely affect the server's performance, especially if you have a "
            "large number of clients updating at the same time."
        ),
    )
    include_roaming_offline = models.BooleanField(
        "Include roaming and offline client(s)",
        default=False,
        help_text="If you have clients on roaming mode and you want these clients to update as well, select this option.",
    )
    update_on_restart = models.BooleanField(
        "Let clients initiate component update when they restart and connect to the server "
        "(roaming clients are excluded)",
        default=True,
        help_text=(
            "A client that missed an update immediately downloads components when it establishes connection with "
            "the server. A client may miss an update if it is offline or if the computer where it is installed is "
            "not up and running."
        ),
    )
    scan_after_update = models.BooleanField(
        "Perform Scan Now after updating (excluding roaming clients)",
        default=False,
        help_text=(
            "The server notifies clients to scan after an event-triggered update. Consider enabling this option if "
            "a particular update is a response to a security risk that has already spread within the network."
        ),
    )

    # Schedule-based update
    frequency = models.CharField(
        "Update frequency",
        max_length=8,
        choices=Frequency.choices,
        default=Frequency.DAILY,
        help_text="How often clients with the scheduled update privilege perform scheduled update.",
    )
    interval_minutes = models.PositiveSmallIntegerField(
        "Every",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(59)],
        help_text="1 to 59 minutes.",
    )
    interval_hours = models.PositiveSmallIntegerField(
        "Every",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(24)],
        help_text="1 to 24 hours.",
    )
    config_once_per_day = models.BooleanField(
        "Update client configurations only once per day",
        default=True,
        help_text=(
            "If you do not select this option, the client retrieves both the updated components and any updated "
            "configuration files available on the server at the interval specified. If you select this option, "
            "clients update only the components at the interval specified, and the configuration files once per day."
        ),
    )
    # Read in settings.TIME_ZONE (the server's time zone), not UTC: a wall-clock time.
    start_time = models.TimeField(
        "Start time",
        default=dt.time(12, 0),
        help_text="HH:MM, in the server's time zone: the schedule starts at this time on the server's clock.",
    )
    period_hours = models.PositiveSmallIntegerField(
        "Time period",
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(24)],
        help_text=(
            "1 to 24 hours. The server notifies all online clients at random moments from the start time until "
            "the end of this period, so they do not all connect to the server at once. For example, with a start "
            "time of 12:00 and a time period of 2 hours, clients are notified from 12:00 until 14:00."
        ),
    )
    weekday = models.PositiveSmallIntegerField("Day of the week", choices=Weekday.choices, null=True, blank=True)

    # Optimistic concurrency: a save must name the revision it was edited from.
    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name = "Automatic Update settings"
        verbose_name_plural = "Automatic Update settings"
        # The database refuses what the form refuses, whoever writes the row.
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="autoupdate_singleton"),
            models.CheckConstraint(condition=models.Q(frequency__in=Frequency.values), name="autoupdate_frequency"),
            models.CheckConstraint(
                condition=models.Q(interval_minutes__gte=1, interval_minutes__lte=59), name="autoupdate_minutes_range"
            ),
            models.CheckConstraint(
                condition=models.Q(interval_hours__gte=1, interval_hours__lte=24), name="autoupdate_hours_range"
            ),
            models.CheckConstraint(
                condition=models.Q(period_hours__gte=1, period_hours__lte=24), name="autoupdate_period_range"
            ),
            models.CheckConstraint(
                condition=models.Q(weekday__isnull=True) | models.Q(weekday__gte=0, weekday__lte=6),
                name="autoupdate_weekday_range",
            ),
            models.CheckConstraint(
                condition=~models.Q(frequency=Frequency.WEEKLY) | models.Q(weekday__isnull=False),
                name="autoupdate_weekly_has_weekday",
            ),
            models.CheckConstraint(
                condition=models.Q(notify_on_download=True) | models.Q(include_roaming_offline=False),
                name="autoupdate_suboption_needs_parent",
            ),
        ]

    def __str__(self) -> str:
        return "Automatic Update settings"

    @classmethod
    def load(cls) -> AutoUpdateSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


def _port_ok(prefix: str) -> models.Q:
    return models.Q(**{f"{prefix}_port__isnull": True}) | models.Q(
        **{f"{prefix}_port__gte": 1, f"{prefix}_port__lte": 65535}
    )


class ProxySettings(models.Model):
    """Proxy for client component updates (Administration > Proxy Settings): a single row (pk=1).

    Which proxy a client uses (agent_api/simulator/proxy.py follows these rules):
    automatic update uses the automatic proxy settings first, then the internal
    proxy, else none; "Update Now" uses the automatic settings first, then the
    proxy the client user configured (with the proxy configuration privilege),
    else none. Clients that download from the ActiveUpdate server reach it
    through the external proxy. Passwords are stored encrypted
    (console/encryption.py) and never shown back.
    """

    # Automatic proxy settings
    auto_detect = models.BooleanField(
        "Automatically detect settings",
        default=False,
        help_text="Clients look for a proxy configuration script on their network (WPAD) before anything else.",
    )
    use_pac = models.BooleanField(
        "Use automatic configuration script",
        default=False,
        help_text="Clients read this proxy auto-configuration (PAC) file to choose a proxy for each address.",
    )
    pac_url = models.CharField("Address", max_length=500, blank=True, help_text="An http:// or https:// address.")

    # Internal proxy: how clients connect to the server.
    internal_enabled = models.BooleanField(
        "Use the following proxy settings when clients connect to the server",
        default=False,
        help_text="Clients use this proxy for automatic updates when no automatic proxy setting applies.",
    )
    internal_host = models.CharField("Proxy server", max_length=253, blank=True)
    internal_port = models.PositiveIntegerField("Port", null=True, blank=True)
    internal_username = models.CharField("User name", max_length=150, blank=True)
    internal_password = models.CharField(max_length=500, blank=True, editable=False)  # encrypted

    # External proxy: how clients that download from the ActiveUpdate server reach it.
    external_enabled = models.BooleanField(
        "Use the following proxy settings when clients download from the ActiveUpdate server",
        default=False,
        help_text='Used by clients with "Clients download updates from the ActiveUpdate server" when they fall back '
        "to the ActiveUpdate server.",
    )
    external_host = models.CharField("Proxy server", max_length=253, blank=True)
    external_port = models.PositiveIntegerField("Port", null=True, blank=True)
    external_username = models.CharField("User name", max_length=150, blank=True)
    external_password = models.CharField(max_length=500, blank=True, editable=False)  # encrypted

    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        verbose_name = "proxy settings"
        verbose_name_plural = "proxy settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="proxy_singleton"),
            models.CheckConstraint(condition=_port_ok("internal"), name="proxy_internal_port_range"),
            models.CheckConstraint(condition=_port_ok("external"), name="proxy_external_port_range"),
            models.CheckConstraint(
                condition=models.Q(internal_enabled=False)
                | (~models.Q(internal_host="") & models.Q(internal_port__isnull=False)),
                name="proxy_internal_needs_address",
            ),
            models.CheckConstraint(
                condition=models.Q(external_enabled=False)
                | (~models.Q(external_host="") & models.Q(external_port__isnull=False)),
                name="proxy_external_needs_address",
            ),
            models.CheckConstraint(
                condition=models.Q(use_pac=False) | ~models.Q(pac_url=""), name="proxy_pac_needs_address"
            ),
        ]

    def __str__(self) -> str:
        return "Proxy settings"

    @classmethod
    def load(cls) -> ProxySettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class ComponentKind(models.TextChoices):
    PATTERN = "pattern", "Pattern file"
    ENGINE = "engine", "Scan engine"
    # Not components in the strict sense: clients with "Clients can update
    # components but not upgrade the client program or deploy hot fixes" skip them.
    PROGRAM = "program", "Client program"
    HOTFIX = "hotfix", "Hot fix"


class Component(models.Model):
    """A security component the server distributes (Virus Pattern, Virus Scan Engine, ...)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=ComponentKind.choices, default=ComponentKind.PATTERN)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ComponentVersionQuerySet(models.QuerySet["ComponentVersion"]):
    def offered(self) -> ComponentVersionQuerySet:
        """Versions the server may hand out: not withdrawn by a rollback (updates_app.rollback)."""
        return self.filter(withdrawn_at__isnull=True)


class ComponentVersion(models.Model):
    """One downloaded version of a component, its payload on disk."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="versions")
    # Monotonic per component; the display form (e.g. "18.523.00") is derived.
    number = models.PositiveIntegerField()
    file_path = models.CharField(max_length=500, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    released_at = models.DateTimeField()
    # Set when an administrator rolled the component back to an older version:
    # a withdrawn version is never offered again (manifest, download, restart
    # update, schedule). The component's current version is its newest
    # version that is not withdrawn.
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    objects = ComponentVersionQuerySet.as_manager()

    class Meta:
        ordering = ["component", "-number"]
        permissions = [("rollback_component", "Can roll back components (withdraw newer versions)")]
        constraints = [models.UniqueConstraint(fields=["component", "number"], name="component_version_unique")]

    def __str__(self) -> str:
        return f"{self.component} {self.label}"

    @property
    def label(self) -> str:
        """The version as administrators and agents see it, e.g. "18.523.00"."""
        return version_label(self.number)


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
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    # While status is "sending": the claim expires at this time, after which
    # another worker may take the row over (its attempt already counted).
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


class ClientComponent(models.Model):
    """One client's version of one component, as a number the database can compare.

    Kept by ``updates_app.compliance`` whenever a client's reported versions
    change (check-in, report, seed); ``Client.component_versions`` keeps the
    agent's own words. Only active (not revoked) clients have rows.
    """

    client = models.ForeignKey("agents_app.Client", on_delete=models.CASCADE, related_name="component_rows")
    # The slug as the agent reported it: it may name a component the server does not hold.
    component = models.SlugField(max_length=50)
    # None: the agent reported something that is not a version (it counts as inconsistent).
    number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "component"], name="client_component_unique")]
        indexes = [models.Index(fields=["component", "number"], name="client_component_version_idx")]

    def __str__(self) -> str:
        return f"{self.client_id} {self.component}={self.number}"


class VersionProfile(models.Model):
    """How many active clients report exactly this set of versions (a tally, see updates_app.compliance).

    A fleet holds few distinct sets (most clients are current), so the counts
    of every screen come from these few rows instead of from every client.
    """

    digest = models.CharField(max_length=64, unique=True)
    # {component slug: number or None}; {} for clients that reported nothing.
    versions = models.JSONField(default=dict)
    clients = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.versions}: {self.clients}"


class ClientProfile(models.Model):
    """Which tally an active client is counted in (so a change moves it from one to the other)."""

    client = models.OneToOneField(
        "agents_app.Client", on_delete=models.CASCADE, primary_key=True, related_name="version_profile"
    )
    profile = models.ForeignKey(VersionProfile, on_delete=models.PROTECT, related_name="members")

    def __str__(self) -> str:
        return f"{self.client_id} -> {self.profile_id}"


class RolloutPolicy(models.Model):
    """Staged roll-out of event-triggered updates (an improvement over the original): a single row (pk=1).

    Off by default: the seed's behaviour (the whole fleet at once) stays the
    default. When on, a new component version goes to ring 1 (chosen domains
    and/or a stable random share of the eligible clients), then after a soak
    time to ring 2 (optional), then to everyone else, unless the ring's
    reports pass the threshold, which halts the roll-out (updates_app.engine.rings).
    """

    enabled = models.BooleanField(
        "Roll new components out in stages",
        default=False,
        help_text="Notify a first ring of clients, watch their reports for a soak time, then the next ring.",
    )
    ring1_domains = models.ManyToManyField(
        "agents_app.Domain",
        blank=True,
        related_name="+",
        verbose_name="Ring 1 domains",
        help_text="Every client under these domains is in the first ring.",
    )
    ring1_percent = models.PositiveSmallIntegerField(
        "Ring 1 share",
        default=5,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="0 to 100 % of the eligible clients, chosen at random but always the same ones for a client.",
    )
    ring2_percent = models.PositiveSmallIntegerField(
        "Ring 2 share",
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="0 (no second ring) to 100 % of the eligible clients, counting ring 1's random share; above ring 1's.",
    )
    soak_minutes = models.PositiveIntegerField(
        "Soak time",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(2880)],
        help_text="1 to 2880 minutes to watch a ring's reports before the next ring starts.",
    )
    halt_percent = models.PositiveSmallIntegerField(
        "Halt when",
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="1 to 100 % of the ring reported a failed update or fell silent after updating ...",
    )
    halt_min_count = models.PositiveIntegerField(
        "and at least",
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(100000)],
        help_text="... this many clients (1 or more), so one client alone cannot halt a small ring.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "staged roll-out policy"
        verbose_name_plural = "staged roll-out policy"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="rollout_policy_singleton")]

    def __str__(self) -> str:
        return "Staged roll-out policy"

    @classmethod
    def load(cls) -> RolloutPolicy:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class RolloutState(models.TextChoices):
    ACTIVE = "active", "Rolling out"
    HALTED = "halted", "Halted"
    STOPPED = "stopped", "Stopped"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"


# While a roll-out is in one of these states its version is offered only to
# the clients of its started rings.
HOLDING_STATES = (RolloutState.ACTIVE, RolloutState.HALTED, RolloutState.STOPPED)


class Rollout(models.Model):
    """The staged roll-out of one event-triggered run; its settings are copied from the policy when it starts."""

    run = models.OneToOneField(UpdateRun, on_delete=models.CASCADE, related_name="rollout")
    version = models.ForeignKey(ComponentVersion, on_delete=models.CASCADE, related_name="rollouts")
    state = models.CharField(max_length=12, choices=RolloutState.choices, default=RolloutState.ACTIVE)
    ring1_domain_ids = models.JSONField(default=list)
    ring1_percent = models.PositiveSmallIntegerField()
    ring2_percent = models.PositiveSmallIntegerField()
    soak_seconds = models.PositiveIntegerField()
    halt_percent = models.PositiveSmallIntegerField()
    halt_min_count = models.PositiveIntegerField()
    include_roaming_offline = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    halted_at = models.DateTimeField(null=True, blank=True)
    # What halted it: [{"client", "hostname", "ring", "kind", "message", "at"}, ...]
    halt_evidence = models.JSONField(default=list, blank=True)
    halt_summary = models.CharField(max_length=300, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Staged roll-out of {self.version}"


class RolloutRing(models.Model):
    """One ring of a roll-out. ``started_at`` is set once, by a conditional UPDATE, in the transaction that notifies it."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="rings")
    number = models.PositiveSmallIntegerField()
    # The last ring is "everyone else".
    final = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    soak_ends_at = models.DateTimeField(null=True, blank=True)
    clients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["rollout", "number"]
        constraints = [models.UniqueConstraint(fields=["rollout", "number"], name="rollout_ring_unique")]

    def __str__(self) -> str:
        return f"ring {self.number} of {self.rollout}"


class RolloutMember(models.Model):
    """A client notified in a ring of a roll-out; (rollout, client) is unique, so no client is in two rings."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="members")
    ring = models.ForeignKey(RolloutRing, on_delete=models.CASCADE, related_name="members")
    client = models.ForeignKey("agents_app.Client", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rollout", "client"], name="rollout_member_unique")]

    def __str__(self) -> str:
        return f"client {self.client_id} in ring {self.ring_id}"
