"""What drf-spectacular cannot see by itself: the bearer scheme, the plain check-in view, and the notification.

The notification is an OpenAPI 3.1 webhook (``SPECTACULAR_SETTINGS["WEBHOOKS"]``):
the server POSTs it to ``http://{ip_address}:{listener_port}/notify``, the
address the agent registered, signed in the Standard Webhooks manner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework.views import APIView

from agent_api import serializers as s

# The errors every authenticated endpoint may answer (docs/agent-protocol.md, "Errors").
ERRORS = {
    400: OpenApiResponse(s.ErrorResponse, description="Invalid request (code: invalid, malformed_json, ...)"),
    401: OpenApiResponse(s.ErrorResponse, description="No or malformed bearer token (code: unauthenticated)"),
    403: OpenApiResponse(s.ErrorResponse, description="Unknown or revoked client (code: register_again)"),
    413: OpenApiResponse(s.ErrorResponse, description="Body too large (code: body_too_large)"),
    429: OpenApiResponse(s.ErrorResponse, description="Too many requests (code: rate_limited)"),
}

V = TypeVar("V", bound=Callable)


def described_by(operation: type[APIView]) -> Callable[[V], V]:
    """Puts a plain Django view in the schema, described by the DRF view ``operation`` (which serves nothing).

    drf-spectacular lists the URLconf's views whose ``cls`` is a DRF view and
    reads the description from that class (its ``extend_schema``), as it does
    for every DRF view; the view itself is never asked.
    """

    def describe(view: V) -> V:
        view.cls = operation  # type: ignore[attr-defined]
        view.initkwargs = {}  # type: ignore[attr-defined]
        return view

    return describe


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "agent_api.authentication.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "The token from /agent/v1/register."}


# The signature headers of the notification. drf-spectacular's webhooks take no
# parameters, so a postprocessing hook adds them (``notification_headers``).
NOTIFICATION_HEADERS = [
    ("webhook-id", "The message id, dlv_{delivery_id}: the same on every attempt."),
    ("webhook-timestamp", "Unix seconds; agents refuse one more than 5 minutes from their clock."),
    (
        "webhook-signature",
        "One or more 'v1,<base64 HMAC-SHA256>' separated by spaces: during a signing key rotation one per key "
        "(the current key first). Accept the notification if any one verifies.",
    ),
]


def notification_headers(result, generator, request, public):
    """Postprocessing hook: the Standard Webhooks headers on the notification webhook."""
    operation = result.get("webhooks", {}).get("notification", {}).get("post")
    if operation is not None:
        operation["parameters"] = [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
            for name, text in NOTIFICATION_HEADERS
        ]
    return result


notification = OpenApiWebhook(
    name="notification",
    decorator=extend_schema(
        summary="Update now (server to agent)",
        description=(
            "POST http://{ip_address}:{listener_port}/notify, to the address the agent registered, only inside "
            "AGENT_ALLOWED_NETWORKS, never following a redirect. Signed with the agent's signing key "
            "(Standard Webhooks): the signed content is '{webhook-id}.{webhook-timestamp}.{body}', HMAC-SHA256, "
            "base64. A retry (every 15 minutes, five attempts in all) carries the same webhook-id. The same "
            "action is handed over in a check-in's 'actions' while the delivery is pending or retrying. "
            "See docs/agent-protocol.md."
        ),
        request=s.ActionSerializer,
        responses={
            202: OpenApiResponse(s.NotificationAnswer, description="Verified and accepted; the agent updates now."),
            200: OpenApiResponse(
                s.NotificationAnswer, description="A webhook-id already accepted: not acted on again."
            ),
            401: OpenApiResponse(
                s.NotificationRefusal, description="Missing or wrong signature, or a stale timestamp."
            ),
        },
    ),
)
