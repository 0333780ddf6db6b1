"""Every path under /agent/ answers JSON, including the odd ones."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/agent/v1/foo",
        "/agent/v1/foo%0A",
        "/agent/v1/%0A",
        "/agent/v1/register%0A",
        "/agent/v1/schema/%0A",
        "/agent/v1/foo%0Abar",
        "/agent/v1/foo%0D%0A",
        "/agent/",
        "/agent/foo",
        "/agent/v2/checkin",
        "/agent/foo%0A",
        "/agent/v1",
    ],
)
def test_any_other_path_under_agent_is_a_json_404(path):
    # As an agent sends it: no CSRF cookie or token.
    client = Client(enforce_csrf_checks=True)
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 404, (path, response.status_code)
        assert response["Content-Type"] == "application/json"
        assert response.json() == {"code": "not_found", "message": "No such endpoint."}
