"""Alert rules: from readings to findings, as pure functions.

A rule looks at values and times the caller has already loaded and answers with a `Finding`
(something a clinician should see), None (nothing to do), or, for threshold rules with an alert
already open, `CLEAR` (the condition has ended). The rules keep no state and know nothing of
alerts, databases or clocks: the caller passes ``now`` and whether an alert is open, and the
community app turns findings into alerts (one open alert per patient and rule name).

Conventions shared by every rule:

- Vitals are named by the keys in `VITALS`; units are those in `UNITS`.
- Every datetime must be timezone-aware; a naive one raises ValueError, because comparing a
  naive device time with an aware server time silently shifts by the zone offset.
- Readings passed as a sequence are oldest first, all of the vital asked about.
- Limits are a half-open normal band: a value is in range when ``low <= value < high``, which
  is how guidelines phrase them ("target below 135 mmHg", "hypoglycaemia below 3.9 mmol/L",
  "grade 3 at 180 mmHg or above"). Critical likewise: ``value < critical_low`` or
  ``value >= critical_high``.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from clinic.news2 import News2Result

__all__ = [
    "CLEAR",
    "SEVERITIES",
    "UNITS",
    "VITALS",
    "Finding",
    "RateRule",
    "Reading",
    "Thresholds",
    "evaluate_device_offline",
    "evaluate_low_battery",
    "evaluate_news2",
    "evaluate_no_data",
    "evaluate_rate_of_change",
    "evaluate_threshold",
]

UNITS: Final[dict[str, str]] = {
    "systolic_bp": "mmHg",
    "diastolic_bp": "mmHg",
    "heart_rate": "/min",
    "spo2": "%",
    "temperature": "°C",
    "glucose": "mmol/L",
    "weight": "kg",
    "respiratory_rate": "/min",
}
VITALS: Final[tuple[str, ...]] = tuple(UNITS)

_LABELS: Final[dict[str, str]] = {
    "systolic_bp": "Systolic BP",
    "diastolic_bp": "Diastolic BP",
    "heart_rate": "Heart rate",
    "spo2": "SpO2",
    "temperature": "Temperature",
    "glucose": "Glucose",
    "weight": "Weight",
    "respiratory_rate": "Respiratory rate",
}

SEVERITIES: Final[tuple[str, ...]] = ("warning", "critical")


class _Clear(enum.Enum):
    CLEAR = "clear"

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR: Final = _Clear.CLEAR
"""Returned by `evaluate_threshold` when an open alert's condition has ended."""


@dataclass(frozen=True)
class Reading:
    """One measured value of one vital at one instant; ``reading_id`` ties a finding back to it."""

    vital: str
    value: float
    at: datetime
    reading_id: str | None = None

    def __post_init__(self) -> None:
        _require_vital(self.vital)
        _require_finite(f"{self.vital} value", self.value)
        _require_aware("reading time", self.at)


@dataclass(frozen=True)
class Thresholds:
    """Per-vital limits; any may be None (no limit on that side).

    In range means ``low <= value < high``; critical means ``value < critical_low`` or
    ``value >= critical_high``. Hence the required order
    ``critical_low <= low < high <= critical_high`` among the limits that are set.
    """

    low: float | None = None
    high: float | None = None
    critical_low: float | None = None
    critical_high: float | None = None

    def __post_init__(self) -> None:
        ordered = [
            (name, getattr(self, name))
            for name in ("critical_low", "low", "high", "critical_high")
            if getattr(self, name) is not None
        ]
        for name, value in ordered:
            _require_finite(name, value)
        for (name_a, a), (name_b, b) in zip(ordered, ordered[1:], strict=False):
            strict = (name_a, name_b) == ("low", "high")
            if a > b or (strict and a == b):
                relation = "<" if strict else "<="
                raise ValueError(f"thresholds need {name_a} {relation} {name_b}, got {a} and {b}")

    def is_critical(self, value: float) -> bool:
        """True when ``value`` is beyond a critical limit."""
        return (self.critical_low is not None and value < self.critical_low) or (
            self.critical_high is not None and value >= self.critical_high
        )

    def in_range(self, value: float, margin: float = 0.0) -> bool:
        """True when ``value`` is inside the normal band by at least ``margin`` on each side."""
        return (self.low is None or value >= self.low + margin) and (
            self.high is None or value < self.high - margin
        )


@dataclass(frozen=True)
class Finding:
    """What a rule found: the rule name is the alert's identity per patient."""

    rule: str
    vital: str | None
    severity: str
    message: str
    values: tuple[float, ...] = ()
    reading_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True)
