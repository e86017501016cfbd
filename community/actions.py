"""Everything that changes an alert: check_* validates a user's request, do_* carries it out.

Each ``check_x(user, alert_id, ...)`` finds the alert through `community.access.access_alert`
(the same answer for a missing alert and another hub's alert), validates the arguments and calls
``do_x``. Each ``do_x`` runs in one transaction holding the alert row's lock: it re-checks the
status under the lock (so two doctors clicking at once get one success and one clear error),
writes the change, an `AlertTransition` and an audit record, appends the stream events last, and
ends with one `publish_on_commit` call. Nothing is pushed that could still roll back.

Lifecycle: open → acknowledged → dispatched → escalated → resolved | dismissed; any open status
may also go straight to resolved, dismissed or escalated. Automatic climbing between the hub
tiers (doctors → duty lead) keeps the status open; reaching the hospital makes it escalated.

Re-opening: a closed alert is never reopened in place. The next finding for the same patient and
rule opens a new alert (a fresh lifecycle with its own acknowledgement) whose ``reopens`` points at
the closed one when it closed less than `REOPEN_WINDOW` ago, and is announced as
"alert.reopened" instead of "alert.created" so the board can say "again".
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Final

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from clinic.access import Actor, actor_for_user
from clinic.models import Enrolment, Hospital, Patient, Practitioner, Referral
from clinic.news2 import News2Result
from clinic.rules import Finding
from community import policies
from community.access import access_alert, may_act_on_alert, practitioner_of
from community.errors import InvalidRequest, InvalidTransition
from community.models import (
    CLOSED_STATUSES,
    Alert,
    AlertEvent,
    AlertStatus,
    AlertTransition,
    DispatchTask,
    EscalationTier,
    HubMembership,
    Severity,
    Snooze,
)
from community.selectors import active_snooze, patient_hub
from community.streams import append_events, publish_on_commit
from fhir import audit

logger = logging.getLogger(__name__)

RULES_ENGINE: Final = Actor(kind="system", id="community/alerts", role="rules")
REOPEN_WINDOW: Final = timedelta(hours=24)
MAX_SNOOZE: Final = timedelta(days=7)
MAX_READING_IDS: Final = 50
OPEN: Final = [s for s in AlertStatus.values if s not in CLOSED_STATUSES]

S = AlertStatus
ALLOWED: Final[dict[str, frozenset[str]]] = {
    S.OPEN: frozenset({S.ACKNOWLEDGED, S.DISPATCHED, S.ESCALATED, S.RESOLVED, S.DISMISSED}),
    S.ACKNOWLEDGED: frozenset({S.DISPATCHED, S.ESCALATED, S.RESOLVED, S.DISMISSED}),
    S.DISPATCHED: frozenset({S.DISPATCHED, S.ESCALATED, S.RESOLVED, S.DISMISSED}),
    S.ESCALATED: frozenset({S.RESOLVED, S.DISMISSED}),
    S.RESOLVED: frozenset(),
    S.DISMISSED: frozenset(),
}


# --- helpers shared by the actions ------------------------------------------------------------


def _locked(alert_id: int) -> Alert:
    """The alert row, locked until the transaction ends. Call inside transaction.atomic()."""
    return (
        Alert.objects.select_for_update(of=("self",))
        .select_related("patient", "hub", "escalated_to", "acknowledged_by", "assigned_to")
        .get(pk=alert_id)
    )


def _require(alert: Alert, to_status: str) -> None:
    if to_status not in ALLOWED[alert.status]:
        raise InvalidTransition(
            f"Alert {alert.pk} is {alert.status}; it cannot become {to_status}."
        )


def _move(
    alert: Alert, to_status: str, *, action: str, by, note: str = "", now: datetime | None = None
) -> AlertTransition:
    """Set the status (and what follows from it) and record the transition. Caller saves."""
    now = now or timezone.now()
    from_status = alert.status
    alert.status = to_status
    if to_status != S.OPEN:
        alert.escalate_at = None  # someone has it: the automatic climb stops
    if to_status in CLOSED_STATUSES:
        alert.closed_at = now
    return AlertTransition.objects.create(
        alert=alert,
        from_status=from_status,
        to_status=to_status,
        action=action,
        by=by,
        note=note,
        at=now,
    )


def _audit(by, alert: Alert, detail: str, *, action: str = "U") -> None:
    actor = RULES_ENGINE if by is None else actor_for_user(by)
    audit.record(
        actor,
        action=action,
        channel="alerts",
        patient_id=alert.patient_id,
        entity=f"Alert/{alert.pk}",
        detail=detail,
    )


def _announce(alert: Alert, event: str) -> list[AlertEvent]:
    events = append_events(alert, event)
    publish_on_commit(events)
    return events


def _note(note: str, *, required: bool) -> str:
    note = (note or "").strip()
    if required and not note:
        raise InvalidRequest("A note is required.")
    if len(note) > AlertTransition.NOTE_MAX_LENGTH:
        raise InvalidRequest(
            f"The note is longer than {AlertTransition.NOTE_MAX_LENGTH} characters."
        )
    return note


def _hub_practitioner(alert: Alert, practitioner_id: int) -> Practitioner:
    """A practitioner who may take work on this alert: a member of its hub, or a clinician of the
    hospital it was escalated to."""
    practitioner = Practitioner.objects.filter(pk=practitioner_id).select_related("user").first()
    if practitioner is not None and may_act_on_alert(actor_for_user(practitioner.user), alert):
        return practitioner
    raise InvalidRequest(f"Practitioner {practitioner_id} cannot take work on alert {alert.pk}.")


# --- acknowledge --------------------------------------------------------------------------------


def check_acknowledge_alert(user, alert_id: int) -> Alert:
    alert = access_alert(user, alert_id)
    if practitioner_of(user) is None:
        raise InvalidRequest("Only a named practitioner can acknowledge an alert.")
    return do_acknowledge_alert(alert, by=user)


def do_acknowledge_alert(alert: Alert, *, by) -> Alert:
    """``by`` (a user with a practitioner record) takes the alert; the climb stops.

    An alert already escalated to a hospital keeps that status: the clinician's acknowledgement
    is recorded on it.
    """
    practitioner = practitioner_of(by)
    with transaction.atomic():
        alert = _locked(alert.pk)
        if alert.acknowledged_by_id is not None or alert.status not in (S.OPEN, S.ESCALATED):
            raise InvalidTransition(f"Alert {alert.pk} is already {alert.status}.")
        now = timezone.now()
        alert.acknowledged_by = practitioner
        alert.acknowledged_at = now
        to_status = S.ACKNOWLEDGED if alert.status == S.OPEN else S.ESCALATED
        _move(alert, to_status, action="acknowledge", by=by, now=now)
        if alert.assigned_to_id is None:
            alert.assigned_to = practitioner
        alert.save()
        _audit(by, alert, "acknowledged")
        _announce(alert, AlertEvent.Type.ACKNOWLEDGED)
    return alert


# --- assign -----------------------------------------------------------------------------------


def check_assign_alert(user, alert_id: int, assignee_id: int) -> Alert:
    alert = access_alert(user, alert_id)
    if not alert.is_open:
        raise InvalidTransition(f"Alert {alert.pk} is {alert.status}.")
    return do_assign_alert(alert, _hub_practitioner(alert, assignee_id), by=user)


def do_assign_alert(alert: Alert, assignee: Practitioner, *, by) -> Alert:
    """Make ``assignee`` the one responsible; the status does not change."""
    with transaction.atomic():
        alert = _locked(alert.pk)
        if not alert.is_open:
            raise InvalidTransition(f"Alert {alert.pk} is {alert.status}.")
        alert.assigned_to = assignee
        AlertTransition.objects.create(
            alert=alert,
            from_status=alert.status,
            to_status=alert.status,
            action="assign",
            by=by,
            note=f"assigned to {assignee.name}",
        )
        alert.save()
        _audit(by, alert, f"assigned to practitioner {assignee.pk}")
        _announce(alert, AlertEvent.Type.ASSIGNED)
    return alert


# --- dispatch ---------------------------------------------------------------------------------


def check_dispatch_alert(
    user,
    alert_id: int,
    *,
    kind: str,
    assignee_id: int,
    due_at: datetime | None = None,
    note: str = "",
) -> DispatchTask:
    alert = access_alert(user, alert_id)
    if kind not in DispatchTask.Kind.values:
        raise InvalidRequest(f"Unknown dispatch kind {kind!r}.")
    if due_at is not None and timezone.is_naive(due_at):
        raise InvalidRequest("due_at must carry a time zone.")
    assignee = _hub_practitioner(alert, assignee_id)
    return do_dispatch_alert(
        alert,
        kind=kind,
        assignee=assignee,
        due_at=due_at,
        note=_note(note, required=False),
        by=user,
    )


def do_dispatch_alert(
    alert: Alert,
    *,
    kind: str,
    assignee: Practitioner,
    due_at: datetime | None = None,
    note: str = "",
    by,
) -> DispatchTask:
    """Send someone (a call, a home visit, a teleconsultation); dispatching implies taking it."""
    with transaction.atomic():
        alert = _locked(alert.pk)
        _require(alert, S.DISPATCHED)
        now = timezone.now()
        task = DispatchTask.objects.create(
            alert=alert,
            kind=kind,
            assignee=assignee,
            due_at=due_at or now + timedelta(hours=1),
            note=note,
            created_by=by,
        )
        if alert.acknowledged_by_id is None:
            alert.acknowledged_by = practitioner_of(by)
            alert.acknowledged_at = now
        alert.assigned_to = assignee
        _move(alert, S.DISPATCHED, action="dispatch", by=by, note=note, now=now)
        alert.save()
        _audit(by, alert, f"dispatched {kind} to practitioner {assignee.pk}")
        _announce(alert, AlertEvent.Type.DISPATCHED)
    return task


# --- escalate ---------------------------------------------------------------------------------


def escalation_hospital(patient_id: int) -> Hospital | None:
    """The pilot hospital of the patient's current enrolment: where escalations go."""
    today = timezone.localdate()
    enrolment = (
        Enrolment.objects.filter(patient_id=patient_id, start__lte=today, hospital__isnull=False)
        .exclude(end__lt=today)
        .select_related("hospital")
        .order_by("-start")
        .first()
    )
    return enrolment.hospital if enrolment else None


