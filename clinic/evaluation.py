"""A patient's readings against their care plan: load once, then call the pure rules.

`evaluate` and `silence_findings` are pure (values in, findings out) and hold every clinical
choice made here; `evaluate_new_readings` and `evaluate_silence` only load what they need from
the database and call them. Nothing here knows about alerts: the caller says which rules already
have an alert open (``open_rules``), because the threshold rules' persistence and hysteresis
depend on it, and turns findings and clears into alerts (`community.actions`).

Choices, with their reasons:

- Warnings need ``WARNING_PERSISTENCE`` readings in a row out of range; critical values fire at
  once (`clinic.rules.evaluate_threshold`). One stray cuff reading must not page a doctor.
- Hysteresis per vital (`HYSTERESIS`), shrunk to a quarter of the normal band when a care plan's
  band is narrow, so a value hovering at a limit neither floods nor makes the band impossible.
- NEWS2 uses the latest value of each parameter within ``NEWS2_WINDOW`` before the newest reading
  (home monitors send a set within minutes; an hour keeps yesterday's pulse out of today's
  score). Consciousness and oxygen are not measured at home, so they are passed as unknown and
  reported missing, never scored as normal. A NEWS2 from one parameter alone is not reported:
  that parameter's own threshold alert already says the same thing.
- A rate rule only fires; its alert is closed by a clinician, not by the next reading.
- A new reading of a vital clears that vital's no-data alert.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from django.db import connection
from django.db.models import Max, Q
from django.utils import timezone

from clinic import care_defaults
from clinic.models import CarePlan, CareThreshold, Enrolment
from clinic.news2 import News2Result, score_latest
from clinic.rules import (
    CLEAR,
    VITALS,
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
from devices.models import Monitor
from fhir.models import VitalSign

__all__ = [
    "Evaluation",
    "PatientRules",
    "PatientSilence",
    "evaluate",
    "evaluate_new_readings",
    "evaluate_silence",
    "load_patient_rules",
    "silence_findings",
]

logger = logging.getLogger(__name__)

WARNING_PERSISTENCE: Final = 2
RECENT_READINGS: Final = 50  # per vital; enough for persistence and the rate windows we use
RECENT_WINDOW: Final = timedelta(days=7)
NEWS2_WINDOW: Final = timedelta(hours=1)
NEWS2_MIN_PARAMETERS: Final = 2

# Our vital keys → the parameter names of `clinic.news2.score_latest`.
NEWS2_PARAMETERS: Final[Mapping[str, str]] = {
    "respiratory_rate": "respiratory_rate",
    "spo2": "spo2",
    "systolic_bp": "systolic_bp",
    "heart_rate": "pulse",
    "temperature": "temperature",
}

# How far back inside the band a value must come before a threshold alert clears.
HYSTERESIS: Final[Mapping[str, float]] = {
    "systolic_bp": 5.0,
    "diastolic_bp": 3.0,
    "heart_rate": 5.0,
    "spo2": 1.0,
    "temperature": 0.2,
    "glucose": 0.3,
    "weight": 0.5,
    "respiratory_rate": 2.0,
}

DEVICE_RULES: Final = ("device_offline", "low_battery")


@dataclass(frozen=True)
class PatientRules:
    """What a patient's care plan asks the rules to watch."""

    thresholds: Mapping[str, Thresholds]
    rate_rules: tuple[RateRule, ...] = ()
    news2_scale: int = 1


@dataclass(frozen=True)
class Evaluation:
    """Findings to raise or update, rule names whose condition ended, and the NEWS2 when known."""

    findings: tuple[Finding, ...] = ()
    clears: tuple[str, ...] = ()
    news2: News2Result | None = None


@dataclass(frozen=True)
class PatientSilence:
    """What the silence rules found for one patient."""

    patient_id: int
    findings: tuple[Finding, ...] = ()
    clears: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrolmentFacts:
    patient_id: int
    conditions: frozenset[str]
    monitoring_since: datetime


