"""ECG files in DICOM and the shared record: importing them, serving them back, charting them.

* ``import_ecg`` (service): read the file with ``devices.dicom``, keep the original under
  ``MEDIA_ROOT/dicom/<sha256>.dcm``, and store its ECG Observation, heart-rate Observation and
  DocumentReference (``fhir.mapping.dicom``) through ``fhir.store`` in one transaction, audited
  there. Used by ``manage.py import_dicom`` and the upload endpoint alike.
* ``ecg_file_for_download`` (selector): the stored file behind a DocumentReference, for a caller
  who may read the patient; audited.
* ``ecg_traces`` (selector): the latest ECGs of a patient as lists of mV values, thinned for a chart.

Importing is idempotent on the SOP Instance UID (every resource is a conditional create on an
identifier derived from it) and the file store is content-addressed, so the same file imported
twice, even concurrently, is stored once. Errors are ``fhir.errors.FhirError``s with a message
fit for a clinician or an operator; the command and the views only translate them.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from clinic.access import Actor, can_read_patient, can_write_patient
from clinic.lookup import find_patient
from clinic.models import Patient
from devices.dicom import (
    ECG_SOP_CLASSES,
    CorruptFile,
    DicomError,
    HeartRate,
    HeartRateError,
    NotAnEcg,
    NoWaveform,
    heart_rate_bpm,
    read_ecg,
)
from fhir import audit, store
from fhir.errors import Conflict, Forbidden, NotFound, TooLarge, Unprocessable
from fhir.mapping import dicom as mapping
from fhir.models import Resource, ResourceIdentifier, SearchDate, SearchToken

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # a 12-lead resting ECG is well under 1 MB; Holter-length
# General ECGs run to a few MB. Override with settings.ECG_MAX_UPLOAD_BYTES.
MAX_TRACE_POINTS = 2500
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Physical unit of a lead → factor to millivolts.
_TO_MILLIVOLT = {"nV": 1e-6, "uV": 1e-3, "mV": 1.0, "V": 1e3}


def max_upload_bytes() -> int:
    """The largest ECG file accepted, from ``settings.ECG_MAX_UPLOAD_BYTES`` (default 20 MB)."""
    return int(getattr(settings, "ECG_MAX_UPLOAD_BYTES", DEFAULT_MAX_BYTES))


def ecg_file_path(sha256: str) -> Path:
    """Where the file with this content hash is kept."""
    return Path(settings.MEDIA_ROOT) / "dicom" / f"{sha256}.dcm"


def download_url(sha256: str) -> str:
    return f"{settings.FHIR_BASE_URL.rstrip('/')}/ecg/{sha256}.dcm"


# --- import -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EcgImport:
    """What one import stored (``created``) or found already stored (a replay)."""

    created: bool
    patient_id: int
    observation_id: str
    heart_rate_observation_id: str | None
    document_reference_id: str
    heart_rate_bpm: float | None
    heart_rate_problem: str  # why there is no heart rate, when there is none
    kind: str  # "12-lead ECG" | "General ECG"
    sop_instance_uid: str
    leads: int
    sampling_frequency: float
    duration_s: float
    sha256: str
    size: int
    download_url: str

    def as_json(self) -> dict:
        return {
            "created": self.created,
            "patient": f"Patient/{self.patient_id}",
            "observation": f"Observation/{self.observation_id}",
            "heartRateObservation": (
                f"Observation/{self.heart_rate_observation_id}"
                if self.heart_rate_observation_id
                else None
            ),
            "documentReference": f"DocumentReference/{self.document_reference_id}",
            "heartRateBpm": self.heart_rate_bpm,
            "heartRateProblem": self.heart_rate_problem or None,
            "kind": self.kind,
            "sopInstanceUid": self.sop_instance_uid,
            "leads": self.leads,
            "samplingFrequencyHz": self.sampling_frequency,
            "durationSeconds": self.duration_s,
            "sha256": self.sha256,
            "size": self.size,
            "url": self.download_url,
        }


def import_ecg(actor: Actor, data: bytes, *, patient_identifier: str) -> EcgImport:
    """Import one DICOM ECG file for the patient with this identifier (resident id or other).

    Raises ``TooLarge``; ``Unprocessable`` for a file that is not DICOM, not an ECG, truncated
    or corrupt, or for an unknown patient; ``Forbidden`` when the actor may not write the
    patient's record; ``Conflict`` when the file was already imported for another patient.
    Nothing is stored when it raises.
    """
    limit = max_upload_bytes()
    if len(data) > limit:
        raise TooLarge(f"the file has {len(data):,} bytes; the limit is {limit:,}")
    record = _read(data)
    patient = find_patient(patient_identifier)
    if patient is None:
        raise Unprocessable(
            f"unknown patient: no patient has the identifier {patient_identifier!r}"
        )
    if not can_write_patient(actor, patient):
        raise Forbidden(f"not allowed to write the record of patient {patient.pk}")
    _check_not_imported_for_another(record.sop_instance_uid, patient)

    heart_rate, problem = _heart_rate(record)
    sha256 = hashlib.sha256(data).hexdigest()
    stored = mapping.StoredFile(
        url=download_url(sha256),
        size=len(data),
        sha256=sha256,
        sha1_base64=base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
    )
    bundle = mapping.ecg_transaction(
        record,
        stored,
        patient_reference=f"Patient/{patient.pk}",
        heart_rate=heart_rate,
        indexed_at=timezone.now(),
    )
    # The file goes to disk before the record points at it, so a committed DocumentReference
    # never lacks its file; if the transaction fails, a file this call wrote is removed again.
    wrote_file = _keep_file(sha256, data)
    try:
        with transaction.atomic():
            response = store.process_bundle(actor, bundle, source="dicom")
            ids = _ids(bundle, response)
            ecg = Resource.objects.get(resource_type="Observation", logical_id=ids["ecg"])
            if ecg.patient_id != patient.pk:
                # A concurrent import of the same file for another patient won the race.
                raise Conflict(_conflict_message(record.sop_instance_uid))
    except Exception:
        if wrote_file:
            ecg_file_path(sha256).unlink(missing_ok=True)
        raise

    created = response["entry"][0]["response"]["status"].startswith("201")
    group = mapping.rhythm_group(record)
    return EcgImport(
        created=created,
        patient_id=patient.pk,
        observation_id=ids["ecg"],
        heart_rate_observation_id=ids.get("heart-rate"),
        document_reference_id=ids["document"],
        heart_rate_bpm=round(heart_rate.bpm, 1) if heart_rate else None,
        heart_rate_problem=problem,
        kind=mapping.SOP_CLASS_NAMES[record.sop_class_uid],
        sop_instance_uid=record.sop_instance_uid,
        leads=len(group.channels),
        sampling_frequency=group.sampling_frequency,
        duration_s=group.duration_s,
        sha256=sha256,
        size=len(data),
        download_url=stored.url,
    )


def _read(data: bytes):
    """``read_ecg``, with its errors turned into messages that say what to do."""
    try:
        record = read_ecg(data)
    except NotAnEcg as exc:
        raise Unprocessable(f"not an ECG: {_sop_class_of(exc)}") from None
    except NoWaveform as exc:
        raise Unprocessable(f"an ECG file without usable waveform data: {exc}") from None
    except CorruptFile as exc:
        if isinstance(exc.__cause__, InvalidDicomError):
            raise Unprocessable(
                "not a DICOM file: it lacks the 'DICM' marker of a DICOM Part 10 file"
            ) from None
        raise Unprocessable(f"the DICOM file is truncated or corrupt: {exc}") from None
    except DicomError as exc:
        raise Unprocessable(f"cannot read the ECG: {exc}") from None
    if not record.sop_instance_uid:
        raise Unprocessable("the DICOM file has no SOP Instance UID (0008,0018)")
    if record.acquired_at is None:
        # Placing an old ECG at the time of import would show (and alert on) a stale heart rate
        # as current, so a file that does not say when it was recorded is refused.
        raise Unprocessable(
            "the ECG does not say when it was recorded "
            "(no Acquisition DateTime, nor Content Date and Time)"
        )
    return record


def _sop_class_of(exc: NotAnEcg) -> str:
    match = re.search(r"SOP class (\S+)", str(exc))
    uid = match.group(1) if match else ""
    name = UID(uid).name if uid and uid != "(none)" else "no SOP class"
    accepted = " and ".join(sorted(UID(u).name for u in ECG_SOP_CLASSES))
    return f"the file is {name} ({uid or 'none'}); accepted are {accepted} files"


def _heart_rate(record) -> tuple[HeartRate | None, str]:
    try:
        return heart_rate_bpm(record), ""
    except HeartRateError as exc:
        # The traces are still worth keeping; the record simply gets no heart-rate vital.
        return None, str(exc)


def _existing(resource_type: str, system: str, value: str) -> Resource | None:
    row = (
        ResourceIdentifier.objects.filter(resource_type=resource_type, system=system, value=value)
        .select_related("resource")
        .first()
    )
    return row.resource if row else None


def _check_not_imported_for_another(sop_instance_uid: str, patient: Patient) -> None:
    uid = mapping.sop_uid_identifier(sop_instance_uid)
    existing = _existing("Observation", uid["system"], uid["value"])
    if existing is not None and existing.patient_id != patient.pk:
        raise Conflict(_conflict_message(sop_instance_uid))


def _conflict_message(sop_instance_uid: str) -> str:
    return (
        f"this ECG (SOP Instance UID {sop_instance_uid}) is already in another patient's record; "
        "if it was filed under the wrong patient, correct that record first"
    )


def _keep_file(sha256: str, data: bytes) -> bool:
    """Write the file to its content address unless it is there; True if this call wrote it."""
    path = ecg_file_path(sha256)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write aside and rename: a reader (or a concurrent import) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _ids(bundle: dict, response: dict) -> dict[str, str]:
    """Logical ids by role ("ecg", "heart-rate", "document") from a transaction-response."""
    ids = {}
    for entry, answer in zip(bundle["entry"], response["entry"], strict=True):
        resource = entry["resource"]
        system = resource["identifier"][0]["system"]
        role = (
            "document"
            if resource["resourceType"] == "DocumentReference"
            else "heart-rate"
            if system == mapping.HEART_RATE_ID_SYSTEM
            else "ecg"
        )
        ids[role] = answer["response"]["location"].split("/")[1]
    return ids


# --- download -----------------------------------------------------------------------------------


def ecg_file_for_download(actor: Actor, sha256: str) -> tuple[Path, Resource]:
    """The stored file with this hash and its DocumentReference, for an actor who may read it.

    Raises ``NotFound`` alike for an unknown hash and for a patient the actor may not read, so
    the answer reveals nothing about other records. Leaves an audit record.
    """
    sha256 = sha256.lower()
    if not _SHA256.match(sha256):
        raise NotFound("no such ECG file")
    document = _existing("DocumentReference", mapping.FILE_SHA256_SYSTEM, sha256)
    if (
        document is None
        or document.deleted
        or document.patient_id is None
        or not can_read_patient(actor, document.patient_id)
    ):
        raise NotFound("no such ECG file")
    path = ecg_file_path(sha256)
    if not path.is_file():
        log.error("ECG file %s of DocumentReference/%s is missing", path, document.logical_id)
        raise NotFound("the ECG file is missing from the file store; tell the administrator")
    audit.record(
        actor,
        action="R",
        channel="fhir",
        patient_id=document.patient_id,
        entity=f"DocumentReference/{document.logical_id}",
        detail="downloaded the original ECG file",
    )
    return path, document


# --- traces for the timeline --------------------------------------------------------------------


@dataclass(frozen=True)
class LeadTrace:
    """One lead, thinned for display: ``samples[i]`` is at ``i * period_ms`` from the start."""

    label: str  # "Lead II"
    code: str | None  # MDC_ECG_ELEC_POTL_<lead> code, e.g. "131330"
    unit: str  # "mV" whenever the file's unit is a voltage
    period_ms: float
    samples: list[float | None]  # None where the sample was an error or out of range


@dataclass(frozen=True)
class EcgTrace:
    observation_id: str
    time: datetime | None
    heart_rate_bpm: float | None
    download_url: str | None
    leads: tuple[LeadTrace, ...]

    def as_json(self) -> dict:
        return {
            "observation": f"Observation/{self.observation_id}",
            "time": self.time.isoformat() if self.time else None,
            "heartRateBpm": self.heart_rate_bpm,
            "url": self.download_url,
            "leads": [
                {
                    "label": lead.label,
                    "code": lead.code,
                    "unit": lead.unit,
                    "periodMs": lead.period_ms,
                    "samples": lead.samples,
                }
                for lead in self.leads
            ],
        }


def ecg_traces(
    patient: Patient | int, *, limit: int = 5, max_points: int = MAX_TRACE_POINTS
) -> list[EcgTrace]:
    """The patient's latest ``limit`` ECGs, newest first, each lead in mV with ≤ max_points points.

    A selector for pages: the caller has already checked ``can_read_patient`` and audits the
    page view, as for any other part of the timeline. Thinning keeps each bucket's minimum and
    maximum in time order, so R peaks keep their height however far a lead is thinned.
    """
    patient_id = patient if isinstance(patient, int) else patient.pk
    ecg_codes = SearchToken.objects.filter(
        resource_type="Observation", param="code", system=mapping.LOINC, code=mapping.ECG_LOINC[0]
    ).values("resource_id")
    effective = SearchDate.objects.filter(resource=OuterRef("pk"), param="date").values("start")
    observations = list(
        Resource.objects.filter(
            resource_type="Observation", patient_id=patient_id, deleted=False, pk__in=ecg_codes
        )
        .annotate(effective=Subquery(effective[:1]))
        .order_by(F("effective").desc(nulls_last=True), "-pk")[:limit]
    )
    uids = {
        o.pk: i["value"]
        for o in observations
        for i in o.body.get("identifier", [])
        if i.get("system") == mapping.DICOM_UID_SYSTEM
    }
    heart_rates = {
        value: body.get("valueQuantity", {}).get("value")
        for value, body in _bodies("Observation", mapping.HEART_RATE_ID_SYSTEM, uids.values())
    }
    urls = {
        value: (body.get("content") or [{}])[0].get("attachment", {}).get("url")
        for value, body in _bodies("DocumentReference", mapping.DICOM_UID_SYSTEM, uids.values())
    }
    return [
        EcgTrace(
            observation_id=o.logical_id,
            time=timezone.localtime(o.effective) if o.effective else None,
            heart_rate_bpm=heart_rates.get(uids.get(o.pk)),
            download_url=urls.get(uids.get(o.pk)),
            leads=tuple(
                _lead_trace(c, max_points) for c in o.body.get("component", []) if _is_trace(c)
            ),
        )
        for o in observations
    ]


def _bodies(resource_type: str, system: str, values) -> list[tuple[str, dict]]:
    rows = ResourceIdentifier.objects.filter(
        resource_type=resource_type, system=system, value__in=list(values), resource__deleted=False
    ).select_related("resource")
    return [(row.value, row.resource.body) for row in rows]


def _is_trace(component: dict) -> bool:
    value = component.get("valueSampledData")
    return bool(value and value.get("dimensions") == 1 and value.get("period"))


def _lead_trace(component: dict, max_points: int) -> LeadTrace:
    value = component["valueSampledData"]
    unit = value.get("origin", {}).get("code") or value.get("origin", {}).get("unit") or ""
    samples = mapping.physical_values(value)
    if unit in _TO_MILLIVOLT:
        samples, unit = samples * _TO_MILLIVOLT[unit], "mV"
    thinned, stride = thin(samples, max_points)
    code = component.get("code", {})
    mdc = next((c["code"] for c in code.get("coding", []) if c.get("system") == mapping.MDC), None)
    label = code.get("text") or next(
        (c.get("display") for c in code.get("coding", []) if c.get("display")), "lead"
    )
    return LeadTrace(
        label=label,
        code=mdc,
        unit=unit,
        period_ms=float(value["period"]) * stride,
        samples=[None if np.isnan(v) else round(float(v), 5) for v in thinned],
    )


def thin(values: np.ndarray, max_points: int) -> tuple[np.ndarray, float]:
    """At most ``max_points`` values and the stride between them in original samples.

    Buckets of ``bucket`` samples each give their minimum and maximum, in the order they occur,
    so the stride is ``bucket / 2``. The last bucket is padded with its final value.
    """
    n = len(values)
    if n <= max_points:
        return values, 1.0
    pairs = max(1, max_points // 2)
    bucket = -(-n // pairs)  # ceil
    padded = np.pad(values, (0, (-n) % bucket), mode="edge").reshape(-1, bucket)
    # NaN (a FHIR "E"/"L"/"U" sample) is never picked as an extreme unless a bucket is all NaN.
    low = np.argmin(np.where(np.isnan(padded), np.inf, padded), axis=1)
    high = np.argmax(np.where(np.isnan(padded), -np.inf, padded), axis=1)
    rows = np.arange(len(padded))
    first, second = np.minimum(low, high), np.maximum(low, high)
    out = np.column_stack([padded[rows, first], padded[rows, second]]).ravel()
    return out, bucket / 2
