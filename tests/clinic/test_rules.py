"""Alert rules, fed with literal readings."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from clinic.news2 import score
from clinic.rules import (
    CLEAR,
    Finding,
    RateRule,
    Reading,
    Thresholds,
    evaluate_device_offline,
    evaluate_low_battery,
    evaluate_news2,
    evaluate_no_data,
    evaluate_rate_of_change,
    evaluate_threshold,
)

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2024, 3, 1, 8, 0, tzinfo=SHANGHAI)
SYSTOLIC = Thresholds(critical_low=90, low=100, high=135, critical_high=180)


def series(vital: str, *values: float, step: timedelta = timedelta(minutes=10)) -> list[Reading]:
    """Readings oldest first, the last at NOW, with ids r1, r2, ..."""
    start = NOW - step * (len(values) - 1)
    return [
        Reading(vital, value, start + step * i, reading_id=f"r{i + 1}")
        for i, value in enumerate(values)
    ]


def bp(*values: float, **kwargs: object) -> Finding | None | object:
    return evaluate_threshold("systolic_bp", series("systolic_bp", *values), SYSTOLIC, **kwargs)


# --- Reading, Thresholds, Finding -----------------------------------------------------------


def test_reading_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="reading time must be timezone-aware"):
        Reading("spo2", 97, datetime(2024, 3, 1, 8, 0))


@pytest.mark.parametrize(
    ("vital", "value", "message"),
    [
        ("pulse", 70, "unknown vital 'pulse'"),
        ("spo2", math.nan, "spo2 value must be finite"),
        ("spo2", "97", "spo2 value must be a number"),
    ],
)
def test_reading_refuses_unknown_vital_and_bad_values(
    vital: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Reading(vital, value, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "limits",
    [
        dict(),
        dict(high=140),
        dict(low=3.9, critical_low=3.0),
        dict(critical_low=9, low=9, high=21, critical_high=25),
        dict(low=100, high=135, critical_high=135),
    ],
)
def test_thresholds_accept_ordered_limits(limits: dict[str, float]) -> None:
    Thresholds(**limits)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (dict(low=140, high=135), "low < high"),
        (dict(low=135, high=135), "low < high"),
        (dict(critical_low=95, low=90), "critical_low <= low"),
        (dict(high=180, critical_high=170), "high <= critical_high"),
        (dict(critical_low=100, critical_high=90), "critical_low <= critical_high"),
        (dict(low=100, critical_high=90), "low <= critical_high"),
        (dict(low=math.nan), "low must be finite"),
    ],
)
def test_thresholds_refuse_disordered_limits(limits: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Thresholds(**limits)


def test_thresholds_band_is_half_open() -> None:
    assert SYSTOLIC.in_range(100) and SYSTOLIC.in_range(134.9)
    assert not SYSTOLIC.in_range(99.9) and not SYSTOLIC.in_range(135)
    assert SYSTOLIC.is_critical(89.9) and SYSTOLIC.is_critical(180)
    assert not SYSTOLIC.is_critical(90) and not SYSTOLIC.is_critical(179.9)


def test_finding_refuses_unknown_severity() -> None:
    with pytest.raises(ValueError, match="severity must be one of"):
        Finding(rule="x", vital=None, severity="info", message="x")


# --- evaluate_threshold ---------------------------------------------------------------------


def test_in_range_value_is_nothing_to_do() -> None:
    assert bp(120) is None


def test_no_readings_is_nothing_to_do() -> None:
    assert evaluate_threshold("systolic_bp", [], SYSTOLIC) is None


def test_out_of_range_value_fires_a_warning_with_value_and_limit() -> None:
    assert bp(120, 150) == Finding(
        rule="threshold:systolic_bp",
        vital="systolic_bp",
        severity="warning",
        message="Systolic BP 150 mmHg is at or above the limit 135 mmHg",
        values=(150,),
        reading_ids=("r2",),
    )


def test_low_value_names_the_low_limit() -> None:
    finding = bp(95)
    assert finding.message == "Systolic BP 95 mmHg is below the limit 100 mmHg"


def test_critical_value_fires_at_once_despite_persistence() -> None:
    finding = bp(120, 185, persistence=3, persistence_minutes=60)
    assert finding == Finding(
        rule="threshold:systolic_bp",
        vital="systolic_bp",
        severity="critical",
        message="Systolic BP 185 mmHg is at or above the critical limit 180 mmHg",
        values=(185,),
        reading_ids=("r2",),
    )


def test_critical_low_value() -> None:
    finding = bp(85)
    assert finding.severity == "critical"
    assert finding.message == "Systolic BP 85 mmHg is below the critical limit 90 mmHg"


def test_persistence_needs_that_many_out_of_range_readings_in_a_row() -> None:
    assert bp(150, 150, persistence=3) is None
    assert bp(150, 120, 150, 150, persistence=3) is None  # broken by an in-range reading
    finding = bp(120, 150, 140, 155, persistence=3)
    assert finding.severity == "warning"
    assert finding.values == (150, 140, 155)
    assert finding.reading_ids == ("r2", "r3", "r4")
    assert finding.message.endswith("(3 readings in a row)")


def test_persistence_counts_high_and_low_alike() -> None:
    assert bp(95, 150, persistence=2).severity == "warning"


def test_persistence_minutes_needs_an_unbroken_run_that_long() -> None:
    # Readings every 10 minutes: a run of 3 spans 20 minutes.
    assert bp(120, 150, 150, 150, persistence_minutes=30) is None
    finding = bp(120, 150, 150, 150, 150, persistence_minutes=30)
    assert finding.values == (150, 150, 150, 150)
    assert finding.reading_ids == ("r2", "r3", "r4", "r5")


def test_persistence_minutes_and_count_must_both_hold() -> None:
    slow = series("systolic_bp", 150, 150, step=timedelta(hours=1))
    assert evaluate_threshold("systolic_bp", slow, SYSTOLIC, persistence_minutes=30) is not None
    assert (
        evaluate_threshold("systolic_bp", slow, SYSTOLIC, persistence=3, persistence_minutes=30)
        is None
    )


def test_open_alert_still_out_of_range_reports_the_latest_reading_again() -> None:
    finding = bp(150, 150, 152, persistence=5, open_alert=True)
    assert finding.severity == "warning"
    assert finding.values == (152,)


def test_open_alert_turning_critical_reports_critical() -> None:
    assert bp(150, 190, open_alert=True).severity == "critical"


def test_open_alert_clears_when_back_inside_by_the_hysteresis() -> None:
    assert bp(150, 125, open_alert=True, hysteresis=5) is CLEAR
    assert bp(95, 105, open_alert=True, hysteresis=5) is CLEAR


def test_open_alert_hovering_near_the_limit_neither_clears_nor_fires() -> None:
    assert bp(150, 131, open_alert=True, hysteresis=5) is None
    assert bp(150, 134, open_alert=True, hysteresis=5) is None
    assert bp(95, 101, open_alert=True, hysteresis=5) is None


def test_hovering_value_does_not_flood() -> None:
    # 136, 134, 136, 134 ... around the 135 limit, alert opened on the first 136.
    values = [136, 134, 136, 134, 136, 134]
    readings = series("systolic_bp", *values)
    outcomes = []
    open_alert = False
    for i in range(1, len(readings) + 1):
        outcome = evaluate_threshold(
            "systolic_bp", readings[:i], SYSTOLIC, open_alert=open_alert, hysteresis=5
        )
        if isinstance(outcome, Finding):
            open_alert = True
        elif outcome is CLEAR:
            open_alert = False
        outcomes.append(outcome is CLEAR)
    assert open_alert and not any(outcomes)


def test_no_hysteresis_clears_as_soon_as_in_range() -> None:
    assert bp(150, 134, open_alert=True) is CLEAR


def test_closed_alert_in_range_is_nothing_to_do_not_clear() -> None:
    assert bp(150, 120) is None


def test_reading_ids_skip_readings_without_one() -> None:
    readings = [Reading("spo2", 85, NOW - timedelta(minutes=1)), Reading("spo2", 85, NOW, "b")]
    finding = evaluate_threshold("spo2", readings, Thresholds(low=88), persistence=2)
    assert finding.reading_ids == ("b",)
    assert finding.values == (85, 85)


def test_one_sided_thresholds() -> None:
    glucose = Thresholds(critical_low=3.0, low=3.9)
    assert evaluate_threshold("glucose", series("glucose", 30.0), glucose) is None
    finding = evaluate_threshold("glucose", series("glucose", 2.8), glucose)
    assert finding.message == "Glucose 2.8 mmol/L is below the critical limit 3 mmol/L"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(persistence=0), "persistence must be at least 1"),
        (dict(persistence_minutes=-1), "persistence_minutes must not be negative"),
        (dict(hysteresis=-1), "hysteresis must be a non-negative number"),
        (dict(hysteresis=math.nan), "hysteresis must be a non-negative number"),
        (dict(hysteresis=20), "hysteresis 20 leaves no room to clear"),
    ],
)
def test_evaluate_threshold_refuses_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bp(120, **kwargs)


def test_evaluate_threshold_refuses_readings_of_another_vital() -> None:
    with pytest.raises(ValueError, match="expected systolic_bp readings, got a spo2 reading"):
        evaluate_threshold("systolic_bp", series("spo2", 97), SYSTOLIC)


def test_evaluate_threshold_refuses_readings_out_of_order() -> None:
    with pytest.raises(ValueError, match="oldest first"):
        evaluate_threshold("systolic_bp", list(reversed(series("systolic_bp", 1, 2))), SYSTOLIC)


def test_evaluate_threshold_refuses_unknown_vital() -> None:
    with pytest.raises(ValueError, match="unknown vital"):
        evaluate_threshold("bp", [], SYSTOLIC)


# --- evaluate_rate_of_change ----------------------------------------------------------------

DAY = timedelta(days=1)


def weight(*values: float) -> list[Reading]:
    return series("weight", *values, step=DAY)


def test_weight_gain_of_2_kg_within_3_days_fires() -> None:
    finding = evaluate_rate_of_change(
        weight(70.0, 70.4, 71.1, 72.0), vital="weight", max_rise=2.0, window=timedelta(days=3)
    )
    assert finding == Finding(
        rule="rate:weight",
        vital="weight",
        severity="warning",
        message="Weight rose 2 kg in 3 d (70 → 72; limit 2 kg in 3 d)",
        values=(70.0, 72.0),
        reading_ids=("r1", "r4"),
    )


def test_weight_gain_spread_over_more_than_the_window_does_not_fire() -> None:
    readings = weight(70.0, 70.5, 71.0, 71.5, 72.0)  # 2 kg over 4 days
    assert (
        evaluate_rate_of_change(readings, vital="weight", max_rise=2.0, window=timedelta(days=3))
        is None
    )


def test_rise_is_measured_from_the_lowest_reading_in_the_window() -> None:
    readings = weight(71.0, 69.5, 70.0, 71.6)
    finding = evaluate_rate_of_change(
        readings, vital="weight", max_rise=2.0, window=timedelta(days=3)
    )
    assert finding.values == (69.5, 71.6)
    assert finding.reading_ids == ("r2", "r4")
    assert finding.message == "Weight rose 2.1 kg in 2 d (69.5 → 71.6; limit 2 kg in 3 d)"


def test_glucose_falling_3_mmol_within_an_hour_fires() -> None:
    readings = series("glucose", 9.0, 7.5, 5.9, step=timedelta(minutes=25))
    finding = evaluate_rate_of_change(
        readings, vital="glucose", max_fall=3.0, window=timedelta(hours=1)
    )
    assert finding.rule == "rate:glucose"
    assert finding.message == ("Glucose fell 3.1 mmol/L in 50 min (9 → 5.9; limit 3 mmol/L in 1 h)")


def test_fall_is_not_checked_when_only_a_rise_limit_is_set() -> None:
    readings = weight(75.0, 70.0)
    assert evaluate_rate_of_change(readings, vital="weight", max_rise=2.0, window=DAY) is None


def test_rate_needs_two_readings() -> None:
    assert evaluate_rate_of_change(weight(70.0), vital="weight", max_rise=2.0, window=DAY) is None
    assert evaluate_rate_of_change([], vital="weight", max_rise=2.0, window=DAY) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(window=DAY), "set max_rise, max_fall or both"),
        (dict(window=DAY, max_rise=0), "max_rise must be a positive number"),
        (dict(window=DAY, max_fall=-1), "max_fall must be a positive number"),
        (dict(window=timedelta(0), max_rise=1), "window must be positive"),
    ],
)
def test_rate_refuses_bad_limits(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_rate_of_change(weight(70.0), vital="weight", **kwargs)


def test_rate_rule_holds_the_same_parameters() -> None:
    rule = RateRule(vital="weight", window=timedelta(days=3), max_rise=2.0)
    finding = evaluate_rate_of_change(
        weight(70.0, 72.5),
        vital=rule.vital,
        window=rule.window,
        max_rise=rule.max_rise,
        max_fall=rule.max_fall,
    )
    assert finding is not None
    with pytest.raises(ValueError, match="set max_rise, max_fall or both"):
        RateRule(vital="weight", window=DAY)


# --- evaluate_no_data -----------------------------------------------------------------------


def test_daily_bp_silent_for_more_than_36_hours_fires() -> None:
    finding = evaluate_no_data(
        NOW - timedelta(hours=37), NOW, DAY, timedelta(hours=12), vital="systolic_bp"
    )
    assert finding == Finding(
        rule="no_data:systolic_bp",
        vital="systolic_bp",
        severity="warning",
        message="Systolic BP: no reading for 1 d 13 h (expected every 1 d)",
    )


def test_no_data_within_interval_and_grace_is_nothing_to_do() -> None:
    for silent in (timedelta(hours=1), timedelta(hours=36)):
        assert (
            evaluate_no_data(NOW - silent, NOW, DAY, timedelta(hours=12), vital="systolic_bp")
            is None
        )


def test_no_reading_ever_counts_from_monitoring_start() -> None:
    assert (
        evaluate_no_data(
            None,
            NOW,
            DAY,
            timedelta(hours=12),
            vital="glucose",
            monitoring_since=NOW - timedelta(hours=2),
        )
        is None
    )
    finding = evaluate_no_data(
        None, NOW, DAY, timedelta(hours=12), vital="glucose", monitoring_since=NOW - 2 * DAY
    )
    assert (
        finding.message == "Glucose: no reading since monitoring began 2 d ago (expected every 1 d)"
    )


def test_no_reading_ever_and_no_start_fires() -> None:
    finding = evaluate_no_data(None, NOW, DAY, timedelta(0), vital="weight")
    assert finding.message == "Weight: no reading ever received (expected every 1 d)"


def test_last_reading_after_now_is_not_overdue() -> None:
    assert (
        evaluate_no_data(NOW + timedelta(minutes=5), NOW, DAY, timedelta(0), vital="spo2") is None
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((datetime(2024, 3, 1), NOW, DAY, DAY), "last_reading_at must be timezone-aware"),
        ((None, datetime(2024, 3, 1), DAY, DAY), "now must be timezone-aware"),
        ((None, NOW, timedelta(0), DAY), "expected_every must be positive"),
        ((None, NOW, DAY, -DAY), "grace must not be negative"),
    ],
)
def test_no_data_refuses_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_no_data(*args, vital="spo2")


# --- evaluate_device_offline ----------------------------------------------------------------


def test_device_silent_longer_than_expected_is_offline() -> None:
    finding = evaluate_device_offline(
        NOW - timedelta(minutes=50), NOW, timedelta(minutes=30), device="bridge-7"
    )
    assert finding == Finding(
        rule="device_offline",
        vital=None,
        severity="warning",
        message="Device bridge-7 offline for 50 min (expected every 30 min)",
    )


def test_device_seen_within_interval_is_online() -> None:
    assert evaluate_device_offline(NOW - timedelta(minutes=30), NOW, timedelta(minutes=30)) is None


def test_device_never_seen_is_reported() -> None:
    finding = evaluate_device_offline(None, NOW, timedelta(minutes=30))
    assert finding.message == "Device has never been seen"


def test_device_offline_compares_instants_across_zones() -> None:
    last_seen = datetime(2024, 2, 29, 23, 50, tzinfo=UTC)  # 07:50 in Shanghai
    assert evaluate_device_offline(last_seen, NOW, timedelta(minutes=30)) is None


def test_device_offline_refuses_naive_and_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="last_seen must be timezone-aware"):
        evaluate_device_offline(datetime(2024, 3, 1), NOW, timedelta(minutes=30))
    with pytest.raises(ValueError, match="expected_interval must be positive"):
        evaluate_device_offline(NOW, NOW, timedelta(0))


# --- evaluate_low_battery -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "severity"),
    [(100, None), (21, None), (20, "warning"), (6, "warning"), (5, "critical"), (0, "critical")],
)
def test_low_battery_warns_at_20_and_is_critical_at_5(level: float, severity: str | None) -> None:
    finding = evaluate_low_battery(level)
    assert (finding.severity if finding else None) == severity


def test_low_battery_message_names_level_and_limit() -> None:
    assert evaluate_low_battery(15).message == "Battery at 15 % (limit 20 %)"
    assert evaluate_low_battery(3, 30).message == "Battery at 3 % (limit 5 %)"
    assert evaluate_low_battery(3, 30).rule == "low_battery"


def test_unknown_battery_level_is_nothing_to_do() -> None:
    assert evaluate_low_battery(None) is None


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((101,), {}, "level_percent must be within 0-100"),
        ((-1,), {}, "level_percent must be within 0-100"),
        ((math.nan,), {}, "level_percent must be finite"),
        ((50, 120), {}, "threshold must be within 0-100"),
        ((50, 10), dict(critical_threshold=15), "must not exceed threshold"),
    ],
)
def test_low_battery_refuses_bad_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_low_battery(*args, **kwargs)


# --- evaluate_news2 -------------------------------------------------------------------------

NORMAL = dict(respiratory_rate=16, spo2=97, systolic_bp=120, pulse=70, temperature=37.0)


def test_low_news2_is_nothing_to_do() -> None:
    assert evaluate_news2(score(**{**NORMAL, "pulse": 111})) is None  # total 2


def test_red_score_fires_a_warning_naming_the_parameter() -> None:
    finding = evaluate_news2(score(**{**NORMAL, "spo2": 90}))
    assert finding == Finding(
        rule="news2",
        vital=None,
        severity="warning",
        message="NEWS2 3 (low-medium risk); score 3 in spo2",
        values=(3.0,),
    )


def test_medium_and_high_news2() -> None:
    medium = evaluate_news2(
        score(**{**NORMAL, "respiratory_rate": 21, "pulse": 111, "temperature": 38.5})
    )
    high = evaluate_news2(
        score(**{**NORMAL, "respiratory_rate": 25, "pulse": 111, "temperature": 39.5})
    )
    assert (medium.severity, medium.message) == ("warning", "NEWS2 5 (medium risk)")
    assert (high.severity, high.message) == (
        "critical",
        "NEWS2 7 (high risk); score 3 in respiratory_rate",
    )


def test_news2_message_says_what_was_missing() -> None:
    result = score(25, None, None, 131, None, consciousness=None)
    finding = evaluate_news2(result)
    assert finding.message == (
        "NEWS2 6 (medium risk); score 3 in respiratory_rate, pulse; "
        "missing spo2, systolic_bp, consciousness, temperature"
    )
