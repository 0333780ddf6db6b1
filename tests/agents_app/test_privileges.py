"""The bulk save behind Privileges and Other Settings, and the tree's services."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agents_app.models import Client, Domain, FutureDomainDefaults
from agents_app.privileges import (
    SCOPE_ALL,
    SCOPE_FUTURE,
    SelectionError,
    StaleSelectionError,
    privileges_save,
    selection_resolve,
    selection_summary,
)
from agents_app.scheduled_state import ScheduledState
from agents_app.services import client_create, domain_create, domain_move
from console.models import AuditEntry
from tests.agents_app.factories import add_clients, make_domain
from updates_app.configuration import client_configuration, configuration_hash

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree():
    """hq > (sales > emea), hq > ops; lab (separate tree)."""
    hq = make_domain("hq")
    sales = make_domain("sales", parent=hq)
    emea = make_domain("emea", parent=sales)
    ops = make_domain("ops", parent=hq)
    lab = make_domain("lab")
    for domain, n in ((hq, 2), (sales, 3), (emea, 4), (ops, 5), (lab, 6)):
        add_clients(domain, n)
    return {d.name: Domain.objects.get(pk=d.pk) for d in (hq, sales, emea, ops, lab)}


def test_saving_a_domain_changes_every_client_in_its_subtree_and_nothing_else(tree, admin_user_obj):
    selection = selection_resolve(root=False, domain_ids=[tree["sales"].pk])

    result = privileges_save(actor=admin_user_obj, selection=selection, changes={"scheduled_update_privilege": False})

    assert result.clients_selected == 7 and result.clients_changed == 7
    changed = Client.objects.filter(scheduled_update_privilege=False)
    assert set(changed.values_list("domain__name", flat=True)) == {"sales", "emea"}
    assert changed.count() == 7
    # The defaults of the selected domain and its subdomains follow, so clients joining later match.
    assert set(Domain.objects.filter(scheduled_update_privilege=False).values_list("name", flat=True)) == {
        "sales",
        "emea",
    }


def test_bulk_save_uses_a_constant_number_of_queries(tree, admin_user_obj, django_assert_max_num_queries):
    selection = selection_resolve(root=False, domain_ids=[tree["hq"].pk], client_ids=[])
    with django_assert_max_num_queries(6):
        privileges_save(actor=admin_user_obj, selection=selection, changes={"roaming_privilege": True})
    assert Client.objects.filter(roaming_privilege=True).count() == 14


def test_selected_clients_and_domains_combine(tree, admin_user_obj):
    lab_client = Client.objects.filter(domain=tree["lab"]).first()
    selection = selection_resolve(root=False, domain_ids=[tree["ops"].pk], client_ids=[lab_client.pk])

    privileges_save(actor=admin_user_obj, selection=selection, changes={"components_only": True})

    assert set(Client.objects.filter(components_only=True).values_list("pk", flat=True)) == {
        *Client.objects.filter(domain=tree["ops"]).values_list("pk", flat=True),
        lab_client.pk,
    }


def test_a_mixed_setting_left_unchanged_keeps_each_clients_value(tree, admin_user_obj):
    first = Client.objects.filter(domain=tree["lab"]).order_by("pk").first()
    Client.objects.filter(pk=first.pk).update(roaming_privilege=True)
    selection = selection_resolve(root=False, domain_ids=[tree["lab"].pk])
    summary = selection_summary(selection)
    assert summary.state("roaming_privilege") is None  # mixed
    assert summary.state("update_now_privilege") is True

    # Only the setting the administrator set is in ``changes``.
    privileges_save(actor=admin_user_obj, selection=selection, changes={"update_now_privilege": False})

    lab = Client.objects.filter(domain=tree["lab"])
    assert lab.filter(roaming_privilege=True).count() == 1
    assert lab.filter(update_now_privilege=False).count() == 6


def test_apply_to_all_clients_changes_every_client_every_domain_and_future_domains(tree, admin_user_obj):
    selection = selection_resolve(root=True)

    privileges_save(
        actor=admin_user_obj, selection=selection, changes={"scheduled_update_setting": False}, scope=SCOPE_ALL
    )

    assert not Client.objects.filter(scheduled_update_setting=True).exists()
    assert not Domain.objects.filter(scheduled_update_setting=True).exists()
    assert FutureDomainDefaults.load().scheduled_update_setting is False
    assert all(c.scheduled_state is ScheduledState.ALWAYS for c in Client.objects.all())


def test_apply_to_future_domains_only_changes_only_the_defaults_new_domains_start_with(tree, admin_user_obj):
    before = list(Client.objects.values_list("pk", "roaming_privilege"))
    domains_before = list(Domain.objects.values_list("pk", "roaming_privilege"))

    privileges_save(
        actor=admin_user_obj,
        selection=selection_resolve(root=True),
        changes={"roaming_privilege": True},
        scope=SCOPE_FUTURE,
    )

    assert list(Client.objects.values_list("pk", "roaming_privilege")) == before
    assert list(Domain.objects.values_list("pk", "roaming_privilege")) == domains_before
    new_domain = domain_create(name="branch-office")
    assert new_domain.roaming_privilege is True
    # ... and a client joining that domain starts from the domain's defaults.
    client = client_create(domain=new_domain, hostname="new-pc", ip_address="127.1.2.7", listener_port=40000)
    assert client.roaming_privilege is True
    entry = AuditEntry.objects.get()
    assert entry.action == "privileges.future_domains"
    assert entry.changes["roaming_privilege"] == {"label": "Enable roaming mode", "old": False, "new": True}


def test_future_domains_only_is_refused_without_the_root(tree, admin_user_obj):
    with pytest.raises(SelectionError):
        privileges_save(
            actor=admin_user_obj,
            selection=selection_resolve(root=False, domain_ids=[tree["hq"].pk]),
            changes={"roaming_privilege": True},
            scope=SCOPE_FUTURE,
        )
    assert not Client.objects.filter(roaming_privilege=True).exists()
    assert FutureDomainDefaults.load().roaming_privilege is False


def test_client_create_starts_from_the_domain_defaults_and_extra_fields(tree):
    Domain.objects.filter(pk=tree["ops"].pk).update(components_only=True, update_now_privilege=False)
    ops = Domain.objects.get(pk=tree["ops"].pk)

    client = client_create(
        domain=ops, hostname="joiner", ip_address="127.1.2.9", listener_port=40001, status="online", token_hash="ab"
    )

    client.refresh_from_db()
    assert client.components_only is True and client.update_now_privilege is False
    assert client.listener_port == 40001 and client.status == "online" and client.token_hash == "ab"


def test_a_real_change_makes_a_new_configuration_version_and_a_no_op_save_does_not(tree, admin_user_obj):
    client = Client.objects.filter(domain=tree["emea"]).first()
    original = configuration_hash(client_configuration(client))
    selection = selection_resolve(root=False, domain_ids=[tree["emea"].pk])

    # A no-op save: the value every client already has.
    result = privileges_save(actor=admin_user_obj, selection=selection, changes={"update_now_privilege": True})
    client.refresh_from_db()
    assert result.clients_changed == 0
    assert configuration_hash(client_configuration(client)) == original

    privileges_save(actor=admin_user_obj, selection=selection, changes={"scheduled_update_privilege": False})
    client.refresh_from_db()
    assert configuration_hash(client_configuration(client)) != original


def test_every_save_writes_an_audit_entry_with_field_changes_and_targets(tree, admin_user_obj):
    Client.objects.filter(domain=tree["ops"], pk__in=Client.objects.filter(domain=tree["ops"]).values("pk")[:2]).update(
        roaming_privilege=True
    )
    selection = selection_resolve(root=False, domain_ids=[tree["ops"].pk])

    privileges_save(
        actor=admin_user_obj,
        selection=selection,
        changes={"roaming_privilege": True, "scheduled_update_setting": False, "update_now_privilege": True},
    )

    entry = AuditEntry.objects.get()
    assert entry.actor == admin_user_obj
    assert entry.action == "privileges.save"
    assert entry.target == "1 domain (ops)"
    assert entry.changes["roaming_privilege"] == {"label": "Enable roaming mode", "old": "mixed", "new": True}
    assert entry.changes["scheduled_update_setting"] == {
        "label": "Enable scheduled update (Other Settings tab)",
        "old": True,
        "new": False,
    }
    assert "update_now_privilege" not in entry.changes  # unchanged value: not a change
    assert entry.changes["clients_selected"] == 5
    assert entry.changes["clients_changed"] == 5
    # Five clients are few enough to be named; the selection is kept for the audit log's link to them.
    assert len(entry.changes["clients"]) == 5 and entry.changes["clients"] == sorted(entry.changes["clients"])
    assert entry.changes["selection"] == {"root": False, "domains": [tree["ops"].pk], "clients": []}


def test_a_stale_fingerprint_saves_nothing(tree, admin_user_obj):
    selection = selection_resolve(root=False, domain_ids=[tree["lab"].pk])
    opened = selection_summary(selection).fingerprint()
    # Someone else changes one of the selected clients meanwhile.
    Client.objects.filter(pk=Client.objects.filter(domain=tree["lab"]).first().pk).update(components_only=True)

    with pytest.raises(StaleSelectionError):
        privileges_save(
            actor=admin_user_obj, selection=selection, changes={"roaming_privilege": True}, fingerprint=opened
        )

    assert not Client.objects.filter(roaming_privilege=True).exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("domain_ids", "client_ids", "message"),
    [
        ([], [], "Select at least one"),
        ([999_999], [], "Domains with these ids do not exist"),
        ([], [999_999], "Clients with these ids do not exist"),
        (["abc"], [], "do not exist"),
        ([], ["1; DROP TABLE"], "do not exist"),
    ],
)
def test_bad_selections_are_refused_with_a_clear_message(tree, domain_ids, client_ids, message):
    with pytest.raises(SelectionError, match=message):
        selection_resolve(root=False, domain_ids=domain_ids, client_ids=client_ids)


def test_moving_a_domain_under_its_own_descendant_is_refused(tree):
    with pytest.raises(ValidationError, match="own subdomains"):
        domain_move(domain=tree["hq"], parent=tree["emea"])
    with pytest.raises(ValidationError):
        domain_move(domain=tree["hq"], parent=tree["hq"])
    hq = Domain.objects.get(pk=tree["hq"].pk)
    assert hq.parent_id is None and hq.get_descendant_count() == 3


def test_moving_a_domain_elsewhere_works_and_keeps_its_clients(tree):
    domain_move(domain=tree["emea"], parent=tree["lab"])
    lab = Domain.objects.get(pk=tree["lab"].pk)
    assert Client.objects.in_domains([lab]).count() == 10


@pytest.mark.postgres
def test_the_client_table_leaves_room_for_hot_updates_on_postgresql():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'agents_app_client'")
        assert "fillfactor=50" in cursor.fetchone()[0]
