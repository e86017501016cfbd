"""An ECG read from DICOM (``devices.dicom.EcgRecord``) → FHIR R4B JSON. Pure: values in, dicts out.

One imported file becomes one transaction Bundle of three resources, all keyed on the file's
SOP Instance UID so that importing the same file again creates nothing:

* the ECG ``Observation``, shaped as the FHIR ECG example
  (https://hl7.org/fhir/R4B/observation-example-sample-data.html): code MDC 131328
  ``MDC_ECG_ELEC_POTL`` plus LOINC 11524-6 "EKG study", one ``component`` per lead coded
  ``MDC_ECG_ELEC_POTL_<lead>``, each with a ``valueSampledData``. The data are the file's stored
  integers and ``factor``/``origin`` its channel sensitivity (× correction) and baseline, so
  ``origin + factor × data`` gives back exactly the physical values pydicom computes (PS3.3
  C.10.9.1.4.3), losslessly and without float text;
* a heart-rate ``Observation`` (LOINC 8867-4, MDC 147842 ``MDC_ECG_HEART_RATE``, ``/min``) with
  ``derivedFrom`` the ECG: it is an ordinary vital sign, so it lands in the vitals table and the
  rules see it like any monitor's pulse;
* a ``DocumentReference`` to the original file (``application/dicom``, size, base64 SHA-1 as
  ``Attachment.hash`` requires), with ``context.related`` the ECG Observation.

Which waveform group becomes the Observation: the *rhythm* recording, i.e. the ORIGINAL multiplex
group with the most samples (``rhythm_group``). A cart's other groups are DERIVED from it (the
MEDIAN BEAT of ``waveform_ecg.dcm`` is one averaged 1.2 s beat per lead): they are not mapped,
because they repeat nothing new for the record, have no code of their own in MDC or LOINC, and
would double the Observation's size. They are not lost either: the DocumentReference keeps the
original file, median beat included, for any DICOM viewer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import numpy as np

from devices.dicom import (
    GENERAL_ECG_STORAGE,
    TWELVE_LEAD_ECG_STORAGE,
    EcgChannel,
    EcgRecord,
    HeartRate,
    WaveformGroup,
)

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# FHIR's convention for DICOM UIDs (as ImagingStudy.identifier uses it).
DICOM_UID_SYSTEM = "urn:dicom:uid"
# Our identifiers for the resources derived from one file: the heart rate measured on it, and
# the file's content hash (what the download endpoint looks the file up by).
HEART_RATE_ID_SYSTEM = "urn:sg:ecg-heart-rate"
FILE_SHA256_SYSTEM = "urn:sg:file-sha256"

ECG_LOINC = ("11524-6", "EKG study")
ECG_MDC = ("131328", "MDC_ECG_ELEC_POTL")
HEART_RATE_LOINC = ("8867-4", "Heart rate")
HEART_RATE_MDC = ("147842", "MDC_ECG_HEART_RATE")

SOP_CLASS_NAMES = {
    TWELVE_LEAD_ECG_STORAGE: "12-lead ECG",
    GENERAL_ECG_STORAGE: "General ECG",
}


@dataclass(frozen=True)
class StoredFile:
    """The original file as kept on disk: where to download it, and what it is."""

    url: str
    size: int
    sha256: str  # hex: the content address
    sha1_base64: str  # FHIR Attachment.hash


def sop_uid_identifier(sop_instance_uid: str) -> dict:
    """The identifier both the ECG Observation and the DocumentReference carry."""
    return {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{sop_instance_uid}"}


def rhythm_group(record: EcgRecord) -> WaveformGroup:
    """The group the ECG Observation carries: the longest ORIGINAL one (else the longest)."""
    return max(
        record.groups,
        key=lambda g: ((g.originality or "").upper() == "ORIGINAL", g.number_of_samples),
    )


def lead_coding(channel: EcgChannel) -> dict:
    """CodeableConcept of one lead: MDC_ECG_ELEC_POTL_<lead> when the lead is known, else text."""
    if channel.mdc_code is None:
        return {"text": channel.label}
    suffix = channel.label.removeprefix("Lead ").upper()
    return {
        "coding": [
            {"system": MDC, "code": str(channel.mdc_code), "display": f"MDC_ECG_ELEC_POTL_{suffix}"}
        ],
        "text": channel.label,
    }


def sampled_data(channel: EcgChannel) -> dict:
    """SampledData with the stored integers: physical = origin + factor × data."""
    unit = channel.units or "1"  # no sensitivity in the file: the values are plain counts
    return {
        "origin": {"value": _number(channel.baseline), "unit": unit, "system": UCUM, "code": unit},
        "period": _number(1000.0 / channel.sampling_frequency),
        "factor": _number(channel.sensitivity * channel.sensitivity_correction),
        "dimensions": 1,
        "data": " ".join(str(int(v)) for v in channel.raw.tolist()),
    }


def physical_values(value: dict) -> np.ndarray:
    """Decode a single-dimension SampledData back to physical values (origin + factor × data).

    FHIR's special values (E error, L/U below/above the limits) become NaN.
    """
    origin = float(value.get("origin", {}).get("value", 0.0))
    factor = float(value.get("factor", 1.0))
    words = (value.get("data") or "").split()
    data = np.array([float(w) if w not in ("E", "L", "U") else np.nan for w in words])
    return origin + factor * data


def ecg_observation(record: EcgRecord, *, patient_reference: str) -> dict:
    """The ECG Observation: one component with SampledData per lead of the rhythm group."""
    group = rhythm_group(record)
    body: dict = {
        "resourceType": "Observation",
        "identifier": [sop_uid_identifier(record.sop_instance_uid)],
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY, "code": "procedure", "display": "Procedure"}]}
        ],
        "code": {
            "coding": [
                {"system": MDC, "code": ECG_MDC[0], "display": ECG_MDC[1]},
                {"system": LOINC, "code": ECG_LOINC[0], "display": ECG_LOINC[1]},
            ],
            "text": f"{SOP_CLASS_NAMES.get(record.sop_class_uid, 'ECG')} "
            f"({group.label or 'rhythm'}, {group.duration_s:g} s)",
        },
        "subject": {"reference": patient_reference},
        "effectiveDateTime": record.acquired_at.isoformat(),
        "component": [
            {"code": lead_coding(channel), "valueSampledData": sampled_data(channel)}
            for channel in group.channels
        ],
    }
    if device := _device_display(record):
        body["device"] = {"display": device}
    statements = [a.text for a in record.annotations if a.text]
    if statements:
        # The cart's own interpretation ("SINUS RHYTHM"), kept as written, not as a diagnosis.
        body["note"] = [{"text": f"ECG cart statement: {text}"} for text in statements]
    return body


def heart_rate_observation(
    record: EcgRecord, heart_rate: HeartRate, *, patient_reference: str, ecg_reference: str
) -> dict:
    """The heart rate measured on the ECG, as a vital-signs Observation."""
    return {
        "resourceType": "Observation",
        "identifier": [
            {"system": HEART_RATE_ID_SYSTEM, "value": f"urn:oid:{record.sop_instance_uid}"}
        ],
        "status": "final",
        "category": [
            {"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
        ],
        "code": {
            "coding": [
                {"system": LOINC, "code": HEART_RATE_LOINC[0], "display": HEART_RATE_LOINC[1]},
                {"system": MDC, "code": HEART_RATE_MDC[0], "display": HEART_RATE_MDC[1]},
            ],
            "text": "Heart rate",
        },
        "subject": {"reference": patient_reference},
        "effectiveDateTime": record.acquired_at.isoformat(),
        "valueQuantity": {
            "value": round(heart_rate.bpm, 1),
            "unit": "beats/minute",
            "system": UCUM,
            "code": "/min",
        },
        "method": {
            "text": f"R-peak detection on {heart_rate.lead}: {heart_rate.n_beats} beats, "
            f"mean RR {heart_rate.rr_ms_mean:.0f} ms"
        },
        "derivedFrom": [{"reference": ecg_reference}],
    }


def document_reference(
    record: EcgRecord,
    stored: StoredFile,
    *,
    patient_reference: str,
    ecg_reference: str,
    indexed_at: datetime,
) -> dict:
    """The DocumentReference to the original DICOM file."""
    kind = SOP_CLASS_NAMES.get(record.sop_class_uid, "ECG")
    when = record.acquired_at.isoformat()
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": sop_uid_identifier(record.sop_instance_uid),
        "identifier": [
            sop_uid_identifier(record.sop_instance_uid),
            {"system": FILE_SHA256_SYSTEM, "value": stored.sha256},
        ],
        "status": "current",
        "type": {
            "coding": [{"system": LOINC, "code": ECG_LOINC[0], "display": ECG_LOINC[1]}],
            "text": f"{kind} (DICOM)",
        },
        "subject": {"reference": patient_reference},
        "date": indexed_at.isoformat(),
        "description": f"{kind} waveform file as recorded"
        + (f" by {device}" if (device := _device_display(record)) else ""),
        "content": [
            {
                "attachment": {
                    "contentType": "application/dicom",
                    "url": stored.url,
                    "size": stored.size,
                    "hash": stored.sha1_base64,
                    "title": f"{kind} {when}",
                    "creation": when,
                }
            }
        ],
        "context": {
            "period": {"start": when},
            "related": [{"reference": ecg_reference}],
        },
    }


def ecg_transaction(
    record: EcgRecord,
    stored: StoredFile,
    *,
    patient_reference: str,
    heart_rate: HeartRate | None,
    indexed_at: datetime,
) -> dict:
    """The transaction Bundle for one file; every entry is a conditional create on its identifier.

    ``record`` must have a SOP Instance UID and an acquisition time (the service checks both).
    Without a measurable heart rate the Bundle simply has no heart-rate entry.
    """
    ecg_url = _full_url(record, "ecg")
    observation = ecg_observation(record, patient_reference=patient_reference)
    entries = [_entry(ecg_url, observation)]
    if heart_rate is not None:
        entries.append(
            _entry(
                _full_url(record, "heart-rate"),
                heart_rate_observation(
                    record, heart_rate, patient_reference=patient_reference, ecg_reference=ecg_url
                ),
            )
        )
    entries.append(
        _entry(
            _full_url(record, "document"),
            document_reference(
                record,
                stored,
                patient_reference=patient_reference,
                ecg_reference=ecg_url,
                indexed_at=indexed_at,
            ),
        )
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _full_url(record: EcgRecord, role: str) -> str:
    """A urn:uuid for a Bundle entry, stable for the file (a name-based UUID of its UID)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, f'{record.sop_instance_uid}/{role}')}"


def _entry(full_url: str, resource: dict) -> dict:
    identifier = resource["identifier"][0]
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": urlencode(
                {"identifier": f"{identifier['system']}|{identifier['value']}"}
            ),
        },
    }


def _device_display(record: EcgRecord) -> str:
    parts = [record.manufacturer, record.model]
    text = " ".join(p for p in parts if p)
    if record.device_serial:
        text += f" (serial {record.device_serial})"
    return text


def _number(value: float) -> int | float:
    """A whole number as an int (``1`` rather than ``1.0`` in the JSON), else the float."""
    return int(value) if float(value).is_integer() else float(value)
