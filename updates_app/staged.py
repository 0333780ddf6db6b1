"""The staged roll-out on the screens: its policy form (Automatic Update) and its roll-outs (Update Summary).

The engine is updates_app.engine.rings; this module only reads and saves for views.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import transaction
from django.utils import timezone

from agents_app.models import Domain
from console.audit import audit_record
from updates_app.engine.rings import ring_evidence, rings_preview
from updates_app.models import Rollout, RolloutPolicy, RolloutRing, RolloutState

POLICY_FIELDS = (
    "enabled",
    "ring1_domains",
    "ring1_percent",
    "ring2_percent",
    "soak_minutes",
    "halt_percent",
    "halt_min_count",
)
CONTROL_FIELDS = frozenset({"csrfmiddlewaretoken", "save_rollout"})
# The model's validators, in words for the error messages.
RANGES = {
    "ring1_percent": (0, 100),
    "ring2_percent": (0, 100),
    "soak_minutes": (1, 2880),
    "halt_percent": (1, 100),
    "halt_min_count": (1, 100000),
}
LABELS = {
    "enabled": "Staged roll-out",
    "ring1_domains": "Ring 1 domains",
    "ring1_percent": "Ring 1 share (%)",
    "ring2_percent": "Ring 2 share (%)",
    "soak_minutes": "Soak time (minutes)",
    "halt_percent": "Halt threshold (% of the ring)",
    "halt_min_count": "Halt threshold (clients at least)",
}


class RolloutPolicyForm(forms.ModelForm):
    ring1_domains: forms.ModelMultipleChoiceField[Domain] = forms.ModelMultipleChoiceField(
        queryset=Domain.objects.order_by("tree_id", "lft"),
        required=False,
        label="Ring 1 domains",
        help_text="Every client under these domains is in the first ring (hold Ctrl to choose several).",
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )

    class Meta:
        model = RolloutPolicy
        fields = POLICY_FIELDS

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_only = read_only
        self.fields["ring1_domains"].label_from_instance = lambda d: ("— " * d.level) + d.name  # type: ignore[attr-defined]
        for name, field in self.fields.items():
            css = "form-check-input" if name == "enabled" else "form-control form-control-sm"
            field.widget.attrs.setdefault("class", css)
            if read_only:
                field.disabled = True
        for name, (low, high) in RANGES.items():
            message = f"Enter a whole number from {low} to {high}."
            self.fields[name].error_messages.update(min_value=message, max_value=message, invalid=message)

    def preview(self) -> list[dict[str, Any]]:
        """The saved policy applied to the current fleet: each ring, its clients and when it would start."""
        rows = rings_preview(policy=self.instance)
        last = max(offset for _name, _count, offset in rows) or 1
        return [
            {
                "ring": name,
                "clients": count,
                "at": f"+{offset // 60} min" if offset >= 60 else f"+{offset} s",
                "left_percent": round(offset * 80 / last),
            }
            for name, count, offset in rows
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        unknown = sorted(set(self.data) - set(self.fields) - CONTROL_FIELDS)
        if unknown:
            raise forms.ValidationError(f"Unknown field(s): {', '.join(unknown)}.", code="unknown_fields")
        ring1, ring2 = cleaned.get("ring1_percent"), cleaned.get("ring2_percent")
        if ring1 is not None and ring2 is not None and ring2 and ring2 <= ring1:
            self.add_error("ring2_percent", "Ring 2's share must be larger than ring 1's, or 0 for no second ring.")
        if cleaned.get("enabled") and ring1 == 0 and not cleaned.get("ring1_domains"):
            self.add_error("ring1_percent", "Ring 1 would be empty: choose domains or a share above 0.")
        return cleaned


def _shown(value: Any) -> Any:
    if isinstance(value, bool):
        return "on" if value else "off"
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return ", ".join(sorted(str(v) for v in value)) or "(none)"
    return value


@transaction.atomic
def rollout_policy_save(*, form: RolloutPolicyForm, actor) -> int:
    """Save the policy; one audit entry with the changed fields. Returns how many fields changed."""
    before = RolloutPolicy.load()
    old = {name: getattr(before, name) for name in POLICY_FIELDS if name != "ring1_domains"}
    old["ring1_domains"] = [d.name for d in before.ring1_domains.all()]
    policy = form.save()
    new = {name: getattr(policy, name) for name in POLICY_FIELDS if name != "ring1_domains"}
    new["ring1_domains"] = [d.name for d in policy.ring1_domains.all()]
    changes = {
        name: {
            "label": LABELS[name],
            "old": _shown(old[name]),
            "new": _shown(new[name]),
        }
        for name in POLICY_FIELDS
        if _shown(old[name]) != _shown(new[name])
    }
    if changes:
        audit_record(actor=actor, action="staged_rollout.save", target="Staged roll-out policy", changes=changes)
    return len(changes)


@dataclass(frozen=True)
class RolloutView:
    rollout: Rollout
    rings: list[RolloutRing]
    # Live evidence of the current ring while rolling out (the halt keeps its own).
    watching: list[dict]

    @property
    def current_ring(self) -> RolloutRing | None:
        started = [r for r in self.rings if r.started_at]
        return started[-1] if started else None

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
    for rollout in [*held, *done]:
        rings = sorted(rollout.rings.all(), key=lambda r: r.number)
        started = [r for r in rings if r.started_at]
        watching = ring_evidence(started[-1]) if rollout.state == RolloutState.ACTIVE and started else []
        views.append(RolloutView(rollout=rollout, rings=rings, watching=watching))
    return views
