"""Hand-built PHD-IG shaped upload Bundles for the server tests (the bridge builds its own)."""

from __future__ import annotations

import uuid

EUI64 = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
RESIDENT = "urn:oid:2.16.156.10011.1.2"
MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }
    ]
}


def device_entry(eui: str, full_url: str) -> dict:
    return {
        "fullUrl": full_url,
        "resource": {
            "resourceType": "Device",
            "identifier": [{"system": EUI64, "value": eui}],
            "manufacturer": "Sim",
        },
        "request": {"method": "POST", "url": "Device", "ifNoneExist": f"identifier={EUI64}|{eui}"},
    }


def bp_observation(
    resident_id: str, when: str, sys: float, dia: float, mean: float, device_url: str, eui: str
) -> dict:
    ident = f"{eui}.150020.{when}"

    def comp(mdc, loinc, v):
        return {
            "code": {
                "coding": [{"system": MDC, "code": str(mdc)}, {"system": LOINC, "code": loinc}]
            },
            "valueQuantity": {"value": v, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "Observation",
            "status": "final",
            "identifier": [{"system": "urn:sg:phd-observation", "value": ident}],
            "category": [VITAL_SIGNS],
            "code": {
                "coding": [{"system": MDC, "code": "150020"}, {"system": LOINC, "code": "85354-9"}]
            },
            "subject": {"identifier": {"system": RESIDENT, "value": resident_id}},
            "effectiveDateTime": when,
            "device": {"reference": device_url},
            "component": [
                comp(150021, "8480-6", sys),
                comp(150022, "8462-4", dia),
                comp(150023, "8478-0", mean),
            ],
        },
        "request": {
            "method": "POST",
            "url": "Observation",
            "ifNoneExist": f"identifier=urn:sg:phd-observation|{ident}",
        },
    }


def simple_observation(
    resident_id: str,
    when: str,
    mdc: int,
    loinc: str,
    value,
    unit: str,
    device_url: str,
    eui: str,
    absent: str | None = None,
) -> dict:
    ident = f"{eui}.{mdc}.{when}"
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:sg:phd-observation", "value": ident}],
        "category": [VITAL_SIGNS],
        "code": {"coding": [{"system": MDC, "code": str(mdc)}, {"system": LOINC, "code": loinc}]},
        "subject": {"identifier": {"system": RESIDENT, "value": resident_id}},
        "effectiveDateTime": when,
        "device": {"reference": device_url},
    }
    if absent:
        resource["dataAbsentReason"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                    "code": absent,
                }
            ]
        }
    else:
        resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": "Observation",
            "ifNoneExist": f"identifier=urn:sg:phd-observation|{ident}",
        },
    }


def upload(
    resident_id: str,
    readings: int = 3,
    *,
    eui: str = "0011223344556677",
    start_minute: int = 0,
    systolic: float = 128,
    day: str = "2026-11-25",
) -> dict:
    """A bridge's transaction: its monitor's Device and `readings` blood pressures, one a minute
    from 08:00 (+08:00) on `day`; a fixed day keeps identifiers stable across runs."""
    device_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [device_entry(eui, device_url)]
    for i in range(readings):
        minute = start_minute + i
        when = f"{day}T{8 + minute // 60:02d}:{minute % 60:02d}:00+08:00"
        entries.append(bp_observation(resident_id, when, systolic + i, 82, 97, device_url, eui))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
