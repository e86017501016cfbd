"""From stored readings to alerts: the Celery task over VitalSign rows, and a real /fhir/ upload
reaching the Tianhe hub's socket (eager Celery, after commit)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from clinic.access import actor_for_interface
from community.models import Alert, AlertTransition
from community.tasks import evaluate_readings
from devices.models import Bridge
from fhir.models import VitalSign
from fhir.signals import vitals_stored
from fhir.store import process_bundle
from tests.community.helpers import CHEN, connect_and_subscribe, patient, store_vitals, user
from tests.fhir import bundles


def systolic(values, minutes_ago: int = 60) -> list[int]:
    return store_vitals(
        patient(CHEN),
        "systolic_bp",
        values,
        start=timezone.now() - timedelta(minutes=minutes_ago),
        every=timedelta(minutes=1),
    )


def evaluate(ids: list[int]) -> None:
    evaluate_readings.delay(patient(CHEN).pk, ids).get()


def open_bp_alert() -> Alert | None:
    return (
        Alert.objects.filter(rule="threshold:systolic_bp")
        .exclude(status__in=["resolved", "dismissed"])
        .first()
    )


@pytest.mark.django_db
def test_persistence_then_hysteresis_then_clear(demo):
    evaluate(systolic([140], 60))  # hypertension: high 135; one reading is not enough
    assert open_bp_alert() is None
    evaluate(systolic([141], 50))
    alert = open_bp_alert()
    assert (alert.severity, alert.values, alert.trigger_count) == ("warning", [140.0, 141.0], 1)
    evaluate(systolic([133], 40))  # back under 135 but within the 5 mmHg hysteresis: stays
    assert open_bp_alert().pk == alert.pk
    evaluate(systolic([138], 30))  # out again: the same alert, re-triggered
    assert open_bp_alert().trigger_count == 2
    evaluate(systolic([125], 20))  # well inside: cleared, and nobody had taken it → resolved
    assert open_bp_alert() is None
    last = AlertTransition.objects.filter(alert=alert).last()
    assert (last.action, last.to_status, last.note) == ("clear", "resolved", "condition ended")


@pytest.mark.django_db
def test_critical_reading_fires_at_once_and_task_rerun_is_harmless(demo):
    ids = systolic([185])
    evaluate(ids)
    evaluate(ids)  # acks_late redelivery
    alert = open_bp_alert()
    assert (alert.severity, alert.trigger_count, alert.reading_ids) == ("critical", 1, ids)


@pytest.mark.django_db
def test_news2_alert_carries_its_score(demo):
    chen = patient(CHEN)
    start = timezone.now() - timedelta(minutes=10)
    store_vitals(chen, "respiratory_rate", [26], start=start)
    store_vitals(chen, "spo2", [90], start=start)
    ids = store_vitals(chen, "heart_rate", [135], start=start)
    evaluate(ids)
    news2 = Alert.objects.get(rule="news2")
    assert (news2.severity, news2.news2_total, news2.news2_risk) == ("critical", 9, "high")
    assert Alert.objects.get(rule="threshold:heart_rate").news2_total == 9


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_connections")
async def test_upload_through_fhir_reaches_the_tianhe_socket(demo, layer):
    @database_sync_to_async
    def make_bridge() -> str:
        bridge = Bridge(name="陈美玲家")
        token = bridge.issue_token()
        bridge.save()
        bridge.patients.set([patient(CHEN)])
        return token

    token = await make_bridge()
    dr = await database_sync_to_async(user)("dr_tianhe2")
    board = await connect_and_subscribe("/ws/hub/hub-tianhe/", dr)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = await database_sync_to_async(client.post)(
        "/fhir/",
        json.dumps(bundles.upload(CHEN, 3, systolic=185)),
        content_type="application/fhir+json",
    )
    assert response.status_code == 200, response.content
    frame = await board.receive_json_from(timeout=10)
    assert (frame["event"], frame["rule"], frame["severity"], frame["patient_name"]) == (
        "alert.created",
        "threshold:systolic_bp",
        "critical",
        "陈美玲",
    )
    assert frame["values"] == [187.0]  # the latest of 185, 186, 187
    await board.disconnect()


@pytest.mark.django_db
def test_a_home_news2_alert_says_what_was_not_measured(demo):
    """Consciousness and oxygen are never measured at home: the total is a lower bound and the
    alert (and every board showing it) must say so rather than pass for a complete score."""
    from community.selectors import alert_payload

    start = timezone.now() - timedelta(minutes=10)
    who = patient(CHEN)
    ids = []
    for vital, value in (
        ("respiratory_rate", 26),
        ("spo2", 90),
        ("heart_rate", 135),
        ("systolic_bp", 95),
    ):
        ids += store_vitals(who, vital, [value], start=start)
    evaluate(ids)
    alert = Alert.objects.get(rule="news2")
    assert alert.news2_total >= 7 and alert.news2_risk == "high"
    assert {"consciousness", "air_or_oxygen", "temperature"} <= set(alert.news2_missing)
    news2 = alert_payload(alert)["news2"]
    assert news2["complete"] is False and "consciousness" in news2["missing"]


@pytest.mark.django_db
def test_an_upload_announces_the_span_of_its_readings(demo, django_capture_on_commit_callbacks):
    """The writer tells the rules when its readings were taken, so the look-ups by id stay in
    the month partitions that hold them; the task (eager here) evaluates with it."""
    heard = []

    def listen(sender, **kwargs):
        heard.append(kwargs)

    vitals_stored.connect(listen)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            process_bundle(actor_for_interface("test"), bundles.upload(CHEN, 3, systolic=185))
    finally:
        vitals_stored.disconnect(listen)
    [kwargs] = heard
    times = sorted(
        VitalSign.objects.filter(pk__in=kwargs["vital_ids"]).values_list("effective_at", flat=True)
    )
    assert len(times) == 9  # three panels of systolic, diastolic and mean
    assert kwargs["span"] == (times[0], times[-1])
    assert (times[0], times[-1]) == (
        datetime.fromisoformat("2026-11-25T08:00:00+08:00"),
        datetime.fromisoformat("2026-11-25T08:02:00+08:00"),
    )
    assert open_bp_alert().severity == "critical"


@pytest.mark.django_db
def test_a_span_that_misses_the_readings_finds_nothing_to_evaluate(demo):
    """The span confines the look-ups: it must come from the rows themselves (as the writer
    sends it), never from a guess. One that misses them evaluates nothing and marks nothing."""
    ids = systolic([185], 30)
    far = timezone.now() - timedelta(days=400)
    evaluate_readings.delay(
        patient(CHEN).pk, ids, span=[far.isoformat(), (far + timedelta(hours=1)).isoformat()]
    ).get()
    assert open_bp_alert() is None
    assert VitalSign.objects.get(pk=ids[0]).evaluated_at is None
    evaluate_readings.delay(patient(CHEN).pk, ids).get()  # the sweep's way: no span
    assert open_bp_alert().severity == "critical"
    assert VitalSign.objects.get(pk=ids[0]).evaluated_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "span",
    [
        ["not a time", "2026-11-25T08:00:00+08:00"],
        ["2026-11-25T08:00:00", "2026-11-25T09:00:00"],  # no zone
        ["2026-11-25T09:00:00+08:00", "2026-11-25T08:00:00+08:00"],  # backwards
        ["2026-11-25T08:00:00+08:00"],  # one time
        [1, 2],
        "2026-11-25T08:00:00+08:00",
    ],
)
def test_a_malformed_span_is_ignored_not_fatal(demo, span):
    """The span is a hint from the writer; a task message with a broken one still evaluates."""
    ids = systolic([185], 30)
    assert evaluate_readings.delay(patient(CHEN).pk, ids, span=span).get() >= 1
    assert open_bp_alert().severity == "critical"
    assert VitalSign.objects.get(pk=ids[0]).evaluated_at is not None