class RateRule:
    """Parameters of one `evaluate_rate_of_change` call, so care plans can store them."""

    vital: str
    window: timedelta
    max_rise: float | None = None
    max_fall: float | None = None

    def __post_init__(self) -> None:
        _require_vital(self.vital)
        _check_rate_limits(self.max_rise, self.max_fall, self.window)


def evaluate_threshold(
    vital: str,
    recent: Sequence[Reading],
    thresholds: Thresholds,
    *,
    persistence: int = 1,
    persistence_minutes: int | None = None,
    open_alert: bool = False,
    hysteresis: float = 0.0,
) -> Finding | None | Literal[_Clear.CLEAR]:
    """Check the latest reading of ``vital`` against its limits.

    - A critical value returns a critical Finding at once, whatever the persistence.
    - Otherwise, with no alert open, an out-of-range value returns a warning only when it
      persists: the last ``persistence`` readings are all out of range and, when
      ``persistence_minutes`` is set, the unbroken out-of-range run reaching the latest reading
      started at least that many minutes before it. A single stray reading does not page anyone.
    - The Finding's values and reading_ids are the readings that made it fire: the latest for
      a critical value, the last ``persistence`` for a warning, or the whole out-of-range run
      when ``persistence_minutes`` is set.
    - With an alert open, an out-of-range latest value returns the Finding again for the
      latest reading alone (the caller updates the open alert, e.g. raises it to critical; it
      is never a second alert); a value
      back inside the band by at least ``hysteresis`` on both sides returns CLEAR; a value in
      range but within ``hysteresis`` of a limit returns None, so a value hovering at a limit
      does not open and close alerts in turn.
    - No readings: None.

    Rule name "threshold:<vital>". Raises ValueError for an unknown vital, readings of another
    vital or out of time order, persistence < 1, negative persistence_minutes or hysteresis.
    """
    _require_vital(vital)
    if persistence < 1:
        raise ValueError(f"persistence must be at least 1, got {persistence}")
    if persistence_minutes is not None and persistence_minutes < 0:
        raise ValueError(f"persistence_minutes must not be negative, got {persistence_minutes}")
    if not (math.isfinite(hysteresis) and hysteresis >= 0):
        raise ValueError(f"hysteresis must be a non-negative number, got {hysteresis}")
    if (
        thresholds.low is not None
        and thresholds.high is not None
        and thresholds.low + hysteresis >= thresholds.high - hysteresis
    ):
        raise ValueError(
            f"hysteresis {hysteresis} leaves no room to clear inside "
            f"{thresholds.low}-{thresholds.high}"
        )
    _require_series(vital, recent)
    if not recent:
        return None

    latest = recent[-1]
    rule = f"threshold:{vital}"
    if thresholds.is_critical(latest.value):
        return _threshold_finding(rule, latest, thresholds, "critical", (latest,))

    if not thresholds.in_range(latest.value):
        if open_alert:
            return _threshold_finding(rule, latest, thresholds, "warning", (latest,))
        run = _out_of_range_run(recent, thresholds)
        if len(run) < persistence:
            return None
        if persistence_minutes is None:
            return _threshold_finding(rule, latest, thresholds, "warning", run[-persistence:])
        if latest.at - run[0].at < timedelta(minutes=persistence_minutes):
            return None
        return _threshold_finding(rule, latest, thresholds, "warning", run)

    if open_alert and thresholds.in_range(latest.value, margin=hysteresis):
        return CLEAR
    return None


def evaluate_rate_of_change(
    recent: Sequence[Reading],
    *,
    vital: str,
    window: timedelta,
    max_rise: float | None = None,
    max_fall: float | None = None,
) -> Finding | None:
    """Warn when the latest reading has risen or fallen too far from any reading in ``window``.

    Compares the latest reading with every earlier one taken at most ``window`` before it, so
    a rise of ``max_rise`` or more (weight up 2 kg within 3 days in heart failure) or a fall of
    ``max_fall`` or more (glucose down 3 mmol/L within an hour) fires as soon as the reading
    that completes it arrives. A rise is reported before a fall. Severity is warning: the
    absolute limits of `evaluate_threshold` are what mark danger.

    Rule name "rate:<vital>". Raises ValueError when neither limit is set, a limit or the
    window is not positive, or the readings are of another vital or out of time order.
    """
    _require_vital(vital)
    _check_rate_limits(max_rise, max_fall, window)
    _require_series(vital, recent)
    if len(recent) < 2:
        return None

    latest = recent[-1]
    earlier = [r for r in recent[:-1] if latest.at - r.at <= window]
    if not earlier:
        return None
    unit = UNITS[vital]
    label = _LABELS[vital]
    lowest = min(earlier, key=lambda r: r.value)
    highest = max(earlier, key=lambda r: r.value)
    if max_rise is not None and latest.value - lowest.value >= max_rise:
        change, start, direction, limit = latest.value - lowest.value, lowest, "rose", max_rise
    elif max_fall is not None and highest.value - latest.value >= max_fall:
        change, start, direction, limit = highest.value - latest.value, highest, "fell", max_fall
    else:
        return None
    return Finding(
        rule=f"rate:{vital}",
        vital=vital,
        severity="warning",
        message=(
            f"{label} {direction} {_num(change)} {unit} in {_duration(latest.at - start.at)} "
            f"({_num(start.value)} → {_num(latest.value)}; limit {_num(limit)} {unit} "
            f"in {_duration(window)})"
        ),
        values=(start.value, latest.value),
        reading_ids=_ids((start, latest)),
    )


