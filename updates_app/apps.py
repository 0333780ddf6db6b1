from django.apps import AppConfig


class UpdatesAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "updates_app"
