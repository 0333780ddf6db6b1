"""Administration > Proxy Settings: the form of the proxies clients use for component updates.

Its rules are the model's constraints, checked here with errors next to the
fields: a proxy that is on needs its server and port, the automatic
configuration script needs its address. Passwords are never rendered back;
a blank one keeps the stored password (updates_app/proxy.py).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout, Submit
from django import forms
from django.core.validators import URLValidator

from console.encryption import encryption_available
from updates_app.forms.singleton import SettingsForm
from updates_app.models import ProxySettings
from updates_app.proxy import PLAIN_FIELDS, PROXY_KINDS

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


class ProxySettingsForm(SettingsForm):
    pac_url = forms.URLField(
        label="Address",
        required=False,
        max_length=500,
        assume_scheme="http",
        validators=[URLValidator(schemes=["http", "https"])],
        error_messages={"invalid": "Enter an http:// or https:// address of the configuration script."},
        help_text="For example http://proxy.example.com/proxy.pac.",
    )
    internal_password = _proxy_password_field()
    internal_password_remove = forms.BooleanField(label="Remove the password", required=False)
    external_password = _proxy_password_field()
    external_password_remove = forms.BooleanField(label="Remove the password", required=False)

    # The range itself (ports) comes from the model's validators.
    range_message = "Enter a port from {range}."

    class Meta(SettingsForm.Meta):
        model = ProxySettings
        fields = PLAIN_FIELDS

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, read_only=read_only, **kwargs)
        for kind in PROXY_KINDS:
            self.fields[f"{kind}_host"].validators.append(validate_proxy_host)
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
        cleaned = super().clean()
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

    def settings_values(self) -> dict[str, Any]:
        values = super().settings_values()
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
