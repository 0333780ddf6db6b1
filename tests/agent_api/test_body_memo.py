"""agent_api/bodies.py remembers only what a shape-only serializer validated, and checks that it is one."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework import serializers

from agent_api import checkin
from agent_api.bodies import BodyMemo, NotShapeOnly, shape_only_problems
from agent_api.serializers import CheckinRequest, RequestSerializer
from agents_app.models import Client

pytestmark = pytest.mark.django_db


def test_the_checkins_memo_is_made_at_import_from_checkin_request():
    assert shape_only_problems(CheckinRequest) == []
    assert checkin._BODIES.serializer_class is CheckinRequest
    assert checkin._BODIES.per_request == ("signing_key_id",)


class WithFieldValidation(RequestSerializer):
    event = serializers.CharField()

    def validate_event(self, value):
        return value


class WithObjectValidation(RequestSerializer):
    event = serializers.CharField()

    def validate(self, attrs):
        return attrs


class WithMeta(RequestSerializer):
    event = serializers.CharField()

    class Meta:
        validators: list = []


class WithContextDefault(RequestSerializer):
    event = serializers.CharField(default=serializers.CurrentUserDefault())


class WithClockDefault(RequestSerializer):
    at = serializers.DateTimeField(default=timezone.now)


class ContextValidator:
    requires_context = True

    def __call__(self, value, field):
        return field.context["request"]


class WithContextValidator(RequestSerializer):
    event = serializers.CharField(validators=[ContextValidator()])


class Inner(serializers.Serializer):
    kind = serializers.CharField()


class WithNestedSerializer(RequestSerializer):
    inner = Inner()


class WithRelatedField(RequestSerializer):
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all())


class WithContextInAList(RequestSerializer):
    events = serializers.ListField(child=serializers.CharField(validators=[ContextValidator()]))


@pytest.mark.parametrize(
    ("serializer_class", "says"),
    [
        (WithFieldValidation, "validate_event"),
        (WithObjectValidation, "validate"),
        (WithMeta, "Meta"),
        (WithContextDefault, "default needs the context"),
        (WithClockDefault, "computed per request"),
        (WithContextValidator, "needs the context"),
        (WithNestedSerializer, "nested serializer"),
        (WithRelatedField, "PrimaryKeyRelatedField"),
        (WithContextInAList, r"events\[\]"),
    ],
)
def test_a_serializer_that_is_not_shape_only_is_refused_when_its_memo_is_made(serializer_class, says):
    with pytest.raises(NotShapeOnly, match=says):
        BodyMemo(serializer_class)


def test_a_per_request_field_must_be_one_of_the_serializers():
    with pytest.raises(NotShapeOnly, match="signing_key: not a field"):
        BodyMemo(CheckinRequest, per_request=("signing_key",))


def _known_hostname(value):
    if not Client.objects.filter(hostname=value).exists():
        raise serializers.ValidationError("unknown")


class ReadsTheDatabase(RequestSerializer):
    hostname = serializers.CharField(validators=[_known_hostname])


def test_a_validation_that_queries_the_database_is_refused_and_not_remembered():
    memo = BodyMemo(ReadsTheDatabase)  # nothing in its structure tells
    for _ in range(2):
        with pytest.raises(NotShapeOnly, match="queried the database"):
            memo.validated({"hostname": "pc-1"}, size=20)
    assert memo._known == {}
    # The database is refused only while the memo validates.
    assert not Client.objects.exists()


def test_a_shape_only_body_is_validated_once_and_an_invalid_one_every_time(validations):
    memo = BodyMemo(CheckinRequest, per_request=("signing_key_id",))
    body = {"event": "heartbeat", "roaming": True}
    for key_id in ("sk_0123456789abcdef", "sk_fedcba9876543210", ""):
        answer = memo.validated({**body, "signing_key_id": key_id}, size=80)
        assert answer["signing_key_id"] == key_id and answer["roaming"] is True
    assert len(validations) == 1
    for _ in range(2):
        with pytest.raises(serializers.ValidationError):
            memo.validated({**body, "signing_key_id": "sk_not-hex"}, size=80)
    assert len(validations) == 3
    # Too large to remember: validated every time.
    memo.validated({"event": "poll"}, size=5000)
    memo.validated({"event": "poll"}, size=5000)
    assert len(validations) == 5
