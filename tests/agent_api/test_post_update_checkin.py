"""The post-update check-in: its bound is told to agents, and it is always recorded (never a quiet heartbeat)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from agents_app.models import Client

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


def checkin(client, auth, event):
    return client.post("/agent/v1/checkin", {"event": event}, content_type="application/json", **auth)


def test_the_bound_is_in_every_register_and_check_in_answer(client, register, settings):
    settings.AGENT_POST_UPDATE_CHECKIN_SECONDS = 240
    data, auth = register()
    assert data["post_update_checkin_seconds"] == 240
    assert checkin(client, auth, "heartbeat").json()["post_update_checkin_seconds"] == 240


def test_a_post_update_check_in_is_recorded_where_a_heartbeat_is_not(client, register):
    with time_machine.travel(START, tick=False) as clock:
        data, auth = register()
        registered = Client.objects.get(guid=data["client_id"])
        assert registered.last_contact_at == START
        # A heartbeat soon after, reporting nothing new, writes nothing (the contact stamp is fresh).
        clock.move_to(START + dt.timedelta(seconds=20))
        assert checkin(client, auth, "heartbeat").status_code == 200
        after_heartbeat = Client.objects.get(pk=registered.pk)
        assert (after_heartbeat.last_contact_at, after_heartbeat.post_update_checkin_at) == (START, None)
        # The post-update check-in is the proof of life a staged roll-out waits for: always stamped.
        clock.move_to(START + dt.timedelta(seconds=40))
        response = checkin(client, auth, "post_update")
        assert response.status_code == 200
        assert response.json()["status"] == "online"
        stamped = Client.objects.get(pk=registered.pk)
        assert stamped.last_contact_at == stamped.post_update_checkin_at == START + dt.timedelta(seconds=40)
        # A later heartbeat that changes something (new versions) moves the contact stamp, not this one.
        clock.move_to(START + dt.timedelta(seconds=60))
        response = client.post(
            "/agent/v1/checkin", {"event": "heartbeat", "roaming": True}, content_type="application/json", **auth
        )
        assert response.status_code == 200
        later = Client.objects.get(pk=registered.pk)
        assert later.last_contact_at == START + dt.timedelta(seconds=60)
        assert later.post_update_checkin_at == START + dt.timedelta(seconds=40)


def test_an_unknown_event_is_still_refused(client, register):
    _data, auth = register()
    response = checkin(client, auth, "after_update")
    assert response.status_code == 400
    assert response.json()["errors"]["event"] == ['"after_update" is not a valid choice.']
