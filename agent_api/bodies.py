"""Request bodies of the agent API: a JSON object in UTF-8 of at most AGENT_MAX_BODY_BYTES, and its validation.

Read: the check-in (a plain view) reads its body with ``json_body``, the DRF
views with ``LimitedJSONParser``; either way a body over the limit is a 413
before it is read, one that is not JSON in UTF-8 a 400 ``malformed_json``.
Validated: ``body_validated``, the content through its serializer (400
``invalid``, naming the fields).

Remembered (``BodyMemo``, the check-in's): a settled fleet's heartbeats
repeat: every agent sends the same body (the server's versions, the current
configuration version, ``"heartbeat"``) time after time, apart from the one
field that names the agent's own signing key. When a serializer only checks
the shape of what it is given, validating a body is a function of its content
alone, and the answer to content seen before is the one computed then (a fifth
of a quiet heartbeat's cost saved). That rests on the serializer, so a memo
checks it instead of trusting a flag:

- when the memo is made (at import: ``agent_api/checkin.py`` makes its memo at
  module level), the serializer and its fields are inspected, and a
  serializer with anything but declared fields is refused
  (``NotShapeOnly``): no ``validate``/``validate_<field>`` or other method of
  its own, no ``Meta``, no nested serializer, no related field (a queryset),
  no field default or validator that needs the context (``requires_context``:
  the request, the user), no default computed per request but a fresh empty
  ``dict`` or ``list``;
- every validation it runs refuses the database: a field or validator that
  queries is ``NotShapeOnly`` at its first validation, not a stale answer.

The memo names its per-agent fields (``per_request``): they are left out of
the key and validated on every request by their own field, so one entry
serves the whole fleet. Only successful validations are remembered, so an
invalid body is validated and refused every time, with the same errors. The
key is the parsed body without those fields, written back as canonical JSON
(sorted keys): the same content however an agent orders or spaces it, and two
different contents never share a key. Small bodies only
(``MAX_REMEMBERED_BYTES``), at most ``MAX_ENTRIES`` per memo (emptied when
full), so the memory it can hold is bounded whatever agents send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from weakref import WeakSet

from django.conf import settings
from django.db import connections
from django.http import HttpRequest
from rest_framework import exceptions, parsers, relations, serializers
from rest_framework.fields import SkipField, empty

from agent_api.errors import BodyTooLarge
from agent_api.serializers import RequestSerializer

# --- Read ------------------------------------------------------------------------------------------


def _too_large() -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {settings.AGENT_MAX_BODY_BYTES} bytes.")


def json_content(data: bytes) -> Any:
    """What a body holds; 400 ``malformed_json`` for anything but JSON in UTF-8."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from None


def json_body(request: HttpRequest) -> tuple[Any, int]:
    """The content of a request's JSON body and its size in bytes.

    413 when ``Content-Length`` is over the limit (before the body is read),
    415 for a body that is not ``application/json``, 400 ``malformed_json``.
    An empty body is an empty object, as DRF reads one (its fields are then
    missing).
    """
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.AGENT_MAX_BODY_BYTES:
        raise _too_large()
    body = request.body
    if not body:
        return {}, 0
    if request.content_type != "application/json":
        raise exceptions.UnsupportedMediaType(request.META.get("CONTENT_TYPE", ""))
    return json_content(body), len(body)


class LimitedJSONParser(parsers.JSONParser):
    """The DRF views' parser: the same limit, read from the stream (DRF reads at most Content-Length)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read(settings.AGENT_MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(data) > settings.AGENT_MAX_BODY_BYTES:
            raise _too_large()
        return json_content(data)


# --- Validated ----------------------------------------------------------------------------------------


def body_validated(serializer_class: type[serializers.Serializer], content: Any) -> dict[str, Any]:
    """A request body's content validated by ``serializer_class``: 400 for anything but a valid JSON object."""
    if not isinstance(content, dict):
        raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    serializer = serializer_class(data=content)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- Remembered ---------------------------------------------------------------------------------------

# Bodies remembered: the small ones only.
MAX_REMEMBERED_BYTES = 2048
MAX_ENTRIES = 1024

# Callables a field's default may be: each makes a fresh empty value, the same for every request.
_PLAIN_DEFAULTS: tuple[type, ...] = (dict, list)

_memos: WeakSet[BodyMemo] = WeakSet()


class NotShapeOnly(TypeError):
    """A serializer whose validation may depend on more than the body: it cannot be remembered."""


