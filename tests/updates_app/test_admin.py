"""The Django admin for update runs and deliveries: read-only lists."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from agents_app.models import Client
from tests.agents_app.factories import add_clients, make_domain
from updates_app.engine.runs import deliveries_create
from updates_app.models import Delivery, DeliveryStatus, RunTrigger, UpdateRun

pytestmark = pytest.mark.django_db
RUNS = reverse("admin:updates_app_updaterun_changelist")
DELIVERIES = reverse("admin:updates_app_delivery_changelist")


@pytest.fixture
def runs():
    hq = make_domain("hq")
    clients = add_clients(hq, 3)
    manual = UpdateRun.objects.create(trigger=RunTrigger.MANUAL)
    deliveries_create(run=manual, clients=Client.objects.all())
    scheduled = UpdateRun.objects.create(trigger=RunTrigger.SCHEDULE, window_key="daily:2026-06-01")
    deliveries_create(run=scheduled, clients=Client.objects.filter(pk=clients[0].pk))
    Delivery.objects.filter(run=manual, client=clients[1]).update(status=DeliveryStatus.DELIVERED)
    return {"manual": manual, "scheduled": scheduled, "clients": clients}


def test_a_superuser_opens_both_lists_with_runs_and_clients_shown(superuser_client, runs):
    first = runs["clients"][0]
    html = superuser_client.get(RUNS).content.decode()
    assert f"Manual run #{runs['manual'].pk}" in html and f"Scheduled run #{runs['scheduled'].pk}" in html
    assert reverse("updates:run-detail", args=[runs["scheduled"].pk]) in html
    response = superuser_client.get(DELIVERIES)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
    html = response.content.decode()
    assert reverse("admin:updates_app_updaterun_change", args=[runs["manual"].pk]) in html
    assert reverse("admin:agents_app_client_change", args=[first.pk]) in html
    assert f">{first.hostname}<" in html


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        (DELIVERIES, {"status__exact": "delivered"}, 1),
        (DELIVERIES, {"status__exact": "pending"}, 2),
        (DELIVERIES, {"status__exact": "superseded"}, 1),  # the scheduled run took over the first client
        (DELIVERIES, {"run__trigger__exact": "schedule"}, 1),
        (RUNS, {"trigger__exact": "schedule"}, 1),
        (RUNS, {"trigger__exact": "manual"}, 1),
    ],
)
def test_filters(superuser_client, runs, url, params, expected):
    response = superuser_client.get(url, params)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == expected


def test_search_by_client_hostname(superuser_client, runs):
    first, second = runs["clients"][:2]
    deliveries = superuser_client.get(DELIVERIES, {"q": first.hostname}).context["cl"].result_list
    assert {d.client_id for d in deliveries} == {first.pk} and len(deliveries) == 2
    found = superuser_client.get(RUNS, {"q": first.hostname}).context["cl"].result_list
    assert {r.pk for r in found} == {runs["manual"].pk, runs["scheduled"].pk}
    found = superuser_client.get(RUNS, {"q": second.hostname}).context["cl"].result_list
    assert [r.pk for r in found] == [runs["manual"].pk]


def test_the_lists_page_through_the_date_hierarchy(superuser_client, runs):
    run = runs["manual"]
    params = {"created_at__year": run.created_at.year, "created_at__month": run.created_at.month}
    assert len(superuser_client.get(RUNS, params).context["cl"].result_list) == 2
    assert len(superuser_client.get(DELIVERIES, params).context["cl"].result_list) == 4
    other_year = {"created_at__year": run.created_at.year - 1}
    assert len(superuser_client.get(DELIVERIES, other_year).context["cl"].result_list) == 0


def test_the_list_does_one_query_per_page_not_per_row(superuser_client, runs, django_assert_max_num_queries):
    superuser_client.get(DELIVERIES)  # warm the session and content types
    with django_assert_max_num_queries(8):
        superuser_client.get(DELIVERIES)


def test_nothing_can_be_added_changed_or_deleted(superuser_client, runs):
    run = runs["manual"]
    delivery = Delivery.objects.filter(run=run).first()
    assert superuser_client.get(reverse("admin:updates_app_updaterun_add")).status_code == 403
    assert superuser_client.get(reverse("admin:updates_app_delivery_add")).status_code == 403
    for name, obj in (("updaterun", run), ("delivery", delivery)):
        change = reverse(f"admin:updates_app_{name}_change", args=[obj.pk])
        page = superuser_client.get(change)
        assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
        assert superuser_client.post(change, {"status": "cancelled", "trigger": "schedule"}).status_code == 403
        assert superuser_client.get(reverse(f"admin:updates_app_{name}_delete", args=[obj.pk])).status_code == 403
    assert UpdateRun.objects.count() == 2 and Delivery.objects.count() == 4
    assert Delivery.objects.get(pk=delivery.pk).status == delivery.status


def test_staff_with_the_view_permission_may_look(client, django_user_model, runs):
    user = django_user_model.objects.create_user("viewer", password="pw-long-enough-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="updates_app", codename__in=["view_delivery"])
    )
    client.force_login(user)
    assert client.get(DELIVERIES).status_code == 200
    assert client.get(RUNS).status_code == 403
