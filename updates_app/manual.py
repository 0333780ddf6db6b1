"""Manual Update: who the administrator asks to update now."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from agents_app.models import Client, Domain
from updates_app.summary import active_clients, outdated_client_ids

OUTDATED = "outdated"
SELECTED = "selected"


class ManualUpdateForm(forms.Form):
    target = forms.ChoiceField(
        choices=[(OUTDATED, "Clients with outdated components"), (SELECTED, "Manually selected clients")],
        widget=forms.RadioSelect,
        initial=OUTDATED,
    )
    domains = forms.ModelMultipleChoiceField(queryset=Domain.objects.all(), required=False)
    clients = forms.ModelMultipleChoiceField(queryset=Client.objects.filter(revoked_at=None), required=False)

    def clean(self):
        data = super().clean()
        if data.get("target") == SELECTED and not (data.get("domains") or data.get("clients")):
            raise forms.ValidationError(
                "Select at least one domain or client, or choose clients with outdated components."
            )
        return data

    def chosen_clients(self) -> QuerySet[Client]:
        """The clients this form asks for, as one queryset (domains stand for every client under them)."""
        data = self.cleaned_data
        if data["target"] == OUTDATED:
            return active_clients().filter(pk__in=outdated_client_ids())
        by_domain = active_clients().in_domains(data["domains"])
        by_pick = active_clients().filter(pk__in=[c.pk for c in data["clients"]])
        return by_domain | by_pick