def evaluate_no_data(
    last_reading_at: datetime | None,
    now: datetime,
    expected_every: timedelta,
    grace: timedelta,
    *,
    vital: str,
    monitoring_since: datetime | None = None,
) -> Finding | None:
    """Warn when a vital the care plan expects has not been measured for too long.

    Fires when more than ``expected_every + grace`` has passed since the last reading (daily
    blood pressure with a 12 h grace: nothing for over 36 h). With no reading ever, the time
    counts from ``monitoring_since`` (enrolment), so a new patient is not flagged on day one;
    with neither known it fires, because the caller cannot tell how overdue the patient is.
    A last reading after ``now`` (clock skew) is not overdue.

    Rule name "no_data:<vital>", severity warning. Raises ValueError for naive datetimes, a
    non-positive ``expected_every`` or a negative ``grace``.
    """
    _require_vital(vital)
    _require_aware("now", now)
    if expected_every <= timedelta(0):
        raise ValueError(f"expected_every must be positive, got {expected_every}")
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    label = _LABELS[vital]
    rule = f"no_data:{vital}"
    allowed = expected_every + grace
    expected = f"expected every {_duration(expected_every)}"
    if last_reading_at is not None:
        _require_aware("last_reading_at", last_reading_at)
        silent = now - last_reading_at
        if silent <= allowed:
            return None
        message = f"{label}: no reading for {_duration(silent)} ({expected})"
    elif monitoring_since is not None:
        _require_aware("monitoring_since", monitoring_since)
        silent = now - monitoring_since
        if silent <= allowed:
            return None
        message = f"{label}: no reading since monitoring began {_duration(silent)} ago ({expected})"
    else:
        message = f"{label}: no reading ever received ({expected})"
    return Finding(rule=rule, vital=vital, severity="warning", message=message)


def evaluate_device_offline(
    last_seen: datetime | None,
    now: datetime,
    expected_interval: timedelta,
    *,
    device: str | None = None,
) -> Finding | None:
    """Warn when a device (or home bridge) has not been heard from for over ``expected_interval``.

    ``expected_interval`` is the longest silence that is still normal, slack included; the
    caller chooses it from the device's reporting pattern. Never seen at all fires. ``device``
    only names the device in the message. Rule name "device_offline", severity warning.
    Raises ValueError for naive datetimes or a non-positive interval.
    """
    _require_aware("now", now)
    if expected_interval <= timedelta(0):
        raise ValueError(f"expected_interval must be positive, got {expected_interval}")
    name = f"Device {device}" if device else "Device"
    if last_seen is None:
        message = f"{name} has never been seen"
    else:
        _require_aware("last_seen", last_seen)
        silent = now - last_seen
        if silent <= expected_interval:
            return None
        message = f"{name} offline for {_duration(silent)} (expected every {_duration(expected_interval)})"
    return Finding(rule="device_offline", vital=None, severity="warning", message=message)


def evaluate_low_battery(
    level_percent: float | None,
    threshold: float = 20,
    *,
    critical_threshold: float = 5,
) -> Finding | None:
    """Warn at ``threshold`` % battery or below; critical at ``critical_threshold`` % or below.

    At 20 % a patient has days to change the battery; at 5 % the next measurement may be lost,
    so it is critical. None (the device does not report its battery) returns None.
    Rule name "low_battery". Raises ValueError for levels outside 0-100 or
    ``critical_threshold`` above ``threshold``.
    """
    for name, value in (("threshold", threshold), ("critical_threshold", critical_threshold)):
        _require_finite(name, value)
        if not 0 <= value <= 100:
            raise ValueError(f"{name} must be within 0-100 %, got {value}")
    if critical_threshold > threshold:
        raise ValueError(
            f"critical_threshold {critical_threshold} must not exceed threshold {threshold}"
        )
    if level_percent is None:
        return None
    _require_finite("level_percent", level_percent)
    if not 0 <= level_percent <= 100:
        raise ValueError(f"level_percent must be within 0-100 %, got {level_percent}")
    if level_percent > threshold:
        return None
    critical = level_percent <= critical_threshold
    limit = critical_threshold if critical else threshold
    return Finding(
        rule="low_battery",
        vital=None,
        severity="critical" if critical else "warning",
        message=f"Battery at {_num(level_percent)} % (limit {_num(limit)} %)",
        values=(level_percent,),
    )


