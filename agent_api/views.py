"""The agent API, version 1 (docs/agent-protocol.md). Thin: validate, call agent_api.protocol."""

from __future__ import annotations

from typing import cast

from django.http import FileResponse, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_api import protocol
from agent_api import serializers as s
from agent_api.authentication import (
    AgentPrincipal,
    AgentRateThrottle,
    AgentTokenAuthentication,
    IsAgent,
    auth_failure_record,
)
from agent_api.bodies import LimitedJSONParser, body_validated
from agent_api.errors import InvalidEnrollmentSecret, NotFound, Withdrawn, exception_handler
from agent_api.schema import ERRORS
from agents_app.models import Client
from console.client_address import client_ip
from updates_app.components import ComponentError, ComponentWithdrawn, component_file, component_manifest


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
    """Base: bearer-token auth, JSON only, body limit, per-client throttle, JSON errors.

    The check-in is a plain view with the same rules (agent_api/checkin.py).
    """

    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgent]
    parser_classes = [LimitedJSONParser]
    throttle_classes = [AgentRateThrottle]

    def get_exception_handler(self):
        return exception_handler

    @property
    def client(self) -> Client:
        return cast(AgentPrincipal, self.request.user).client

    def validated(self, serializer_class) -> dict:
        return body_validated(serializer_class, self.request.data)


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
