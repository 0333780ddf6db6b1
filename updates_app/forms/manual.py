"""Manual Update's choice of clients (Updates > Networked Computers > Manual Update).

"Clients with outdated components" or "Manually selected clients", the latter
from the client tree's checkboxes (root, domain, client) resolved by
agents_app.privileges.selection_resolve: a ticked domain stands for every
client under it.
"""

from __future__ import annotations

from typing import Any

from django import forms

from agents_app.models import ClientQuerySet
from agents_app.privileges import Selection, SelectionError, selection_resolve, ticked_client_ids
from updates_app.compliance import compliance_counts, outdated_clients

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
