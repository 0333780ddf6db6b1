"""The seed's table of the two "Enable scheduled update" options, in all combinations."""

import itertools

import pytest

from agents_app.models import Client, Domain
from agents_app.scheduled_state import ScheduledState, effective_scheduled_state

TABLE = {
    # (privilege, setting, user_disabled): state
    (False, False, False): ScheduledState.NO_PRIVILEGE,
    (False, False, True): ScheduledState.NO_PRIVILEGE,
    (False, True, False): ScheduledState.NO_PRIVILEGE,
    (False, True, True): ScheduledState.NO_PRIVILEGE,
    (True, False, False): ScheduledState.ALWAYS,
    (True, False, True): ScheduledState.ALWAYS,  # the user cannot turn it off
    (True, True, False): ScheduledState.USER_MAY_DISABLE,
    (True, True, True): ScheduledState.USER_DISABLED,
}


@pytest.mark.parametrize(("combo", "expected"), TABLE.items())
def test_effective_state_follows_the_seed(combo, expected):
    privilege, setting, user_disabled = combo
    assert effective_scheduled_state(privilege=privilege, setting=setting, user_disabled=user_disabled) is expected


@pytest.mark.django_db
def test_queryset_filter_and_annotation_agree_with_the_function():
    domain = Domain.objects.create(name="HQ")
    for n, (privilege, setting, user_disabled) in enumerate(itertools.product([False, True], repeat=3)):
        Client.objects.create(
            domain=domain,
            hostname=f"pc-{n}",
            ip_address=f"127.1.0.{n + 1}",
            scheduled_update_privilege=privilege,
            scheduled_update_setting=setting,
            user_disabled_scheduled_update=user_disabled,
        )
    on = set(Client.objects.scheduled_update_on().values_list("hostname", flat=True))
    annotated = dict(Client.objects.with_scheduled_state().values_list("hostname", "scheduled_state_code"))
    for client in Client.objects.all():
        assert (client.hostname in on) is client.scheduled_state.runs
        assert annotated[client.hostname] == client.scheduled_state.value


@pytest.mark.django_db
def test_annotated_instances_load():
    domain = Domain.objects.create(name="HQ")
    Client.objects.create(domain=domain, hostname="pc", ip_address="127.1.0.1", scheduled_update_setting=False)
    client = Client.objects.with_scheduled_state().get()
    assert client.scheduled_state_code == client.scheduled_state.value == ScheduledState.ALWAYS


STATES = [True, False, None]  # on, off, mixed


@pytest.mark.parametrize("privilege", STATES)
@pytest.mark.parametrize("setting", STATES)
def test_the_dialog_explains_every_combination_in_whole_sentences_naming_the_options_by_place(privilege, setting):
    from agents_app.scheduled_state import describe_combination

    text = describe_combination(privilege=privilege, setting=setting)
    assert text.endswith(".") and not text.endswith(":.")
    assert "option 1" not in text.lower() and "option 2" not in text.lower()
    assert "Privileges tab, Component Update Privileges" in text
    assert "Other Settings tab, Update Settings" in text
    if privilege is False:
        assert "will not run" in text
    if None in (privilege, setting):
        assert "as each" in text  # a mixed option is said to stay as each client has it


def test_the_nine_explanations_are_all_different():
    from agents_app.scheduled_state import describe_combination

    texts = {describe_combination(privilege=p, setting=s) for p in STATES for s in STATES}
    assert len(texts) == 9


@pytest.mark.django_db
def test_the_dialog_renders_all_nine_explanations_for_its_script_and_the_current_one(superuser_client):
    import json
    import re

    from django.urls import reverse

    from tests.agents_app.factories import add_clients, make_domain

    hq = make_domain("hq")
    add_clients(hq, 2)
    Client.objects.filter(pk=Client.objects.first().pk).update(scheduled_update_setting=False)
    html = superuser_client.get(reverse("agents:privileges"), {"domain": hq.pk}).content.decode()
    data = json.loads(
        re.search(r'<script id="scheduled-descriptions" type="application/json">(.*?)</script>', html).group(1)
    )
    assert sorted(data) == sorted(f"{p}-{s}" for p in ("on", "off", "unchanged") for s in ("on", "off", "unchanged"))
    # Opened with the privilege on and the setting mixed: the server writes that explanation (no JavaScript needed).
    current = re.search(r'<span class="text">(.*?)</span>', html, re.S).group(1)
    assert current == data["on-unchanged"]
    assert "where it is off, they cannot" in current
