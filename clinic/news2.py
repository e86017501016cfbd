"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

Pure functions: numbers in, a `News2Result` out. No Django, no I/O, so the chart is tested
with literals and the same code scores a bedside HL7 feed and a home bridge's readings.

Rounding. The RCP chart is printed in whole numbers for respiratory rate, SpO2, systolic
pressure and pulse, and to one decimal for temperature, so a measured value that falls between
two printed bands (respiratory rate 11.5, temperature 36.05) is first rounded *half up* to the
chart's precision and then banded: 11.5 -> 12 -> 0, 11.4 -> 11 -> 1, 36.05 -> 36.1 -> 0,
36.04 -> 36.0 -> 1. The rounding works on the value's shortest decimal form (``str(float)``),
so 36.05 means the 36.05 a person typed, not the binary float just below it.

Missing values. Any physiological argument may be None. A missing parameter is listed in
``missing`` and contributes nothing to ``total``; it is never assumed normal. A total computed
with parameters missing is therefore a lower bound, and ``complete`` says whether it is final.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "CONSCIOUSNESS_LEVELS",
    "PARAMETERS",
    "RISK_LEVELS",
    "News2Result",
    "score",
    "score_latest",
]

# Chart order; also the key order of `parameter_scores` and `missing`.
PARAMETERS: tuple[str, ...] = (
    "respiratory_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

# ACVPU: Alert, new Confusion, responds to Voice, responds to Pain, Unresponsive.
CONSCIOUSNESS_LEVELS: tuple[str, ...] = ("A", "C", "V", "P", "U")

# Lowest to highest clinical risk; the index is the order used by callers that compare risks.
RISK_LEVELS: tuple[str, ...] = ("low", "low-medium", "medium", "high")

# The measured parameters `score_latest` reads from its `readings` mapping.
_MEASURED: tuple[str, ...] = ("respiratory_rate", "spo2", "systolic_bp", "pulse", "temperature")

# Each chart is a list of (highest value in the band, score), lowest band first, applied to the
# value after rounding; the last band is open-ended.
_Chart = tuple[tuple[Decimal, int], ...]


def _chart(*bands: tuple[str, int], top: int) -> _Chart:
    return tuple((Decimal(upper), points) for upper, points in bands) + (
        (Decimal("Infinity"), top),
    )


_RESPIRATORY_RATE = _chart(("8", 3), ("11", 1), ("20", 0), ("24", 2), top=3)
_SPO2_SCALE_1 = _chart(("91", 3), ("93", 2), ("95", 1), top=0)
# Scale 2 below 93 % is the same on air and on oxygen; from 93 % it depends on oxygen.
_SPO2_SCALE_2_LOW = _chart(("83", 3), ("85", 2), ("87", 1), ("92", 0), top=0)
_SPO2_SCALE_2_ON_OXYGEN = _chart(
    ("83", 3), ("85", 2), ("87", 1), ("92", 0), ("94", 1), ("96", 2), top=3
)
_SYSTOLIC_BP = _chart(("90", 3), ("100", 2), ("110", 1), ("219", 0), top=3)
_PULSE = _chart(("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2), top=3)
_TEMPERATURE = _chart(("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1), top=2)

_WHOLE = Decimal("1")
_ONE_DECIMAL = Decimal("0.1")


@dataclass(frozen=True)
class News2Result:
    """One NEWS2 assessment.

    ``parameter_scores`` holds only the parameters that were present, in chart order;
    ``missing`` names the others. ``risk`` follows the RCP clinical-risk table and is computed
    from the present parameters only, so with ``complete`` False it may understate the risk.
    """

    parameter_scores: dict[str, int]
    missing: tuple[str, ...]
    total: int
    any_single_3: bool
    risk: str
    complete: bool


def score(
    respiratory_rate: float | None,
    spo2: float | None,
    systolic_bp: float | None,
    pulse: float | None,
    temperature: float | None,
    consciousness: str | None = "A",
    on_oxygen: bool | None = False,
    spo2_scale: int = 1,
) -> News2Result:
    """Score one set of observations on the NEWS2 chart.

    Units: breaths/min, %, mmHg, beats/min, degrees Celsius. ``consciousness`` is one ACVPU
    letter in upper case ("C" is *new* confusion). ``on_oxygen`` None means not recorded, so
    "air_or_oxygen" is missing; on SpO2 scale 2 a saturation of 93 % or more can then not be
    scored either (the band depends on oxygen), and "spo2" is missing too. ``spo2_scale`` 2 is
    for patients with hypercapnic respiratory failure, on a clinician's decision.

    Raises ValueError for a negative, non-finite or non-numeric value, SpO2 above 100, an
    unknown consciousness letter, or a scale other than 1 or 2.
    """
    if isinstance(spo2_scale, bool) or spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2, got {spo2_scale!r}")
    if on_oxygen is not None and not isinstance(on_oxygen, bool):
        raise ValueError(f"on_oxygen must be True, False or None, got {on_oxygen!r}")
    if consciousness is not None and consciousness not in CONSCIOUSNESS_LEVELS:
        raise ValueError(
            f"consciousness must be one of {', '.join(CONSCIOUSNESS_LEVELS)} or None, "
            f"got {consciousness!r}"
        )
    for name, value in (
        ("respiratory_rate", respiratory_rate),
        ("spo2", spo2),
        ("systolic_bp", systolic_bp),
        ("pulse", pulse),
        ("temperature", temperature),
    ):
        _check_measurement(name, value)
    if spo2 is not None and spo2 > 100:
        raise ValueError(f"spo2 must be at most 100 %, got {spo2!r}")

    found: dict[str, int | None] = {
        "respiratory_rate": _band(_RESPIRATORY_RATE, respiratory_rate, _WHOLE),
        "spo2": _score_spo2(spo2, on_oxygen, spo2_scale),
        "air_or_oxygen": None if on_oxygen is None else (2 if on_oxygen else 0),
        "systolic_bp": _band(_SYSTOLIC_BP, systolic_bp, _WHOLE),
        "pulse": _band(_PULSE, pulse, _WHOLE),
        "consciousness": None if consciousness is None else (0 if consciousness == "A" else 3),
        "temperature": _band(_TEMPERATURE, temperature, _ONE_DECIMAL),
    }
    parameter_scores = {name: points for name, points in found.items() if points is not None}
    missing = tuple(name for name, points in found.items() if points is None)
    total = sum(parameter_scores.values())
    any_single_3 = any(points == 3 for points in parameter_scores.values())
    return News2Result(
        parameter_scores=parameter_scores,
        missing=missing,
        total=total,
        any_single_3=any_single_3,
        risk=_risk(total, any_single_3),
        complete=not missing,
    )


def score_latest(
    readings: Mapping[str, Sequence[tuple[datetime, float]]],
    now: datetime,
    window: timedelta = timedelta(hours=24),
    *,
    consciousness: str | None = "A",
    on_oxygen: bool | None = False,
    spo2_scale: int = 1,
) -> News2Result:
    """Score the latest value of each measured parameter taken within ``window`` before ``now``.

    ``readings`` maps "respiratory_rate", "spo2", "systolic_bp", "pulse" and "temperature" to
    (time, value) pairs in any order; other keys are refused so that a misnamed vital (say
    "heart_rate" for "pulse") fails loudly instead of being scored as missing. A reading counts
    when ``now - window <= time <= now``: older ones are stale and later ones are not yet known
    at ``now``, so a parameter with none in the window is missing. On equal times the pair that
    comes last in the sequence wins. Consciousness and oxygen are passed as in `score`.

    Raises ValueError for naive datetimes, a non-positive window or unknown keys, and whatever
    `score` raises for the chosen values.
    """
    _require_aware("now", now)
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")
    unknown = sorted(set(readings) - set(_MEASURED))
    if unknown:
        raise ValueError(f"unknown NEWS2 parameters {unknown}; expected some of {list(_MEASURED)}")

    latest: dict[str, float | None] = {}
    for name in _MEASURED:
        chosen: tuple[datetime, float] | None = None
        for at, value in readings.get(name, ()):
            _require_aware(f"{name} reading time", at)
            if now - window <= at <= now and (chosen is None or at >= chosen[0]):
                chosen = (at, value)
        latest[name] = None if chosen is None else chosen[1]

    return score(
        respiratory_rate=latest["respiratory_rate"],
        spo2=latest["spo2"],
        systolic_bp=latest["systolic_bp"],
        pulse=latest["pulse"],
        temperature=latest["temperature"],
        consciousness=consciousness,
        on_oxygen=on_oxygen,
        spo2_scale=spo2_scale,
    )


def _risk(total: int, any_single_3: bool) -> str:
    # RCP 2017, "NEWS2 thresholds and triggers": the aggregate decides from 5 upwards; below 5 a
    # red score (3 in any one parameter) lifts low to low-medium.
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if any_single_3:
        return "low-medium"
    return "low"


def _score_spo2(spo2: float | None, on_oxygen: bool | None, spo2_scale: int) -> int | None:
    if spo2 is None:
        return None
    if spo2_scale == 1:
        return _band(_SPO2_SCALE_1, spo2, _WHOLE)
    if _rounded(spo2, _WHOLE) <= 92:
        return _band(_SPO2_SCALE_2_LOW, spo2, _WHOLE)
    if on_oxygen is None:
        return None  # 93 % or more on scale 2 scores 0 on air and 1-3 on oxygen: unknowable.
    return _band(_SPO2_SCALE_2_ON_OXYGEN if on_oxygen else _SPO2_SCALE_2_LOW, spo2, _WHOLE)


def _band(chart: _Chart, value: float | None, precision: Decimal) -> int | None:
    if value is None:
        return None
    rounded = _rounded(value, precision)
    for upper, points in chart:
        if rounded <= upper:
            return points
    raise AssertionError("every chart ends with an open band")  # pragma: no cover


def _rounded(value: float, precision: Decimal) -> Decimal:
    # str(float(...)) is the shortest decimal that round-trips, so 36.05 rounds to 36.1 even
    # though the binary float is 36.04999...; float() first also normalises numpy scalars.
    return Decimal(str(float(value))).quantize(precision, rounding=ROUND_HALF_UP)


def _check_measurement(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number or None, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
