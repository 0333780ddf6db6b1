import pytest

from agents_app import signing

KEY = signing.client_signing_key("0b6c6c36-0000-4000-8000-000000000001", secret="server-key")


def test_a_signed_notification_verifies():
    headers = signing.signature_headers(KEY, "msg_1", b'{"action":"update"}', now=1_000_000)
    assert signing.verify(KEY, headers, b'{"action":"update"}', now=1_000_010) == "msg_1"


def test_a_changed_body_is_rejected():
    headers = signing.signature_headers(KEY, "msg_1", b'{"action":"update"}', now=1_000_000)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(KEY, headers, b'{"action":"scan"}', now=1_000_000)


def test_a_stale_timestamp_is_rejected():
    headers = signing.signature_headers(KEY, "msg_1", b"{}", now=1_000_000)
    with pytest.raises(signing.SignatureError, match="too old"):
        signing.verify(KEY, headers, b"{}", now=1_000_000 + signing.TIMESTAMP_TOLERANCE_SECONDS + 1)


def test_another_clients_key_does_not_verify():
    other = signing.client_signing_key("0b6c6c36-0000-4000-8000-000000000002", secret="server-key")
    headers = signing.signature_headers(KEY, "msg_1", b"{}", now=1_000_000)
    with pytest.raises(signing.SignatureError):
        signing.verify(other, headers, b"{}", now=1_000_000)


def test_missing_headers_are_rejected():
    with pytest.raises(signing.SignatureError, match="missing"):
        signing.verify(KEY, {}, b"{}")


def test_key_round_trips_through_its_text_form():
    assert signing.decode_key(signing.encode_key(KEY)) == KEY


def test_during_a_rotation_the_header_carries_one_signature_per_key_and_either_key_verifies():
    new = signing.client_signing_key("0b6c6c36-0000-4000-8000-000000000001", secret="new-server-key")
    headers = signing.signature_headers([new, KEY], "dlv_1", b"{}")
    assert len(headers["webhook-signature"].split()) == 2
    assert signing.verify(KEY, headers, b"{}") == "dlv_1"
    assert signing.verify(new, headers, b"{}") == "dlv_1"
    assert signing.verify([b"x" * 32, new], headers, b"{}") == "dlv_1"


def test_a_key_id_names_the_key_without_giving_it_away():
    assert signing.key_id(KEY).startswith("sk_") and len(signing.key_id(KEY)) == 19
    assert signing.key_id(KEY) != signing.key_id(b"other")
    assert signing.encode_key(KEY).removeprefix("whsec_") not in signing.key_id(KEY)