def check_escalate_alert(
    user, alert_id: int, *, reason: str, hospital_id: int | None = None
) -> Alert:
    alert = access_alert(user, alert_id)
    if hospital_id is None:
        hospital = escalation_hospital(alert.patient_id)
        if hospital is None:
            raise InvalidRequest("The patient has no pilot hospital; choose one.")
    else:
        hospital = Hospital.objects.filter(pk=hospital_id, is_pilot=True).first()
        if hospital is None:
            raise InvalidRequest(f"Hospital {hospital_id} is not a pilot hospital.")
    return do_escalate_alert(alert, hospital, reason=_note(reason, required=True), by=user)


def do_escalate_alert(alert: Alert, hospital: Hospital, *, reason: str, by) -> Alert:
    """Hand the alert to ``hospital``: a referral lets its clinicians read the patient's record,
    and the alert joins the hospital's stream. ``by`` None is the automatic ladder."""
    with transaction.atomic():
        alert = _locked(alert.pk)
        _require(alert, S.ESCALATED)
        _escalate_locked(alert, hospital, reason=reason, by=by)
    return alert


def _escalate_locked(
    alert: Alert, hospital: Hospital, *, reason: str, by, now: datetime | None = None
) -> None:
    already = Referral.objects.filter(
        patient_id=alert.patient_id,
        hospital=hospital,
        alert_id=alert.pk,
        status__in=[Referral.Status.ACTIVE, Referral.Status.ACCEPTED],
    ).exists()
    if not already:
        Referral.objects.create(
            patient_id=alert.patient_id,
            hospital=hospital,
            reason=f"Alert #{alert.pk} ({alert.rule}): {reason}",
            created_by=by,
            alert_id=alert.pk,
        )
    alert.escalated_to = hospital
    alert.escalation_tier = EscalationTier.HOSPITAL
    _move(alert, S.ESCALATED, action="escalate", by=by, note=reason, now=now)
    alert.save()
    _audit(by, alert, f"escalated to hospital {hospital.code}")
    _announce(alert, AlertEvent.Type.ESCALATED)


