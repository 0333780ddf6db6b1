"""What every singleton settings row shares: one row (pk=1), a revision, who saved it last; and ranges stated once.

Automatic Update, the proxy settings and the staged roll-out policy are each a
single row that an administrator edits on a screen and that
``updates_app.settings_save`` saves (revision check, audit entry). Their
number fields state each range once, as a ``Range``: the field's validators,
its check constraint and its help text come from it, and the forms read the
validators (updates_app/forms/singleton.py), so "1 to 59 minutes" is written
in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from django.conf import settings
from django.core.validators import BaseValidator, MaxValueValidator, MinValueValidator
from django.db import models


@dataclass(frozen=True)
class Range:
    """A range of whole numbers, both ends included: ``str(Range(1, 59))`` is "1 to 59"."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"{self.low} to {self.high}"

    def validators(self) -> list[BaseValidator]:
        return [MinValueValidator(self.low), MaxValueValidator(self.high)]

    def check(self, name: str, *, null: bool = False) -> models.Q:
        """The condition of a check constraint on column ``name`` (NULL allowed with ``null``)."""
        within = models.Q(**{f"{name}__gte": self.low, f"{name}__lte": self.high})
        return models.Q(**{f"{name}__isnull": True}) | within if null else within


class SingletonSettings(models.Model):
    """A settings row there is exactly one of (pk=1; each model's check constraint says so).

    ``revision`` is optimistic concurrency: a save names the revision it was
    edited from and is refused when someone saved since. Only the save
    service writes these rows after they exist, always bumping ``revision``.
    """

    revision = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        abstract = True

    @classmethod
    def load(cls) -> Self:
        """The row, created with the model's defaults on first use."""
        obj, _ = cls._default_manager.get_or_create(pk=1)
        return obj
