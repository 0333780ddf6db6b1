"""The Django admin for the client tree."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents_app.models import Client, Domain, FutureDomainDefaults
from tests.agents_app.factories import add_clients, make_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    hq = make_domain("hq")
    sales = make_domain("sales", parent=hq)
    add_clients(hq, 2)
    add_clients(sales, 3, scheduled_update_privilege=False)
    return hq, sales


def test_domain_changelist_shows_cumulative_counts(superuser_client, fleet):
    html = superuser_client.get(reverse("admin:agents_app_domain_changelist")).content.decode()
    assert "sales" in html and ">5<" in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "online"}, 5),
        ({"scheduled_state": "no_privilege"}, 3),
        ({"scheduled_state": "user_may_disable"}, 2),
        ({"q": "pc-"}, 5),
    ],
)
def test_client_changelist_filters(superuser_client, fleet, params, expected):
    response = superuser_client.get(reverse("admin:agents_app_client_changelist"), params)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == expected


def test_admin_refuses_to_move_a_domain_under_its_own_subdomain(superuser_client, fleet):
    hq, sales = fleet
    url = reverse("admin:agents_app_domain_change", args=[hq.pk])
    data = {"name": "hq", "parent": sales.pk, **{k: "on" for k, v in hq.settings_dict().items() if v}}
    response = superuser_client.post(url, data)
    assert response.status_code == 200
    # django-mptt's form leaves the domain's own subtree out of the parent choices.
    assert "Select a valid choice" in str(response.context["adminform"].form.errors["parent"])
    assert Domain.objects.get(pk=hq.pk).parent_id is None


def test_a_domain_added_in_the_admin_starts_from_future_defaults(superuser_client):
    FutureDomainDefaults.objects.update_or_create(pk=1, defaults={"components_only": True})
    html = superuser_client.get(reverse("admin:agents_app_domain_add")).content.decode()
    assert 'name="components_only" id="id_components_only" checked' in html


def test_client_change_page_loads(superuser_client, fleet):
    client = Client.objects.first()
    assert superuser_client.get(reverse("admin:agents_app_client_change", args=[client.pk])).status_code == 200
