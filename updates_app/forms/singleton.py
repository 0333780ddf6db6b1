"""What the forms of the singleton settings screens share, and number fields that take their range from the model.

A settings form carries the revision it was edited from (hidden), refuses
fields it does not know, is shown read-only to staff without the change
permission, and hands its validated values to the screen's save rules
(updates_app/settings_save.py), which do the writing: the form never saves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from console.wording import plural_word
from updates_app.settings_save import Unsaved


def model_range(model_field: models.Field) -> tuple[int | None, int | None]:
    """The (lowest, highest) value the model field's validators allow; None where a side is open."""
    low = high = None
    for validator in model_field.validators:
        if isinstance(validator, MinValueValidator):
            low = validator.limit_value
        elif isinstance(validator, MaxValueValidator):
            high = validator.limit_value
    return low, high


def bounded_formfield(model_field: models.Field, **kwargs: Any) -> forms.Field | None:
    """The model field's form field, with min_value/max_value from its validators (a ModelForm formfield_callback)."""
    if isinstance(model_field, models.IntegerField):
        low, high = model_range(model_field)
        kwargs = {"min_value": low, "max_value": high, **kwargs} if low is not None and high is not None else kwargs
    return model_field.formfield(**kwargs)


def range_messages_apply(fields: Mapping[str, forms.Field], messages: Mapping[str, str], default: str) -> None:
    """Give each number field with a range one message for a number outside it or no number at all.

    ``messages`` (by field name, else ``default``) say it in the screen's words
    with ``{range}`` for "1 to 59": the range itself comes from the field.
    """
    for name, field in fields.items():
        if isinstance(field, forms.IntegerField) and field.min_value is not None and field.max_value is not None:
            message = messages.get(name, default).format(range=f"{field.min_value} to {field.max_value}")
            field.error_messages.update(min_value=message, max_value=message, invalid=message)


class SettingsForm(forms.ModelForm):
    """The form of a singleton settings screen. Subclasses' ``Meta`` inherit ``SettingsForm.Meta``."""

    revision = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        error_messages={"required": "The form is missing its revision: reload the page and try again."},
    )

    # Besides the settings themselves, a POST carries only these.
    control_fields: ClassVar[frozenset[str]] = frozenset({"csrfmiddlewaretoken", "revision", "save"})
    # The message of a number out of its range, by field ({range}: "1 to 59", from the model's validators).
    range_messages: ClassVar[Mapping[str, str]] = {}
    range_message: ClassVar[str] = "Enter a whole number from {range}."
    # Set on the fresh form of a refused (stale) save: what the administrator had entered.
    unsaved: Sequence[Unsaved] = ()

    class Meta:
        formfield_callback = staticmethod(bounded_formfield)

    def __init__(self, *args: Any, read_only: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        range_messages_apply(self.fields, self.range_messages, self.range_message)
        if not self.is_bound:
            self.initial["revision"] = self.instance.revision
        self.read_only = read_only
        if read_only:
            for field in self.fields.values():
                field.disabled = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        unknown = sorted(set(self.data) - set(self.fields) - self.control_fields)
        if unknown:
            raise forms.ValidationError(
                "Unknown %(fields)s: %(names)s. Reload the page and try again.",
                code="unknown_fields",
                params={"names": ", ".join(unknown), "fields": plural_word(len(unknown), "field")},
            )
        return cleaned

    def _post_clean(self) -> None:
        # The model-level checks (field validators, check constraints) would
        # re-judge the stored row; each form checks the same rules in its
        # fields and clean(), with errors the screen can show next to a field.
        # The instance stays the stored row: the save service writes.
        pass

    def settings_values(self) -> dict[str, Any]:
        """The validated values for the save rules: every editable field of the form."""
        return {name: self.cleaned_data[name] for name in self._meta.fields or ()}
