"""The update engine's data, one module per idea (the README's headings).

- ``singleton``: what every singleton settings row shares (pk=1, ``load()``,
  revision, who saved last) and ``Range``, each number field's range stated once;
- ``settings``: the singleton settings rows (Automatic Update, proxy settings);
- ``components``: components and their versions;
- ``runs``: update runs and their deliveries (the delivery engine's rows);
- ``compliance``: what each client holds, as numbers and tallies;
- ``rollouts``: the staged roll-out policy (a singleton settings row too) and
  each roll-out's rings.

Everything is importable from ``updates_app.models`` as before.
"""

from updates_app.models.compliance import ClientComponent, ClientProfile, VersionProfile
from updates_app.models.components import Component, ComponentKind, ComponentVersion, ComponentVersionQuerySet
from updates_app.models.rollouts import (
    HOLDING_STATES,
    Rollout,
    RolloutMember,
    RolloutPolicy,
    RolloutRing,
    RolloutState,
)
from updates_app.models.runs import (
    OPEN_STATUSES,
    UNFINISHED_STATUSES,
    Delivery,
    DeliveryStatus,
    RunTrigger,
    UpdateRun,
)
from updates_app.models.settings import (
    FREQUENCY_FIELDS,
    AutoUpdateSettings,
    Frequency,
    ProxySettings,
    Weekday,
)

__all__ = [
    "FREQUENCY_FIELDS",
    "HOLDING_STATES",
    "OPEN_STATUSES",
    "UNFINISHED_STATUSES",
    "AutoUpdateSettings",
    "ClientComponent",
    "ClientProfile",
    "Component",
    "ComponentKind",
    "ComponentVersion",
    "ComponentVersionQuerySet",
    "Delivery",
    "DeliveryStatus",
    "Frequency",
    "ProxySettings",
    "Rollout",
    "RolloutMember",
    "RolloutPolicy",
    "RolloutRing",
    "RolloutState",
    "RunTrigger",
    "UpdateRun",
    "VersionProfile",
    "Weekday",
]