def do_escalate_tier(alert_id: int, *, now: datetime | None = None) -> Alert | None:
    """Climb one tier if the alert is still unacknowledged past its deadline; else do nothing.

    Safe to run twice or concurrently: the row is locked (others skip it) and the state is
    checked again under the lock.
    """
    now = now or timezone.now()
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("patient", "hub", "escalated_to", "acknowledged_by", "assigned_to")
            .filter(pk=alert_id)
            .first()
        )
        if (
            alert is None
            or alert.status != S.OPEN
            or alert.acknowledged_by_id is not None
            or alert.escalate_at is None
            or alert.escalate_at > now
        ):
            return None
        waited = _minutes(now - alert.opened_at)
        if alert.escalation_tier == EscalationTier.DOCTORS:
            lead = (
                HubMembership.objects.filter(hub_id=alert.hub_id, is_duty_lead=True)
                .select_related("practitioner")
                .order_by("pk")
                .first()
            )
            if lead is not None:
                alert.escalation_tier = EscalationTier.DUTY_LEAD
                alert.assigned_to = lead.practitioner
                alert.escalate_at = policies.deadline(
                    alert.hub, alert.severity, EscalationTier.DUTY_LEAD, now
                )
                AlertTransition.objects.create(
                    alert=alert,
                    from_status=alert.status,
                    to_status=alert.status,
                    action="escalate",
                    note=f"not acknowledged in {waited} min: duty lead {lead.practitioner.name}",
                    at=now,
                )
                alert.save()
                _audit(None, alert, "escalated to the hub duty lead")
                _announce(alert, AlertEvent.Type.ESCALATED)
                return alert
        hospital = escalation_hospital(alert.patient_id)
        if hospital is None:
            alert.escalate_at = None
            AlertTransition.objects.create(
                alert=alert,
                from_status=alert.status,
                to_status=alert.status,
                action="escalate",
                note="no pilot hospital to escalate to",
                at=now,
            )
            alert.save()
            return alert
        _escalate_locked(
            alert,
            hospital,
            reason=f"not acknowledged in {waited} min (automatic)",
            by=None,
            now=now,
        )
        return alert


