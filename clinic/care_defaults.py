"""Default alert limits and measurement schedules by monitored condition.

A new care plan starts from these; the doctor then adjusts per patient. Limits use the
half-open band of `clinic.rules.Thresholds`: in range when ``low <= value < high``, critical
when ``value < critical_low`` or ``value >= critical_high``, so each number below is written as
the guideline phrases it ("below 3.9", "135 or above").

How conditions combine (`default_thresholds`): "general" is the baseline for every patient. For
each vital and each of the four limits, the conditions asked for that set the limit replace the
baseline, and among them the stricter wins: the higher ``low``/``critical_low``, the lower
``high``/``critical_high`` (alert sooner). A limit that no condition sets keeps the baseline.
Replacing rather than merging with the baseline is what lets COPD *lower* the SpO2 limit to its
88-92 % target, which "stricter wins" against the baseline would forbid.

These are starting points for adults chosen from the sources named beside them, not a clinical
protocol; clinicians review them before a pilot goes live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Final

from clinic.rules import RateRule, Thresholds

__all__ = [
    "CONDITIONS",
    "default_rate_rules",
    "default_thresholds",
    "expected_measurements",
    "news2_scale",
    "no_data_grace",
]

CONDITIONS: Final[tuple[str, ...]] = (
    "general",
    "hypertension",
    "diabetes",
    "copd",
    "heart_failure",
)

_DAILY: Final = timedelta(days=1)

_T = Thresholds

_THRESHOLDS: Final[Mapping[str, Mapping[str, Thresholds]]] = MappingProxyType(
    {
        # Baseline, aligned with the NEWS2 chart (RCP 2017): a warning where one parameter
        # scores 2 and critical where it scores 3, so a threshold alert and the NEWS2 red score
        # agree. Where NEWS2 has no band the source is named.
        "general": {
            # NEWS2: <=8 scores 3, 21-24 scores 2, >=25 scores 3 (9-11 scores only 1).
            "respiratory_rate": _T(critical_low=9, low=9, high=21, critical_high=25),
            # NEWS2 scale 1: <=91 scores 3, 92-93 scores 2; BTS 2017 oxygen target 94-98 %.
            "spo2": _T(critical_low=92, low=94),
            # NEWS2: <=90 scores 3, 91-100 scores 2, >=220 scores 3. The warning at 180 is grade 3
            # hypertension (Chinese Guidelines for the Prevention and Treatment of Hypertension,
            # 2018 revision; ESC/ESH 2018), which NEWS2 does not score.
            "systolic_bp": _T(critical_low=91, low=101, high=180, critical_high=220),
            # Grade 3 at 110 (same guidelines); hypertensive crisis at 120 (Chinese 2018 guideline,
            # ">180/120 mmHg").
            "diastolic_bp": _T(high=110, critical_high=120),
            # NEWS2: <=40 scores 3, 111-130 scores 2, >=131 scores 3 (41-50 scores only 1).
            "heart_rate": _T(critical_low=41, low=41, high=111, critical_high=131),
            # NEWS2: <=35.0 scores 3, >=39.1 scores 2; the high side never scores 3.
            "temperature": _T(critical_low=35.1, low=35.1, high=39.1),
            # Hypoglycaemia is dangerous for anyone who measures glucose: level 1 below 3.9,
            # level 2 below 3.0 mmol/L (ADA Standards of Care 2024, section 6; Chinese Diabetes
            # Society guideline for type 2 diabetes, 2020).
            "glucose": _T(critical_low=3.0, low=3.9),
        },
        # Home blood pressure of 135/85 or above is hypertension and the treatment target is
        # below it (Chinese 2018 guideline, home BP; ESC/ESH 2018 home BP thresholds). 180/110 is
        # grade 3: critical, so the doctor calls the same day.
        "hypertension": {
            "systolic_bp": _T(high=135, critical_high=180),
            "diastolic_bp": _T(high=85, critical_high=110),
        },
        # Chinese Diabetes Society 2020 type 2 guideline: BP target below 130/80; hypoglycaemia
        # levels as in the baseline. Above 13.9 mmol/L test ketones (ADA sick-day advice);
        # 16.7 mmol/L or above raises the question of DKA/HHS (CDS 2020).
        "diabetes": {
            "glucose": _T(critical_low=3.0, low=3.9, high=13.9, critical_high=16.7),
            "systolic_bp": _T(high=130),
            "diastolic_bp": _T(high=80),
        },
        # BTS 2017 oxygen guideline: target 88-92 % in COPD at risk of hypercapnia. Below 88
        # is under target; below 84 scores 3 on NEWS2 SpO2 scale 2 (<=83). Both limits are set
        # so that neither falls back to the baseline's 92/94 %.
        "copd": {
            "spo2": _T(critical_low=84, low=88),
        },
        # Heart failure is watched through weight gain (see the rate rules) and the baseline's
        # limits; tighter static limits would flood patients on optimised therapy, whose
        # blood pressure and heart rate run low by design.
        "heart_failure": {},
    }
)

_RATE_RULES: Final[Mapping[str, tuple[RateRule, ...]]] = MappingProxyType(
    {
        "general": (),
        "hypertension": (),
        # A fall of 3 mmol/L within an hour warns of a coming hypoglycaemia before the 3.9
        # limit is crossed. A project default from the design brief, not a guideline number:
        # review with the pilot's diabetologists.
        "diabetes": (RateRule(vital="glucose", window=timedelta(hours=1), max_fall=3.0),),
        "copd": (),
        # ESC 2021 heart failure guideline (and NICE NG106 self-care advice): a weight gain of
        # 2 kg within 3 days signals fluid retention; the patient should contact the team.
        "heart_failure": (RateRule(vital="weight", window=timedelta(days=3), max_rise=2.0),),
    }
)

_EXPECTED: Final[Mapping[str, Mapping[str, timedelta]]] = MappingProxyType(
    {
        "general": {},
        # Chinese 2018 guideline: home BP morning and evening while titrating; daily is the
        # minimum the no-data rule checks.
        "hypertension": {"systolic_bp": _DAILY, "diastolic_bp": _DAILY},
        # At least one self-monitored glucose a day; insulin users measure more often, which the
        # doctor sets in the care plan.
        "diabetes": {"glucose": _DAILY},
        # Daily SpO2 and pulse from the home oximeter.
        "copd": {"spo2": _DAILY, "heart_rate": _DAILY},
        # Daily weight (ESC 2021, NICE NG106); daily BP and heart rate as in telemonitoring
        # trials such as TIM-HF2.
        "heart_failure": {
            "weight": _DAILY,
            "systolic_bp": _DAILY,
            "diastolic_bp": _DAILY,
            "heart_rate": _DAILY,
        },
    }
)

_LOW_SIDE: Final = ("critical_low", "low")
_HIGH_SIDE: Final = ("high", "critical_high")


def default_thresholds(conditions: Iterable[str]) -> dict[str, Thresholds]:
    """Limits per vital for a patient with ``conditions``, combined as the module explains.

    Vitals with no limit at all (weight) are left out. Raises ValueError for an unknown
    condition name.
    """
    # "general" is the fallback, never a competitor: else its 94 % SpO2 would beat COPD's 88 %.
    requested = tuple(name for name in _conditions(conditions) if name != "general")
    baseline = _THRESHOLDS["general"]
    vitals = {vital for name in ("general", *requested) for vital in _THRESHOLDS[name]}
    merged: dict[str, Thresholds] = {}
    for vital in sorted(vitals):
        limits: dict[str, float | None] = {}
        for limit in (*_LOW_SIDE, *_HIGH_SIDE):
            candidates = [
                value
                for name in requested
                if vital in _THRESHOLDS[name]
                and (value := getattr(_THRESHOLDS[name][vital], limit)) is not None
            ]
            if candidates:
                limits[limit] = max(candidates) if limit in _LOW_SIDE else min(candidates)
            else:
                fallback = baseline.get(vital)
                limits[limit] = None if fallback is None else getattr(fallback, limit)
        merged[vital] = Thresholds(**limits)
    return merged


def default_rate_rules(conditions: Iterable[str]) -> tuple[RateRule, ...]:
    """Rate-of-change rules for ``conditions``, one per (vital, window).

    Two conditions with a rule on the same vital and window combine to the smaller limits
    (stricter). Ordered by vital, then window, so the result is stable. Raises ValueError for
    an unknown condition name.
    """
    combined: dict[tuple[str, timedelta], RateRule] = {}
    for name in _conditions(conditions):
        for rule in _RATE_RULES[name]:
            key = (rule.vital, rule.window)
            seen = combined.get(key)
            combined[key] = (
                rule
                if seen is None
                else RateRule(
                    vital=rule.vital,
                    window=rule.window,
                    max_rise=_smaller(seen.max_rise, rule.max_rise),
                    max_fall=_smaller(seen.max_fall, rule.max_fall),
                )
            )
    return tuple(combined[key] for key in sorted(combined))


def expected_measurements(conditions: Iterable[str]) -> dict[str, timedelta]:
    """How often each vital is expected, for the no-data rule; the shortest interval wins.

    Raises ValueError for an unknown condition name.
    """
    expected: dict[str, timedelta] = {}
    for name in _conditions(conditions):
        for vital, every in _EXPECTED[name].items():
            expected[vital] = min(every, expected.get(vital, every))
    return dict(sorted(expected.items()))


def no_data_grace(expected_every: timedelta) -> timedelta:
    """Half the interval: a daily measurement is overdue after 36 h, not at 24 h and one minute.

    Patients measure at roughly, not exactly, the same time each day.
    """
    if expected_every <= timedelta(0):
        raise ValueError(f"expected_every must be positive, got {expected_every}")
    return expected_every / 2


def news2_scale(conditions: Iterable[str], *, hypercapnic_respiratory_failure: bool = False) -> int:
    """The NEWS2 SpO2 scale: 2 only when a clinician has recorded hypercapnic respiratory failure.

    RCP 2017 reserves scale 2 for confirmed hypercapnic respiratory failure with a prescribed
    88-92 % target, whatever its cause; a COPD diagnosis alone does not qualify, and using
    scale 2 without it would hide hypoxaemia. So the flag decides and the conditions are only
    validated. Raises ValueError for an unknown condition name.
    """
    _conditions(conditions)
    return 2 if hypercapnic_respiratory_failure else 1


def _conditions(conditions: Iterable[str]) -> tuple[str, ...]:
    """Validated, de-duplicated condition names in `CONDITIONS` order."""
    if isinstance(conditions, str):
        # A bare string would be read letter by letter.
        raise ValueError(f"conditions must be a collection of names, got the string {conditions!r}")
    given = set(conditions)
    unknown = sorted(given - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; expected some of {list(CONDITIONS)}")
    return tuple(name for name in CONDITIONS if name in given)


def _smaller(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
