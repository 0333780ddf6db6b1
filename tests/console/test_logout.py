"""Signing out works for every signed-in account, staff or not."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_a_non_staff_user_can_log_out(client, django_user_model):
    user = django_user_model.objects.create_user("endpoint-user", password="pw-123-long-enough")
    client.force_login(user)

    response = client.post(reverse("logout"))

    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home"))["Location"].startswith(reverse("login"))


def test_the_page_refusing_a_non_staff_user_offers_to_log_out(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("endpoint-user", password="pw-123-long-enough"))
    refused = client.get(reverse("home"))
    assert refused.status_code == 403
    assert f'action="{reverse("logout")}"' in refused.content.decode()


def test_a_staff_user_can_log_out(staff_client):
    assert staff_client.post(reverse("logout")).status_code == 302
    assert "_auth_user_id" not in staff_client.session


def test_logging_out_needs_a_post_with_the_csrf_token(django_user_model):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(django_user_model.objects.create_user("endpoint-user", password="pw-123-long-enough"))
    assert browser.get(reverse("logout")).status_code == 405
    assert browser.post(reverse("logout")).status_code == 403
    assert "_auth_user_id" in browser.session
