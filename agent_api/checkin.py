"""``POST /agent/v1/checkin``: heartbeat, restart or poll, served by one plain Django view.

The fleet's heartbeats are this server's most frequent request, so the
check-in skips DRF's request cycle (content negotiation, parser choice, the
request and response wrappers decide nothing here, yet cost a fifth of a
check-in) and reads top to bottom, with the API's rules from the same
functions the DRF views use:

1. the bearer token (``authentication``): 401 without one (or for a malformed
   header, counted as a failed authentication); 429 for an address over its
   failed authentications or a client over its rate, before any query; 403
   ``register_again`` for an unknown or revoked client. One statement reads
   the client, the settings and whether work waits (``checkin_read``);
2. anything but POST: 405;
3. the body (``bodies``): over ``AGENT_MAX_BODY_BYTES`` 413 (before it is
   read), not ``application/json`` 415, not JSON 400 ``malformed_json``, the
   fields 400 ``invalid`` (naming them); a body seen before is not validated
   again;
4. the answer: ``protocol.agent_checkin``.

Errors are answered by ``errors.error_response_parts``, as on the DRF views.
drf-spectacular reads only DRF views: ``CheckinOperation`` describes this one
in the OpenAPI schema (``schema.described_by``).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_api import protocol
from agent_api import serializers as s
from agent_api.authentication import AUTHENTICATE_HEADER, AgentTokenAuthentication, checkin_authenticated
from agent_api.bodies import BodyMemo, LimitedJSONParser, json_body
from agent_api.errors import error_response_parts
from agent_api.schema import ERRORS, described_by

# Refuses, at import, a CheckinRequest whose validation could depend on more than the body.
_BODIES = BodyMemo(s.CheckinRequest, per_request=("signing_key_id",))
_RENDERER = JSONRenderer()


class CheckinOperation(APIView):
    """How the OpenAPI schema describes ``checkin``; it serves no request."""

    authentication_classes = [AgentTokenAuthentication]
    parser_classes = [LimitedJSONParser]
    renderer_classes = [JSONRenderer]

    @extend_schema(
        description="Heartbeat, restart or poll: records what the agent holds; answers pending actions and whether "
        "the configuration changed.",
        request=s.CheckinRequest,
        responses={200: s.CheckinResponse, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        raise NotImplementedError("agent_api.checkin.checkin serves the check-in")


@described_by(CheckinOperation)
@csrf_exempt
def checkin(request: HttpRequest) -> HttpResponse:
    try:
        read = checkin_authenticated(request)
        if request.method != "POST":
            raise exceptions.MethodNotAllowed(str(request.method))
        content, size = json_body(request)
        answer = protocol.agent_checkin(read=read, **_BODIES.validated(content, size=size))
    except exceptions.APIException as exc:
        return _refused(exc)
    return _json(200, answer)


def _json(status: int, body: dict[str, Any]) -> HttpResponse:
    # DRF's renderer, as on the other endpoints: server_time in UTC with a Z, compact, UTF-8.
    return HttpResponse(_RENDERER.render(body), status=status, content_type=_RENDERER.media_type)


def _refused(exc: exceptions.APIException) -> HttpResponse:
    parts = error_response_parts(exc)
    assert parts is not None  # every APIException has its answer
    status, body, headers = parts
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        headers["WWW-Authenticate"] = AUTHENTICATE_HEADER  # as DRF's views answer a 401
    if isinstance(exc, exceptions.MethodNotAllowed):
        headers["Allow"] = "POST"
    response = _json(status, body)
    for name, value in headers.items():
        response[name] = value
    return response