def evaluate_news2(result: News2Result) -> Finding | None:
    """Report a NEWS2 result that needs a clinical response.

    Fires for risk medium or high, or any single parameter scoring 3 (RCP: each calls for a
    clinician's review); critical for high risk, warning otherwise. The message names the total,
    the risk, any red-score parameters and, when incomplete, what was missing (so a reader knows
    the total is a lower bound). Rule name "news2".
    """
    if not (result.risk in ("medium", "high") or result.any_single_3):
        return None
    parts = [f"NEWS2 {result.total} ({result.risk} risk)"]
    red = [name for name, points in result.parameter_scores.items() if points == 3]
    if red:
        parts.append(f"score 3 in {', '.join(red)}")
    if result.missing:
        parts.append(f"missing {', '.join(result.missing)}")
    return Finding(
        rule="news2",
        vital=None,
        severity="critical" if result.risk == "high" else "warning",
        message="; ".join(parts),
        values=(float(result.total),),
    )


def _threshold_finding(
    rule: str,
    latest: Reading,
    thresholds: Thresholds,
    severity: str,
    readings: Sequence[Reading],
) -> Finding:
    vital = latest.vital
    value = latest.value
    unit = UNITS[vital]
    if severity == "critical":
        below = thresholds.critical_low is not None and value < thresholds.critical_low
        limit = thresholds.critical_low if below else thresholds.critical_high
        kind = "critical limit"
    else:
        below = thresholds.low is not None and value < thresholds.low
        limit = thresholds.low if below else thresholds.high
        kind = "limit"
    relation = "below" if below else "at or above"
    assert limit is not None  # a value can only be outside a limit that is set
    count = f" ({len(readings)} readings in a row)" if len(readings) > 1 else ""
    return Finding(
        rule=rule,
        vital=vital,
        severity=severity,
        message=(
            f"{_LABELS[vital]} {_num(value)} {unit} is {relation} the {kind} {_num(limit)} {unit}"
            f"{count}"
        ),
        values=tuple(r.value for r in readings),
        reading_ids=_ids(readings),
    )


def _out_of_range_run(recent: Sequence[Reading], thresholds: Thresholds) -> list[Reading]:
    """The unbroken run of out-of-range readings that ends with the latest one, oldest first."""
    run: list[Reading] = []
    for reading in reversed(recent):
        if thresholds.in_range(reading.value):
            break
        run.append(reading)
    run.reverse()
    return run


def _check_rate_limits(max_rise: float | None, max_fall: float | None, window: timedelta) -> None:
    if max_rise is None and max_fall is None:
        raise ValueError("set max_rise, max_fall or both")
    for name, limit in (("max_rise", max_rise), ("max_fall", max_fall)):
        if limit is not None and not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"{name} must be a positive number, got {limit}")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")


def _require_series(vital: str, readings: Sequence[Reading]) -> None:
    for reading in readings:
        if reading.vital != vital:
            raise ValueError(f"expected {vital} readings, got a {reading.vital} reading")
    for before, after in zip(readings, readings[1:], strict=False):
        if after.at < before.at:
            raise ValueError(
                f"readings must be oldest first: {after.at.isoformat()} follows "
                f"{before.at.isoformat()}"
            )


def _require_vital(vital: str) -> None:
    if vital not in UNITS:
        raise ValueError(f"unknown vital {vital!r}; expected one of {', '.join(VITALS)}")


def _require_finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _require_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _ids(readings: Sequence[Reading]) -> tuple[str, ...]:
    return tuple(r.reading_id for r in readings if r.reading_id is not None)


def _num(value: float) -> str:
    """A value as a clinician writes it: 185, 36.8, 3.2 (no trailing .0, at most 2 decimals)."""
    return f"{round(value, 2):g}"


def _duration(delta: timedelta) -> str:
    """A duration in the two largest whole units: "3 d", "2 d 4 h", "45 min"."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "min")) if n]
    if not parts:
        return f"{int(delta.total_seconds())} s"
    return " ".join(parts[:2])
