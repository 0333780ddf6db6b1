from django.apps import AppConfig


class UpdatesAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "updates_app"

    def ready(self) -> None:
        # Connects the event-triggered run to component_version_added.
        from updates_app import runs  # noqa: F401
