"""The staged roll-out: its policy (a singleton row) and each roll-out with its rings and members."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from updates_app.models.components import ComponentVersion
from updates_app.models.runs import UpdateRun
from updates_app.models.singleton import Range, SingletonSettings

# The ranges of the policy's number fields, stated once (validators, help texts, form messages).
SHARE_PERCENT = Range(0, 100)
SOAK_MINUTES = Range(1, 2880)
HALT_PERCENT = Range(1, 100)
HALT_MIN_COUNT = Range(1, 100000)


class RolloutPolicy(SingletonSettings):
    """Staged roll-out of event-triggered updates (an improvement over the original): a single row (pk=1).

    Off by default: the seed's behaviour (the whole fleet at once) stays the
    default. When on, a new component version goes to ring 1 (chosen domains
    and/or a stable random share of the eligible clients), then after a soak
    time to ring 2 (optional), then to everyone else, unless the ring's
    reports pass the threshold, which halts the roll-out (updates_app.engine.rings).
    """

    enabled = models.BooleanField(
        "Roll new components out in stages",
        default=False,
        help_text="Notify a first ring of clients, watch their reports for a soak time, then the next ring.",
    )
    ring1_domains = models.ManyToManyField(
        "agents_app.Domain",
        blank=True,
        related_name="+",
        verbose_name="Ring 1 domains",
        help_text="Every client under these domains is in the first ring.",
    )
    ring1_percent = models.PositiveSmallIntegerField(
        "Ring 1 share",
        default=5,
        validators=SHARE_PERCENT.validators(),
        help_text=(
            f"{SHARE_PERCENT} % of the eligible clients, chosen at random but always the same ones for a client."
        ),
    )
    ring2_percent = models.PositiveSmallIntegerField(
        "Ring 2 share",
        default=0,
        validators=SHARE_PERCENT.validators(),
        help_text=(
            f"{SHARE_PERCENT.low} (no second ring) to {SHARE_PERCENT.high} % of the eligible clients, "
            "counting ring 1's random share; above ring 1's."
        ),
    )
    soak_minutes = models.PositiveIntegerField(
        "Soak time",
        default=60,
        validators=SOAK_MINUTES.validators(),
        help_text=f"{SOAK_MINUTES} minutes to watch a ring's reports before the next ring starts.",
    )
    halt_percent = models.PositiveSmallIntegerField(
        "Halt when",
        default=10,
        validators=HALT_PERCENT.validators(),
        help_text=f"{HALT_PERCENT} % of the ring reported a failed update or fell silent after updating ...",
    )
    halt_min_count = models.PositiveIntegerField(
        "and at least",
        default=2,
        validators=HALT_MIN_COUNT.validators(),
        help_text=(
            f"... this many clients ({HALT_MIN_COUNT.low} or more), so one client alone cannot halt a small ring."
        ),
    )

    class Meta:
        verbose_name = "staged roll-out policy"
        verbose_name_plural = "staged roll-out policy"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="rollout_policy_singleton")]

    def __str__(self) -> str:
        return "Staged roll-out policy"


class RolloutState(models.TextChoices):
    ACTIVE = "active", "Rolling out"
    HALTED = "halted", "Halted"
    STOPPED = "stopped", "Stopped"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"


# While a roll-out is in one of these states its version is offered only to
# the clients of its started rings.
HOLDING_STATES = (RolloutState.ACTIVE, RolloutState.HALTED, RolloutState.STOPPED)


class Rollout(models.Model):
    """The staged roll-out of one event-triggered run; its settings are copied from the policy when it starts."""

    run = models.OneToOneField(UpdateRun, on_delete=models.CASCADE, related_name="rollout")
    version = models.ForeignKey(ComponentVersion, on_delete=models.CASCADE, related_name="rollouts")
    state = models.CharField(max_length=12, choices=RolloutState.choices, default=RolloutState.ACTIVE)
    ring1_domain_ids = models.JSONField(default=list)
    ring1_percent = models.PositiveSmallIntegerField()
    ring2_percent = models.PositiveSmallIntegerField()
    soak_seconds = models.PositiveIntegerField()
    halt_percent = models.PositiveSmallIntegerField()
    halt_min_count = models.PositiveIntegerField()
    include_roaming_offline = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    halted_at = models.DateTimeField(null=True, blank=True)
    # What halted it: [{"client", "hostname", "ring", "kind", "message", "at"}, ...]
    halt_evidence = models.JSONField(default=list, blank=True)
    halt_summary = models.CharField(max_length=300, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Staged roll-out of {self.version}"


class RolloutRing(models.Model):
    """One ring of a roll-out. ``started_at`` is set once, by a conditional UPDATE, in the transaction that notifies it."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="rings")
    number = models.PositiveSmallIntegerField()
    # The last ring is "everyone else".
    final = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    soak_ends_at = models.DateTimeField(null=True, blank=True)
    clients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["rollout", "number"]
        constraints = [models.UniqueConstraint(fields=["rollout", "number"], name="rollout_ring_unique")]

    def __str__(self) -> str:
        return f"ring {self.number} of {self.rollout}"


class RolloutMember(models.Model):
    """A client notified in a ring of a roll-out; (rollout, client) is unique, so no client is in two rings."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="members")
    ring = models.ForeignKey(RolloutRing, on_delete=models.CASCADE, related_name="members")
    client = models.ForeignKey("agents_app.Client", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rollout", "client"], name="rollout_member_unique")]

    def __str__(self) -> str:
        return f"client {self.client_id} in ring {self.ring_id}"