@dataclass(frozen=True)
class MonitorFacts:
    identifier: str
    patient_ids: frozenset[int]
    battery: int | None
    last_reading_at: datetime | None
    expected_interval: timedelta | None


# --- pure core ---------------------------------------------------------------------------------


def hysteresis_for(vital: str, thresholds: Thresholds) -> float:
    """The vital's hysteresis, at most a quarter of the normal band so the band stays usable."""
    margin = HYSTERESIS.get(vital, 0.0)
    if thresholds.low is not None and thresholds.high is not None:
        margin = min(margin, (thresholds.high - thresholds.low) / 4)
    return margin


def evaluate(
    rules: PatientRules,
    recent: Mapping[str, Sequence[Reading]],
    new_vitals: Collection[str],
    *,
    open_rules: Collection[str],
) -> Evaluation:
    """Run every rule that the new readings of ``new_vitals`` could change.

    ``recent`` holds each vital's recent readings, oldest first (it must include the NEWS2
    vitals when any of them is new). ``open_rules`` names the rules with an alert open.
    """
    findings: list[Finding] = []
    clears: list[str] = []
    for vital in sorted(new_vitals):
        readings = recent.get(vital, ())
        if f"no_data:{vital}" in open_rules and readings:
            clears.append(f"no_data:{vital}")
        limits = rules.thresholds.get(vital)
        if limits is not None and readings:
            outcome = evaluate_threshold(
                vital,
                readings,
                limits,
                persistence=WARNING_PERSISTENCE,
                open_alert=f"threshold:{vital}" in open_rules,
                hysteresis=hysteresis_for(vital, limits),
            )
            if outcome is CLEAR:
                clears.append(f"threshold:{vital}")
            elif isinstance(outcome, Finding):
                findings.append(outcome)
    for rate in rules.rate_rules:
        if rate.vital in new_vitals:
            finding = evaluate_rate_of_change(
                recent.get(rate.vital, ()),
                vital=rate.vital,
                window=rate.window,
                max_rise=rate.max_rise,
                max_fall=rate.max_fall,
            )
            if finding is not None:
                findings.append(finding)

    news2 = None
    if set(new_vitals) & set(NEWS2_PARAMETERS):
        news2, news2_finding = _news2(rules.news2_scale, recent)
        if news2_finding is not None:
            findings.append(news2_finding)
        elif news2 is not None and "news2" in open_rules:
            clears.append("news2")
    return Evaluation(findings=tuple(findings), clears=tuple(clears), news2=news2)


def _news2(
    scale: int, recent: Mapping[str, Sequence[Reading]]
) -> tuple[News2Result | None, Finding | None]:
    """Score the latest set; None when fewer than `NEWS2_MIN_PARAMETERS` were measured."""
    latest_by_vital = {vital: recent[vital][-1] for vital in NEWS2_PARAMETERS if recent.get(vital)}
    if not latest_by_vital:
        return None, None
    as_of = max(reading.at for reading in latest_by_vital.values())
    in_window = {
        vital: reading
        for vital, reading in latest_by_vital.items()
        if as_of - NEWS2_WINDOW <= reading.at
    }
    if len(in_window) < NEWS2_MIN_PARAMETERS:
        return None, None
    result = score_latest(
        {NEWS2_PARAMETERS[v]: [(r.at, r.value)] for v, r in in_window.items()},
        now=as_of,
        window=NEWS2_WINDOW,
        consciousness=None,
        on_oxygen=None,
        spo2_scale=scale,
    )
    finding = evaluate_news2(result)
    if finding is not None:
        ids = tuple(r.reading_id for r in in_window.values() if r.reading_id is not None)
        finding = dataclasses.replace(finding, reading_ids=tuple(sorted(ids)))
    return result, finding


