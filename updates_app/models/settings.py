"""The server's singleton settings rows: Automatic Update and the proxy for client component updates.

Their common part (pk=1, ``load()``, revision, who saved last) is ``SingletonSettings``.
"""

from __future__ import annotations

import datetime as dt

from django.db import models

from updates_app.models.singleton import Range, SingletonSettings


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


# The ranges of the number fields, stated once (validators, check constraints, help texts, form messages).
INTERVAL_MINUTES = Range(1, 59)
INTERVAL_HOURS = Range(1, 24)
PERIOD_HOURS = Range(1, 24)
PORT = Range(1, 65535)


class Weekday(models.IntegerChoices):
    # Python's date.weekday() numbering.
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class AutoUpdateSettings(SingletonSettings):
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
        validators=INTERVAL_MINUTES.validators(),
        help_text=f"{INTERVAL_MINUTES} minutes.",
    )
    interval_hours = models.PositiveSmallIntegerField(
        "Every",
        default=1,
        validators=INTERVAL_HOURS.validators(),
        help_text=f"{INTERVAL_HOURS} hours.",
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
        validators=PERIOD_HOURS.validators(),
        help_text=(
            f"{PERIOD_HOURS} hours. The server notifies all online clients at random moments from the start time until "
            "the end of this period, so they do not all connect to the server at once. For example, with a start "
            "time of 12:00 and a time period of 2 hours, clients are notified from 12:00 until 14:00."
        ),
    )
    weekday = models.PositiveSmallIntegerField("Day of the week", choices=Weekday.choices, null=True, blank=True)

    class Meta:
        verbose_name = "Automatic Update settings"
        verbose_name_plural = "Automatic Update settings"
        # The database refuses what the form refuses, whoever writes the row.
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="autoupdate_singleton"),
            models.CheckConstraint(condition=models.Q(frequency__in=Frequency.values), name="autoupdate_frequency"),
            models.CheckConstraint(
                condition=INTERVAL_MINUTES.check("interval_minutes"), name="autoupdate_minutes_range"
            ),
            models.CheckConstraint(condition=INTERVAL_HOURS.check("interval_hours"), name="autoupdate_hours_range"),
            models.CheckConstraint(condition=PERIOD_HOURS.check("period_hours"), name="autoupdate_period_range"),
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


class ProxySettings(SingletonSettings):
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
    internal_port = models.PositiveIntegerField("Port", null=True, blank=True, validators=PORT.validators())
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
    external_port = models.PositiveIntegerField("Port", null=True, blank=True, validators=PORT.validators())
    external_username = models.CharField("User name", max_length=150, blank=True)
    external_password = models.CharField(max_length=500, blank=True, editable=False)  # encrypted

    class Meta:
        verbose_name = "proxy settings"
        verbose_name_plural = "proxy settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(pk=1), name="proxy_singleton"),
            models.CheckConstraint(condition=PORT.check("internal_port", null=True), name="proxy_internal_port_range"),
            models.CheckConstraint(condition=PORT.check("external_port", null=True), name="proxy_external_port_range"),
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
