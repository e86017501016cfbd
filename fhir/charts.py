"""Reads of the typed vitals table for charts and summaries (the pages' selectors)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max

from fhir.models import Resource, VitalSign

CHARTED = ("systolic_bp", "diastolic_bp", "heart_rate", "spo2", "temperature", "glucose", "weight")
RECORD_TYPES = (
    "Condition",
    "MedicationStatement",
    "AllergyIntolerance",
    "Encounter",
    "DocumentReference",
)
MAX_POINTS = 5000


def vital_series(
    patient_id: int, since: datetime, until: datetime | None = None
) -> dict[str, list]:
    """{vital: [[epoch seconds, value], ...]} oldest first, values only (absent readings skipped)."""
    rows = VitalSign.objects.filter(
        patient_id=patient_id, effective_at__gte=since, vital__in=CHARTED, value__isnull=False
    )
    if until is not None:
        rows = rows.filter(effective_at__lte=until)
    series: dict[str, list] = {v: [] for v in CHARTED}
    for vital, at, value in rows.order_by("effective_at").values_list(
        "vital", "effective_at", "value"
    )[: MAX_POINTS * len(CHARTED)]:
        series[vital].append([int(at.timestamp()), value])
    return series


def latest_vitals(patient_id: int) -> list[VitalSign]:
    """The newest reading of each vital, with its time (absent-value readings included)."""
    newest = (
        VitalSign.objects.filter(patient_id=patient_id)
        .values("vital")
        .annotate(at=Max("effective_at"))
    )
    found = []
    for item in newest:
        row = (
            VitalSign.objects.filter(
                patient_id=patient_id, vital=item["vital"], effective_at=item["at"]
            )
            .order_by("-pk")
            .first()
        )
        if row:
            found.append(row)
    return sorted(found, key=lambda r: CHARTED.index(r.vital) if r.vital in CHARTED else 99)


def record_summary(patient_id: int) -> dict[str, list[dict]]:
    """The shared record from hospitals: conditions, medications, allergies, encounters, documents."""
    summary: dict[str, list[dict]] = {t: [] for t in RECORD_TYPES}
    for resource in Resource.objects.filter(
        patient_id=patient_id, resource_type__in=RECORD_TYPES, deleted=False
    ).order_by("-last_updated")[:200]:
        summary[resource.resource_type].append(resource.body)
    return summary
