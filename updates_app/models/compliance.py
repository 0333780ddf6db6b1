"""What each client holds, as numbers and as tallies (kept by updates_app.compliance)."""

from __future__ import annotations

from django.db import models


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
