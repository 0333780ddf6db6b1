"""Manual Update: who the administrator asks to update now.

"Manually selected clients" come from the client tree (agents_app): the same
checkboxes (root, domain, client) and the same rules, resolved by
``agents_app.privileges.selection_resolve``; a ticked domain stands for every
client under it.
"""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from agents_app.models import Client
from agents_app.privileges import Selection, SelectionError, selection_resolve
from updates_app.summary import active_clients, outdated_client_ids

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

    def clean(self):
        data = super().clean()
        if data.get("target") == SELECTED:
            try:
                self.selection = selection_resolve(
                    root=self.data.get("root") in ("1", "on", "true"),
                    domain_ids=_ticked(self.data, "domain"),
                    client_ids=_ticked(self.data, "client"),
                )
            except SelectionError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data

    def chosen_clients(self) -> QuerySet[Client]:
        """The clients this form asks for, as one queryset."""
        if self.cleaned_data["target"] == OUTDATED:
            return active_clients().filter(pk__in=outdated_client_ids())
        return self.selection.clients().filter(revoked_at=None)

    def hidden_selection(self) -> list[tuple[str, str]]:
        """The selection again, for the confirmation form."""
        if self.selection is None:
            return []
        if self.selection.root:
            return [("root", "1")]
        return [("domain", str(d.pk)) for d in self.selection.domains] + [
            ("client", str(pk)) for pk in self.selection.client_ids
        ]
