"""The client tree: domains (an MPTT tree) and the clients in them.

The settings of the "Privileges and Other Settings" dialog live on every
client and, as defaults for clients joining it, on every domain.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from mptt.models import MPTTModel, TreeForeignKey

from agents_app.scheduled_state import (
    ScheduledState,
    effective_scheduled_state,
    scheduled_state_case,
    scheduled_update_on_q,
)
from agents_app.validators import validate_display_name


class ClientSettings(models.Model):
    """The dialog's settings. Labels are the seed's wording."""

    # Privileges tab
    roaming_privilege = models.BooleanField("Enable roaming mode", default=False)
    update_now_privilege = models.BooleanField('Perform "Update Now"', default=True)
    # Option 1 in the seed.
    scheduled_update_privilege = models.BooleanField("Enable scheduled update", default=True)
    # Proxy Setting Privileges: the client user may set the proxy that "Update Now" uses.
    proxy_privilege = models.BooleanField("Allow client users to configure proxy settings", default=False)
    # Other Settings tab, Update Settings
    download_from_activeupdate = models.BooleanField(
        "Clients download updates from the ActiveUpdate server", default=False
    )
    # Option 2 in the seed.
    scheduled_update_setting = models.BooleanField("Enable scheduled update", default=True)
    components_only = models.BooleanField(
        "Clients can update components but not upgrade the client program or deploy hot fixes", default=False
    )

    SETTING_FIELDS = (
        "roaming_privilege",
        "update_now_privilege",
        "scheduled_update_privilege",
        "proxy_privilege",
        "download_from_activeupdate",
        "scheduled_update_setting",
        "components_only",
    )

    class Meta:
        abstract = True

    def settings_dict(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in self.SETTING_FIELDS}


# django-mptt has no type information, so the plugin cannot see the managers its base adds.
class Domain(MPTTModel, ClientSettings):  # type: ignore[django-manager-missing]
    """A group of clients; domains may nest. Its settings are the defaults for new clients."""

    name = models.CharField(max_length=100)
    parent = TreeForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    created_at = models.DateTimeField(auto_now_add=True)

    class MPTTMeta:
        order_insertion_by = ("name",)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="domain_unique_name_in_parent"),
            models.UniqueConstraint(fields=["name"], condition=Q(parent=None), name="domain_unique_top_level_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        try:
            validate_display_name(self.name)
        except ValidationError as exc:
            raise ValidationError({"name": exc.messages}) from None
        if self.pk and self.parent_id:
            if self.parent_id == self.pk:
                raise ValidationError({"parent": "A domain cannot be its own parent."})
            if self.parent.is_descendant_of(self):
                raise ValidationError({"parent": "A domain cannot be moved under one of its own subdomains."})


class ConnectionStatus(models.TextChoices):
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    ROAMING = "roaming", "Roaming"
    # Behind NAT: the server cannot reach it, so it sends nothing and hands
    # pending work over when the client polls.
    UNREACHABLE = "unreachable", "Unreachable"


class ClientQuerySet(models.QuerySet):
    def active(self) -> ClientQuerySet:
        """Clients that are not revoked: the only ones the server updates, counts or notifies."""
        return self.filter(revoked_at__isnull=True)

    def scheduled_update_on(self) -> ClientQuerySet:
        """Clients whose effective scheduled-update state is on (SPEC 2.2)."""
        return self.filter(scheduled_update_on_q())

    def with_scheduled_state(self) -> ClientQuerySet:
        """Annotate ``scheduled_state_code`` (a ScheduledState value) in SQL.

        Not named ``scheduled_state``: that is the model's read-only property.
        """
        return self.annotate(scheduled_state_code=scheduled_state_case())

    def in_domains(self, domains) -> ClientQuerySet:
        """Clients anywhere under the given domains: one range condition per domain."""
        q = Q(pk__in=[])
        for domain in domains:
            q |= Q(
                domain__tree_id=domain.tree_id,
                domain__lft__gte=domain.lft,
                domain__rght__lte=domain.rght,
            )
        return self.filter(q)


class Client(ClientSettings):
    """One endpoint-protection client (agent)."""

    guid = models.UUIDField("client id", default=uuid.uuid4, unique=True, editable=False)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="clients")
    hostname = models.CharField(max_length=255, db_index=True)
    ip_address = models.GenericIPAddressField("IP address", db_index=True)
    listener_port = models.PositiveIntegerField(default=21112)
    status = models.CharField(
        max_length=12, choices=ConnectionStatus.choices, default=ConnectionStatus.OFFLINE, db_index=True
    )
    # The agent asked for roaming mode; it is roaming only with the privilege.
    reports_roaming = models.BooleanField(default=False)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    # Its last post-update check-in (the agent API's "post_update" event): a staged roll-out counts
    # a client that reported an update and has none since, within the bound, as fallen silent.
    post_update_checkin_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    # Agent API credentials: only a hash of the bearer token is stored.
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # What the agent last reported: {"virus_pattern": "18.523.00", ...}
    component_versions = models.JSONField(default=dict, blank=True)
    config_version = models.CharField(max_length=64, blank=True)
    # The client user's own choice from the client console ("Disable scheduled
    # update"), reported by the agent; it only counts when option 2 is on.
    user_disabled_scheduled_update = models.BooleanField(default=False)
    last_scheduled_update_at = models.DateTimeField(null=True, blank=True)
    # Where the last reported update came from ("server" or "activeupdate") and
    # through which proxy ("" for a direct connection), as the agent said.
    last_update_source = models.CharField(max_length=20, blank=True)
    last_update_proxy = models.CharField(max_length=300, blank=True)

    objects = ClientQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["domain", "hostname"]),
            # The tree counts only clients that are not revoked (inactive ones
            # leave it): a partial index keeps that count an index-only scan.
            models.Index(fields=["domain"], condition=Q(revoked_at__isnull=True), name="client_active_domain_idx"),
        ]

    def __str__(self) -> str:
        return self.hostname

    def clean(self) -> None:
        super().clean()
        try:
            validate_display_name(self.hostname)
        except ValidationError as exc:
            raise ValidationError({"hostname": exc.messages}) from None

    @property
    def scheduled_state(self) -> ScheduledState:
        return effective_scheduled_state(
            privilege=self.scheduled_update_privilege,
            setting=self.scheduled_update_setting,
            user_disabled=self.user_disabled_scheduled_update,
        )


class FutureDomainDefaults(ClientSettings):
    """The settings that domains created later start with (a singleton).

    "Apply to Future Domains Only" in the dialog writes here and nowhere else;
    "Apply to All Clients" writes here too, so new domains match the fleet.
    """

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "defaults for future domains"
        verbose_name_plural = "defaults for future domains"

    def __str__(self) -> str:
        return "Defaults for future domains"

    @classmethod
    def load(cls) -> FutureDomainDefaults:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj
