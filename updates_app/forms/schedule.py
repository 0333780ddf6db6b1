"""The load preview's form: the schedule fields of the Automatic Update screen, as query parameters.

The preview itself is updates_app/preview.py.
"""

from __future__ import annotations

from typing import Any

from django import forms

from updates_app.autoupdate import AUDIT_LABELS
from updates_app.forms.automatic import AutoUpdateSettingsForm
from updates_app.forms.singleton import bounded_formfield, range_messages_apply
from updates_app.models import FREQUENCY_FIELDS, AutoUpdateSettings, Frequency, Weekday

PREVIEW_FIELDS = ("frequency", "start_time", "period_hours", "weekday", "interval_minutes", "interval_hours")


def _number(name: str) -> forms.Field | None:
    """The setting's number field, with the model's range, optional (``clean`` requires what a frequency uses)."""
    return bounded_formfield(AutoUpdateSettings._meta.get_field(name), required=False)  # type: ignore[arg-type]


class SchedulePreviewForm(forms.Form):
    """The schedule fields of the Automatic Update form, as query parameters.

    Only the fields the chosen frequency uses are required and checked: the
    screen sends every field, but a Minute(s) schedule has no start time, so a
    half-typed start time must not hide its preview.
    """

    frequency = forms.ChoiceField(choices=Frequency.choices)
    start_time = forms.TimeField(required=False, input_formats=["%H:%M", "%H:%M:%S"])
    period_hours = _number("period_hours")
    weekday = forms.TypedChoiceField(choices=Weekday.choices, coerce=int, required=False, empty_value=None)
    interval_minutes = _number("interval_minutes")
    interval_hours = _number("interval_hours")
    # A checkbox: absent from the query means off, as in a submitted form.
    config_once_per_day = forms.BooleanField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The same messages as the screen's form.
        range_messages_apply(self.fields, AutoUpdateSettingsForm.range_messages, AutoUpdateSettingsForm.range_message)
        # Errors name the field as the screen does ("Interval (minutes)"), not by its identifier.
        for name, bound in self.fields.items():
            bound.label = AUDIT_LABELS.get(name, bound.label)

    def error_list(self) -> list[str]:
        """Every error as "Label: message", in the order of the fields."""
        lines = [str(error) for error in self.non_field_errors()]
        for name, field_ in self.fields.items():
            lines += [f"{field_.label}: {error}" for error in self.errors.get(name, [])]
        return lines

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        frequency = cleaned.get("frequency")
        if frequency is None:
            return cleaned
        # Every field the frequency uses but the checkbox, which is simply off when absent.
        needed = [name for name in FREQUENCY_FIELDS[frequency] if name != "config_once_per_day"]
        for name in list(self.errors):
            if name in PREVIEW_FIELDS and name not in needed and name != "frequency":
                del self.errors[name]
                cleaned[name] = None
        for name in needed:
            if cleaned.get(name) is None and name not in self.errors:
                self.add_error(name, "This field is required for this frequency.")
        return cleaned


def preview_form_for(query) -> SchedulePreviewForm:
    """The form bound to the query, or to the saved settings when the query names no schedule field."""
    if not any(name in query for name in PREVIEW_FIELDS):
        config = AutoUpdateSettings.load()
        query = {
            "frequency": config.frequency,
            "start_time": config.start_time.strftime("%H:%M"),
            "period_hours": config.period_hours,
            "weekday": "" if config.weekday is None else config.weekday,
            "interval_minutes": config.interval_minutes,
            "interval_hours": config.interval_hours,
        }
        if config.config_once_per_day:
            query["config_once_per_day"] = "on"
    return SchedulePreviewForm(query)
