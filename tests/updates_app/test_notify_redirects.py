"""A listener cannot send the server's notification elsewhere: redirects are not followed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents_app.models import Client, ConnectionStatus
from tests.updates_app.engine import engine_round
from updates_app.engine.runs import deliveries_create
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun


@contextmanager
def listener(host: str, status: int, location: str = "") -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server answering every request with ``status``; yields (port, requests seen)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_HEAD = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_listener_answering_a_redirect_gets_no_follow_up_request_anywhere(domain, status):
    # given: a second listener on another loopback address, as the redirect target
    with listener("127.0.0.3", 200) as (target_port, target_seen):
        location = f"http://127.0.0.3:{target_port}/anything"
        with listener("127.0.0.1", status, location) as (port, seen):
            client = Client.objects.create(
                domain=domain,
                hostname="redirector",
                ip_address="127.0.0.1",
                listener_port=port,
                status=ConnectionStatus.ONLINE,
            )
            run = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
            deliveries_create(run=run, clients=Client.objects.filter(pk=client.pk))
            # when
            assert engine_round() == 1
    # then: one request to the registered listener, none to where it pointed
    assert seen == ["POST /notify"]
    assert target_seen == []
    delivery = Delivery.objects.get(run=run)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.RETRYING, 1)
    assert delivery.last_error == f"HTTP {status}: redirects are not followed"
