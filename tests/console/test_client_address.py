"""The client address of a request (console/client_address.py): one rule for registration and rate limits."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from console.client_address import client_ip


def request(remote_addr: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize("forwarded", [None, "", "127.10.0.5", "127.10.0.5, 127.192.0.1", "garbage", "127.0.0.1"])
def test_without_a_trusted_proxy_the_peer_is_the_client_whatever_the_header(settings, forwarded):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request("127.0.0.9", forwarded)) == "127.0.0.9"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        # Our proxy appended the address it saw; the left part is the client's own writing.
        ("127.10.0.5", "127.10.0.5"),
        ("127.1.2.4, 127.10.0.5", "127.10.0.5"),
        # Two trusted proxies in a row: skip both.
        ("127.1.2.4, 127.10.0.5, 127.0.0.3", "127.10.0.5"),
        # Only trusted hops: the left-most.
        ("127.0.0.4, 127.0.0.3", "127.0.0.4"),
        # No header, or garbage where our proxy would have written: the proxy itself.
        (None, "127.0.0.2"),
        ("127.10.0.5, not-an-ip", "127.0.0.2"),
        (" 127.10.0.5 ", "127.10.0.5"),
    ],
)
def test_behind_a_trusted_proxy_the_rightmost_untrusted_forwarded_address_counts(settings, forwarded, expected):
    settings.TRUSTED_PROXIES = ["127.0.0.0/29"]
    assert client_ip(request("127.0.0.2", forwarded)) == expected


def test_a_peer_that_is_not_a_trusted_proxy_cannot_forward(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.2/32"]
    assert client_ip(request("127.0.0.9", "127.10.0.5")) == "127.0.0.9"


def test_ipv6_addresses_come_back_in_canonical_form(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(request("0:0:0:0:0:0:0:1")) == "::1"


def test_no_usable_peer_address_is_an_empty_string(settings):
    assert client_ip(request("")) == ""


def test_an_ipv4_mapped_peer_is_its_ipv4_address(settings):
    # A server on a dual-stack socket sees IPv4 clients this way; stored as is,
    # the address would match no IPv4 network and the client would be unreachable.
    settings.TRUSTED_PROXIES = ["127.0.0.2/32"]
    assert client_ip(request("::ffff:127.0.0.9")) == "127.0.0.9"
    assert client_ip(request("::ffff:127.0.0.2", "::ffff:127.0.3.7")) == "127.0.3.7"
