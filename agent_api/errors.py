"""Errors of the agent API: JSON ``{"code": ..., "message": ...}`` with stable codes.

Agents branch on ``code``; ``message`` is for people. Validation errors also
carry ``errors`` (field -> messages).
"""

from __future__ import annotations

import logging

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class RegisterAgain(exceptions.APIException):
    """The token names no client, or a revoked one: the agent must register again."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "register_again"
    default_detail = "This client is unknown or was revoked; register again."


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"
    default_detail = "The request body is too large."


class InvalidEnrollmentSecret(exceptions.APIException):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_enrollment_secret"
    default_detail = "The enrollment secret is wrong."


class ProtocolError(exceptions.APIException):
    """A well-formed request the server cannot act on (unknown component, delivery, ...)."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, code: str, message: str, *, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(detail=message, code=code)
        self.code = code
        self.status_code = status_code


class NotFound(exceptions.NotFound):
    default_code = "not_found"


class Withdrawn(exceptions.APIException):
    """A component version withdrawn by a rollback: it is gone for good, the manifest names the current one."""

    status_code = status.HTTP_410_GONE
    default_code = "withdrawn"
    default_detail = "This component version was withdrawn."


# Stable codes for DRF's own exceptions.
_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_json",
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.AuthenticationFailed: "unauthenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid",
}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
        return "Invalid request."
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else "Invalid request."
    return str(detail)


def error_response_parts(exc: Exception) -> tuple[int, dict, dict[str, str]] | None:
    """The status, JSON body and headers answering ``exc``; None for an exception that is not the API's."""
    if isinstance(exc, Http404):
        exc = NotFound()
    if not isinstance(exc, exceptions.APIException):
        return None
    code = None
    for cls, name in _CODES.items():
        if type(exc) is cls:
            code = name
            break
    if isinstance(exc, ProtocolError):
        code = exc.code
    if code is None:
        code = exc.default_code if isinstance(exc.default_code, str) else "error"
    body: dict = {"code": code, "message": _first_message(exc.detail)}
    if isinstance(exc, exceptions.ValidationError):
        body["errors"] = exc.detail
    headers = {}
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        headers["Retry-After"] = str(int(wait) + 1)
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    return exc.status_code, body, headers


def exception_handler(exc, context) -> Response | None:
    parts = error_response_parts(exc)
    if parts is None:
        return None
    status_code, body, headers = parts
    return Response(body, status=status_code, headers=headers)
