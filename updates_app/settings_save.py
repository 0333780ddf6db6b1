"""Saving a singleton settings row: one rule for Automatic Update, Proxy Settings and the staged roll-out policy.

- Every save names the revision it was edited from. If someone saved since,
  the save is refused (``StaleSettings``, carrying the current row) instead of
  silently overwriting their change. The row is locked first (PostgreSQL
  serialises concurrent savers there) and the write is a conditional UPDATE
  (``pk=1 AND revision=N``), which is what decides on every database and
  across processes.
- Only the screen's editable fields (``SettingsRules.labels``) are compared
  and written; a field left out of the values keeps its stored value.
- A save that changes something bumps the revision and writes one audit entry
  with every changed field: its label and the old and new value in words
  (``console.audit.audit_words``). A save that changes nothing writes nothing
  and keeps the revision.

Each screen states its own rules in a ``SettingsRules`` (updates_app/autoupdate.py,
proxy.py, staged.py); the hooks are the fields a save keeps whatever was sent
(``kept``) and the secrets, stored encrypted and masked in the audit. Many-to-many
fields (the roll-out's ring 1 domains) are compared as sets and written in the same
transaction as the revision they belong to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from django.db import transaction
from django.utils import timezone

from console.audit import NOT_SET, audit_record, audit_words
from console.encryption import decrypt, encrypt
from updates_app.models.singleton import SingletonSettings

S = TypeVar("S", bound=SingletonSettings)

# A secret in words: the audit log says that it changed, never what it is.
MASK = "••••••"
MASKED_CHANGE = "changed"
MASKED_REMOVAL = "(removed)"
MASKED_TYPED = "(not shown: type it again)"


class StaleSettings(Exception):
    """The row was saved by someone else after the editor loaded it; ``current`` is the row as it is now."""

    def __init__(self, current: SingletonSettings) -> None:
        super().__init__(f"{current} changed since you opened them.")
        self.current = current


@dataclass
class SaveResult(Generic[S]):
    settings: S
    # {"field": {"label": ..., "old": ..., "new": ...}}; empty for a no-op save.
    changes: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Unsaved(NamedTuple):
    """One value of a refused save: what the administrator entered and what is stored now, in words."""

    label: str
    yours: str
    now: str


@dataclass(frozen=True)
class SettingsRules(Generic[S]):
    """How one screen's row is saved and described."""

    model: type[S]
    # The audit entry's action, e.g. "proxy_settings.save".
    action: str
    # Every editable field, in the screen's order, with its name in the audit log.
    labels: Mapping[str, str]
    # Fields stored encrypted (console.encryption): the values are the plain text,
    # "" removes the secret; the words never show it.
    secrets: frozenset[str] = frozenset()

    def kept(self, values: Mapping[str, Any], current: S) -> frozenset[str]:
        """Fields that keep their stored value whatever ``values`` says (a screen's own rule)."""
        return frozenset()

    @transaction.atomic
    def save(self, *, actor: Any, revision: int, values: Mapping[str, Any]) -> SaveResult[S]:
        """Save validated ``values`` (editable fields only) if ``revision`` is still the stored one."""
        unknown = set(values) - set(self.labels)
        if unknown:
            raise ValueError(f"Not {self.model._meta.verbose_name}: {', '.join(sorted(unknown))}")
        rows = self.model._default_manager
        self.model.load()  # the row exists from here on
        current = rows.select_for_update().get(pk=1)
        if current.revision != revision:
            raise StaleSettings(current)

        new = self._applicable(values, current)
        old = {name: self._stored(current, name) for name in new}
        changed = [name for name in new if not self._same(name, old[name], new[name])]
        if not changed:
            return SaveResult(settings=current)

        many = {name for name in changed if self._many_to_many(name)}
        updated = rows.filter(pk=1, revision=revision).update(
            **{name: self._column(name, new[name]) for name in changed if name not in many},
            revision=revision + 1,
            updated_by=actor if getattr(actor, "is_authenticated", False) else None,
            updated_at=timezone.now(),
        )
        if updated != 1:
            raise StaleSettings(rows.get(pk=1))
        for name in many:
            getattr(current, name).set(new[name])

        changes = {
            name: {
                "label": self.labels[name],
                "old": self._words(name, old[name]),
                "new": self._new_words(name, new[name]),
            }
            for name in changed
        }
        audit_record(actor=actor, action=self.action, target=str(current), changes=changes)
        return SaveResult(settings=rows.get(pk=1), changes=changes)

    def unsaved(self, values: Mapping[str, Any], current: S) -> list[Unsaved]:
        """Each value of a refused save that differs from the stored one, for the 409 page.

        The administrator redoes their change on top of the current values,
        so they are told what they had entered (a secret only that they had typed one).
        """
        rows = []
        for name, value in self._applicable(values, current).items():
            stored = self._stored(current, name)
            if not self._same(name, stored, value):
                # A typed secret is not shown back: it has to be typed again.
                yours = MASKED_TYPED if name in self.secrets and value else self._new_words(name, value)
                rows.append(Unsaved(self.labels[name], yours=yours, now=self._words(name, stored)))
        return rows

    def _applicable(self, values: Mapping[str, Any], current: S) -> dict[str, Any]:
        kept = self.kept(values, current)
        return {name: values[name] for name in self.labels if name in values and name not in kept}

    def _many_to_many(self, name: str) -> bool:
        return bool(self.model._meta.get_field(name).many_to_many)

    def _stored(self, row: S, name: str) -> Any:
        """The stored value, comparable with a submitted one: secrets decrypted, chosen objects listed."""
        if name in self.secrets:
            return decrypt(getattr(row, name))
        if self._many_to_many(name):
            return list(getattr(row, name).all())
        return getattr(row, name)

    def _same(self, name: str, stored: Any, value: Any) -> bool:
        if self._many_to_many(name):
            return {obj.pk for obj in stored} == {obj.pk for obj in value}
        return bool(stored == value)

    def _column(self, name: str, value: Any) -> Any:
        return encrypt(value) if name in self.secrets else value

    def _words(self, name: str, value: Any) -> str:
        if name in self.secrets:
            return MASK if value else NOT_SET
        model_field = self.model._meta.get_field(name)
        return audit_words(value, choices=getattr(model_field, "flatchoices", None) or ())

    def _new_words(self, name: str, value: Any) -> str:
        """A saved value in words; of a secret only that it changed."""
        if name in self.secrets:
            return MASKED_CHANGE if value else MASKED_REMOVAL
        return self._words(name, value)
