"""System checks for secrets that are too weak to run with (shown by ``manage.py check --deploy``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

MINIMUM_SECRET_LENGTH = 32


@register(Tags.security)
def check_agent_secrets(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Refuse short agent secrets outside DEBUG: the enrollment secret ships on every endpoint."""
    if settings.DEBUG:
        return []
    errors: list[CheckMessage] = []
    for number, name in enumerate(("AGENT_ENROLLMENT_SECRET", "AGENT_SIGNING_SECRET"), start=1):
        if len(getattr(settings, name)) < MINIMUM_SECRET_LENGTH:
            errors.append(
                Error(
                    f"{name} is shorter than {MINIMUM_SECRET_LENGTH} characters.",
                    hint="Set it to a long random value, e.g. "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                    id=f"console.E00{number}",
                )
            )
    return errors