def silence_findings(
    enrolments: Iterable[EnrolmentFacts],
    last_readings: Mapping[tuple[int, str], datetime],
    monitors: Iterable[MonitorFacts],
    now: datetime,
    *,
    open_rules: Mapping[int, Collection[str]],
) -> list[PatientSilence]:
    """No-data per expected vital, device offline and low battery, per patient.

    ``last_readings`` maps (patient id, vital) to the newest reading time; ``open_rules`` maps a
    patient id to the rules with an alert open, so only those can be cleared. Several monitors
    of one patient share one alert per rule: the most severe finding (then the first) wins.
    """
    found: dict[int, dict[str, Finding]] = {}
    checked: dict[int, set[str]] = {}

    def keep(patient_id: int, finding: Finding) -> None:
        current = found.setdefault(patient_id, {}).get(finding.rule)
        if current is None or (current.severity, finding.severity) == ("warning", "critical"):
            found[patient_id][finding.rule] = finding

    for enrolment in enrolments:
        for vital, every in _expected(enrolment.conditions).items():
            checked.setdefault(enrolment.patient_id, set()).add(f"no_data:{vital}")
            finding = evaluate_no_data(
                last_readings.get((enrolment.patient_id, vital)),
                now,
                every,
                care_defaults.no_data_grace(every),
                vital=vital,
                monitoring_since=enrolment.monitoring_since,
            )
            if finding is not None:
                keep(enrolment.patient_id, finding)

    for monitor in monitors:
        offline = None
        if monitor.expected_interval is not None and monitor.expected_interval > timedelta(0):
            offline = evaluate_device_offline(
                monitor.last_reading_at, now, monitor.expected_interval, device=monitor.identifier
            )
        battery = evaluate_low_battery(monitor.battery)
        for patient_id in monitor.patient_ids:
            checked.setdefault(patient_id, set()).update(DEVICE_RULES)
            for finding in (offline, battery):
                if finding is not None:
                    keep(patient_id, finding)

    results = []
    for patient_id in sorted(set(found) | set(checked)):
        findings = found.get(patient_id, {})
        clears = sorted(
            rule
            for rule in checked.get(patient_id, ())
            if rule not in findings and rule in open_rules.get(patient_id, ())
        )
        if findings or clears:
            results.append(PatientSilence(patient_id, tuple(findings.values()), tuple(clears)))
    return results


# --- loading -----------------------------------------------------------------------------------


def within(span: tuple[datetime, datetime] | None) -> dict:
    """Filter arguments confining a look-up of vitals rows by id to the partitions of ``span``
    (their earliest and latest effective time); none when the span is not known."""
    return {"effective_at__range": span} if span else {}


def evaluate_new_readings(
    patient_id: int,
    vital_ids: Collection[int],
    *,
    open_rules: Collection[str],
    span: tuple[datetime, datetime] | None = None,
) -> Evaluation:
    """Evaluate the rules the new VitalSign rows ``vital_ids`` of one patient may change."""
    new_vitals = set(
        VitalSign.objects.filter(
            pk__in=vital_ids, patient_id=patient_id, value__isnull=False, **within(span)
        )
        .filter(vital__in=VITALS)
        .values_list("vital", flat=True)
    )
    if not new_vitals:
        return Evaluation()
    wanted = set(new_vitals)
    if wanted & set(NEWS2_PARAMETERS):
        wanted |= set(NEWS2_PARAMETERS)
    recent = _recent_readings(patient_id, wanted)
    return evaluate(load_patient_rules(patient_id), recent, new_vitals, open_rules=open_rules)


