"""What a pilot hospital does with an escalation: accept it, ask the hub for more information,
or hand it back. Same shape as `community.actions`: `check_*` validates the user's right and
the request, then the change, its transition record, audit and stream events in one transaction.
"""

from __future__ import annotations

from django.db import transaction

from clinic import roles
from clinic.access import actor_for_user
from clinic.models import Referral
from community.access import access_alert, practitioner_of
from community.actions import _announce, _audit, _locked, _note
from community.errors import InvalidRequest, InvalidTransition
from community.models import Alert, AlertEvent, AlertStatus, AlertTransition
from community.selectors import hospital_stream
from community.streams import append_events, publish_on_commit


def _escalated_to_my_hospital(user, alert_id: int) -> Alert:
    alert = access_alert(user, alert_id)
    if actor_for_user(user).role not in (roles.HOSPITAL_CLINICIAN, roles.ADMIN):
        raise InvalidRequest(
            "Only a clinician of the hospital the alert was escalated to can do this."
        )
    if alert.status != AlertStatus.ESCALATED or alert.escalated_to_id is None:
        raise InvalidTransition(f"Alert {alert.pk} is {alert.status}, not escalated.")
    return alert


def _referrals(alert: Alert):
    return Referral.objects.filter(
        patient_id=alert.patient_id, hospital_id=alert.escalated_to_id, alert_id=alert.pk
    )


def _record(alert: Alert, action: str, *, by, note: str) -> None:
    AlertTransition.objects.create(
        alert=alert,
        from_status=alert.status,
        to_status=alert.status,
        action=action,
        by=by,
        note=note,
    )


def check_accept_escalation(user, alert_id: int, *, note: str = "") -> Alert:
    """The hospital takes the patient on: the referral is accepted and the clinician assigned."""
    alert = _escalated_to_my_hospital(user, alert_id)
    note = _note(note, required=False)
    with transaction.atomic():
        alert = _locked(alert.pk)
        _referrals(alert).filter(status=Referral.Status.ACTIVE).update(
            status=Referral.Status.ACCEPTED
        )
        alert.assigned_to = practitioner_of(user) or alert.assigned_to
        _record(alert, "accept", by=user, note=note or "accepted by the hospital")
        alert.save()
        _audit(user, alert, "escalation accepted")
        _announce(alert, AlertEvent.Type.UPDATED)
    return alert


def check_request_information(user, alert_id: int, *, note: str) -> Alert:
    """Ask the hub a question; the note travels with the alert to both boards."""
    alert = _escalated_to_my_hospital(user, alert_id)
    note = _note(note, required=True)
    with transaction.atomic():
        alert = _locked(alert.pk)
        _record(alert, "request_info", by=user, note=note)
        alert.save()
        _audit(user, alert, "more information requested from the hub")
        _announce(alert, AlertEvent.Type.UPDATED)
    return alert


def check_hand_back(user, alert_id: int, *, note: str) -> Alert:
    """Return the alert to the hub: the referral ends (and with it the hospital's access unless
    consent says otherwise), the alert goes back to the hub as acknowledged or open."""
    alert = _escalated_to_my_hospital(user, alert_id)
    note = _note(note, required=True)
    with transaction.atomic():
        alert = _locked(alert.pk)
        left = hospital_stream(alert.escalated_to)
        _referrals(alert).filter(
            status__in=[Referral.Status.ACTIVE, Referral.Status.ACCEPTED]
        ).update(status=Referral.Status.HANDED_BACK)
        back_to = AlertStatus.ACKNOWLEDGED if alert.acknowledged_by_id else AlertStatus.OPEN
        AlertTransition.objects.create(
            alert=alert,
            from_status=alert.status,
            to_status=back_to,
            action="hand_back",
            by=user,
            note=note,
        )
        alert.status = back_to
        alert.escalated_to = None
        alert.save()
        _audit(user, alert, "handed back to the hub")
        publish_on_commit(append_events(alert, AlertEvent.Type.UPDATED, also=[left]))
    return alert
