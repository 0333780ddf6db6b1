"""The staged roll-out on the screens: its policy's save rules (Automatic Update) and its roll-outs (Update Summary).

The engine is updates_app.engine.rings; this module only reads and saves for
views. The policy is saved like every settings screen (updates_app/settings_save.py):
a save names the revision it was edited from, and a stale one is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from console.wording import duration
from updates_app.engine.rings import post_update_bound, ring_evidence, rollouts_superseded_by, superseded_words
from updates_app.models import HOLDING_STATES, Rollout, RolloutPolicy, RolloutRing, RolloutState
from updates_app.settings_save import SaveResult, SettingsRules

# Every editable field of the policy, in the screen's order, with its name in the audit log.
AUDIT_LABELS = {
    "enabled": "Staged roll-out",
    "ring1_domains": "Ring 1 domains",
    "ring1_percent": "Ring 1 share (%)",
    "ring2_percent": "Ring 2 share (%)",
    "soak_minutes": "Soak time (minutes)",
    "halt_percent": "Halt threshold (% of the ring)",
    "halt_min_count": "Halt threshold (clients at least)",
}
POLICY_FIELDS = tuple(AUDIT_LABELS)

ROLLOUT_POLICY = SettingsRules(model=RolloutPolicy, action="staged_rollout.save", labels=AUDIT_LABELS)


def rollout_policy_save(*, actor: Any, revision: int, values: Mapping[str, Any]) -> SaveResult[RolloutPolicy]:
    """Save the validated policy if ``revision`` is still the stored one; one audit entry with the changed fields."""
    return ROLLOUT_POLICY.save(actor=actor, revision=revision, values=values)


@dataclass(frozen=True)
class RolloutView:
    rollout: Rollout
    rings: list[RolloutRing]
    # Live evidence of the current ring while rolling out (the halt keeps its own).
    watching: list[dict]
    # The label of the newer current version of its component, while the roll-out still holds its own back.
    superseded_by: str | None = None

    @property
    def current_ring(self) -> RolloutRing | None:
        started = [r for r in self.rings if r.started_at]
        return started[-1] if started else None

    @property
    def superseded_why(self) -> str:
        return superseded_words(self.rollout, self.superseded_by) if self.superseded_by else ""

    @property
    def silence_rule(self) -> str:
        return silence_rule_words()

    @property
    def next_ring_at(self) -> dt.datetime | None:
        current = self.current_ring
        return current.soak_ends_at if current and self.rollout.state == RolloutState.ACTIVE else None


def rollouts_for_summary(*, finished: int = 3) -> list[RolloutView]:
    """Roll-outs rolling out or halted, and the last few others of the past week, with their rings.

    Stopped ones (by the administrator, or by a newer download) are listed
    with the finished ones, so a stream of downloads cannot pile them up here.
    """
    base = Rollout.objects.select_related("version__component", "run").prefetch_related("rings")
    live = [RolloutState.ACTIVE, RolloutState.HALTED]
    held = list(base.filter(state__in=live))
    done = list(base.exclude(state__in=live).filter(created_at__gte=timezone.now() - dt.timedelta(days=7))[:finished])
    views = []
    # Only where it matters: a completed or rolled-back roll-out holds nothing back any more.
    superseded = rollouts_superseded_by([r for r in [*held, *done] if r.state in HOLDING_STATES])
    for rollout in [*held, *done]:
        rings = sorted(rollout.rings.all(), key=lambda r: r.number)
        started = [r for r in rings if r.started_at]
        watching = ring_evidence(started[-1]) if rollout.state == RolloutState.ACTIVE and started else []
        views.append(
            RolloutView(rollout=rollout, rings=rings, watching=watching, superseded_by=superseded.get(rollout.pk))
        )
    return views


def silence_rule_words() -> str:
    """How a roll-out judges silence, for the Update Summary's time line of each roll-out."""
    return (
        f"A client that reports the update and then makes no post-update check-in within "
        f"{duration(post_update_bound())}, or goes offline, counts as fallen silent; the next ring waits until "
        "every update reported during the soak has been judged."
    )
