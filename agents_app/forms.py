"""The Privileges and Other Settings dialog.

Each setting is a tri-state: "unchanged" (what a mixed selection starts with),
"on" or "off". The server only writes the settings that are not "unchanged",
so a mixed setting the administrator did not touch stays as each client has it.

The page posts plain HTML controls, so a save without JavaScript sends exactly
what is on screen: a setting the selection agrees on is a hidden "off"
followed by a checkbox "on" (the last value wins, so a ticked box sends "on"),
and a mixed setting is three radio buttons (leave unchanged, on, off).
JavaScript only draws a mixed setting as one indeterminate checkbox that sets
those radio buttons.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models

from agents_app.models import Client
from agents_app.privileges import ROOT_SCOPES, SETTING_FIELDS, SelectionSummary

UNCHANGED, ON, OFF = "unchanged", "on", "off"
TRI_STATE_CHOICES = [(UNCHANGED, "Leave unchanged"), (ON, "On"), (OFF, "Off")]

# The dialog's layout: tab, its sections, their settings (the seed's order).
TABS: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    (
        "privileges",
        "Privileges",
        (
            ("Roaming Privilege", ("roaming_privilege",)),
            ("Component Update Privileges", ("update_now_privilege", "scheduled_update_privilege")),
            ("Proxy Setting Privileges", ("proxy_privilege",)),
        ),
    ),
    (
        "other-settings",
        "Other Settings",
        (("Update Settings", ("download_from_activeupdate", "scheduled_update_setting", "components_only")),),
    ),
)


def _tri_state(value: bool | None) -> str:
    if value is None:
        return UNCHANGED
    return ON if value else OFF


class PrivilegesForm(forms.Form):
    roaming_privilege = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    update_now_privilege = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    scheduled_update_privilege = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    proxy_privilege = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    download_from_activeupdate = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    scheduled_update_setting = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    components_only = forms.ChoiceField(choices=TRI_STATE_CHOICES)
    # With the server ticked, the button pressed: nothing is preselected.
    scope = forms.ChoiceField(choices=list(ROOT_SCOPES.items()), required=False, label="Apply settings")
    # The selection's summary fingerprint when the dialog opened (stale-form check).
    fingerprint = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(
        self,
        *args,
        root: bool = False,
        summary: SelectionSummary | None = None,
        states: dict[str, bool | None] | None = None,
        readonly: bool = False,
        **kwargs,
    ):
        if summary is not None and states is None:
            states = {name: summary.state(name) for name in SETTING_FIELDS}
        if summary is not None and states is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: _tri_state(states[name]) for name in SETTING_FIELDS}
            kwargs["initial"]["fingerprint"] = summary.fingerprint()
        super().__init__(*args, **kwargs)
        self.root = root
        # Labels are the model's, i.e. the seed's wording.
        for name in SETTING_FIELDS:
            model_field = Client._meta.get_field(name)
            assert isinstance(model_field, models.Field)
            self.fields[name].label = str(model_field.verbose_name)
        if not root:
            del self.fields["scope"]
        if readonly:
            for f in self.fields.values():
                f.disabled = True
        # Settings the selection disagrees on (drawn as three choices, not a checkbox).
        self.mixed_fields = frozenset(name for name in SETTING_FIELDS if states and states[name] is None)

    def tabs(self) -> list[dict[str, Any]]:
        """The two tabs with their sections and bound fields, for the template."""
        return [
            {
                "slug": slug,
                "title": title,
                "sections": [{"title": legend, "fields": [self[name] for name in names]} for legend, names in sections],
            }
            for slug, title, sections in TABS
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.root and not cleaned.get("scope"):
            self.add_error(None, "Choose “Apply to All Clients” or “Apply to Future Domains Only”: nothing was saved.")
        return cleaned

    def changes(self) -> dict[str, bool]:
        """Only the settings the administrator set."""
        return {name: self.cleaned_data[name] == ON for name in SETTING_FIELDS if self.cleaned_data[name] != UNCHANGED}
