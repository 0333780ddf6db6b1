"""Components the server distributes and their versions."""

from __future__ import annotations

from django.db import models

from updates_app.version_labels import version_label


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
