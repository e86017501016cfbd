"""Default limits, rate rules and schedules per condition, and how conditions combine."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from clinic.care_defaults import (
    CONDITIONS,
    default_rate_rules,
    default_thresholds,
    expected_measurements,
    news2_scale,
    no_data_grace,
)
from clinic.rules import VITALS, RateRule, Thresholds

DAY = timedelta(days=1)
ALL_COMBINATIONS = [
    combo for n in range(len(CONDITIONS) + 1) for combo in itertools.combinations(CONDITIONS, n)
]


@pytest.mark.parametrize("conditions", ALL_COMBINATIONS, ids=lambda c: "+".join(c) or "none")
def test_every_combination_gives_valid_thresholds_for_known_vitals(
    conditions: tuple[str, ...],
) -> None:
    # Thresholds validates its own order, so building them is the check.
    thresholds = default_thresholds(conditions)
    assert set(thresholds) <= set(VITALS)
    assert all(isinstance(t, Thresholds) for t in thresholds.values())


def test_no_condition_is_the_general_baseline() -> None:
    assert default_thresholds([]) == default_thresholds(["general"])
    assert default_thresholds([])["spo2"] == Thresholds(critical_low=92, low=94)
    assert "weight" not in default_thresholds([])


def test_hypertension_uses_home_bp_limits_and_keeps_the_baseline_low_side() -> None:
    thresholds = default_thresholds(["hypertension"])
    assert thresholds["systolic_bp"] == Thresholds(
        critical_low=91, low=101, high=135, critical_high=180
    )
    assert thresholds["diastolic_bp"] == Thresholds(high=85, critical_high=110)


def test_stricter_limit_wins_between_conditions() -> None:
    thresholds = default_thresholds(["hypertension", "diabetes"])
    # Diabetes' 130/80 target is below hypertension's 135/85; hypertension's critical 180
    # stays because diabetes sets none.
    assert thresholds["systolic_bp"] == Thresholds(
        critical_low=91, low=101, high=130, critical_high=180
    )
    assert thresholds["diastolic_bp"] == Thresholds(high=80, critical_high=110)


def test_order_and_duplicates_of_conditions_do_not_matter() -> None:
    assert default_thresholds(["diabetes", "hypertension", "diabetes"]) == default_thresholds(
        ["hypertension", "diabetes"]
    )


def test_copd_lowers_spo2_to_its_88_to_92_target_even_with_general() -> None:
    expected = Thresholds(critical_low=84, low=88)
    assert default_thresholds(["copd"])["spo2"] == expected
    assert default_thresholds(["general", "copd", "heart_failure"])["spo2"] == expected


def test_diabetes_glucose_limits() -> None:
    assert default_thresholds(["diabetes"])["glucose"] == Thresholds(
        critical_low=3.0, low=3.9, high=13.9, critical_high=16.7
    )


def test_result_is_a_fresh_dict() -> None:
    first = default_thresholds(["copd"])
    first.clear()
    assert default_thresholds(["copd"])


def test_heart_failure_watches_weight_gain_of_2_kg_in_3_days() -> None:
    assert default_rate_rules(["heart_failure"]) == (
        RateRule(vital="weight", window=timedelta(days=3), max_rise=2.0),
    )


def test_diabetes_watches_glucose_falling_3_mmol_in_an_hour() -> None:
    assert default_rate_rules(["diabetes"]) == (
        RateRule(vital="glucose", window=timedelta(hours=1), max_fall=3.0),
    )


def test_rate_rules_combine_in_a_stable_order() -> None:
    assert [r.vital for r in default_rate_rules(["heart_failure", "diabetes"])] == [
        "glucose",
        "weight",
    ]
    assert default_rate_rules(["general", "hypertension", "copd"]) == ()


def test_expected_measurements_per_condition() -> None:
    assert expected_measurements([]) == {}
    assert expected_measurements(["hypertension"]) == {"systolic_bp": DAY, "diastolic_bp": DAY}
    assert expected_measurements(["diabetes"]) == {"glucose": DAY}
    assert expected_measurements(["heart_failure"])["weight"] == DAY


def test_expected_measurements_merge_conditions() -> None:
    merged = expected_measurements(["copd", "hypertension"])
    assert merged == {"diastolic_bp": DAY, "heart_rate": DAY, "spo2": DAY, "systolic_bp": DAY}


def test_no_data_grace_makes_daily_overdue_after_36_hours() -> None:
    assert DAY + no_data_grace(DAY) == timedelta(hours=36)
    with pytest.raises(ValueError, match="expected_every must be positive"):
        no_data_grace(timedelta(0))


def test_news2_scale_2_only_with_recorded_hypercapnic_failure() -> None:
    assert news2_scale(["copd"]) == 1
    assert news2_scale(["copd"], hypercapnic_respiratory_failure=True) == 2
    assert news2_scale([], hypercapnic_respiratory_failure=True) == 2
    assert news2_scale(["hypertension"]) == 1


@pytest.mark.parametrize(
    "function",
    [default_thresholds, default_rate_rules, expected_measurements, news2_scale],
)
def test_unknown_condition_is_refused(function) -> None:
    with pytest.raises(ValueError, match=r"unknown conditions \['asthma'\]"):
        function(["copd", "asthma"])


@pytest.mark.parametrize(
    "function",
    [default_thresholds, default_rate_rules, expected_measurements, news2_scale],
)
def test_a_bare_string_is_refused_not_read_letter_by_letter(function) -> None:
    with pytest.raises(ValueError, match="collection of names"):
        function("copd")
