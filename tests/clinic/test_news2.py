"""NEWS2 chart, aggregate and red-score rules (RCP, NEWS2 2017, chart 1 and table 2)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinic.news2 import PARAMETERS, RISK_LEVELS, News2Result, score, score_latest

# All parameters in their zero band.
NORMAL = dict(
    respiratory_rate=16,
    spo2=97,
    systolic_bp=120,
    pulse=70,
    temperature=37.0,
    consciousness="A",
    on_oxygen=False,
    spo2_scale=1,
)


def _scored(parameter: str, **changes: object) -> int:
    return score(**{**NORMAL, **changes}).parameter_scores[parameter]


# Each band's lowest and highest value, straight from the printed chart.
@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)],
)
def test_respiratory_rate_bands(value: float, expected: int) -> None:
    assert _scored("respiratory_rate", respiratory_rate=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(50, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)],
)
@pytest.mark.parametrize("on_oxygen", [False, True])
def test_spo2_scale_1_bands_do_not_depend_on_oxygen(
    value: float, expected: int, on_oxygen: bool
) -> None:
    assert _scored("spo2", spo2=value, on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(50, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0)],
)
@pytest.mark.parametrize("on_oxygen", [False, True])
def test_spo2_scale_2_bands_below_93_do_not_depend_on_oxygen(
    value: float, expected: int, on_oxygen: bool
) -> None:
    assert _scored("spo2", spo2=value, on_oxygen=on_oxygen, spo2_scale=2) == expected


@pytest.mark.parametrize(("value", "expected"), [(93, 0), (96, 0), (97, 0), (100, 0)])
def test_spo2_scale_2_from_93_on_air_scores_0(value: float, expected: int) -> None:
    assert _scored("spo2", spo2=value, on_oxygen=False, spo2_scale=2) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(93, 1), (94, 1), (95, 2), (96, 2), (97, 3), (100, 3)]
)
def test_spo2_scale_2_from_93_on_oxygen_scores_the_oxygen_bands(
    value: float, expected: int
) -> None:
    assert _scored("spo2", spo2=value, on_oxygen=True, spo2_scale=2) == expected


@pytest.mark.parametrize(("on_oxygen", "expected"), [(False, 0), (True, 2)])
def test_air_or_oxygen(on_oxygen: bool, expected: int) -> None:
    assert _scored("air_or_oxygen", on_oxygen=on_oxygen) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (40, 3),
        (90, 3),
        (91, 2),
        (100, 2),
        (101, 1),
        (110, 1),
        (111, 0),
        (219, 0),
        (220, 3),
        (300, 3),
    ],
)
def test_systolic_bp_bands(value: float, expected: int) -> None:
    assert _scored("systolic_bp", systolic_bp=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (20, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
        (220, 3),
    ],
)
def test_pulse_bands(value: float, expected: int) -> None:
    assert _scored("pulse", pulse=value) == expected


@pytest.mark.parametrize(("letter", "expected"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_consciousness_acvpu(letter: str, expected: int) -> None:
    assert _scored("consciousness", consciousness=letter) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (42.0, 2),
    ],
)
def test_temperature_bands(value: float, expected: int) -> None:
    assert _scored("temperature", temperature=value) == expected


# Values between printed bands are rounded half up to the chart's precision, then banded.
@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        ("respiratory_rate", 8.4, 3),
        ("respiratory_rate", 8.5, 1),
        ("respiratory_rate", 11.4, 1),
        ("respiratory_rate", 11.5, 0),
        ("respiratory_rate", 20.5, 2),
        ("respiratory_rate", 24.5, 3),
        ("spo2", 91.5, 2),
        ("spo2", 95.49, 1),
        ("spo2", 95.5, 0),
        ("systolic_bp", 90.5, 2),
        ("systolic_bp", 110.4, 1),
        ("systolic_bp", 219.5, 3),
        ("pulse", 40.5, 1),
        ("pulse", 90.49, 0),
        ("pulse", 90.5, 1),
        ("pulse", 130.5, 3),
        ("temperature", 35.04, 3),
        ("temperature", 35.05, 1),
        ("temperature", 36.04, 1),
        ("temperature", 36.05, 0),
        ("temperature", 38.05, 1),
        ("temperature", 39.05, 2),
    ],
)
def test_values_between_bands_round_half_up_to_chart_precision(
    parameter: str, value: float, expected: int
) -> None:
    assert _scored(parameter, **{parameter: value}) == expected


def test_spo2_scale_2_rounds_before_choosing_the_oxygen_band() -> None:
    # 92.5 rounds to 93, which on oxygen is the first oxygen band, not the 88-92 target.
    assert _scored("spo2", spo2=92.5, on_oxygen=True, spo2_scale=2) == 1
    assert _scored("spo2", spo2=92.4, on_oxygen=True, spo2_scale=2) == 0


def test_all_normal_is_low_and_complete() -> None:
    result = score(**NORMAL)
    assert result == News2Result(
        parameter_scores={name: 0 for name in PARAMETERS},
        missing=(),
        total=0,
        any_single_3=False,
        risk="low",
        complete=True,
    )


def test_parameter_scores_follow_chart_order() -> None:
    assert tuple(score(**NORMAL).parameter_scores) == PARAMETERS


@pytest.mark.parametrize(
    ("changes", "total", "risk"),
    [
        (dict(respiratory_rate=21, pulse=91), 3, "low"),  # 2 + 1
        (dict(respiratory_rate=21, pulse=111), 4, "low"),  # 2 + 2: high end of low
        (dict(respiratory_rate=21, pulse=111, temperature=38.5), 5, "medium"),
        (dict(on_oxygen=True, pulse=111, spo2=94, temperature=38.5), 6, "medium"),
        (dict(on_oxygen=True, pulse=111, spo2=94, temperature=39.5), 7, "high"),
        (dict(respiratory_rate=25, spo2=91, systolic_bp=90, pulse=131), 12, "high"),
    ],
)
def test_aggregate_risk_bands(changes: dict[str, object], total: int, risk: str) -> None:
    result = score(**{**NORMAL, **changes})
    assert (result.total, result.risk) == (total, risk)


@pytest.mark.parametrize(
    "changes",
    [
        dict(respiratory_rate=8),
        dict(spo2=91),
        dict(systolic_bp=90),
        dict(systolic_bp=220),
        dict(pulse=131),
        dict(consciousness="C"),
        dict(temperature=35.0),
    ],
)
def test_a_single_3_alone_is_low_medium(changes: dict[str, object]) -> None:
    result = score(**{**NORMAL, **changes})
    assert (result.total, result.any_single_3, result.risk) == (3, True, "low-medium")


def test_a_single_3_with_aggregate_4_is_still_low_medium() -> None:
    result = score(**{**NORMAL, "consciousness": "V", "pulse": 91})
    assert (result.total, result.risk) == (4, "low-medium")


def test_aggregate_5_or_more_outranks_the_red_score() -> None:
    medium = score(**{**NORMAL, "consciousness": "V", "respiratory_rate": 21})
    high = score(**{**NORMAL, "consciousness": "V", "respiratory_rate": 25, "pulse": 91})
    assert (medium.total, medium.any_single_3, medium.risk) == (5, True, "medium")
    assert (high.total, high.any_single_3, high.risk) == (7, True, "high")


def test_missing_parameters_are_listed_and_never_scored_as_normal() -> None:
    result = score(
        respiratory_rate=None,
        spo2=None,
        systolic_bp=150,
        pulse=None,
        temperature=None,
        consciousness=None,
        on_oxygen=None,
    )
    assert result.parameter_scores == {"systolic_bp": 0}
    assert result.missing == (
        "respiratory_rate",
        "spo2",
        "air_or_oxygen",
        "pulse",
        "consciousness",
        "temperature",
    )
    assert (result.total, result.complete, result.risk) == (0, False, "low")


def test_nothing_present_scores_nothing() -> None:
    result = score(None, None, None, None, None, consciousness=None, on_oxygen=None)
    assert result.parameter_scores == {}
    assert result.missing == PARAMETERS
    assert (result.total, result.any_single_3, result.complete) == (0, False, False)


def test_red_score_is_found_even_when_others_are_missing() -> None:
    result = score(None, 88, None, None, None)
    assert result.parameter_scores == {"spo2": 3, "air_or_oxygen": 0, "consciousness": 0}
    assert (result.risk, result.complete) == ("low-medium", False)


def test_scale_2_spo2_from_93_with_oxygen_unknown_is_missing() -> None:
    result = score(**{**NORMAL, "spo2": 95, "on_oxygen": None, "spo2_scale": 2})
    assert result.missing == ("spo2", "air_or_oxygen")


def test_scale_2_spo2_below_93_with_oxygen_unknown_is_scored() -> None:
    result = score(**{**NORMAL, "spo2": 85, "on_oxygen": None, "spo2_scale": 2})
    assert result.parameter_scores["spo2"] == 2
    assert result.missing == ("air_or_oxygen",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(respiratory_rate=-1), "respiratory_rate must not be negative"),
        (dict(pulse=-0.5), "pulse must not be negative"),
        (dict(systolic_bp=math.nan), "systolic_bp must be finite"),
        (dict(temperature=math.inf), "temperature must be finite"),
        (dict(spo2=100.5), "spo2 must be at most 100"),
        (dict(spo2=-3), "spo2 must not be negative"),
        (dict(pulse="70"), "pulse must be a number"),
        (dict(pulse=True), "pulse must be a number"),
        (dict(consciousness="X"), "consciousness must be one of A, C, V, P, U"),
        (dict(consciousness="a"), "consciousness must be one of"),
        (dict(spo2_scale=3), "spo2_scale must be 1 or 2"),
        (dict(spo2_scale=True), "spo2_scale must be 1 or 2"),
        (dict(on_oxygen="yes"), "on_oxygen must be True, False or None"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        score(**{**NORMAL, **changes})


def test_spo2_of_exactly_100_is_valid() -> None:
    assert _scored("spo2", spo2=100) == 0


# --- score_latest ---------------------------------------------------------------------------

NOW = datetime(2024, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))


def test_score_latest_uses_the_newest_reading_of_each_parameter() -> None:
    readings = {
        # Out of order on purpose: the newest (time-wise) wins, not the last in the list.
        "pulse": [(NOW - timedelta(hours=1), 135.0), (NOW - timedelta(hours=3), 70.0)],
        "respiratory_rate": [(NOW - timedelta(hours=2), 16.0)],
        "spo2": [(NOW - timedelta(hours=5), 91.0), (NOW - timedelta(minutes=5), 97.0)],
        "systolic_bp": [(NOW - timedelta(hours=23), 120.0)],
        "temperature": [(NOW, 37.0)],
    }
    result = score_latest(readings, NOW)
    assert result.parameter_scores["pulse"] == 3
    assert result.parameter_scores["spo2"] == 0
    assert result.complete


def test_score_latest_treats_readings_outside_the_window_as_missing() -> None:
    readings = {
        "pulse": [(NOW - timedelta(hours=25), 135.0)],
        "respiratory_rate": [(NOW - timedelta(hours=24), 16.0)],  # on the edge: inside
        "spo2": [(NOW + timedelta(minutes=1), 97.0)],  # after `now`: not yet known
        "systolic_bp": [],
    }
    result = score_latest(readings, NOW)
    assert result.missing == ("spo2", "systolic_bp", "pulse", "temperature")
    assert result.parameter_scores == {
        "respiratory_rate": 0,
        "air_or_oxygen": 0,
        "consciousness": 0,
    }


def test_score_latest_window_is_configurable() -> None:
    readings = {"pulse": [(NOW - timedelta(hours=2), 135.0)]}
    assert "pulse" in score_latest(readings, NOW, timedelta(hours=1)).missing
    assert score_latest(readings, NOW, timedelta(hours=3)).parameter_scores["pulse"] == 3


def test_score_latest_on_equal_times_the_later_entry_wins() -> None:
    readings = {"pulse": [(NOW, 70.0), (NOW, 135.0)]}
    assert score_latest(readings, NOW).parameter_scores["pulse"] == 3


def test_score_latest_passes_consciousness_oxygen_and_scale() -> None:
    readings = {"spo2": [(NOW, 95.0)]}
    result = score_latest(readings, NOW, consciousness="C", on_oxygen=True, spo2_scale=2)
    assert result.parameter_scores == {"spo2": 2, "air_or_oxygen": 2, "consciousness": 3}


def test_score_latest_accepts_other_time_zones_for_the_same_instant() -> None:
    readings = {"pulse": [(datetime(2024, 2, 29, 23, 30, tzinfo=UTC), 135.0)]}
    assert score_latest(readings, NOW).parameter_scores["pulse"] == 3


@pytest.mark.parametrize(
    ("readings", "now", "window", "message"),
    [
        ({}, datetime(2024, 3, 1, 8, 0), timedelta(hours=24), "now must be timezone-aware"),
        (
            {"pulse": [(datetime(2024, 3, 1, 7, 0), 70.0)]},
            NOW,
            timedelta(hours=24),
            "pulse reading time must be timezone-aware",
        ),
        ({"heart_rate": [(NOW, 70.0)]}, NOW, timedelta(hours=24), "unknown NEWS2 parameters"),
        ({}, NOW, timedelta(0), "window must be positive"),
        ({"spo2": [(NOW, 101.0)]}, NOW, timedelta(hours=24), "spo2 must be at most 100"),
    ],
)
def test_score_latest_refuses_invalid_input(
    readings: dict, now: datetime, window: timedelta, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        score_latest(readings, now, window)


# --- properties -----------------------------------------------------------------------------


@st.composite
def observations(draw: st.DrawFn) -> dict[str, object]:
    def maybe(low: float, high: float) -> float | None:
        return draw(st.none() | st.floats(min_value=low, max_value=high, allow_nan=False))

    return dict(
        respiratory_rate=maybe(0, 80),
        spo2=maybe(0, 100),
        systolic_bp=maybe(0, 300),
        pulse=maybe(0, 250),
        temperature=maybe(25, 45),
        consciousness=draw(st.none() | st.sampled_from("ACVPU")),
        on_oxygen=draw(st.none() | st.booleans()),
        spo2_scale=draw(st.sampled_from([1, 2])),
    )


@given(observations())
def test_total_is_the_sum_of_parameter_scores(obs: dict[str, object]) -> None:
    result = score(**obs)
    assert result.total == sum(result.parameter_scores.values())
    assert set(result.parameter_scores).isdisjoint(result.missing)
    assert set(result.parameter_scores) | set(result.missing) == set(PARAMETERS)
    assert result.complete == (not result.missing)
    assert result.any_single_3 == (3 in result.parameter_scores.values())
    assert all(0 <= points <= 3 for points in result.parameter_scores.values())


@given(observations())
def test_risk_follows_total_and_red_score(obs: dict[str, object]) -> None:
    result = score(**obs)
    expected = (
        "high"
        if result.total >= 7
        else "medium"
        if result.total >= 5
        else "low-medium"
        if result.any_single_3
        else "low"
    )
    assert result.risk == expected


@given(
    observations(),
    st.sampled_from(
        ["respiratory_rate", "spo2", "systolic_bp", "pulse", "temperature", "consciousness"]
    ),
)
def test_adding_a_missing_parameter_never_lowers_the_risk(
    obs: dict[str, object], parameter: str
) -> None:
    # The score with a parameter missing is a lower bound of the score once it is measured.
    known = score(**obs)
    unknown = score(**{**obs, parameter: None})
    assert unknown.total <= known.total
    assert RISK_LEVELS.index(unknown.risk) <= RISK_LEVELS.index(known.risk)
