"""clinic.evaluation: the pure core with literals, the loader with stored VitalSign rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clinic.evaluation import (
    EnrolmentFacts,
    MonitorFacts,
    PatientRules,
    evaluate,
    evaluate_new_readings,
    hysteresis_for,
    load_patient_rules,
    silence_findings,
)
from clinic.models import CarePlan, CareThreshold
from clinic.rules import RateRule, Reading, Thresholds
from tests.community.helpers import CHEN, LI, patient, store_vitals

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
BP = PatientRules(thresholds={"systolic_bp": Thresholds(high=135, critical_high=180)})


def series(vital: str, *values: float, step: timedelta = timedelta(minutes=5)) -> list[Reading]:
    return [
        Reading(vital=vital, value=v, at=T0 + i * step, reading_id=str(i + 1))
        for i, v in enumerate(values)
    ]


def test_critical_value_fires_at_once():
    result = evaluate(
        BP, {"systolic_bp": series("systolic_bp", 185)}, {"systolic_bp"}, open_rules=()
    )
    [f] = result.findings
    assert (f.rule, f.severity, f.values, f.reading_ids) == (
        "threshold:systolic_bp",
        "critical",
        (185,),
        ("1",),
    )


def test_warning_needs_two_readings_in_a_row():
    one = evaluate(
        BP, {"systolic_bp": series("systolic_bp", 120, 140)}, {"systolic_bp"}, open_rules=()
    )
    two = evaluate(
        BP, {"systolic_bp": series("systolic_bp", 140, 141)}, {"systolic_bp"}, open_rules=()
    )
    assert one.findings == ()
    assert [f.severity for f in two.findings] == ["warning"]


def test_hysteresis_holds_an_open_alert_until_well_inside():
    rule = {"threshold:systolic_bp"}
    hovering = evaluate(
        BP, {"systolic_bp": series("systolic_bp", 140, 133)}, {"systolic_bp"}, open_rules=rule
    )
    back = evaluate(
        BP, {"systolic_bp": series("systolic_bp", 140, 125)}, {"systolic_bp"}, open_rules=rule
    )
    assert hovering.findings == () and hovering.clears == ()
    assert back.clears == ("threshold:systolic_bp",)


def test_hysteresis_shrinks_to_fit_a_narrow_band():
    assert hysteresis_for("systolic_bp", Thresholds(low=120, high=128)) == 2.0
    assert hysteresis_for("systolic_bp", Thresholds(high=135)) == 5.0


def test_news2_uses_heart_rate_as_pulse_and_reports_missing():
    rules = PatientRules(thresholds={})
    recent = {
        "respiratory_rate": series("respiratory_rate", 26),
        "spo2": series("spo2", 90),
        "heart_rate": series("heart_rate", 135),
        "systolic_bp": series("systolic_bp", 95),
    }
    result = evaluate(rules, recent, {"heart_rate"}, open_rules=())
    assert result.news2 is not None
    assert result.news2.parameter_scores["pulse"] == 3
    assert "consciousness" in result.news2.missing and "temperature" in result.news2.missing
    [f] = result.findings
    assert f.rule == "news2" and f.severity == "critical"  # 3+3+3+2 = 11: high
    assert sorted(f.reading_ids) == ["1", "1", "1", "1"]


def test_news2_from_one_parameter_is_left_to_its_threshold():
    result = evaluate(
        PatientRules(thresholds={}), {"spo2": series("spo2", 85)}, {"spo2"}, open_rules=()
    )
    assert result.news2 is None and result.findings == ()


def test_news2_ignores_a_parameter_older_than_the_window():
    recent = {
        "heart_rate": [Reading("heart_rate", 135, T0 - timedelta(hours=3), "9")],
        "spo2": series("spo2", 85),
    }
    result = evaluate(PatientRules(thresholds={}), recent, {"spo2"}, open_rules=())
    assert result.news2 is None


def test_scale_2_from_the_care_plan():
    recent = {"spo2": series("spo2", 89), "respiratory_rate": series("respiratory_rate", 16)}
    scale1 = evaluate(PatientRules(thresholds={}, news2_scale=1), recent, {"spo2"}, open_rules=())
    scale2 = evaluate(PatientRules(thresholds={}, news2_scale=2), recent, {"spo2"}, open_rules=())
    assert scale1.news2.parameter_scores["spo2"] == 3
    assert scale2.news2.parameter_scores["spo2"] == 0


def test_weight_gain_rate_rule():
    rules = PatientRules(
        thresholds={},
        rate_rules=(RateRule(vital="weight", window=timedelta(days=3), max_rise=2.0),),
    )
    recent = {"weight": series("weight", 70.0, 70.5, 72.1, step=timedelta(days=1))}
    [f] = evaluate(rules, recent, {"weight"}, open_rules=()).findings
    assert f.rule == "rate:weight" and f.values == (70.0, 72.1)


def test_a_new_reading_clears_its_no_data_alert():
    result = evaluate(
        BP,
        {"systolic_bp": series("systolic_bp", 120)},
        {"systolic_bp"},
        open_rules={"no_data:systolic_bp"},
    )
    assert result.clears == ("no_data:systolic_bp",)


def test_silence_findings_no_data_offline_and_battery():
    now = T0 + timedelta(days=3)
    enrolments = [EnrolmentFacts(1, frozenset({"hypertension"}), T0 - timedelta(days=30))]
    last = {(1, "systolic_bp"): T0, (1, "diastolic_bp"): now - timedelta(hours=2)}
    monitors = [
        MonitorFacts(
            "aa",
            frozenset({1}),
            battery=4,
            last_reading_at=now - timedelta(hours=1),
            expected_interval=timedelta(minutes=10),
        ),
        MonitorFacts(
            "bb", frozenset({1}), battery=15, last_reading_at=None, expected_interval=None
        ),
    ]
    [result] = silence_findings(
        enrolments, last, monitors, now, open_rules={1: {"no_data:diastolic_bp"}}
    )
    rules = {f.rule: f.severity for f in result.findings}
    assert rules == {
        "no_data:systolic_bp": "warning",
        "device_offline": "warning",
        "low_battery": "critical",  # the worse of the two monitors
    }
    assert result.clears == ("no_data:diastolic_bp",)


@pytest.mark.django_db
def test_loader_uses_care_plan_override_then_condition_defaults(demo):
    chen = patient(CHEN)
    plan = CarePlan.objects.get(patient=chen)
    CareThreshold.objects.update_or_create(
        care_plan=plan, vital="systolic_bp", defaults={"high": 150, "critical_high": 200}
    )
    rules = load_patient_rules(chen.pk)
    # the row replaces the vital's defaults whole: what the doctor set is what applies
    assert rules.thresholds["systolic_bp"] == Thresholds(high=150, critical_high=200)
    assert rules.thresholds["diastolic_bp"].high == 85  # hypertension default
    li = load_patient_rules(patient(LI).pk)
    assert li.news2_scale == 2 and [r.vital for r in li.rate_rules] == ["weight"]


@pytest.mark.django_db
def test_loader_reads_recent_vitals_from_the_table(demo):
    chen = patient(CHEN)
    store_vitals(chen, "systolic_bp", [140])
    ids = store_vitals(chen, "systolic_bp", [142], start=datetime.now(UTC) - timedelta(minutes=30))
    result = evaluate_new_readings(chen.pk, ids, open_rules=())
    [f] = result.findings
    assert f.severity == "warning" and f.values == (140, 142)
    assert evaluate_new_readings(chen.pk, [], open_rules=()).findings == ()


@pytest.mark.django_db
def test_recent_readings_per_vital_newest_kept_oldest_first_in_one_union(demo):
    """Each vital keeps its latest RECENT_READINGS inside the window of her newest reading, in
    time order; a vital with nothing in the window is absent, not empty."""
    from clinic.evaluation import RECENT_READINGS, RECENT_WINDOW, _recent_readings

    chen = patient(CHEN)
    now = datetime.now(UTC).replace(microsecond=0)
    store_vitals(chen, "heart_rate", [70], start=now - RECENT_WINDOW - timedelta(hours=1))
    bp = store_vitals(
        chen,
        "systolic_bp",
        range(100, 160),
        start=now - timedelta(hours=2),
        every=timedelta(minutes=1),
    )
    spo2 = store_vitals(chen, "spo2", [97, 95, 93], start=now - timedelta(minutes=30))
    recent = _recent_readings(chen.pk, {"systolic_bp", "spo2", "heart_rate"})
    assert list(recent) == ["spo2", "systolic_bp"]
    assert [r.reading_id for r in recent["spo2"]] == [str(i) for i in spo2]
    assert len(recent["systolic_bp"]) == RECENT_READINGS
    assert [r.value for r in recent["systolic_bp"]] == list(range(160 - RECENT_READINGS, 160))
    assert [r.reading_id for r in recent["systolic_bp"]] == [str(i) for i in bp[-RECENT_READINGS:]]


@pytest.mark.django_db
def test_recent_readings_leave_out_errors_and_absent_values_and_other_patients(demo):
    """A reading marked entered-in-error or without a value is not a reading the rules may use,
    and the window is hers: another patient's newer reading does not move it."""
    from clinic.evaluation import RECENT_WINDOW, _recent_readings
    from fhir.models import VitalSign

    chen, li = patient(CHEN), patient(LI)
    now = datetime.now(UTC).replace(microsecond=0)
    kept, wrong, absent = store_vitals(chen, "spo2", [96, 80, 0], start=now - timedelta(hours=1))
    VitalSign.objects.filter(pk=wrong).update(status="entered-in-error")
    VitalSign.objects.filter(pk=absent).update(value=None, data_absent="error")
    store_vitals(li, "spo2", [99], start=now + RECENT_WINDOW * 2)

    recent = _recent_readings(chen.pk, {"spo2"})

    assert [(r.reading_id, r.value) for r in recent["spo2"]] == [(str(kept), 96)]
    assert _recent_readings(patient(CHEN).pk, set()) == {}
