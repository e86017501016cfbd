"""The alert lifecycle through community.actions: transitions, records, rights, snooze, reopen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from clinic.access import actor_for_user, can_read_patient
from clinic.models import Practitioner, Referral
from community import actions
from community.errors import AlertNotAccessible, InvalidRequest, InvalidTransition
from community.models import Alert, AlertEvent, AlertTransition, DispatchTask, Snooze
from community.selectors import alert_payload, hospital_inbox, hub_counts, hub_queue, hub_snoozes
from fhir.models import AuditEvent
from tests.community.helpers import CHEN, LI, finding, hub, patient, user

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(demo) -> Alert:
    return actions.do_raise_or_update_alert(patient(CHEN).pk, finding())


def transitions(alert: Alert) -> list[tuple[str, str, str, str | None]]:
    return [
        (t.from_status, t.to_status, t.action, t.by.username if t.by else None)
        for t in AlertTransition.objects.filter(alert=alert)
    ]


def stream_events(stream: str = "hub:hub-tianhe") -> list[tuple[int, str]]:
    return list(AlertEvent.objects.filter(stream=stream).values_list("seq", "event"))


def test_raise_creates_alert_on_the_patients_hub_with_event_and_audit(alert):
    assert alert.hub.code == "hub-tianhe"
    assert (alert.status, alert.severity, alert.trigger_count) == ("open", "critical", 1)
    assert alert.escalate_at is not None  # critical: the 5-minute default ladder
    assert stream_events() == [(1, "alert.created")]
    assert transitions(alert) == [("", "open", "raise", None)]
    assert AuditEvent.objects.filter(entity=f"Alert/{alert.pk}", action="C").exists()


def test_full_lifecycle_records_every_step(alert):
    dr = user("dr_tianhe")
    colleague = Practitioner.objects.get(user__username="dr_tianhe2")
    actions.check_acknowledge_alert(dr, alert.pk)
    actions.check_assign_alert(dr, alert.pk, colleague.pk)
    task = actions.check_dispatch_alert(
        dr, alert.pk, kind="home_visit", assignee_id=colleague.pk, note="visit today"
    )
    resolved = actions.check_resolve_alert(
        user("dr_tianhe2"), alert.pk, note="BP 150/90 at home visit"
    )
    assert resolved.status == "resolved" and resolved.closed_at is not None
    assert resolved.acknowledged_by.name == "王志强"
    assert transitions(alert) == [
        ("", "open", "raise", None),
        ("open", "acknowledged", "acknowledge", "dr_tianhe"),
        ("acknowledged", "acknowledged", "assign", "dr_tianhe"),
        ("acknowledged", "dispatched", "dispatch", "dr_tianhe"),
        ("dispatched", "resolved", "resolve", "dr_tianhe2"),
    ]
    assert DispatchTask.objects.get(pk=task.pk).assignee == colleague
    assert [e for _, e in stream_events()] == [
        "alert.created",
        "alert.acknowledged",
        "alert.assigned",
        "alert.dispatched",
        "alert.resolved",
    ]
    assert [s for s, _ in stream_events()] == [1, 2, 3, 4, 5]
    assert AuditEvent.objects.filter(entity=f"Alert/{alert.pk}").count() == 5


def test_acknowledgement_is_by_a_named_doctor_and_only_once(alert):
    actions.check_acknowledge_alert(user("dr_tianhe"), alert.pk)
    with pytest.raises(InvalidTransition):
        actions.check_acknowledge_alert(user("dr_tianhe2"), alert.pk)
    payload = alert_payload(Alert.objects.get(pk=alert.pk))
    assert payload["acknowledged_by"] == "王志强" and payload["escalate_at"] is None


def test_closed_alert_refuses_further_actions(alert):
    dr = user("dr_tianhe")
    actions.check_dismiss_alert(dr, alert.pk, note="cuff too small")
    for attempt in (
        lambda: actions.check_acknowledge_alert(dr, alert.pk),
        lambda: actions.check_resolve_alert(dr, alert.pk, note="x"),
        lambda: actions.check_escalate_alert(dr, alert.pk, reason="x"),
    ):
        with pytest.raises(InvalidTransition):
            attempt()


def test_notes_are_required_to_close(alert):
    with pytest.raises(InvalidRequest):
        actions.check_resolve_alert(user("dr_tianhe"), alert.pk, note="  ")


def test_a_note_longer_than_the_limit_is_refused_and_changes_nothing(alert):
    limit = AlertTransition.NOTE_MAX_LENGTH
    with pytest.raises(InvalidRequest, match=f"longer than {limit} characters"):
        actions.check_resolve_alert(user("dr_tianhe"), alert.pk, note="长" * (limit + 1))
    alert.refresh_from_db()
    assert alert.status == "open"
    resolved = actions.check_resolve_alert(user("dr_tianhe"), alert.pk, note="长" * limit)
    assert resolved.transitions.last().note == "长" * limit


@pytest.mark.parametrize("username", ["dr_futian", "clin_zsy", "chenmeiling", "clin_szph"])
def test_others_cannot_act_on_the_alert(alert, username):
    someone = user(username)
    for attempt in (
        lambda: actions.check_acknowledge_alert(someone, alert.pk),
        lambda: actions.check_resolve_alert(someone, alert.pk, note="x"),
        lambda: actions.check_escalate_alert(someone, alert.pk, reason="x"),
        lambda: actions.check_snooze_alert(
            someone, alert.pk, until=timezone.now() + timedelta(hours=1), reason="x"
        ),
    ):
        with pytest.raises(AlertNotAccessible):
            attempt()
    assert Alert.objects.get(pk=alert.pk).status == "open"
    assert AlertTransition.objects.filter(alert=alert).count() == 1


def test_missing_alert_and_forbidden_alert_get_the_same_answer(alert):
    with pytest.raises(AlertNotAccessible) as missing:
        actions.check_acknowledge_alert(user("dr_tianhe"), 999_999)
    with pytest.raises(AlertNotAccessible) as forbidden:
        actions.check_acknowledge_alert(user("dr_futian"), alert.pk)
    assert missing.value.code == forbidden.value.code == "not_found"


def test_cannot_assign_to_a_doctor_of_another_hub(alert):
    futian = Practitioner.objects.get(user__username="dr_futian")
    with pytest.raises(InvalidRequest):
        actions.check_assign_alert(user("dr_tianhe"), alert.pk, futian.pk)


def test_escalation_refers_the_patient_and_grants_the_hospital_access(alert):
    clinician = actor_for_user(user("clin_zsy"))
    assert not can_read_patient(clinician, alert.patient_id)
    with pytest.raises(AlertNotAccessible):  # not escalated to them yet
        actions.check_acknowledge_alert(user("clin_zsy"), alert.pk)
    escalated = actions.check_escalate_alert(
        user("dr_tianhe"), alert.pk, reason="BP 185 twice, no answer"
    )
    assert escalated.status == "escalated" and escalated.escalated_to.code == "zsy"
    assert Referral.objects.filter(
        patient_id=alert.patient_id, hospital__code="zsy", alert_id=alert.pk
    ).exists()
    assert can_read_patient(clinician, alert.patient_id)
    assert stream_events("hospital:zsy") == [(1, "alert.escalated")]
    assert list(hospital_inbox(escalated.escalated_to)) == [escalated]
    # the clinician may now act: acknowledgement is recorded, the status stays escalated
    acked = actions.check_acknowledge_alert(user("clin_zsy"), alert.pk)
    assert (acked.status, acked.acknowledged_by.name) == ("escalated", "林国栋")
    assert stream_events("hospital:zsy")[-1] == (2, "alert.acknowledged")
    # but a clinician of another hospital may not
    with pytest.raises(AlertNotAccessible):
        actions.check_resolve_alert(user("clin_szph"), alert.pk, note="x")


def test_retrigger_updates_the_one_open_alert(alert):
    chen = alert.patient_id
    again = actions.do_raise_or_update_alert(chen, finding(values=(190.0,)))
    assert again.pk == alert.pk and again.trigger_count == 2 and again.values == [190.0]
    assert Alert.objects.filter(patient_id=chen, rule="threshold:systolic_bp").count() == 1
    assert [e for _, e in stream_events()] == ["alert.created", "alert.updated"]


def test_the_same_readings_twice_change_nothing(alert):
    same = finding(reading_ids=tuple(str(i) for i in alert.reading_ids))
    assert actions.do_raise_or_update_alert(alert.patient_id, same) is None
    assert Alert.objects.get(pk=alert.pk).trigger_count == 1
    assert len(stream_events()) == 1


def test_warning_rises_to_critical_but_never_falls(demo):
    chen = patient(CHEN).pk
    warning = actions.do_raise_or_update_alert(chen, finding(severity="warning", values=(140.0,)))
    assert warning.escalate_at is None  # warnings do not climb by default
    critical = actions.do_raise_or_update_alert(chen, finding(severity="critical", values=(185.0,)))
    assert critical.severity == "critical" and critical.escalate_at is not None
    later = actions.do_raise_or_update_alert(chen, finding(severity="warning", values=(150.0,)))
    assert later.severity == "critical"


def test_database_refuses_a_second_open_alert_for_the_same_rule(alert):
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            patient_id=alert.patient_id,
            hub=alert.hub,
            rule=alert.rule,
            severity="warning",
            message="dup",
        )


def test_resolved_alert_reopens_as_a_new_alert_pointing_back(alert):
    actions.check_resolve_alert(user("dr_tianhe"), alert.pk, note="called, fine")
    second = actions.do_raise_or_update_alert(alert.patient_id, finding(values=(188.0,)))
    assert second.pk != alert.pk and second.reopens_id == alert.pk and second.status == "open"
    assert stream_events()[-1][1] == "alert.reopened"


def test_clear_resolves_an_untaken_alert_but_leaves_a_taken_one(demo):
    chen = patient(CHEN).pk
    untaken = actions.do_raise_or_update_alert(chen, finding("threshold:heart_rate"))
    taken = actions.do_raise_or_update_alert(chen, finding("threshold:spo2"))
    actions.check_acknowledge_alert(user("dr_tianhe"), taken.pk)
    actions.do_clear_alert(chen, "threshold:heart_rate")
    actions.do_clear_alert(chen, "threshold:spo2")
    assert Alert.objects.get(pk=untaken.pk).status == "resolved"
    kept = Alert.objects.get(pk=taken.pk)
    assert kept.status == "acknowledged" and kept.cleared_at is not None
    assert actions.do_clear_alert(chen, "threshold:glucose") is None


def test_snooze_records_but_does_not_push_and_every_hub_doctor_sees_it(alert):
    until = timezone.now() + timedelta(hours=4)
    snooze = actions.check_snooze_alert(
        user("dr_tianhe"), alert.pk, until=until, reason="known white-coat effect"
    )
    assert list(hub_snoozes(hub())) == [snooze]
    assert alert_payload(Alert.objects.get(pk=alert.pk))["snoozed_until"] is not None
    before = len(stream_events())
    updated = actions.do_raise_or_update_alert(alert.patient_id, finding(values=(199.0,)))
    assert updated.trigger_count == 2 and updated.values == [199.0]  # recorded
    assert len(stream_events()) == before  # not pushed
    assert updated.escalate_at is None  # nor escalated
    assert Snooze.objects.get().by.username == "dr_tianhe"


def test_snooze_must_end_in_the_future_and_within_a_week(alert):
    dr = user("dr_tianhe")
    for until in (timezone.now() - timedelta(minutes=1), timezone.now() + timedelta(days=8)):
        with pytest.raises(InvalidRequest):
            actions.check_snooze_alert(dr, alert.pk, until=until, reason="x")


def test_hub_queue_sorts_by_severity_then_age_and_filters(demo):
    chen, li = patient(CHEN).pk, patient(LI).pk
    old_warning = actions.do_raise_or_update_alert(
        chen, finding("threshold:heart_rate", severity="warning")
    )
    critical = actions.do_raise_or_update_alert(chen, finding("threshold:systolic_bp"))
    actions.do_raise_or_update_alert(li, finding("threshold:spo2"))  # Futian's, not Tianhe's
    assert list(hub_queue(hub())) == [critical, old_warning]
    assert list(hub_queue(hub(), severity="warning")) == [old_warning]
    assert list(hub_queue(hub(), rule="threshold:")) == [critical, old_warning]
    assert list(hub_queue(hub(), community="gz-liede")) == []
    counts = hub_counts(hub())
    assert (counts["open"], counts["critical"], counts["warning"], counts["total"]) == (2, 1, 1, 2)


def test_alert_markers_for_the_timeline(alert):
    from community.selectors import alert_markers

    [marker] = alert_markers(alert.patient, alert.opened_at - timedelta(minutes=1))
    assert (marker["id"], marker["rule"], marker["severity"]) == (
        alert.pk,
        "threshold:systolic_bp",
        "critical",
    )
    assert alert_markers(alert.patient, alert.opened_at + timedelta(minutes=1)) == []
