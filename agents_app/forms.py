"""The Privileges and Other Settings dialog.

Each setting is a tri-state: "unchanged" (what a mixed selection starts with),
"on" or "off". The server only writes the settings that are not "unchanged",
so a mixed setting the administrator did not touch stays as each client has it.
"""

from __future__ import annotations

from typing import Any

from crispy_forms.bootstrap import Tab, TabHolder
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Field, Fieldset, Layout
from django import forms
from django.db import models

from agents_app.models import Client
from agents_app.privileges import ROOT_SCOPES, SETTING_FIELDS, SelectionSummary

UNCHANGED, ON, OFF = "unchanged", "on", "off"
TRI_STATE_CHOICES = [(UNCHANGED, "Leave unchanged"), (ON, "On"), (OFF, "Off")]
TRI_STATE_TEMPLATE = "agents_app/tristate_field.html"


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
    scope = forms.ChoiceField(
        choices=list(ROOT_SCOPES.items()), required=False, widget=forms.RadioSelect, label="Apply settings"
    )
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
        if summary is not None and "initial" not in kwargs:
            states = states or {name: summary.state(name) for name in SETTING_FIELDS}
            kwargs["initial"] = {name: _tri_state(states[name]) for name in SETTING_FIELDS}
            kwargs["initial"]["fingerprint"] = summary.fingerprint()
            kwargs["initial"]["scope"] = "all"
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
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True  # the dialog template writes the token itself

        def tri(name: str) -> Field:
            return Field(name, template=TRI_STATE_TEMPLATE)

        root_choice = [Field("scope")] if root else []
        self.helper.layout = Layout(
            TabHolder(
                Tab(
                    "Privileges",
                    Fieldset("Roaming Privilege", tri("roaming_privilege")),
                    Fieldset(
                        "Component Update Privileges",
                        tri("update_now_privilege"),
                        tri("scheduled_update_privilege"),
                    ),
                    Fieldset("Proxy Setting Privileges", tri("proxy_privilege")),
                    css_id="tab-privileges",
                ),
                Tab(
                    "Other Settings",
                    Fieldset(
                        "Update Settings",
                        tri("download_from_activeupdate"),
                        tri("scheduled_update_setting"),
                        tri("components_only"),
                    ),
                    css_id="tab-other-settings",
                ),
            ),
            HTML('{% include "agents_app/scheduled_description.html" %}'),
            *root_choice,
            "fingerprint",
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.root and not cleaned.get("scope"):
            self.add_error("scope", "Choose whether to apply to all clients or to future domains only.")
        return cleaned

    def changes(self) -> dict[str, bool]:
        """Only the settings the administrator set."""
        return {name: self.cleaned_data[name] == ON for name in SETTING_FIELDS if self.cleaned_data[name] != UNCHANGED}