def _minutes(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() // 60))


# --- resolve, dismiss ---------------------------------------------------------------------------


def check_resolve_alert(user, alert_id: int, *, note: str) -> Alert:
    alert = access_alert(user, alert_id)
    return do_resolve_alert(alert, note=_note(note, required=True), by=user)


def do_resolve_alert(alert: Alert, *, note: str, by) -> Alert:
    """The situation was handled; ``note`` says how."""
    return _close(alert, S.RESOLVED, "resolve", note=note, by=by, event=AlertEvent.Type.RESOLVED)


def check_dismiss_alert(user, alert_id: int, *, note: str) -> Alert:
    alert = access_alert(user, alert_id)
    return do_dismiss_alert(alert, note=_note(note, required=True), by=user)


def do_dismiss_alert(alert: Alert, *, note: str, by) -> Alert:
    """Nothing to do (a wrong cuff placement, a known reading); ``note`` says why."""
    return _close(alert, S.DISMISSED, "dismiss", note=note, by=by, event=AlertEvent.Type.DISMISSED)


def _close(alert: Alert, to_status: str, action: str, *, note: str, by, event: str) -> Alert:
    with transaction.atomic():
        alert = _locked(alert.pk)
        _require(alert, to_status)
        _move(alert, to_status, action=action, by=by, note=note)
        alert.save()
        _audit(by, alert, to_status)
        _announce(alert, event)
    return alert


# --- snooze -----------------------------------------------------------------------------------


def check_snooze_alert(user, alert_id: int, *, until: datetime, reason: str) -> Snooze:
    """Snooze the alert's rule for its patient, in the alert's hub."""
    alert = access_alert(user, alert_id)
    if alert.hub_id is None:
        raise InvalidRequest("The alert belongs to no hub.")
    if timezone.is_naive(until):
        raise InvalidRequest("until must carry a time zone.")
    now = timezone.now()
    if until <= now:
        raise InvalidRequest("A snooze must end in the future.")
    if until - now > MAX_SNOOZE:
        raise InvalidRequest("A snooze lasts at most 7 days.")
    return do_snooze(
        alert.patient,
        alert.rule,
        hub=alert.hub,
        until=until,
        reason=_note(reason, required=True),
        by=user,
    )


def do_snooze(patient: Patient, rule: str, *, hub, until: datetime, reason: str, by) -> Snooze:
    """Quiet ``rule`` for ``patient`` until ``until``: findings are still recorded on the alert
    but neither pushed nor escalated. The open alert, if any, is re-announced so every doctor of
    the hub sees the snooze."""
    with transaction.atomic():
        snooze = Snooze.objects.create(
            patient=patient, rule=rule, hub=hub, until=until, reason=reason, by=by
        )
        alert_id = (
            Alert.objects.filter(patient=patient, rule=rule, status__in=OPEN)
            .values_list("pk", flat=True)
            .first()
        )
        if alert_id is not None:
            alert = _locked(alert_id)
            if alert.status == S.OPEN:
                alert.escalate_at = None
            AlertTransition.objects.create(
                alert=alert,
                from_status=alert.status,
                to_status=alert.status,
                action="snooze",
                by=by,
                note=f"until {timezone.localtime(until):%Y-%m-%d %H:%M}: {reason}",
            )
            alert.save()
            _audit(by, alert, f"snoozed {rule} until {until.isoformat()}")
            _announce(alert, AlertEvent.Type.UPDATED)
        else:
            audit.record(
                actor_for_user(by),
                action="U",
                channel="alerts",
                patient_id=patient.pk,
                entity=f"Snooze/{snooze.pk}",
                detail=f"snoozed {rule}",
            )
    return snooze


# --- the rules engine's side ----------------------------------------------------------------------


def do_raise_or_update_alert(
    patient_id: int, finding: Finding, *, news2: News2Result | None = None
) -> Alert | None:
    """Turn a finding into the patient's one open alert for its rule.

    - No open alert: a new one (announced "alert.created", or "alert.reopened" when the rule's
      previous alert closed within `REOPEN_WINDOW`); a critical one gets its escalation deadline.
    - An open alert: the finding updates it (message, values, latest readings, trigger_count + 1;
      severity only rises). A finding whose readings are all already on the alert changes
      nothing, so a task run twice is harmless. A finding with no readings (the silence rules
      repeat theirs every run) changes the alert only when its severity rises.
    - A snoozed rule is recorded but neither pushed nor escalated.
    Two workers raising the same rule at once end with one alert: the partial unique constraint
    refuses the second insert, which then updates the first.
    """
    with transaction.atomic():
        existing = (
            Alert.objects.select_for_update(of=("self",))
            .filter(patient_id=patient_id, rule=finding.rule, status__in=OPEN)
            .first()
        )
        if existing is not None:
            return _update_open(existing, finding, news2)
        try:
            with transaction.atomic():
                return _open_new(patient_id, finding, news2)
        except IntegrityError:
            existing = (
                Alert.objects.select_for_update(of=("self",))
                .filter(patient_id=patient_id, rule=finding.rule, status__in=OPEN)
                .first()
            )
            if existing is None:
                raise
            return _update_open(existing, finding, news2)


def _reading_ids(finding: Finding) -> list[int]:
    return [int(i) for i in finding.reading_ids]


def _news2_fields(alert: Alert, news2: News2Result | None) -> None:
    if news2 is not None:
        alert.news2_total = news2.total
        alert.news2_risk = news2.risk
        alert.news2_missing = list(news2.missing)


def _open_new(patient_id: int, finding: Finding, news2: News2Result | None) -> Alert:
    patient = Patient.objects.select_related("community").get(pk=patient_id)
    now = timezone.now()
    previous = (
        Alert.objects.filter(
            patient_id=patient_id,
            rule=finding.rule,
            status__in=CLOSED_STATUSES,
            closed_at__gte=now - REOPEN_WINDOW,
        )
        .order_by("-closed_at")
        .first()
    )
    hub = patient_hub(patient)
    snoozed = active_snooze(patient_id, finding.rule, now=now) is not None
    alert = Alert(
        patient=patient,
        hub=hub,
        rule=finding.rule,
        vital=finding.vital or "",
        severity=finding.severity,
        message=finding.message[:500],
        values=list(finding.values),
        reading_ids=_reading_ids(finding),
        opened_at=now,
        reopens=previous,
        escalate_at=None
        if snoozed
        else policies.deadline(hub, finding.severity, EscalationTier.DOCTORS, now),
    )
    _news2_fields(alert, news2)
    alert.save()
    AlertTransition.objects.create(
        alert=alert,
        from_status="",
        to_status=S.OPEN,
        action="reopen" if previous else "raise",
        note=finding.message[:500],
        at=now,
    )
    _audit(None, alert, f"raised {finding.rule} {finding.severity}", action="C")
    if not snoozed:
        _announce(alert, AlertEvent.Type.REOPENED if previous else AlertEvent.Type.CREATED)
    if alert.escalate_at is not None:
        _schedule_escalation_check(alert.escalate_at - now)
    return alert


def _update_open(alert: Alert, finding: Finding, news2: News2Result | None) -> Alert | None:
    new_ids = [i for i in _reading_ids(finding) if i not in set(alert.reading_ids)]
    rises = (alert.severity, finding.severity) == (Severity.WARNING, Severity.CRITICAL)
    if finding.reading_ids and not new_ids:
        return None  # these readings were already applied: a re-run of the same task
    if not finding.reading_ids and not rises:
        return None  # a silence rule repeating itself
    now = timezone.now()
    alert = _locked(alert.pk)
    alert.message = finding.message[:500]
    alert.values = list(finding.values)
    alert.reading_ids = (alert.reading_ids + new_ids)[-MAX_READING_IDS:]
    alert.trigger_count += 1
    alert.cleared_at = None
    _news2_fields(alert, news2)
    snoozed = active_snooze(alert.patient_id, alert.rule, now=now) is not None
    if rises:
        alert.severity = Severity.CRITICAL
        AlertTransition.objects.create(
            alert=alert,
            from_status=alert.status,
            to_status=alert.status,
            action="severity",
            note=f"now critical: {finding.message[:400]}",
            at=now,
        )
        if alert.status == S.OPEN and alert.acknowledged_by_id is None and not snoozed:
            alert.escalate_at = policies.deadline(
                alert.hub, alert.severity, alert.escalation_tier, now
            )
    alert.save()
    _audit(None, alert, f"re-triggered ({alert.trigger_count})")
    if not snoozed:
        _announce(alert, AlertEvent.Type.UPDATED)
    if rises and alert.escalate_at is not None:
        _schedule_escalation_check(alert.escalate_at - now)
    return alert


def do_clear_alert(patient_id: int, rule: str) -> Alert | None:
    """The rule reports its condition over.

    An alert nobody has taken yet (status open, not acknowledged) resolves itself with a note; one
    a doctor is working on stays with them, marked as cleared, because closing work is a human
    decision.
    """
    with transaction.atomic():
        alert_id = (
            Alert.objects.filter(patient_id=patient_id, rule=rule, status__in=OPEN)
            .values_list("pk", flat=True)
            .first()
        )
        if alert_id is None:
            return None
        alert = _locked(alert_id)
        if not alert.is_open or alert.cleared_at is not None:
            return None
        now = timezone.now()
        alert.cleared_at = now
        if alert.status == S.OPEN and alert.acknowledged_by_id is None:
            _move(alert, S.RESOLVED, action="clear", by=None, note="condition ended", now=now)
            event = AlertEvent.Type.RESOLVED
        else:
            AlertTransition.objects.create(
                alert=alert,
                from_status=alert.status,
                to_status=alert.status,
                action="clear",
                note="condition ended",
                at=now,
            )
            event = AlertEvent.Type.UPDATED
        alert.save()
        _audit(None, alert, "condition ended")
        if active_snooze(patient_id, rule, now=now) is None:
            _announce(alert, event)
        return alert


def _schedule_escalation_check(after: timedelta) -> None:
    """Run the escalation sweep just after the deadline, besides beat's regular sweep.

    Skipped when Celery runs eagerly (demo, unit tests): a countdown cannot wait there.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return

    def schedule() -> None:
        from community.tasks import escalate_overdue  # tasks import this module

        try:
            escalate_overdue.apply_async(countdown=max(1, int(after.total_seconds()) + 1))
        except Exception:
            logger.exception("could not schedule the escalation check; beat will run it")

    transaction.on_commit(schedule)
