from __future__ import annotations

from django.contrib import admin, messages

from updates_app.components import ComponentError, component_download, version_label
from updates_app.models import Component, ComponentVersion


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
    fields = ("number", "size", "sha256", "released_at", "file_path")
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
    list_display = ("component", "label", "size", "sha256", "released_at")
    list_filter = ("component",)
    list_select_related = ("component",)
    readonly_fields = ("component", "number", "file_path", "size", "sha256", "released_at")

    @admin.display(description="version")
    def label(self, obj: ComponentVersion) -> str:
        return version_label(obj.number)

    def has_add_permission(self, request) -> bool:
        # Versions come from the download (command or action), never typed in.
        return False
