"""The forms of the update screens: Automatic Update, and Manual Update's choice of clients.

Automatic Update:

The browser hides what does not apply to the chosen frequency and disables a
sub-option while its parent is off, but this form enforces the same rules on
whatever arrives: unknown fields, a tampered frequency, out-of-range numbers, a
sub-option without its parent and a Weekly schedule without a day are errors.
Values of fields that do not apply to the frequency are not validated; the
service keeps their stored value (see updates_app/autoupdate.py).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, cast

from crispy_forms.bootstrap import AppendedText
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout, Submit
from django import forms
from django.conf import settings
from django.core.validators import URLValidator
from django.db import models

from agents_app.models import ClientQuerySet
from agents_app.privileges import Selection, SelectionError, selection_resolve, ticked_client_ids
from console.encryption import encryption_available
from console.wording import plural_word
from updates_app.autoupdate import EDITABLE_FIELDS, fields_ignored_for
from updates_app.compliance import compliance_counts, outdated_clients
from updates_app.models import FREQUENCY_FIELDS, AutoUpdateSettings, Frequency, ProxySettings, Weekday
from updates_app.proxy import PLAIN_FIELDS as PROXY_PLAIN_FIELDS
from updates_app.proxy import PROXY_KINDS

# Besides the settings themselves, a POST carries only these.
FORM_CONTROL_FIELDS = frozenset({"csrfmiddlewaretoken", "revision", "save"})


def frequencies_showing(name: str) -> str:
    """The frequencies a field applies to, for the wrapper's data-frequencies attribute."""
    return " ".join(str(freq) for freq, names in FREQUENCY_FIELDS.items() if name in names)


class AutoUpdateSettingsForm(forms.ModelForm):
    revision = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        error_messages={"required": "The form is missing its revision: reload the page and try again."},
    )
    start_time = forms.TimeField(
        label="Start time",
        input_formats=["%H:%M"],
        widget=forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 60}),
        error_messages={"invalid": "Enter a time as HH:MM, from 00:00 to 23:59."},
    )
    interval_minutes = forms.IntegerField(
        label="Every",
        min_value=1,
        max_value=59,
        error_messages={
            "min_value": "Enter 1 to 59 minutes.",
            "max_value": "Enter 1 to 59 minutes.",
            "invalid": "Enter a whole number of minutes (1 to 59).",
        },
    )
    interval_hours = forms.IntegerField(
        label="Every",
        min_value=1,
        max_value=24,
        error_messages={
            "min_value": "Enter 1 to 24 hours.",
            "max_value": "Enter 1 to 24 hours.",
            "invalid": "Enter a whole number of hours (1 to 24).",
        },
    )
    period_hours = forms.IntegerField(
        label="Time period",
        min_value=1,
        max_value=24,
        error_messages={
            "min_value": "Enter a time period of 1 to 24 hours.",
            "max_value": "Enter a time period of 1 to 24 hours.",
            "invalid": "Enter a whole number of hours (1 to 24).",
        },
    )

    class Meta:
        model = AutoUpdateSettings
        fields = EDITABLE_FIELDS
        widgets = {"frequency": forms.RadioSelect}

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The model's help texts are the seed's explanations; the explicitly
        # declared fields above do not pick them up by themselves.
        for name in ("start_time", "interval_minutes", "interval_hours", "period_hours"):
            model_field = AutoUpdateSettings._meta.get_field(name)
            assert isinstance(model_field, models.Field)
            self.fields[name].help_text = str(model_field.help_text)
        frequency_field = cast(forms.ChoiceField, self.fields["frequency"])
        frequency_field.choices = Frequency.choices  # no blank choice
        weekday_field = cast(forms.TypedChoiceField, self.fields["weekday"])
        weekday_field.choices = [("", "Choose a day"), *Weekday.choices]
        if not self.is_bound:
            self.initial["revision"] = self.instance.revision
        self.read_only = read_only
        if read_only:
            for bound_field in self.fields.values():
                bound_field.disabled = True
        self.helper = self._helper()

    def _helper(self) -> FormHelper:
        helper = FormHelper(self)
        helper.form_tag = False
        helper.disable_csrf = True  # the template's <form> carries the token

        def applies(name: str, *inner) -> Div:
            return Div(*(inner or (name,)), css_class="schedule-option", data_frequencies=frequencies_showing(name))

        zone = f"{settings.TIME_ZONE} (server time zone)"
        helper.layout = Layout(
            "revision",
            Fieldset(
                "Event-triggered Update",
                Field("notify_on_download"),
                Div(
                    Field("include_roaming_offline", data_parent="id_notify_on_download"),
                    css_class="ms-4",
                ),
                Field("update_on_restart"),
                Field("scan_after_update"),
                css_class="mb-4",
            ),
            Fieldset(
                "Schedule-based Update",
                Field("frequency"),
                applies("interval_minutes", AppendedText("interval_minutes", "minute(s)", css_class="interval-input")),
                applies("interval_hours", AppendedText("interval_hours", "hour(s)", css_class="interval-input")),
                applies("config_once_per_day"),
                applies("weekday"),
                applies("start_time", AppendedText("start_time", zone, css_class="time-input")),
                applies("period_hours", AppendedText("period_hours", "hour(s)", css_class="interval-input")),
                # The load preview of the chosen schedule (updates_app/preview.py).
                HTML('{% include "updates_app/_schedule_preview.html" %}'),
            ),
        )
        if not self.read_only:
            helper.add_input(Submit("save", "Save"))
        return helper

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        unknown = sorted(set(self.data) - set(self.fields) - FORM_CONTROL_FIELDS)
        if unknown:
            raise forms.ValidationError(
                "Unknown %(fields)s: %(names)s. Reload the page and try again.",
                code="unknown_fields",
                params={"names": ", ".join(unknown), "fields": plural_word(len(unknown), "field")},
            )
        frequency = cleaned.get("frequency")
        if frequency is None:
            return cleaned  # the frequency already has its error; nothing else can be judged
        for name in fields_ignored_for(frequency):
            # Not applicable: not validated, and the stored value is kept.
            self.errors.pop(name, None)
            cleaned[name] = getattr(self.instance, name)
        if frequency == Frequency.WEEKLY and cleaned.get("weekday") is None and "weekday" not in self.errors:
            self.add_error("weekday", "Choose the day of the week for a Weekly schedule.")
        if cleaned.get("include_roaming_offline") and not cleaned.get("notify_on_download"):
            self.add_error(
                "include_roaming_offline",
                'Include roaming and offline client(s) needs "Initiate component update on clients immediately '
                'after the server downloads a new component" to be on.',
            )
        return cleaned

    def _post_clean(self) -> None:
        # The model-level checks (field validators, check constraints) would
        # re-judge fields kept at their stored value; everything they check
        # is checked in clean() above, with field errors the screen can show.
        pass

    def settings_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS}