def load_patient_rules(patient_id: int, *, today: date | None = None) -> PatientRules:
    """The care plan's thresholds, with condition defaults for vitals it does not set."""
    conditions = _active_conditions(patient_id, today or timezone.localdate())
    thresholds = care_defaults.default_thresholds(conditions)
    plan = CarePlan.objects.filter(patient_id=patient_id).first()
    scale = plan.news2_scale if plan else 1
    if plan is not None:
        for row in CareThreshold.objects.filter(care_plan=plan):
            try:
                thresholds[row.vital] = Thresholds(
                    low=row.low,
                    high=row.high,
                    critical_low=row.critical_low,
                    critical_high=row.critical_high,
                )
            except ValueError as exc:
                # A limit set the rules cannot use must not silence the vital: keep the default.
                logger.warning("care plan %s threshold %s ignored: %s", plan.pk, row.vital, exc)
    return PatientRules(
        thresholds=thresholds,
        rate_rules=care_defaults.default_rate_rules(conditions),
        news2_scale=scale,
    )


def evaluate_silence(
    now: datetime, *, open_rules: Mapping[int, Collection[str]]
) -> list[PatientSilence]:
    """No-data, device offline and low battery for every actively enrolled patient."""
    today = timezone.localdate(now)
    enrolments: dict[int, EnrolmentFacts] = {}
    for patient_id, conditions, start in Enrolment.objects.filter(_active(today)).values_list(
        "patient_id", "conditions", "start"
    ):
        since = timezone.make_aware(datetime.combine(start, time.min))
        seen = enrolments.get(patient_id)
        if seen is not None:
            conditions = [*conditions, *seen.conditions]
            since = min(since, seen.monitoring_since)
        enrolments[patient_id] = EnrolmentFacts(patient_id, frozenset(conditions), since)

    last_readings = _last_readings(
        {e.patient_id: _expected(e.conditions) for e in enrolments.values()}, now
    )

    monitors = []
    for monitor in Monitor.objects.select_related("bridge").prefetch_related(
        "bindings", "bridge__patients"
    ):
        bound = {
            b.patient_id
            for b in monitor.bindings.all()
            if b.valid_from <= now and (b.valid_to is None or b.valid_to > now)
        }
        # An unbound monitor belongs to the household: every patient of its bridge hears of it.
        patient_ids = bound or {p.pk for p in monitor.bridge.patients.all()}
        monitors.append(
            MonitorFacts(
                identifier=monitor.identifier,
                patient_ids=frozenset(patient_ids),
                battery=monitor.battery,
                last_reading_at=monitor.last_reading_at,
                expected_interval=(
                    timedelta(seconds=monitor.expected_interval_s)
                    if monitor.expected_interval_s
                    else None
                ),
            )
        )
    return silence_findings(
        enrolments.values(), last_readings, monitors, now, open_rules=open_rules
    )


def _expected(conditions: Iterable[str]) -> dict[str, timedelta]:
    """How often each vital is expected of a patient with ``conditions`` (unknown ones skipped)."""
    return care_defaults.expected_measurements(
        c for c in conditions if c in care_defaults.CONDITIONS
    )


def _last_readings(
    expected: Mapping[int, Mapping[str, timedelta]], now: datetime
) -> dict[tuple[int, str], datetime]:
    """The newest reading time of each expected (patient, vital).

    One aggregate over the window in which a reading keeps every no-data rule quiet, then one
    index probe per pair silent for longer (its alert says for how long). The sweep used to
    aggregate every reading ever stored, every five minutes.
    """
    pairs = {(patient_id, vital) for patient_id, vitals in expected.items() for vital in vitals}
    if not pairs:
        return {}
    longest = max(
        every + care_defaults.no_data_grace(every)
        for vitals in expected.values()
        for every in vitals.values()
    )
    found = {
        (row["patient_id"], row["vital"]): row["last"]
        for row in VitalSign.objects.filter(
            patient_id__in=sorted(expected),
            vital__in=sorted({vital for _, vital in pairs}),
            effective_at__gte=now - longest,
            value__isnull=False,
        )
        .values("patient_id", "vital")
        .annotate(last=Max("effective_at"))
    }
    for patient_id, vital in sorted(pairs - found.keys()):
        last = (
            VitalSign.objects.filter(patient_id=patient_id, vital=vital, value__isnull=False)
            .order_by("-effective_at")
            .values_list("effective_at", flat=True)
            .first()
        )
        if last is not None:
            found[(patient_id, vital)] = last
    return found


