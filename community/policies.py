"""Escalation timeouts per hub and severity, with the defaults used when a hub sets none."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from community.models import DispatchHub, EscalationPolicy, EscalationTier

# severity → (seconds the hub's doctors have, seconds the duty lead then has). Warnings do not
# climb on their own: they wait in the queue, where the board's age sort keeps them visible.
DEFAULT_TIMEOUTS: Final[dict[str, tuple[int, int]]] = {"critical": (5 * 60, 10 * 60)}


def timeouts(hub: DispatchHub | None, severity: str) -> tuple[int, int] | None:
    """(doctors, duty lead) timeouts in seconds, or None when this severity never climbs."""
    if hub is not None:
        policy = EscalationPolicy.objects.filter(hub=hub, severity=severity).first()
        if policy is not None:
            return (
                (policy.doctors_timeout_s, policy.duty_lead_timeout_s) if policy.enabled else None
            )
    return DEFAULT_TIMEOUTS.get(severity)


def deadline(hub: DispatchHub | None, severity: str, tier: int, since: datetime) -> datetime | None:
    """When an unacknowledged alert at ``tier`` (since ``since``) climbs to the next one."""
    limits = timeouts(hub, severity)
    if limits is None or tier >= EscalationTier.HOSPITAL:
        return None
    return since + timedelta(seconds=limits[0] if tier == EscalationTier.DOCTORS else limits[1])
