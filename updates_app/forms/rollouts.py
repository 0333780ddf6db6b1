"""The staged roll-out policy's form, on the Automatic Update screen (an improvement over the original).

Its own rules: ring 2's share is larger than ring 1's (or 0, no second
ring), a policy that is on has a ring 1 (domains or a share above 0), and the
soak is not shorter than the post-update check-in bound (silence after an
update is judged only once that bound has passed: updates_app/engine/rings.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms

from agents_app.models import Domain
from console.wording import duration, plural
from updates_app.engine.rings import post_update_bound, rings_preview, soak_minimum_minutes
from updates_app.forms.singleton import SettingsForm
from updates_app.models import RolloutPolicy
from updates_app.staged import POLICY_FIELDS


class RolloutPolicyForm(SettingsForm):
    ring1_domains: forms.ModelMultipleChoiceField[Domain] = forms.ModelMultipleChoiceField(
        queryset=Domain.objects.order_by("tree_id", "lft"),
        required=False,
        label="Ring 1 domains",
        help_text="Every client under these domains is in the first ring (hold Ctrl to choose several).",
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )

    # Its button has a name of its own: the Automatic Update form on the same page has "save".
    control_fields: ClassVar[frozenset[str]] = SettingsForm.control_fields | {"save_rollout"}

    class Meta(SettingsForm.Meta):
        model = RolloutPolicy
        fields = POLICY_FIELDS

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, read_only=read_only, **kwargs)
        self.fields["ring1_domains"].label_from_instance = lambda d: ("— " * d.level) + d.name  # type: ignore[attr-defined]
        self.fields["soak_minutes"].widget.attrs["min"] = soak_minimum_minutes()
        self.fields["soak_minutes"].help_text += (
            f" At least {plural(soak_minimum_minutes(), 'minute')} on this server: a client that reports the update "
            f"and makes no post-update check-in within {duration(post_update_bound())} counts as fallen silent."
        )
        for bound in self.visible_fields():
            css = "form-check-input" if bound.name == "enabled" else "form-control form-control-sm"
            bound.field.widget.attrs.setdefault("class", css)

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
        cleaned = super().clean()
        ring1, ring2 = cleaned.get("ring1_percent"), cleaned.get("ring2_percent")
        if ring1 is not None and ring2 is not None and ring2 and ring2 <= ring1:
            self.add_error("ring2_percent", "Ring 2's share must be larger than ring 1's, or 0 for no second ring.")
        if cleaned.get("enabled") and ring1 == 0 and not cleaned.get("ring1_domains"):
            self.add_error("ring1_percent", "Ring 1 would be empty: choose domains or a share above 0.")
        soak = cleaned.get("soak_minutes")
        if soak is not None and soak < soak_minimum_minutes():
            self.add_error(
                "soak_minutes",
                f"The soak time must be at least {plural(soak_minimum_minutes(), 'minute')}: silence after an update "
                f"is judged {duration(post_update_bound())} after the client reports it "
                "(AGENT_POST_UPDATE_CHECKIN_SECONDS), so every ring is watched at least that long.",
            )
        return cleaned
