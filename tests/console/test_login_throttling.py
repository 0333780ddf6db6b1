"""Login throttling (django-axes) for the console and the admin login."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


def login(client, username, password, *, url=None, address="127.0.0.1"):
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_after_five_failures_the_right_password_is_refused_with_a_friendly_page(client, staff_user, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert login(client, "operator", "wrong").status_code == 200
    locked = login(client, "operator", "wrong")
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.content.decode()
    right = login(client, "operator", PASSWORD)
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "paused for 15 minutes" in right.content.decode()


def test_the_lockout_is_per_user_and_address(client, staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        login(client, "operator", "wrong", address="127.0.0.20")
    assert login(client, "operator", PASSWORD, address="127.0.0.20").status_code == 429
    # The same user from another address is not locked out.
    assert login(client, "operator", PASSWORD, address="127.0.0.21").status_code == 302


def test_a_rotated_x_forwarded_for_does_not_escape_the_lockout(client, staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.TRUSTED_PROXIES = []
    for n in range(2):
        client.post(
            reverse("login"),
            {"username": "operator", "password": "wrong"},
            REMOTE_ADDR="127.0.0.30",
            HTTP_X_FORWARDED_FOR=f"127.1.1.{n}",
        )
    response = client.post(
        reverse("login"),
        {"username": "operator", "password": PASSWORD},
        REMOTE_ADDR="127.0.0.30",
        HTTP_X_FORWARDED_FOR="127.1.1.99",
    )
    assert response.status_code == 429


def test_a_success_before_the_limit_resets_the_count(client, staff_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    login(client, "operator", "wrong")
    login(client, "operator", "wrong")
    assert login(client, "operator", PASSWORD).status_code == 302
    client.logout()
    login(client, "operator", "wrong")
    login(client, "operator", "wrong")
    assert login(client, "operator", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(client, admin_user_obj, settings):
    settings.AXES_FAILURE_LIMIT = 2
    url = reverse("admin:login")
    for _ in range(2):
        login(client, "root", "wrong", url=url)
    response = login(client, "root", PASSWORD, url=url)
    assert response.status_code == 429
    assert "Too many failed login attempts" in response.content.decode()
