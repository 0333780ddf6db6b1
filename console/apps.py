from pathlib import Path

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.conf import settings

        from console import (
            checks,  # noqa: F401  (registers the system checks)
            encryption,  # noqa: F401  (registers its deploy check)
        )

        # The embedded broker writes messages into these folders; the web
        # process enqueues too, so they must exist before the first send.
        # WhiteNoise warns at every start when STATIC_ROOT is missing.
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        if not settings.REDIS_URL:
            (settings.BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
            (settings.BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