class BodyMemo:
    """The validated bodies of one shape-only serializer, remembered by what they say."""

    def __init__(self, serializer_class: type[serializers.Serializer], *, per_request: tuple[str, ...] = ()) -> None:
        problems = shape_only_problems(serializer_class)
        declared = getattr(serializer_class, "_declared_fields", {})
        problems += [
            f"{name}: not a field of {serializer_class.__name__}" for name in per_request if name not in declared
        ]
        if problems:
            raise NotShapeOnly(f"{serializer_class.__name__} cannot be remembered: " + "; ".join(problems))
        self.serializer_class = serializer_class
        self.per_request = per_request
        self._fields = serializer_class().fields
        self._known: dict[str, dict[str, Any]] = {}
        _memos.add(self)

    def validated(self, content: Any, *, size: int) -> dict[str, Any]:
        """``content`` (a parsed JSON body of ``size`` bytes) validated: as remembered, or now.

        An invalid body is the serializer's ValidationError (400, field by field), every time.
        """
        key = None
        if isinstance(content, dict) and size <= MAX_REMEMBERED_BYTES:
            shared = {name: value for name, value in content.items() if name not in self.per_request}
            key = json.dumps(shared, sort_keys=True, separators=(",", ":"))
            found = self._known.get(key)
            own = self._own(content) if found is not None else None
            if found is not None and own is not None:
                return {**_copy(found), **own}
        with _database_refused(self.serializer_class):
            validated = body_validated(self.serializer_class, content)
        if key is not None:
            if len(self._known) >= MAX_ENTRIES:
                self._known.clear()
            self._known[key] = _copy({name: value for name, value in validated.items() if name not in self.per_request})
        return validated

    def _own(self, content: dict[str, Any]) -> dict[str, Any] | None:
        """The per-request fields validated by their own fields; None when one is invalid (the serializer then
        refuses the whole body with its usual errors)."""
        own: dict[str, Any] = {}
        for name in self.per_request:
            try:
                own[name] = self._fields[name].run_validation(content.get(name, empty))
            except SkipField:
                continue  # not sent, no default: left out, as the serializer leaves it out
            except serializers.ValidationError:
                return None
        return own

    def forget(self) -> None:
        self._known.clear()


def forget_all() -> None:
    """Every memo emptied (tests start from nothing remembered)."""
    for memo in list(_memos):
        memo.forget()


def shape_only_problems(serializer_class: type[serializers.Serializer]) -> list[str]:
    """Why validating with ``serializer_class`` may depend on more than the body (empty: it may not)."""
    problems = []
    for klass in serializer_class.__mro__:
        # RequestSerializer only shares its bound fields between requests (agent_api/serializers.py).
        if klass in (object, RequestSerializer) or klass.__module__.startswith("rest_framework."):
            continue
        for name, value in vars(klass).items():
            if callable(value) or hasattr(value, "__get__"):
                problems.append(f"{klass.__name__}.{name}: a shape-only serializer declares fields and nothing else")
    for name, field in getattr(serializer_class, "_declared_fields", {}).items():
        problems += _field_problems(name, field)
    return problems


def _field_problems(name: str, field: serializers.Field) -> list[str]:
    if isinstance(field, serializers.BaseSerializer):
        return [f"{name}: a nested serializer"]
    if isinstance(field, relations.RelatedField | relations.ManyRelatedField | serializers.HiddenField):
        return [f"{name}: a {type(field).__name__} reads more than the body"]
    problems = []
    default = field.default
    if getattr(default, "requires_context", False):
        problems.append(f"{name}: its default needs the context")
    elif callable(default) and default is not empty and default not in _PLAIN_DEFAULTS:
        problems.append(f"{name}: its default {default!r} is computed per request")
    problems += [
        f"{name}: validator {validator!r} needs the context"
        for validator in field.validators
        if getattr(validator, "requires_context", False)
    ]
    child = getattr(field, "child", None)
    if isinstance(child, serializers.Field):
        problems += _field_problems(f"{name}[]", child)
    return problems


@contextmanager
def _database_refused(serializer_class: type[serializers.Serializer]) -> Iterator[None]:
    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        raise NotShapeOnly(
            f"{serializer_class.__name__} queried the database while validating ({sql[:80]}): "
            "a remembered body's validation must depend on the body alone"
        )

    with ExitStack() as stack:
        for connection in connections.all():
            stack.enter_context(connection.execute_wrapper(refuse))
        yield


def _copy(value: Any) -> Any:
    """A copy of validated data (JSON shapes), so no caller can change what is remembered."""
    if isinstance(value, dict):
        return {key: _copy(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_copy(inner) for inner in value]
    return value
