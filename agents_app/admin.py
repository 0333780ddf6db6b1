"""Raw data for administrators: the domain tree (drag and drop), clients, future-domain defaults."""

from __future__ import annotations

from django.contrib import admin
from mptt.admin import DraggableMPTTAdmin, TreeRelatedFieldListFilter

from agents_app.models import Client, Domain, FutureDomainDefaults
from agents_app.scheduled_state import ScheduledState, scheduled_state_case


@admin.register(Domain)
class DomainAdmin(DraggableMPTTAdmin):
    list_display = ("tree_actions", "indented_title", "client_count")
    list_display_links = ("indented_title",)
    search_fields = ("name",)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # One statement for every row's cumulative count.
        return Domain.objects.add_related_count(qs, Client, "domain", "client_count", cumulative=True)

    @admin.display(description="Clients (with subdomains)")
    def client_count(self, obj: Domain) -> int:
        return obj.client_count

    def get_changeform_initial_data(self, request):
        # A domain added here starts from the defaults for future domains.
        return {**FutureDomainDefaults.load().settings_dict(), **super().get_changeform_initial_data(request)}


class ScheduledStateFilter(admin.SimpleListFilter):
    title = "scheduled update (effective)"
    parameter_name = "scheduled_state"

    def lookups(self, request, model_admin):
        return ScheduledState.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value in ScheduledState.values:
            # The table lives in agents_app.scheduled_state only.
            return queryset.annotate(effective_state=scheduled_state_case()).filter(effective_state=value)
        return queryset


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ("hostname", "ip_address", "domain", "status", "effective_state", "last_contact_at")
    list_filter = ("status", ("domain", TreeRelatedFieldListFilter), ScheduledStateFilter)
    search_fields = ("hostname", "ip_address")
    list_select_related = ("domain",)
    readonly_fields = (
        "guid",
        "token_hash",
        "registered_at",
        "config_version",
        "component_versions",
        "last_update_source",
        "last_update_proxy",
    )
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over 100,000 rows per page view

    @admin.display(description="Scheduled update")
    def effective_state(self, obj: Client) -> str:
        return obj.scheduled_state.label


@admin.register(FutureDomainDefaults)
class FutureDomainDefaultsAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return not FutureDomainDefaults.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False
