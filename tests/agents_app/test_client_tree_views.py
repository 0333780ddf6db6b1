"""Networked Computers > Client Management: the tree page, its fragments and the dialog over HTTP."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from agents_app.models import Client, Domain
from agents_app.privileges import selection_resolve, selection_summary
from console.models import AuditEntry
from tests.agents_app.factories import add_clients, make_domain
from updates_app.configuration import client_configuration

pytestmark = pytest.mark.django_db
TREE = reverse("agents:client-management")
DIALOG = reverse("agents:privileges")
ALL_ON = {
    "roaming_privilege": "unchanged",
    "update_now_privilege": "unchanged",
    "scheduled_update_privilege": "unchanged",
    "proxy_privilege": "unchanged",
    "download_from_activeupdate": "unchanged",
    "scheduled_update_setting": "unchanged",
    "components_only": "unchanged",
}


def children_url(domain: Domain) -> str:
    return reverse("agents:domain-children", args=[domain.pk])


def fingerprint(**selection) -> str:
    return selection_summary(selection_resolve(**selection)).fingerprint()


@pytest.fixture
def fleet():
    hq = make_domain("hq")
    sales = make_domain("sales", parent=hq)
    lab = make_domain("lab")
    add_clients(hq, 3)
    add_clients(sales, 4)
    add_clients(lab, 2, status="offline")
    return {"hq": hq, "sales": sales, "lab": lab}


def user_with(django_user_model, *codenames: str):
    user = django_user_model.objects.create_user("viewer", password="pw-long-enough-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="agents_app", codename__in=codenames))
    return user


def test_the_tree_shows_the_server_and_top_level_domains_with_cumulative_counts(superuser_client, fleet):
    html = superuser_client.get(TREE).content.decode()
    assert "Update Console server" in html
    assert 'aria-label="Select domain hq"' in html and 'aria-label="Select domain lab"' in html
    # hq holds 3 clients itself and 4 in sales.
    assert re.search(
        r'<span class="domain-name">hq</span></label>\s*<span class="badge text-bg-secondary" '
        r'title="Clients in this domain and its subdomains">7<',
        html,
    )
    # Subdomains and clients are loaded on demand, not with the page.
    assert "sales" not in html and "pc-" not in html


def test_expanding_a_domain_shows_subdomains_and_its_clients_with_their_state(superuser_client, fleet):
    html = superuser_client.get(children_url(fleet["hq"])).content.decode()
    assert 'aria-label="Select domain sales"' in html
    hq_clients = Client.objects.filter(domain=fleet["hq"])
    for client in hq_clients:
        assert client.hostname in html and client.ip_address in html
    assert "Runs (user may turn it off)" in html
    assert html.count('name="client"') == 3


def test_client_rows_are_paginated_inside_big_domains(superuser_client, fleet):
    add_clients(fleet["lab"], 250)
    first = superuser_client.get(children_url(fleet["lab"])).content.decode()
    assert first.count('name="client"') == 100
    assert "Clients 1\u2013100 of 252" in first
    last = superuser_client.get(children_url(fleet["lab"]) + "?page=3").content.decode()
    assert last.count('name="client"') == 52


def test_search_by_hostname_and_ip_and_filter_by_status(superuser_client, fleet):
    target = Client.objects.filter(domain=fleet["sales"]).first()
    by_name = superuser_client.get(TREE, {"q": target.hostname}).content.decode()
    assert by_name.count('name="client"') == 1 and target.hostname in by_name
    by_ip = superuser_client.get(TREE, {"q": target.ip_address}).content.decode()
    assert target.hostname in by_ip
    offline = superuser_client.get(TREE, {"status": "offline"}).content.decode()
    assert offline.count('name="client"') == 2
    nothing = superuser_client.get(TREE, {"q": "no-such-host"}).content.decode()
    assert "No client matches" in nothing


def _queries(client: HttpClient, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_query_counts_do_not_grow_with_the_fleet(client, django_user_model, django_assert_max_num_queries):
    # A viewer (not a superuser) so that permission lookups are counted too.
    client.force_login(user_with(django_user_model, "view_client"))
    domains = [make_domain(f"site-{i}") for i in range(5)]
    big = make_domain("big", parent=domains[0])
    for domain in domains:
        add_clients(domain, 20)
    add_clients(big, 10)

    urls = (
        TREE,
        children_url(domains[0]),
        children_url(big),
        f"{TREE}?q=pc-&status=online",
        f"{DIALOG}?domain={domains[0].pk}&partial=1",
        # Expanded by the address, with a page of clients each: three queries more, whatever the size.
        f"{TREE}?open={domains[0].pk},{big.pk}:2,{domains[1].pk}&sort=contact",
    )
    small = {url: _queries(client, url) for url in urls}
    for domain in domains:
        add_clients(domain, 200)
    add_clients(big, 990)
    assert Client.objects.count() == 2100 and big.clients.count() == 1000
    large = {url: _queries(client, url) for url in small}

    assert small == large
    with django_assert_max_num_queries(8):
        client.get(TREE)
    # One more than the tree page: the components' names for the Components column.
    with django_assert_max_num_queries(9):
        client.get(children_url(big))
    with django_assert_max_num_queries(11):
        client.get(f"{TREE}?open={domains[0].pk},{big.pk}:2,{domains[1].pk}")


def test_dialog_opens_prefilled_and_shows_mixed_settings(superuser_client, fleet):
    Client.objects.filter(pk=Client.objects.filter(domain=fleet["lab"]).first().pk).update(roaming_privilege=True)
    html = superuser_client.get(DIALOG, {"domain": fleet["lab"].pk, "partial": "1"}).content.decode()
    assert "Privileges and Other Settings" in html
    for label in (
        "Roaming Privilege",
        "Enable roaming mode",
        "Component Update Privileges",
        "Perform &quot;Update Now&quot;",
        "Update Settings",
        "Clients download updates from the ActiveUpdate server",
        "Clients can update components but not upgrade the client program or deploy hot fixes",
    ):
        assert label in html
    assert html.count(">Enable scheduled update</label>") == 2
    # Mixed: three radio buttons, "leave as each client has it" chosen.
    assert re.search(r'type="radio" name="roaming_privilege" value="unchanged" id="[^"]+" checked', html)
    # Unanimous: a plain checkbox, ticked or not.
    assert re.search(
        r'type="checkbox" name="update_now_privilege" value="on" id="id_update_now_privilege" checked', html
    )
    assert re.search(r'type="checkbox" name="components_only" value="on" id="id_components_only">', html)
    assert "Apply to All Clients" not in html  # only with the root selected


def test_dialog_for_an_empty_domain_opens_with_its_defaults_and_saving_sets_them(superuser_client, fleet):
    empty = make_domain("empty", parent=fleet["lab"])
    Domain.objects.filter(pk=empty.pk).update(roaming_privilege=True)
    html = superuser_client.get(DIALOG, {"domain": empty.pk}).content.decode()
    assert "0 clients" in html
    assert re.search(r'name="roaming_privilege" value="on" id="id_roaming_privilege" checked', html)
    assert re.search(r'name="components_only" value="on" id="id_components_only">', html)

    data = {
        **ALL_ON,
        "domain": [empty.pk],
        "components_only": "on",
        "fingerprint": fingerprint(domain_ids=[empty.pk], root=False),
    }
    assert superuser_client.post(DIALOG, data).status_code == 302
    assert Domain.objects.get(pk=empty.pk).components_only is True
    assert not Client.objects.filter(components_only=True).exists()


def test_dialog_with_the_root_offers_both_root_choices(superuser_client, fleet):
    html = superuser_client.get(DIALOG, {"root": "1"}).content.decode()
    assert "Apply to All Clients" in html and "Apply to Future Domains Only" in html


def test_saving_the_dialog_changes_the_subtree_and_records_an_audit_entry(superuser_client, fleet):
    data = {
        **ALL_ON,
        "domain": [fleet["hq"].pk],
        "scheduled_update_privilege": "off",
        "fingerprint": fingerprint(root=False, domain_ids=[fleet["hq"].pk]),
    }
    response = superuser_client.post(DIALOG, data, follow=True)
    assert response.redirect_chain[-1][0] == TREE
    assert "7 of 7 clients changed" in response.content.decode()
    assert Client.objects.filter(scheduled_update_privilege=False).count() == 7
    assert Client.objects.filter(domain=fleet["lab"], scheduled_update_privilege=True).count() == 2
    assert AuditEntry.objects.get().changes["scheduled_update_privilege"] == {
        "label": "Enable scheduled update (Privileges tab)",
        "old": True,
        "new": False,
    }
    # The tree now says it in words.
    assert "No scheduled update (no privilege)" in superuser_client.get(children_url(fleet["sales"])).content.decode()


def test_root_apply_to_future_domains_only_over_http(superuser_client, fleet):
    data = {**ALL_ON, "root": "1", "scope": "future", "components_only": "on", "fingerprint": "x"}
    assert superuser_client.post(DIALOG, data).status_code == 302
    assert not Client.objects.filter(components_only=True).exists()
    assert make_domain("new-site").components_only is True


def test_root_without_a_scope_is_refused(superuser_client, fleet):
    data = {**ALL_ON, "root": "1", "components_only": "on", "fingerprint": fingerprint(root=True)}
    response = superuser_client.post(DIALOG, data)
    assert response.status_code == 400
    assert "Choose “Apply to All Clients” or “Apply to Future Domains Only”" in response.content.decode()
    assert not Client.objects.filter(components_only=True).exists()


# --- Permissions and CSRF


def test_staff_without_the_view_permission_sees_no_clients(staff_client, fleet):
    html = staff_client.get(TREE).content.decode()
    assert "may not view clients" in html and "hq" not in html
    assert staff_client.get(children_url(fleet["hq"])).status_code == 403


def test_view_permission_sees_the_tree_and_a_read_only_dialog_but_cannot_save(client, django_user_model, fleet):
    client.force_login(user_with(django_user_model, "view_client"))
    assert "hq" in client.get(TREE).content.decode()
    dialog = client.get(DIALOG, {"domain": fleet["hq"].pk}).content.decode()
    assert "Can change client" in dialog and 'id="privileges-save"' not in dialog
    assert "disabled" in dialog
    data = {**ALL_ON, "domain": [fleet["hq"].pk], "roaming_privilege": "on", "fingerprint": "x"}
    assert client.post(DIALOG, data).status_code == 403
    assert not Client.objects.filter(roaming_privilege=True).exists()


def test_change_permission_can_save(client, django_user_model, fleet):
    client.force_login(user_with(django_user_model, "view_client", "change_client"))
    data = {
        **ALL_ON,
        "domain": [fleet["lab"].pk],
        "roaming_privilege": "on",
        "fingerprint": fingerprint(root=False, domain_ids=[fleet["lab"].pk]),
    }
    assert client.post(DIALOG, data).status_code == 302
    assert Client.objects.filter(roaming_privilege=True).count() == 2


def test_a_post_without_the_csrf_token_is_refused(admin_user_obj, fleet):
    client = HttpClient(enforce_csrf_checks=True)
    client.force_login(admin_user_obj)
    data = {**ALL_ON, "domain": [fleet["lab"].pk], "roaming_privilege": "on", "fingerprint": "x"}
    assert client.post(DIALOG, data).status_code == 403
    assert not Client.objects.filter(roaming_privilege=True).exists()


def test_names_are_escaped_everywhere(superuser_client):
    evil = make_domain("<script>alert('d')</script>")
    add_clients(evil, 1)
    Client.objects.update(hostname="<script>alert('c')</script>")
    pages = [
        superuser_client.get(TREE).content.decode(),
        superuser_client.get(children_url(evil)).content.decode(),
        superuser_client.get(TREE, {"q": "script"}).content.decode(),
        superuser_client.get(DIALOG, {"domain": evil.pk}).content.decode(),
    ]
    for html in pages:
        assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;alert(&#x27;c&#x27;)&lt;/script&gt;" in pages[1]


# --- Bad input: a clear message, nothing saved


def _nothing_saved():
    assert not Client.objects.filter(roaming_privilege=True).exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({}, "Select at least one domain or client"),
        ({"domain": ["999999"]}, "Domains with these ids do not exist"),
        ({"client": ["999999"]}, "Clients with these ids do not exist"),
        ({"domain": ["not-a-number"]}, "do not exist"),
    ],
)
def test_bad_selections_are_refused(superuser_client, fleet, selection, message):
    data = {**ALL_ON, **selection, "roaming_privilege": "on", "fingerprint": "x"}
    response = superuser_client.post(DIALOG, data, follow=True)
    assert message in response.content.decode()
    assert "Nothing was saved" in response.content.decode()
    _nothing_saved()


def test_opening_the_dialog_with_an_empty_selection_says_what_to_do(superuser_client, fleet):
    response = superuser_client.get(DIALOG)
    assert response.status_code == 200
    assert "Select at least one domain or client in the client tree first." in response.content.decode()


def test_a_stale_form_is_refused(superuser_client, fleet):
    opened = fingerprint(root=False, domain_ids=[fleet["lab"].pk])
    Client.objects.filter(domain=fleet["lab"]).update(components_only=True)  # someone else saved meanwhile
    data = {**ALL_ON, "domain": [fleet["lab"].pk], "roaming_privilege": "on", "fingerprint": opened}
    response = superuser_client.post(DIALOG, data)
    assert response.status_code == 409
    assert "changed after you opened this dialog" in response.content.decode()
    _nothing_saved()


@pytest.mark.parametrize(
    "tampered",
    [
        {"roaming_privilege": "maybe"},
        {"roaming_privilege": ""},
        {"scheduled_update_setting": "1"},
        {"fingerprint": ""},
    ],
)
def test_a_tampered_post_is_refused(superuser_client, fleet, tampered):
    data = {
        **ALL_ON,
        "domain": [fleet["lab"].pk],
        "roaming_privilege": "on",
        "fingerprint": fingerprint(root=False, domain_ids=[fleet["lab"].pk]),
        **tampered,
    }
    response = superuser_client.post(DIALOG, data)
    assert response.status_code == 400
    assert "The settings were not saved" in response.content.decode()
    _nothing_saved()


def test_a_future_domains_scope_without_the_root_is_ignored_not_applied(superuser_client, fleet):
    # The scope field does not exist without the root: a tampered value cannot widen the save.
    data = {
        **ALL_ON,
        "domain": [fleet["lab"].pk],
        "scope": "future",
        "roaming_privilege": "on",
        "fingerprint": fingerprint(root=False, domain_ids=[fleet["lab"].pk]),
    }
    assert superuser_client.post(DIALOG, data).status_code == 302
    assert Client.objects.filter(roaming_privilege=True).count() == 2
    assert not Client.objects.exclude(domain=fleet["lab"]).filter(roaming_privilege=True).exists()


def test_a_tampered_root_scope_is_refused(superuser_client, fleet):
    data = {
        **ALL_ON,
        "root": "1",
        "scope": "everything",
        "roaming_privilege": "on",
        "fingerprint": fingerprint(root=True),
    }
    response = superuser_client.post(DIALOG, data)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    _nothing_saved()


def test_the_proxy_privilege_is_in_the_dialog_and_reaches_the_configuration(superuser_client, fleet):
    dialog = superuser_client.get(DIALOG, {"domain": fleet["lab"].pk}).content.decode()
    assert "Proxy Setting Privileges" in dialog
    assert "Allow client users to configure proxy settings" in dialog
    data = {
        **ALL_ON,
        "domain": [fleet["lab"].pk],
        "proxy_privilege": "on",
        "fingerprint": fingerprint(root=False, domain_ids=[fleet["lab"].pk]),
    }
    assert superuser_client.post(DIALOG, data).status_code == 302
    lab_clients = Client.objects.filter(domain=fleet["lab"])
    assert set(lab_clients.values_list("proxy_privilege", flat=True)) == {True}
    assert not Client.objects.exclude(domain=fleet["lab"]).filter(proxy_privilege=True).exists()
    assert Domain.objects.get(pk=fleet["lab"].pk).proxy_privilege is True
    assert client_configuration(lab_clients.first())["privileges"]["configure_proxy"] is True


def test_the_tree_expands_by_address_with_pages_and_sorts(superuser_client, fleet):
    add_clients(fleet["sales"], 150)
    html = superuser_client.get(TREE, {"open": f"{fleet['hq'].pk},{fleet['sales'].pk}:2"}).content.decode()
    assert html.count('aria-expanded="true"') == 3  # the server, hq and sales
    assert html.count('name="client"') == 3 + 54  # hq's own clients and page 2 of sales (154 clients)
    assert "Clients 101\u2013154 of 154 directly in sales" in html
    # Links reload the page with one more (or one less) domain expanded: no JavaScript needed.
    assert (
        f'href="{TREE}?open={fleet["hq"].pk}%2C{fleet["sales"].pk}%3A2%2C{fleet["lab"].pk}#domain-{fleet["lab"].pk}"'
        in html
    )
    # "Go to page" is a form of its own that keeps the other expanded domains.
    jumped = superuser_client.get(TREE, {"open": f"{fleet['hq'].pk}", "jump": fleet["sales"].pk, "page": "1"})
    assert jumped.content.decode().count('name="client"') == 3 + 100
    Client.objects.filter(domain=fleet["hq"]).update(status="offline")
    Client.objects.filter(pk=Client.objects.filter(domain=fleet["hq"]).order_by("hostname").first().pk).update(
        status="online"
    )
    by_status = superuser_client.get(TREE, {"open": fleet["hq"].pk, "sort": "status"}).content.decode()
    statuses = re.findall(r'<span class="badge status-(\w+)">', by_status)
    assert statuses == ["offline", "offline", "online"]
    # Nonsense in the address is ignored, never an error.
    assert superuser_client.get(TREE, {"open": "x,-1,99999999:abc", "sort": "evil"}).status_code == 200


def test_a_large_save_shows_the_numbers_and_asks_once_more(superuser_client, fleet, settings):
    settings.CONFIRM_ABOVE_CLIENTS = 5
    data = {
        **ALL_ON,
        "root": "1",
        "scope": "all",
        "components_only": "on",
        "fingerprint": fingerprint(root=True),
        "open": str(fleet["hq"].pk),
    }
    asked = superuser_client.post(DIALOG, data)
    assert asked.status_code == 200
    text = asked.content.decode()
    assert re.search(r"change the settings of <strong>9 clients</strong>\s+and <strong>3 domains</strong>", text)
    assert not Client.objects.filter(components_only=True).exists() and not AuditEntry.objects.exists()
    done = superuser_client.post(DIALOG, {**data, "confirmed": "1"})
    assert done.status_code == 302 and done["Location"] == f"{TREE}?open={fleet['hq'].pk}"
    assert Client.objects.filter(components_only=True).count() == 9
    # Under the threshold nothing more is asked.
    small = {**ALL_ON, "domain": [fleet["lab"].pk], "roaming_privilege": "on"}
    small["fingerprint"] = fingerprint(root=False, domain_ids=[fleet["lab"].pk])
    assert superuser_client.post(DIALOG, small).status_code == 302


def test_all_clients_on_a_page_can_be_ticked_at_once_without_javascript(superuser_client, fleet):
    add_clients(fleet["sales"], 150)
    html = superuser_client.get(TREE, {"open": f"{fleet['hq'].pk},{fleet['sales'].pk}:2"}).content.decode()
    pages = re.findall(r'name="client_page" value="([0-9,]+)"', html)
    assert sorted(len(ids.split(",")) for ids in pages) == [3, 54]
    pages.sort(key=len)
    # The dialog and Manual Update read that box as the page's clients.
    dialog = superuser_client.get(DIALOG, {"client_page": pages[1]}).content.decode()
    assert "Selected: <strong>54 clients</strong>" in dialog
    manual = superuser_client.get(reverse("updates:manual-update"), {"client_page": pages[1], "client": "x"})
    assert "do not exist" in manual.content.decode()  # bad ids are refused, as for single boxes
    manual = superuser_client.get(reverse("updates:manual-update"), {"client_page": pages[1]})
    assert '<strong id="confirm-count">54</strong>' in manual.content.decode()
