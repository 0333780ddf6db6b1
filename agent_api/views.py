"""The agent API, version 1 (docs/agent-protocol.md). Thin: validate, call agent_api.protocol."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from agent_api import body_memo, protocol
from agent_api import serializers as s
from agent_api.authentication import (
    AgentPrincipal,
    AgentRateThrottle,
    AgentTokenAuthentication,
    IsAgent,
    agent_principal,
    auth_failure_record,
    bearer_token,
)
from agent_api.errors import (
    BodyTooLarge,
    InvalidEnrollmentSecret,
    NotFound,
    Withdrawn,
    error_response_parts,
    exception_handler,
)
from agent_api.parsers import LimitedJSONParser
from agents_app.models import Client
from console.client_address import client_ip
from updates_app.components import ComponentError, ComponentWithdrawn, component_file, component_manifest

ERRORS = {
    400: OpenApiResponse(s.ErrorResponse, description="Invalid request (code: invalid, malformed_json, ...)"),
    401: OpenApiResponse(s.ErrorResponse, description="No or malformed bearer token (code: unauthenticated)"),
    403: OpenApiResponse(s.ErrorResponse, description="Unknown or revoked client (code: register_again)"),
    413: OpenApiResponse(s.ErrorResponse, description="Body too large (code: body_too_large)"),
    429: OpenApiResponse(s.ErrorResponse, description="Too many requests (code: rate_limited)"),
}


class JSONOnlyView(APIView):
    """Answers JSON whatever the request's Accept header says: agents read nothing else.

    DRF would parse the Accept header on every request to choose among
    renderers; with one renderer there is nothing to choose (the catch-all
    404 answers JSON the same way).
    """

    renderer_classes = [JSONRenderer]
    _renderer = JSONRenderer()

    def perform_content_negotiation(self, request, force=False):
        return self._renderer, self._renderer.media_type


class AgentView(JSONOnlyView):
    """Base: bearer-token auth, JSON only, body limit, per-client throttle, JSON errors."""

    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgent]
    parser_classes = [LimitedJSONParser]
    throttle_classes = [AgentRateThrottle]

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        # Refuse an oversized body before reading it.
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.AGENT_MAX_BODY_BYTES:
            raise BodyTooLarge(f"The request body is larger than {settings.AGENT_MAX_BODY_BYTES} bytes.")
        super().initial(request, *args, **kwargs)

    @property
    def client(self) -> Client:
        return cast(AgentPrincipal, self.request.user).client

    def validated(self, serializer_class) -> dict:
        shape = body_memo.shape_of(serializer_class, self.request)
        if shape is not None and (known := body_memo.remembered(shape)) is not None:
            return known
        if not isinstance(self.request.data, dict):
            raise drf_serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        if shape is not None:
            body_memo.remember(shape, serializer.validated_data)
        return serializer.validated_data


class RegisterView(AgentView):
    """Register with the enrollment secret; answers the client id, bearer token and signing key."""

    authentication_classes = []
    permission_classes = []

    @extend_schema(request=s.RegisterRequest, responses={201: s.RegisterResponse, **ERRORS}, auth=[])
    def post(self, request):
        # A wrong enrollment secret is a failed authentication like a wrong token (the throttle
        # refused this address already if it failed too often).
        data = self.validated(s.RegisterRequest)
        try:
            answer = protocol.agent_register(source_address=client_ip(request), **data)
        except InvalidEnrollmentSecret:
            auth_failure_record(request)
            raise
        return Response(s.RegisterResponse(answer).data, status=201)


class CheckinView(AgentView):
    """Heartbeat, restart or poll: records what the agent holds; answers pending actions and whether the configuration changed."""

    # Authentication reads the settings and probes for waiting work with the client: one query.
    reads_checkin_probe = True

    @extend_schema(request=s.CheckinRequest, responses={200: s.CheckinResponse, **ERRORS})
    def post(self, request):
        data = self.validated(s.CheckinRequest)
        principal = cast(AgentPrincipal, request.user)
        return Response(self._answer(principal, data))

    @staticmethod
    def _answer(principal: AgentPrincipal, data: dict) -> dict:
        # The answer is plain JSON values already (server_time in UTC, rendered with a Z as the protocol
        # shows); CheckinResponse describes it in the schema, and its test holds the two together.
        return protocol.agent_checkin(client=principal.client, probe=principal.checkin_probe, **data)

    def dispatch(self, request, *args, **kwargs):
        """A heartbeat seen before is served without DRF's request cycle; anything else takes it.

        The fleet's heartbeats are this server's most frequent request, and
        most repeat a body this process has validated already
        (``body_memo``). For such a request (a POST of that JSON body, under
        the size limit, with a bearer token) DRF's cycle decides nothing (no
        content to negotiate, no parser to choose, nothing to validate) yet
        cost a fifth of the check-in. The same rules apply on both paths: the
        token is read by ``agent_principal`` (rate limits, failed
        authentications), the answer is ``protocol.agent_checkin``'s, and an
        error is answered by the same handler. Everything else (another
        method or content type, no or a malformed token, a new or invalid
        body) takes DRF's path before anything is counted.
        """
        remembered = self._remembered_heartbeat(request)
        if remembered is None:
            return super().dispatch(request, *args, **kwargs)
        token, data = remembered
        try:
            principal = agent_principal(request, token, with_checkin_probe=True)
            return self._json(200, self._answer(principal, data), {})
        except APIException as exc:
            set_rollback()
            parts = error_response_parts(exc)
            assert parts is not None  # every APIException has its answer
            return self._json(*parts)

    @staticmethod
    def _remembered_heartbeat(request: HttpRequest) -> tuple[str, dict] | None:
        """The bearer token and validated body of a check-in whose body was validated before, else None."""
        if request.method != "POST" or request.content_type != "application/json":
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if length > settings.AGENT_MAX_BODY_BYTES:
            return None
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        if token is None:
            return None
        shape = body_memo.shape_of(s.CheckinRequest, request)
        data = body_memo.remembered(shape) if shape is not None else None
        return (token, data) if data is not None else None

    def _json(self, status: int, body: dict, headers: dict[str, str]) -> HttpResponse:
        """What DRF's cycle answers for ``body``: rendered by the view's renderer, with its headers."""
        response = HttpResponse(self._renderer.render(body), status=status, content_type=self._renderer.media_type)
        for name, value in {**self.default_response_headers, **headers}.items():
            response[name] = value
        return response


class ConfigurationView(AgentView):
    """The client's configuration document and its version (the document's SHA-256)."""

    @extend_schema(responses={200: s.ConfigurationResponse, **ERRORS})
    def get(self, request):
        return Response(protocol.agent_configuration(client=self.client))


class ManifestView(AgentView):
    """Per component: the latest version and, for this client, the incremental or full file to download."""

    @extend_schema(responses={200: s.ManifestResponse, **ERRORS})
    def get(self, request):
        items = component_manifest(self.client.component_versions or {}, client_id=self.client.pk)
        return Response(s.ManifestResponse({"components": items}).data)


class DownloadView(AgentView):
    """The full file of a component version."""

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(description="The file; X-Content-SHA256 names its hash"),
            404: OpenApiResponse(s.ErrorResponse, description="Unknown component or version (code: not_found)"),
            410: OpenApiResponse(
                s.ErrorResponse, description="The version was withdrawn by a rollback (code: withdrawn)"
            ),
            **ERRORS,
        }
    )
    def get(self, request, slug: str, version: str, from_version: str | None = None):
        try:
            found = component_file(slug=slug, label=version, from_label=from_version)
        except ComponentWithdrawn as exc:
            raise Withdrawn(str(exc)) from None
        except ComponentError as exc:
            raise NotFound(str(exc)) from None
        response = FileResponse(found.path.open("rb"), content_type="application/octet-stream")
        response["Content-Length"] = str(found.size)
        response["X-Content-SHA256"] = found.sha256
        return response


class IncrementalDownloadView(DownloadView):
    """The incremental from an older version to this one."""


class ReportView(AgentView):
    """The result of an update or a scan, with the notification it answered."""

    @extend_schema(
        request=s.ReportRequest,
        responses={
            200: s.ReportResponse,
            **ERRORS,
            400: OpenApiResponse(
                s.ErrorResponse,
                description="Invalid request (code: invalid, malformed_json), a component or version the server "
                "does not have (code: unknown_version), or a delivery_id that is not this client's "
                "(code: unknown_delivery)",
            ),
        },
    )
    def post(self, request):
        data = self.validated(s.ReportRequest)
        return Response(protocol.agent_report(client=self.client, **data))


class PingView(JSONOnlyView):
    """Is the server there? No authentication, no database."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(responses={200: s.PingResponse}, auth=[])
    def get(self, request):
        return Response({"status": "ok"})


@csrf_exempt
def not_found_view(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Any other path under /agent/ answers JSON too (agents send no CSRF token, so a POST gets its 404 too)."""
    return JsonResponse({"code": "not_found", "message": "No such endpoint."}, status=404)
