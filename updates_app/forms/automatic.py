"""The Automatic Update screen's form (Updates > Networked Computers > Automatic Update).

The browser hides what does not apply to the chosen frequency and disables a
sub-option while its parent is off, but this form enforces the same rules on
whatever arrives: unknown fields, a tampered frequency, out-of-range numbers, a
sub-option without its parent and a Weekly schedule without a day are errors.
Values of fields that do not apply to the frequency are not validated; the
service keeps their stored value (see updates_app/autoupdate.py).
"""

from __future__ import annotations

from typing import Any, cast

from crispy_forms.bootstrap import AppendedText
from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Fieldset, Layout, Submit
from django import forms
from django.conf import settings

from updates_app.autoupdate import EDITABLE_FIELDS, fields_ignored_for
from updates_app.forms.singleton import SettingsForm
from updates_app.models import FREQUENCY_FIELDS, AutoUpdateSettings, Frequency, Weekday


def frequencies_showing(name: str) -> str:
    """The frequencies a field applies to, for the wrapper's data-frequencies attribute."""
    return " ".join(str(freq) for freq, names in FREQUENCY_FIELDS.items() if name in names)


class AutoUpdateSettingsForm(SettingsForm):
    start_time = forms.TimeField(
        label="Start time",
        input_formats=["%H:%M"],
        widget=forms.TimeInput(format="%H:%M", attrs={"type": "time", "step": 60}),
        error_messages={"invalid": "Enter a time as HH:MM, from 00:00 to 23:59."},
        # The model's help text is the seed's explanation; a declared field does not pick it up by itself.
        help_text=AutoUpdateSettings._meta.get_field("start_time").help_text,
    )
    # The ranges themselves come from the model's validators.
    range_messages = {
        "interval_minutes": "Enter {range} minutes.",
        "interval_hours": "Enter {range} hours.",
        "period_hours": "Enter a time period of {range} hours.",
    }

    class Meta(SettingsForm.Meta):
        model = AutoUpdateSettings
        fields = EDITABLE_FIELDS
        widgets = {"frequency": forms.RadioSelect}

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, read_only=read_only, **kwargs)
        frequency_field = cast(forms.ChoiceField, self.fields["frequency"])
        frequency_field.choices = Frequency.choices  # no blank choice
        weekday_field = cast(forms.TypedChoiceField, self.fields["weekday"])
        weekday_field.choices = [("", "Choose a day"), *Weekday.choices]
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
        cleaned = super().clean()
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
