"""Request and response shapes of the agent API (also the published OpenAPI schema)."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from agents_app.validators import validate_display_name
from updates_app.version_labels import VersionLabelError, parse_version_label

MAX_COMPONENTS = 50
SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,50}\Z")


class VersionsField(serializers.DictField):
    """``{"virus_pattern": "18.523.00", ...}``: component slug -> version held."""

    child = serializers.CharField(max_length=20)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > MAX_COMPONENTS:
            raise serializers.ValidationError(f"At most {MAX_COMPONENTS} components.")
        for slug, label in value.items():
            if not SLUG.match(slug):
                raise serializers.ValidationError(f"{slug[:50]!r} is not a component name (letters, digits, - and _).")
            try:
                parse_version_label(label)
            except VersionLabelError as exc:
                raise serializers.ValidationError(f"{slug}: {exc}") from None
        return value


class RequestSerializer(serializers.Serializer):
    """A request body whose fields are built and bound once per class, not once per request.

    DRF deep-copies and binds every declared field for each serializer it
    makes; for the check-in, validated on every heartbeat of the fleet, that
    was most of the validation's time. Fields that only validate keep no
    per-request state, so one bound set serves every request. Not for fields
    that read the context or the instance (CurrentUserDefault, HiddenField,
    nested serializers with ``many=True``).
    """

    @property
    def fields(self) -> Any:
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            # DRF's own construction, once, on a serializer kept only to own them.
            shared = serializers.Serializer.fields.func(cls())  # type: ignore[attr-defined]
            cls._shared_fields = shared  # type: ignore[attr-defined]
        return shared


class RegisterRequest(RequestSerializer):
    enrollment_secret = serializers.CharField(max_length=200, trim_whitespace=False)
    hostname = serializers.CharField(max_length=255, validators=[validate_display_name])
    ip_address = serializers.IPAddressField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Informative. The listener address is the request's source address, unless the server "
        "is configured to trust reported addresses (AGENT_TRUST_REPORTED_ADDRESS), and then only inside "
        "its allowed networks.",
    )
    listener_port = serializers.IntegerField(min_value=1, max_value=65535)
    domain = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", validators=[validate_display_name]
    )
    roaming = serializers.BooleanField(required=False, default=False)
    component_versions = VersionsField(
        required=False,
        help_text="What the agent holds. Sent, the registration is also the agent's restart check-in: the "
        "answer's actions tell it what to do, and it needs no check-in before its first heartbeat.",
    )
    scheduled_update_disabled = serializers.BooleanField(
        required=False, default=False, help_text="As at check-in: the client user turned scheduled update off."
    )


class ActionSerializer(serializers.Serializer):
    """An update action: the body of a notification and an entry of a check-in's ``actions``."""

    type = serializers.ChoiceField(choices=["update"])
    delivery_id = serializers.IntegerField()
    run_id = serializers.IntegerField()
    scan_after = serializers.BooleanField()


def post_update_checkin_field() -> serializers.IntegerField:
    """The bound of the post-update check-in, in the register and check-in answers (a field each)."""
    return serializers.IntegerField(
        help_text="After reporting a successful update that names a delivery_id, check in with event "
        "post_update within this many seconds (about half-way through is best); an agent that does not "
        "counts as silent, evidence against the version in a staged roll-out."
    )


class RegisterResponse(serializers.Serializer):
    client_id = serializers.UUIDField()
    token = serializers.CharField(help_text="Bearer token for every later call; the server keeps only its hash.")
    signing_key = serializers.CharField(
        help_text="whsec_ and the base64 of the key that signs notifications to this agent (Standard Webhooks)."
    )
    heartbeat_interval_seconds = serializers.IntegerField()
    post_update_checkin_seconds = post_update_checkin_field()
    domain = serializers.CharField()
    status = serializers.CharField()
    actions = ActionSerializer(
        many=True, help_text="As a restart check-in's; empty unless component_versions was sent."
    )
    config_version = serializers.CharField()
    configuration = serializers.DictField(help_text="The document GET /configuration answers; apply it at once.")


class CheckinRequest(RequestSerializer):
    # Shape only (agent_api/bodies.py refuses it otherwise): a fleet's repeated heartbeats are
    # validated once, but for signing_key_id, which differs from agent to agent.

    event = serializers.ChoiceField(choices=["heartbeat", "restart", "poll", "post_update"])
    component_versions = VersionsField(required=False, default=dict)
    config_version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    scheduled_update_disabled = serializers.BooleanField(
        required=False, default=False, help_text="The client user turned scheduled update off in the client console."
    )
    roaming = serializers.BooleanField(required=False, default=False)
    signing_key_id = serializers.RegexField(
        r"^sk_[0-9a-f]{16}\Z",
        required=False,
        allow_blank=True,
        default="",
        help_text="Id of the signing key the agent holds: sk_ and the first 16 hex digits of SHA-256 of the raw key. "
        "When it is not the current key's id (or missing), the answer carries the current key.",
    )


class CheckinResponse(serializers.Serializer):
    status = serializers.CharField()
    actions = ActionSerializer(many=True)
    config_changed = serializers.BooleanField()
    config_version = serializers.CharField()
    heartbeat_interval_seconds = serializers.IntegerField()
    post_update_checkin_seconds = post_update_checkin_field()
    server_time = serializers.DateTimeField()
    signing_key = serializers.CharField(
        allow_null=True,
        help_text="The agent's new signing key (whsec_...) when the key it reported is not the current one "
        "(after a rotation), else null. The agent keeps its old key until notifications stop carrying it.",
    )


class ConfigurationResponse(serializers.Serializer):
    config_version = serializers.CharField()
    configuration = serializers.DictField()


class DownloadSerializer(serializers.Serializer):
    url = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    from_version = serializers.CharField(required=False)


class ManifestItem(serializers.Serializer):
    component = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    latest_version = serializers.CharField()
    sha256 = serializers.CharField(help_text="sha256 of the full file of the latest version.")
    size = serializers.IntegerField()
    released_at = serializers.DateTimeField()
    up_to_date = serializers.BooleanField()
    full = DownloadSerializer()
    incremental = DownloadSerializer(allow_null=True)


class ManifestResponse(serializers.Serializer):
    components = ManifestItem(many=True)


class ReportRequest(RequestSerializer):
    kind = serializers.ChoiceField(choices=["update", "scan"])
    result = serializers.ChoiceField(choices=["success", "failure"])
    trigger = serializers.ChoiceField(choices=["notification", "schedule", "restart", "manual", "update_now"])
    component_versions = VersionsField(required=False, default=dict)
    delivery_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=2**63 - 1
    )
    message = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    # Where the update's files came from, and through which proxy ("" for a direct connection).
    download_source = serializers.ChoiceField(choices=["", "server", "activeupdate"], required=False, default="")
    proxy = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ReportResponse(serializers.Serializer):
    recorded = serializers.BooleanField()


class ErrorResponse(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class PingResponse(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])


class NotificationAnswer(serializers.Serializer):
    """What an agent's listener answers to a notification it verified."""

    status = serializers.ChoiceField(choices=["accepted", "duplicate"])


class NotificationRefusal(serializers.Serializer):
    code = serializers.ChoiceField(choices=["bad_signature", "bad_body"])
    message = serializers.CharField()
