"""Validated request bodies remembered per process, keyed by what they say.

A settled fleet's heartbeats repeat: every agent sends the same body (the
server's versions, the current configuration version, ``"heartbeat"``) time
after time, apart from the one field that names the agent's own signing key.
Validating a body is a pure function of its content for a serializer that
only checks the shape of what it is given (no context, no database, no
instance): the answer to content seen before is the one computed then. A
serializer names its per-agent fields (``per_request_fields``): they are left
out of the key and validated on every request by their own field, so one
entry serves the whole fleet. Only successful validations are remembered, so
an invalid body is parsed, validated and refused every time, with the same
errors.

The key is the parsed body without those fields, written back as canonical
JSON (sorted keys): the same content however an agent orders or spaces it,
and two different contents never share a key. Small bodies only
(``MAX_BODY_BYTES``), at most ``MAX_ENTRIES`` per process (the memo is emptied
when full, like the configuration versions' cache), so the memory it can hold
is bounded whatever agents send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from rest_framework import serializers

MAX_BODY_BYTES = 2048
MAX_ENTRIES = 1024

Key = tuple[type, str, str]

_memo: dict[Key, dict[str, Any]] = {}


@dataclass(frozen=True)
class Shape:
    """What a request body is remembered by, and its per-request fields as sent."""

    serializer_class: type[serializers.Serializer]
    key: Key
    own: dict[str, Any]


def shape_of(serializer_class: type[serializers.Serializer], request: Any) -> Shape | None:
    """The shape of this request's body, or None when it is not one to remember.

    ``request`` is Django's or DRF's (its ``META`` and ``body`` are read; DRF
    parses the bytes Django kept afterwards).
    """
    if not getattr(serializer_class, "validates_shape_only", False):
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY_BYTES:
        return None
    try:
        content = json.loads(request.body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None  # the parser refuses it, with its own message
    if not isinstance(content, dict):
        return None
    own = {name: content.pop(name) for name in getattr(serializer_class, "per_request_fields", ()) if name in content}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return Shape(serializer_class, (serializer_class, request.META.get("CONTENT_TYPE", ""), canonical), own)


def remembered(shape: Shape) -> dict[str, Any] | None:
    """The validated data for a body of this shape, its per-request fields validated now; None if unknown.

    None also when a per-request field is invalid: the serializer then refuses
    the whole body with its usual errors.
    """
    found = _memo.get(shape.key)
    if found is None:
        return None
    validated = _copy(found)
    fields = _fields(shape.serializer_class)
    for name in getattr(shape.serializer_class, "per_request_fields", ()):
        try:
            validated[name] = fields[name].run_validation(shape.own.get(name, serializers.empty))
        except serializers.ValidationError:
            return None
    return validated


def remember(shape: Shape, validated: dict[str, Any]) -> None:
    if len(_memo) >= MAX_ENTRIES:
        _memo.clear()
    own = getattr(shape.serializer_class, "per_request_fields", ())
    _memo[shape.key] = _copy({name: value for name, value in validated.items() if name not in own})


@cache
def _fields(serializer_class: type[serializers.Serializer]) -> Any:
    """The serializer's bound fields (the same for every request: they validate shape only)."""
    return serializer_class().fields


def forget_all() -> None:
    _memo.clear()


def _copy(value: Any) -> Any:
    """A copy of validated data (JSON shapes), so no caller can change what is remembered."""
    if isinstance(value, dict):
        return {key: _copy(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_copy(inner) for inner in value]
    return value
