"""The search parameters we index, per resource type, and how to pull their values from JSON.

Each entry is (name, kind, paths). A path is a dotted walk through the resource; lists are
flattened. Only what is listed here is searchable, and the CapabilityStatement is built from this
same table, so it lists exactly what works.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Any

TOKEN, DATE, REFERENCE, QUANTITY, STRING = "token", "date", "reference", "quantity", "string"

# Types stored in the resource store (Patient, Practitioner, Organization and Location are
# projections of clinic/community models: see docs/fhir.md).
STORED_TYPES = {
    "Observation": [
        ("code", TOKEN, ["code", "component.code"]),
        ("category", TOKEN, ["category"]),
        ("status", TOKEN, ["status"]),
        ("identifier", TOKEN, ["identifier"]),
        ("date", DATE, ["effectiveDateTime", "effectivePeriod", "effectiveInstant"]),
        ("subject", REFERENCE, ["subject"]),
        ("patient", REFERENCE, ["subject"]),
        ("device", REFERENCE, ["device"]),
        ("value-quantity", QUANTITY, ["valueQuantity", "component.valueQuantity"]),
    ],
    "Device": [
        ("identifier", TOKEN, ["identifier"]),
        ("type", TOKEN, ["type"]),
        ("patient", REFERENCE, ["patient"]),
        ("manufacturer", STRING, ["manufacturer"]),
    ],
    "Encounter": [
        ("patient", REFERENCE, ["subject"]),
        ("subject", REFERENCE, ["subject"]),
        ("status", TOKEN, ["status"]),
        ("date", DATE, ["period"]),
        ("identifier", TOKEN, ["identifier"]),
    ],
    "Condition": [
        ("patient", REFERENCE, ["subject"]),
        ("subject", REFERENCE, ["subject"]),
        ("code", TOKEN, ["code"]),
        ("clinical-status", TOKEN, ["clinicalStatus"]),
        ("identifier", TOKEN, ["identifier"]),
    ],
    "AllergyIntolerance": [
        ("patient", REFERENCE, ["patient"]),
        ("code", TOKEN, ["code"]),
        ("clinical-status", TOKEN, ["clinicalStatus"]),
        ("identifier", TOKEN, ["identifier"]),
    ],
    "MedicationStatement": [
        ("patient", REFERENCE, ["subject"]),
        ("subject", REFERENCE, ["subject"]),
        ("status", TOKEN, ["status"]),
        ("code", TOKEN, ["medicationCodeableConcept"]),
        ("identifier", TOKEN, ["identifier"]),
    ],
    "DiagnosticReport": [
        ("patient", REFERENCE, ["subject"]),
        ("subject", REFERENCE, ["subject"]),
        ("code", TOKEN, ["code"]),
        ("status", TOKEN, ["status"]),
        ("date", DATE, ["effectiveDateTime", "effectivePeriod"]),
        ("identifier", TOKEN, ["identifier"]),
    ],
    "DocumentReference": [
        ("patient", REFERENCE, ["subject"]),
        ("subject", REFERENCE, ["subject"]),
        ("type", TOKEN, ["type"]),
        ("status", TOKEN, ["status"]),
        ("date", DATE, ["date"]),
        ("identifier", TOKEN, ["identifier"]),
    ],
}

# Where each stored type points at its patient (the compartment used for access checks).
PATIENT_PATHS = {
    "Observation": "subject",
    "Device": "patient",
    "Encounter": "subject",
    "Condition": "subject",
    "AllergyIntolerance": "patient",
    "MedicationStatement": "subject",
    "DiagnosticReport": "subject",
    "DocumentReference": "subject",
}

COMMON_PARAMS = [
    "_id",
    "_lastUpdated",
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
]


def walk(node: Any, path: str) -> Iterator[Any]:
    """Every value at a dotted path, flattening lists on the way."""
    head, _, rest = path.partition(".")
    items = node if isinstance(node, list) else [node]
    for item in items:
        if not isinstance(item, dict) or head not in item:
            continue
        value = item[head]
        if rest:
            yield from walk(value, rest)
        elif isinstance(value, list):
            yield from value
        else:
            yield value


def tokens(value: Any) -> Iterator[tuple[str, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Identifier."""
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value.get("coding") or []:
                if coding.get("code"):
                    yield coding.get("system", ""), str(coding["code"])
        elif "value" in value and "code" not in value:  # Identifier
            yield value.get("system", ""), str(value["value"])
        elif "code" in value:
            yield value.get("system", ""), str(value["code"])


def date_range(value: Any) -> tuple[datetime, datetime] | None:
    """The instant range a FHIR date, dateTime or Period covers (partial dates widen it)."""
    if isinstance(value, dict):
        start = date_range(value.get("start")) if value.get("start") else None
        end = date_range(value.get("end")) if value.get("end") else None
        if not start and not end:
            return None
        return (start or end)[0], (end or start)[1]
    if not isinstance(value, str):
        return None
    return parse_date_param(value)


def parse_date_param(text: str) -> tuple[datetime, datetime]:
    """A FHIR date/dateTime string as the [start, end) range of instants it denotes."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    text = text.strip()
    if len(text) > 19 and text[-6] == " ":
        text = text[:-6] + "+" + text[-5:]  # an unencoded "+" in a query string arrives as a space
    if len(text) == 4:
        start = datetime(int(text), 1, 1, tzinfo=tz)
        return start, start.replace(year=start.year + 1)
    if len(text) == 7:
        y, m = int(text[:4]), int(text[5:7])
        start = datetime(y, m, 1, tzinfo=tz)
        return start, (
            start.replace(year=y + 1, month=1) if m == 12 else start.replace(month=m + 1)
        )
    if len(text) == 10:
        start = datetime.combine(datetime.fromisoformat(text).date(), time(), tz)
        return start, start + timedelta(days=1)
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=tz)
    precision = timedelta(seconds=1) if "." not in text else timedelta(microseconds=1)
    return instant, instant + precision


def reference_target(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        ref = value["reference"].split("/_history/")[0]
        parts = ref.rstrip("/").split("/")
        if len(parts) >= 2:
            return parts[-2], parts[-1]
    return None