# --- Manual Update: "Clients with outdated components" or "Manually selected
# clients", the latter from the client tree's checkboxes (root, domain, client)
# resolved by agents_app.privileges.selection_resolve: a ticked domain stands
# for every client under it.

OUTDATED = "outdated"
SELECTED = "selected"


def _ticked(data, name: str) -> list[str]:
    return data.getlist(name) if hasattr(data, "getlist") else list(data.get(name, []))


class ManualUpdateForm(forms.Form):
    target = forms.ChoiceField(
        choices=[(OUTDATED, "Clients with outdated components"), (SELECTED, "Manually selected clients")],
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
        initial=OUTDATED,
    )

    selection: Selection | None = None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("target") == SELECTED:
            try:
                self.selection = selection_resolve(
                    root=self.data.get("root") in ("1", "on", "true"),
                    domain_ids=_ticked(self.data, "domain"),
                    client_ids=ticked_client_ids(self.data)
                    if hasattr(self.data, "getlist")
                    else _ticked(self.data, "client"),
                )
            except SelectionError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data

    def chosen_clients(self) -> ClientQuerySet:
        """The clients this form asks for, as one queryset."""
        if self.cleaned_data["target"] == OUTDATED:
            return outdated_clients()
        assert self.selection is not None  # clean() resolved it for "selected"
        return self.selection.clients().active()

    def chosen_count(self) -> int:
        """How many clients ``chosen_clients`` holds; the outdated ones are counted from the tallies."""
        if self.cleaned_data["target"] == OUTDATED:
            return compliance_counts().outdated_clients
        return self.chosen_clients().count()

    def hidden_selection(self) -> list[tuple[str, str]]:
        """The selection again, for the confirmation form."""
        if self.selection is None:
            return []
        if self.selection.root:
            return [("root", "1")]
        return [("domain", str(d.pk)) for d in self.selection.domains] + [
            ("client", str(pk)) for pk in self.selection.client_ids
        ]


# --- Administration > Proxy Settings.

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def validate_proxy_host(value: str) -> None:
    """A host name (letters, digits, hyphens, dots) or an IPv4/IPv6 address; no scheme, port or path."""
    try:
        ipaddress.ip_address(value.strip("[]"))
        return
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise forms.ValidationError(
            "Enter a host name such as proxy.example.com or an IP address, without http:// or a port.",
            code="invalid_host",
        )


def _proxy_port_field() -> forms.IntegerField:
    """The port of a proxy (internal or external): the same field, the same messages."""
    return forms.IntegerField(
        label="Port",
        required=False,
        min_value=1,
        max_value=65535,
        error_messages={"min_value": "Enter a port from 1 to 65535.", "max_value": "Enter a port from 1 to 65535."},
    )


