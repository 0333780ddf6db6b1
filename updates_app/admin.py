from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from updates_app.components import ComponentError, component_download
from updates_app.models import Component, ComponentVersion, Delivery, Rollout, UpdateRun
from updates_app.version_labels import version_label


@admin.action(description="Download a new version (simulated vendor download)", permissions=["change"])
def download_new_version(modeladmin, request, queryset):
    for component in queryset:
        try:
            version = component_download(component=component)
        except ComponentError as exc:
            modeladmin.message_user(request, f"{component}: {exc}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{component}: downloaded version {version_label(version.number)}")


class ComponentVersionInline(admin.TabularInline):
    model = ComponentVersion
    fields = ("number", "size", "sha256", "released_at", "file_path", "withdrawn_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    ordering = ("-number",)

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-number")


@admin.register(Component)
class ComponentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind")
    actions = [download_new_version]
    inlines = [ComponentVersionInline]


@admin.register(ComponentVersion)
class ComponentVersionAdmin(admin.ModelAdmin):
    list_display = ("component", "label", "size", "sha256", "released_at", "withdrawn_at")
    list_filter = ("component", ("withdrawn_at", admin.EmptyFieldListFilter))
    list_select_related = ("component",)
    # Withdrawn only by a rollback (Updates > Rollback), never by hand.
    readonly_fields = ("component", "number", "file_path", "size", "sha256", "released_at", "withdrawn_at")

    @admin.display(description="version")
    def label(self, obj: ComponentVersion) -> str:
        return version_label(obj.number)

    def has_add_permission(self, request) -> bool:
        # Versions come from the download (command or action), never typed in.
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Runs and deliveries are written only by the engine: the admin may look, never add, change or delete."""

    show_full_result_count = False  # the delivery table is large: skip the second COUNT(*)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UpdateRun)
class UpdateRunAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "trigger", "component_version", "scan_after", "created_at", "created_by", "console")
    list_filter = ("trigger", "scan_after", ("cancelled_at", admin.EmptyFieldListFilter))
    list_select_related = ("created_by", "component_version__component")
    search_fields = ("deliveries__client__hostname", "window_key")
    search_help_text = "Client hostname (runs that notified it) or schedule window"
    date_hierarchy = "created_at"
    ordering = ("-created_at",)

    @admin.display(description="progress")
    def console(self, obj: UpdateRun) -> str:
        return format_html('<a href="{}">run page</a>', reverse("updates:run-detail", args=[obj.pk]))


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "run_link",
        "client_link",
        "status",
        "attempts",
        "lost_leases",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "run__trigger", "push")
    list_select_related = ("run", "client")
    search_fields = ("client__hostname",)
    search_help_text = "Client hostname"
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")

    @admin.display(description="run", ordering="run")
    def run_link(self, obj: Delivery) -> str:
        url = reverse("admin:updates_app_updaterun_change", args=[obj.run_id])
        return format_html('<a href="{}">#{} {}</a>', url, obj.run_id, obj.run.get_trigger_display())

    @admin.display(description="client", ordering="client__hostname")
    def client_link(self, obj: Delivery) -> str:
        url = reverse("admin:agents_app_client_change", args=[obj.client_id])
        return format_html('<a href="{}">{}</a>', url, obj.client.hostname)


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    """Staged roll-outs are written by the engine and the Update Summary's actions only."""

    list_display = ("version", "state", "created_at", "halted_at", "halt_summary")
    list_filter = ("state",)
    list_select_related = ("version__component",)
