"""Writes to the client tree: creating domains and clients, moving domains.

New domains start from the future-domain defaults; new clients start from their
domain's defaults. The agent API's registration uses ``client_create``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from agents_app.models import Client, Domain, FutureDomainDefaults


@transaction.atomic
def domain_create(*, name: str, parent: Domain | None = None) -> Domain:
    """A new domain whose defaults are the server's defaults for future domains."""
    defaults = FutureDomainDefaults.load()
    domain = Domain(name=name, parent=parent, **defaults.settings_dict())
    domain.full_clean()
    domain.save()
    return domain


def client_create(*, domain: Domain, hostname: str, ip_address: str, listener_port: int, **extra: Any) -> Client:
    """A client joining ``domain``: it starts with the domain's default settings.

    ``extra`` sets any other Client field (status, token_hash, guid, ...) and may
    override a default setting when the caller really means to.
    """
    fields: dict[str, Any] = {**domain.settings_dict(), **extra}
    return Client.objects.create(
        domain=domain, hostname=hostname, ip_address=ip_address, listener_port=listener_port, **fields
    )


@transaction.atomic
def domain_move(*, domain: Domain, parent: Domain | None) -> Domain:
    """Move a domain (with its subtree) under ``parent``; a cycle is refused."""
    domain = Domain.objects.select_for_update().get(pk=domain.pk)
    if parent is not None:
        parent = Domain.objects.get(pk=parent.pk)
        if parent.pk == domain.pk or parent.is_descendant_of(domain):
            raise ValidationError({"parent": "A domain cannot be moved under itself or one of its own subdomains."})
    domain.parent = parent
    domain.full_clean()
    domain.save()
    return domain