def _proxy_password_field() -> forms.CharField:
    """A proxy's password: never rendered back; blank keeps the stored one (updates_app.proxy)."""
    return forms.CharField(
        label="Password",
        required=False,
        max_length=200,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the current password.",
    )


class ProxySettingsForm(forms.ModelForm):
    revision = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    pac_url = forms.URLField(
        label="Address",
        required=False,
        max_length=500,
        assume_scheme="http",
        validators=[URLValidator(schemes=["http", "https"])],
        error_messages={"invalid": "Enter an http:// or https:// address of the configuration script."},
        help_text="For example http://proxy.example.com/proxy.pac.",
    )
    internal_port = _proxy_port_field()
    external_port = _proxy_port_field()
    internal_password = _proxy_password_field()
    internal_password_remove = forms.BooleanField(label="Remove the password", required=False)
    external_password = _proxy_password_field()
    external_password_remove = forms.BooleanField(label="Remove the password", required=False)

    class Meta:
        model = ProxySettings
        fields = PROXY_PLAIN_FIELDS

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in PROXY_KINDS:
            self.fields[f"{kind}_host"].validators.append(validate_proxy_host)
        if not self.is_bound:
            self.initial["revision"] = self.instance.revision
        self.read_only = read_only
        if read_only:
            for bound_field in self.fields.values():
                bound_field.disabled = True
        self.helper = FormHelper(self)
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        stored = {kind: bool(getattr(self.instance, f"{kind}_password")) for kind in PROXY_KINDS}

        def proxy_fieldset(kind: str, title: str) -> Fieldset:
            note = "A password is stored." if stored[kind] else "No password is stored."
            return Fieldset(
                title,
                Field(f"{kind}_enabled"),
                Div(
                    Field(f"{kind}_host"),
                    Field(f"{kind}_port"),
                    Field(f"{kind}_username", autocomplete="off"),
                    Field(f"{kind}_password"),
                    HTML(f'<p class="form-text mt-n2" id="{kind}-password-state">{note}</p>'),
                    Field(f"{kind}_password_remove"),
                    css_class="ms-4",
                ),
                css_class="mb-4",
            )

        self.helper.layout = Layout(
            "revision",
            Fieldset(
                "Automatic Proxy Settings",
                Field("auto_detect"),
                Field("use_pac"),
                Div(Field("pac_url"), css_class="ms-4"),
                css_class="mb-4",
            ),
            proxy_fieldset("internal", "Internal Proxy (client connection to the server)"),
            proxy_fieldset("external", "External Proxy (client connection to the ActiveUpdate server)"),
        )
        if not read_only:
            self.helper.add_input(Submit("save", "Save"))

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        unknown = sorted(set(self.data) - set(self.fields) - FORM_CONTROL_FIELDS)
        if unknown:
            raise forms.ValidationError(
                "Unknown field(s): %(names)s. Reload the page and try again.",
                code="unknown_fields",
                params={"names": ", ".join(unknown)},
            )
        if cleaned.get("use_pac") and not cleaned.get("pac_url") and "pac_url" not in self.errors:
            self.add_error("pac_url", "Enter the address of the automatic configuration script, or clear the option.")
        for kind in PROXY_KINDS:
            if cleaned.get(f"{kind}_enabled"):
                for part, what in (("host", "the proxy server"), ("port", "the port")):
                    name = f"{kind}_{part}"
                    if cleaned.get(name) in (None, "") and name not in self.errors:
                        self.add_error(name, f"Enter {what}, or clear the option above.")
            password = cleaned.get(f"{kind}_password")
            if password and cleaned.get(f"{kind}_password_remove"):
                self.add_error(f"{kind}_password", "Either enter a new password or remove it, not both.")
            elif password and not encryption_available():
                self.add_error(
                    f"{kind}_password",
                    "The server cannot store passwords: FIELD_ENCRYPTION_KEY is not set (see the README).",
                )
        return cleaned

    def _post_clean(self) -> None:
        # clean() above checks what the model's constraints check, with field errors.
        pass

    def settings_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {name: self.cleaned_data[name] for name in PROXY_PLAIN_FIELDS}
        values["pac_url"] = values["pac_url"] or ""
        for kind in PROXY_KINDS:
            for name in (f"{kind}_host", f"{kind}_username"):
                values[name] = (values[name] or "").strip()
            if self.cleaned_data[f"{kind}_password_remove"]:
                values[f"{kind}_password"] = ""
            elif self.cleaned_data[f"{kind}_password"]:
                values[f"{kind}_password"] = self.cleaned_data[f"{kind}_password"]
            # else: left out, so the stored password stays
        return values
