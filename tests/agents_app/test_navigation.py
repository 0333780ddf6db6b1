"""Links between the pages: the tree to Manual Update and delivery history, the summary to late clients."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.agents_app.factories import add_clients, make_domain

pytestmark = pytest.mark.django_db
TREE = reverse("agents:client-management")


def test_update_now_submits_the_tree_ticks_to_the_manual_update_confirmation(superuser_client):
    hq = make_domain("hq")
    add_clients(hq, 3)
    html = superuser_client.get(TREE).content.decode()
    button = re.search(r'<button[^>]*id="update-now"[^>]*>', html).group(0)
    assert 'form="tree-form"' in button
    assert f'formaction="{reverse("updates:manual-update")}"' in button
    # The tree form's ticks are named as Manual Update reads them; the form submits with GET.
    assert re.search(r'<form id="tree-form" method="get"', html)
    assert 'name="root" value="1"' in html and 'name="domain"' in html
    page = superuser_client.get(reverse("updates:manual-update"), {"domain": hq.pk})
    assert page.status_code == 200
    assert '<strong id="confirm-count">3</strong>' in page.content.decode()


def test_each_client_row_links_to_its_delivery_history(superuser_client):
    hq = make_domain("hq")
    clients = add_clients(hq, 2)
    fragment = superuser_client.get(reverse("agents:domain-children", args=[hq.pk])).content.decode()
    for client in clients:
        url = reverse("updates:client-deliveries", args=[client.pk])
        assert f'href="{url}"' in fragment
        assert superuser_client.get(url).status_code == 200
    found = superuser_client.get(TREE, {"q": clients[0].hostname}).content.decode()
    assert f'href="{reverse("updates:client-deliveries", args=[clients[0].pk])}"' in found


def test_the_update_summary_links_to_late_clients(superuser_client):
    html = superuser_client.get(reverse("updates:summary")).content.decode()
    url = reverse("updates:late-clients")
    assert f'href="{url}"' in html
    assert superuser_client.get(url).status_code == 200
