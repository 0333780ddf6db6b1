from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

pytestmark = pytest.mark.django_db


def test_administrators_see_the_enrollment_secret(superuser_client, settings):
    settings.AGENT_ENROLLMENT_SECRET = "s3cret-<b>"
    response = superuser_client.get("/clients/enrollment/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "s3cret-&lt;b&gt;" in body
    assert "/agent/v1/schema/" in body


def test_staff_without_add_permission_do_not_see_it(staff_client, settings):
    settings.AGENT_ENROLLMENT_SECRET = "hidden-secret-value"
    response = staff_client.get("/clients/enrollment/")
    assert response.status_code == 200
    assert "hidden-secret-value" not in response.content.decode()


def test_staff_with_add_permission_see_it(staff_client, staff_user, settings):
    settings.AGENT_ENROLLMENT_SECRET = "visible-secret-value"
    staff_user.user_permissions.add(Permission.objects.get(codename="add_client"))
    assert "visible-secret-value" in staff_client.get("/clients/enrollment/").content.decode()
