"""Who may watch which stream and act on which alert; built on `clinic.access`, never beside it.

- a community doctor watches the streams of the hubs they belong to and acts on those hubs'
  alerts, for patients `clinic.access` lets them write;
- a hospital clinician watches their hospital's stream and acts on alerts escalated to their
  hospital, for patients `clinic.access` lets them read (the escalation's referral grants it);
- an admin watches and acts everywhere.
"""

from __future__ import annotations

from clinic import roles
from clinic.access import Actor, actor_for_user, can_read_patient, can_write_patient
from clinic.models import Hospital, Practitioner
from community.errors import AlertNotAccessible
from community.models import Alert, DispatchHub, HubMembership


def is_hub_member(user, hub: DispatchHub | int) -> bool:
    hub_id = hub if isinstance(hub, int) else hub.pk
    return HubMembership.objects.filter(hub_id=hub_id, practitioner__user=user).exists()


def can_watch_hub(user, hub: DispatchHub | int) -> bool:
    """May ``user`` receive the events of ``hub``'s stream?"""
    actor = actor_for_user(user)
    if actor.role == roles.ADMIN:
        return True
    return actor.role == roles.COMMUNITY_DOCTOR and is_hub_member(user, hub)


def can_watch_hospital(user, hospital: Hospital | int) -> bool:
    """May ``user`` receive the events of ``hospital``'s stream (its escalation inbox)?"""
    actor = actor_for_user(user)
    hospital_id = hospital if isinstance(hospital, int) else hospital.pk
    if actor.role == roles.ADMIN:
        return True
    return actor.role == roles.HOSPITAL_CLINICIAN and actor.hospital_id == hospital_id


def may_act_on_alert(actor: Actor, alert: Alert) -> bool:
    if actor.role == roles.ADMIN:
        return True
    if actor.role == roles.COMMUNITY_DOCTOR:
        return (
            alert.hub_id is not None
            and is_hub_member(actor.user, alert.hub_id)
            and can_write_patient(actor, alert.patient_id)
        )
    if actor.role == roles.HOSPITAL_CLINICIAN:
        return (
            alert.escalated_to_id is not None
            and alert.escalated_to_id == actor.hospital_id
            and can_read_patient(actor, alert.patient_id)
        )
    return False


def access_alert(user, alert_id: int) -> Alert:
    """The alert ``user`` may act on, or AlertNotAccessible (the same for missing and forbidden)."""
    alert = (
        Alert.objects.select_related("patient", "hub", "escalated_to").filter(pk=alert_id).first()
    )
    if alert is None or not may_act_on_alert(actor_for_user(user), alert):
        raise AlertNotAccessible(f"Alert {alert_id} does not exist or is not yours to act on.")
    return alert


def practitioner_of(user) -> Practitioner | None:
    return Practitioner.objects.filter(user=user).first() if user is not None else None
