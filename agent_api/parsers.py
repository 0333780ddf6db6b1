"""Request bodies of the agent API: JSON in UTF-8, at most AGENT_MAX_BODY_BYTES (413 beyond, before it is read)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers

from agent_api.errors import BodyTooLarge


def refuse_oversized(request: Any) -> None:
    """413 for a request whose ``Content-Length`` is over the limit, before its body is read.

    ``request`` is Django's or DRF's (only its ``META`` is read).
    """
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.AGENT_MAX_BODY_BYTES:
        raise BodyTooLarge(f"The request body is larger than {settings.AGENT_MAX_BODY_BYTES} bytes.")


def json_content(data: bytes) -> Any:
    """What a body holds; 400 ``malformed_json`` for anything but JSON in UTF-8."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from None


class LimitedJSONParser(parsers.JSONParser):
    """The DRF views' parser: the same limit, read from the stream in case no Content-Length gave it."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.AGENT_MAX_BODY_BYTES
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        return json_content(data)
