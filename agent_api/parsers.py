"""A JSON parser that refuses bodies over AGENT_MAX_BODY_BYTES with 413."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import exceptions, parsers

from agent_api.errors import BodyTooLarge


class LimitedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.AGENT_MAX_BODY_BYTES
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from None
