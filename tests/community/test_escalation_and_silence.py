"""The escalation ladder and the silence sweep, driven by their Celery services with a clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.access import actor_for_user, can_read_patient
from clinic.models import Enrolment
from community import actions
from community.alerting import escalate_due, process_silence
from community.models import Alert, AlertEvent, AlertTransition, EscalationPolicy
from community.tasks import check_silence, escalate_overdue
from devices.models import Bridge, Monitor
from fhir.models import VitalSign
from tests.community.helpers import CHEN, finding, hub, patient, store_vitals, user

pytestmark = pytest.mark.django_db


@pytest.fixture
def critical(demo) -> Alert:
    return actions.do_raise_or_update_alert(patient(CHEN).pk, finding())


def test_unacknowledged_critical_climbs_doctors_then_duty_lead_then_hospital(critical):
    clinician = actor_for_user(user("clin_zsy"))
    assert escalate_due(timezone.now()) == []  # not yet due
    assert not can_read_patient(clinician, critical.patient_id)

    t1 = critical.opened_at + timedelta(minutes=5, seconds=1)
    assert escalate_due(t1) == [critical.pk]
    lead = Alert.objects.get(pk=critical.pk)
    assert (lead.status, lead.escalation_tier, lead.assigned_to.name) == ("open", 1, "王志强")
    assert escalate_due(t1) == []  # safe to run twice

    t2 = t1 + timedelta(minutes=10, seconds=1)
    assert escalate_due(t2) == [critical.pk]
    reached = Alert.objects.get(pk=critical.pk)
    assert (reached.status, reached.escalation_tier, reached.escalated_to.code) == (
        "escalated",
        2,
        "zsy",
    )
    assert can_read_patient(clinician, critical.patient_id)
    assert list(
        AlertEvent.objects.filter(stream="hospital:zsy").values_list("event", flat=True)
    ) == ["alert.escalated"]
    notes = list(
        AlertTransition.objects.filter(alert=critical, action="escalate").values_list(
            "note", flat=True
        )
    )
    assert "duty lead 王志强" in notes[0] and "automatic" in notes[1]
    assert escalate_due(t2 + timedelta(hours=1)) == []  # nothing above the hospital


def test_acknowledgement_stops_the_climb(critical):
    actions.check_acknowledge_alert(user("dr_tianhe2"), critical.pk)
    assert escalate_due(critical.opened_at + timedelta(hours=2)) == []
    assert Alert.objects.get(pk=critical.pk).escalation_tier == 0


def test_policy_per_hub_and_severity(demo):
    EscalationPolicy.objects.create(
        hub=hub(), severity="warning", doctors_timeout_s=60, duty_lead_timeout_s=60
    )
    EscalationPolicy.objects.create(hub=hub(), severity="critical", enabled=False)
    warning = actions.do_raise_or_update_alert(
        patient(CHEN).pk, finding("threshold:heart_rate", severity="warning")
    )
    critical = actions.do_raise_or_update_alert(patient(CHEN).pk, finding())
    assert critical.escalate_at is None
    assert escalate_due(warning.opened_at + timedelta(seconds=61)) == [warning.pk]


def test_hub_without_duty_lead_goes_straight_to_the_hospital(critical):
    critical.hub.memberships.update(is_duty_lead=False)
    escalate_due(critical.opened_at + timedelta(minutes=6))
    assert Alert.objects.get(pk=critical.pk).status == "escalated"


def test_beat_task_runs_the_sweep(critical):
    Alert.objects.filter(pk=critical.pk).update(escalate_at=timezone.now() - timedelta(seconds=1))
    assert escalate_overdue.delay().get() == 1


def test_no_data_for_a_patient_expected_to_measure(demo):
    chen = patient(CHEN)
    Enrolment.objects.filter(patient=chen).update(start=timezone.localdate() - timedelta(days=10))
    store_vitals(chen, "systolic_bp", [128], start=timezone.now() - timedelta(hours=40))
    store_vitals(chen, "diastolic_bp", [80], start=timezone.now() - timedelta(hours=2))
    process_silence()
    rules = set(Alert.objects.filter(patient=chen).values_list("rule", flat=True))
    assert rules == {"no_data:systolic_bp"}
    assert AlertEvent.objects.filter(stream="hub:hub-tianhe", alert__patient=chen).count() == 1
    # a second sweep repeats the finding without a new event
    before = AlertEvent.objects.count()
    process_silence()
    assert AlertEvent.objects.count() == before
    # a reading arrives: the next sweep clears the untaken alert
    store_vitals(chen, "systolic_bp", [126], start=timezone.now() - timedelta(minutes=5))
    process_silence()
    assert Alert.objects.get(patient=chen, rule="no_data:systolic_bp").status == "resolved"


def test_device_offline_and_low_battery(demo):
    chen = patient(CHEN)
    Enrolment.objects.filter(patient=chen).update(conditions=[])  # no expected measurements
    bridge = Bridge(name="陈家")
    bridge.issue_token()
    bridge.save()
    bridge.patients.set([chen])
    Monitor.objects.create(
        bridge=bridge,
        identifier="oximeter-1",
        battery=4,
        last_reading_at=timezone.now() - timedelta(minutes=30),
        expected_interval_s=600,
    )
    assert check_silence.delay().get() > 2  # the demo's other patients have sent nothing yet
    alerts = {a.rule: a for a in Alert.objects.filter(patient=chen)}
    assert set(alerts) == {"device_offline", "low_battery"}
    assert alerts["low_battery"].severity == "critical"
    assert "oximeter-1" in alerts["device_offline"].message
    # back online with a fresh battery: both clear
    Monitor.objects.update(battery=90, last_reading_at=timezone.now())
    process_silence()
    assert set(Alert.objects.filter(patient=chen).values_list("status", flat=True)) == {"resolved"}


def test_a_long_silence_is_measured_from_the_last_reading_however_old(demo):
    """The sweep aggregates only the recent window; a pair silent for longer is looked up on
    its own, so the alert still says how long, and a data-absent reading does not count."""
    chen = patient(CHEN)
    Enrolment.objects.filter(patient=chen).update(start=timezone.localdate() - timedelta(days=60))
    now = timezone.now()
    store_vitals(chen, "systolic_bp", [128], start=now - timedelta(days=20, hours=3))
    absent = store_vitals(chen, "systolic_bp", [0], start=now - timedelta(days=2))
    VitalSign.objects.filter(pk__in=absent).update(value=None, data_absent="error")
    store_vitals(chen, "diastolic_bp", [80], start=now - timedelta(hours=2))
    process_silence(now)
    alert = Alert.objects.get(patient=chen, rule="no_data:systolic_bp")
    assert "no reading for 20 d 3 h" in alert.message, alert.message
    assert not Alert.objects.filter(patient=chen, rule="no_data:diastolic_bp").exists()
