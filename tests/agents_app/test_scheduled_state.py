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