def _active(today: date) -> Q:
    return Q(start__lte=today) & (Q(end__isnull=True) | Q(end__gte=today))


def _active_conditions(patient_id: int, today: date) -> list[str]:
    conditions: set[str] = set()
    for listed in Enrolment.objects.filter(_active(today), patient_id=patient_id).values_list(
        "conditions", flat=True
    ):
        conditions.update(c for c in listed or () if c in care_defaults.CONDITIONS)
    return sorted(conditions)


def _recent_readings(patient_id: int, vitals: Iterable[str]) -> dict[str, list[Reading]]:
    """The latest `RECENT_READINGS` of each vital within `RECENT_WINDOW` of the patient's newest
    reading, oldest first.

    On PostgreSQL one statement whatever the history's length: her newest reading (one index
    probe per month partition), then each vital's latest rows read newest first from the
    (patient, vital, time) index (`_RECENT_SQL`). Elsewhere the same through the ORM.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _RECENT_SQL,
                [sorted(vitals), patient_id, patient_id, RECENT_WINDOW, RECENT_READINGS],
            )
            rows = cursor.fetchall()
    else:
        rows = _recent_rows_orm(patient_id, vitals)
    newest_first: dict[str, list[Reading]] = {}
    for vital, pk, value, at in rows:
        newest_first.setdefault(vital, []).append(
            Reading(vital=vital, value=value, at=at, reading_id=str(pk))
        )
    recent: dict[str, list[Reading]] = {}
    for vital in sorted(newest_first):
        # Neither query keeps an order across vitals: restore (time, id) order per vital.
        recent[vital] = sorted(newest_first[vital], key=lambda r: (r.at, int(r.reading_id)))
    return recent


# The evaluation of every upload runs this, so it is SQL rather than an ORM union of one
# queryset per vital: building and compiling those cost more than PostgreSQL's work. A constant
# text, so a node with DATABASE_PREPARE_THRESHOLD set prepares it (its generic plan is as good
# as the custom one: measured 0.14 ms either way, without the ~1 ms of planning).
_RECENT_SQL: Final = f"""
    SELECT wanted.vital, latest.id, latest.value, latest.effective_at
    FROM unnest(%s::varchar[]) AS wanted (vital)
    CROSS JOIN LATERAL (
        SELECT v.id, v.value, v.effective_at
        FROM {VitalSign._meta.db_table} v
        WHERE v.patient_id = %s
          AND v.vital = wanted.vital
          AND v.effective_at >= (
              SELECT max(n.effective_at) FROM {VitalSign._meta.db_table} n
              WHERE n.patient_id = %s
          ) - %s::interval
          AND v.value IS NOT NULL
          AND v.status <> 'entered-in-error'
        ORDER BY v.effective_at DESC, v.id DESC
        LIMIT %s
    ) AS latest
"""


def _recent_rows_orm(patient_id: int, vitals: Iterable[str]) -> list[tuple]:
    """`_RECENT_SQL`'s rows through the ORM (SQLite: no LATERAL, no LIMIT inside a UNION)."""
    newest = VitalSign.objects.filter(patient_id=patient_id).aggregate(last=Max("effective_at"))
    if newest["last"] is None:
        return []
    since = newest["last"] - RECENT_WINDOW
    per_vital = [
        VitalSign.objects.filter(
            patient_id=patient_id, vital=vital, effective_at__gte=since, value__isnull=False
        )
        .exclude(status="entered-in-error")
        .order_by("-effective_at", "-pk")
        .values_list("vital", "pk", "value", "effective_at")[:RECENT_READINGS]
        for vital in sorted(vitals)
    ]
    return [row for part in per_vital for row in part]
