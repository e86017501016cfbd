"""HL7 v2 out: alerts escalated to a hospital, delivered over MLLP with the ACK kept.

`queue_alert_for_hospital(...)` builds the ORU^R01 (`devices.hl7.ack.build_oru_for_alert`),
stores it as an outbound `Hl7Message` and queues `devices.tasks.send_hl7_message` after the
caller's transaction commits. `deliver(message_id)` makes one attempt: it raises
`DeliveryError` when the hospital could not be reached (the task retries with backoff) and
records whatever ACK came back. Every attempt of one message carries the same MSH-10, so a
hospital that got a message but whose ACK was lost can recognise the retry as a duplicate.

A hospital's AE/AR is final (``refused``): it means the hospital read the message and would
refuse it again; an administrator resends from the message store once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clinic.models import Hospital, Patient
from devices import codes
from devices.hl7 import ack, mllp
from devices.hl7.pcd01 import PatientId, PersonName, parse_timestamp
from devices.models import Hl7Message

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
RESIDENT_ID_AUTHORITY = "CN-RIC"  # PID-3.4 we write for the resident identity number


class DeliveryError(Exception):
    """The message did not reach the hospital (refused, timed out, no readable ACK): retry."""


def queue_alert_for_hospital(
    *,
    hospital_id: int,
    alert_id: int,
    patient_id: int,
    rule_text: str,
    severity: str,
    values: Sequence[ack.AlertValue | Mapping[str, Any]],
    time: datetime,
) -> Hl7Message:
    """Store an ORU^R01 telling `hospital_id` about an alert, and send it after commit.

    Call inside the transaction that escalates the alert: the message row commits with it
    and the send is queued only then. `values` are the readings that triggered the alert,
    each an `AlertValue` or a mapping with ``value`` and either ``mdc`` (MDC code) or
    ``vital`` (our vital key), plus optional ``unit`` (UCUM), ``loinc``, ``observed_at``
    (datetime or ISO text). A hospital without an MLLP endpoint gets the row ``held``.
    """
    hospital = Hospital.objects.get(pk=hospital_id)
    patient = Patient.objects.get(pk=patient_id)
    control_id = uuid.uuid4().hex[:20]
    raw = ack.build_oru_for_alert(
        alert_id=str(alert_id),
        patient_ids=_patient_ids(patient, hospital),
        patient_name=_person_name(patient),
        rule_text=rule_text,
        severity=severity,
        values=[_alert_value(v) for v in values],
        time=time,
        receiving_facility=hospital.code,
        sending_facility=getattr(settings, "HL7_SENDING_FACILITY", ""),
        control_id=control_id,
    )
    endpoint = bool(hospital.mllp_host and hospital.mllp_port)
    message = Hl7Message.objects.create(
        direction=Hl7Message.Direction.OUT,
        control_id=control_id,
        sending_application=ack.OUR_APPLICATION,
        sending_facility=getattr(settings, "HL7_SENDING_FACILITY", ""),
        receiving_facility=hospital.code,
        message_type="ORU^R01",
        raw=raw,
        status=Hl7Message.Status.QUEUED if endpoint else Hl7Message.Status.HELD,
        error="" if endpoint else "the hospital has no MLLP endpoint configured",
        hospital=hospital,
        patient=patient,
        alert_id=alert_id,
    )
    if endpoint:
        enqueue(message.pk)
    return message


def enqueue(message_id: int) -> None:
    """Queue the send task once the current transaction commits."""
    from devices.tasks import send_hl7_message

    # robust: with eager Celery (the embedded default) a failed send must not break the
    # caller's request after its commit; the row keeps the error and the admin can resend.
    transaction.on_commit(lambda: send_hl7_message.delay(message_id), robust=True)


def requeue(message: Hl7Message) -> bool:
    """Send an outbound message again (the admin's "resend"); False for inbound ones."""
    if message.direction != Hl7Message.Direction.OUT:
        return False
    Hl7Message.objects.filter(pk=message.pk).update(status=Hl7Message.Status.QUEUED, error="")
    enqueue(message.pk)
    return True


def deliver(message_id: int, *, timeout: float | None = None) -> Hl7Message:
    """One delivery attempt; returns the updated row, raises `DeliveryError` to be retried."""
    timeout = timeout or getattr(settings, "HL7_MLLP_TIMEOUT", DEFAULT_TIMEOUT)
    with transaction.atomic():
        message = (
            Hl7Message.objects.select_for_update(of=("self",))
            .select_related("hospital")
            .get(pk=message_id, direction=Hl7Message.Direction.OUT)
        )
        if message.status == Hl7Message.Status.DELIVERED:
            return message  # a redelivered task (acks_late) finds the work done
        hospital = message.hospital
        if hospital is None or not (hospital.mllp_host and hospital.mllp_port):
            message.status = Hl7Message.Status.HELD
            message.error = "the hospital has no MLLP endpoint configured"
            message.save(update_fields=["status", "error"])
            return message
        message.attempts += 1
        message.last_attempt_at = timezone.now()
        message.status = Hl7Message.Status.SENDING
        message.save(update_fields=["attempts", "last_attempt_at", "status"])
        host, port = hospital.mllp_host, int(hospital.mllp_port)

    try:
        reply = send_blocking(host, port, message.raw.encode("utf-8"), timeout=timeout)
    except (TimeoutError, OSError, ConnectionError) as exc:
        _note(
            message, Hl7Message.Status.QUEUED, error=f"{host}:{port}: {exc or type(exc).__name__}"
        )
        raise DeliveryError(f"{host}:{port}: {exc or type(exc).__name__}") from exc

    parsed = ack.parse_ack(reply)
    reply_text = reply.decode("utf-8", errors="replace")
    if parsed is None or parsed.control_id != message.control_id:
        why = "no readable ACK" if parsed is None else f"ACK for {parsed.control_id!r}"
        _note(message, Hl7Message.Status.QUEUED, error=why, ack_raw=reply_text)
        raise DeliveryError(f"{host}:{port}: {why}")
    status = Hl7Message.Status.DELIVERED if parsed.accepted else Hl7Message.Status.REFUSED
    error = "" if parsed.accepted else (parsed.text or f"ACK {parsed.code} {parsed.error_codes}")
    return _note(
        message,
        status,
        error=error,
        ack_code=parsed.code,
        ack_text=parsed.text or "",
        ack_raw=reply_text,
    )


def mark_failed(message_id: int) -> None:
    """Retries are exhausted: keep the last error, say so."""
    Hl7Message.objects.filter(pk=message_id, direction=Hl7Message.Direction.OUT).exclude(
        status=Hl7Message.Status.DELIVERED
    ).update(status=Hl7Message.Status.FAILED)


def send_blocking(host: str, port: int, payload: bytes, *, timeout: float) -> bytes:
    """`mllp.send` from synchronous code (a Celery worker): one connection, one ACK."""
    return asyncio.run(mllp.send(host, port, payload, timeout=timeout))


def _note(message: Hl7Message, status: str, **fields: str) -> Hl7Message:
    for name, value in fields.items():
        setattr(message, name, value)
    message.status = status
    message.save(update_fields=["status", *fields])
    return message


def _patient_ids(patient: Patient, hospital: Hospital) -> list[PatientId]:
    """The hospital's own number first (what its HIS looks up), then the resident id."""
    ids = [
        PatientId(row.value, hospital.code, "MR")
        for row in patient.identifiers.filter(assigner=hospital)
    ]
    if patient.resident_id:
        ids.append(PatientId(patient.resident_id, RESIDENT_ID_AUTHORITY, "NNCHN"))
    if not ids:
        ids.append(PatientId(str(patient.pk), ack.OUR_APPLICATION, "PI"))
    return ids


def _person_name(patient: Patient) -> PersonName:
    if patient.family_name or patient.given_name:
        return PersonName(patient.family_name or None, patient.given_name or None)
    return PersonName(patient.name or None, None)


def _alert_value(value: ack.AlertValue | Mapping[str, Any]) -> ack.AlertValue:
    if isinstance(value, ack.AlertValue):
        return value
    mdc = value.get("mdc", value.get("mdc_code"))
    row = codes.by_mdc(int(mdc)) if mdc is not None else None
    if row is None and value.get("vital"):
        rows = codes.codes_for_key(str(value["vital"]))
        row = rows[0] if rows else None
    unit = value.get("unit") or value.get("ucum") or (row.unit if row else None)
    observed = value.get("observed_at")
    if isinstance(observed, str):
        observed = (
            datetime.fromisoformat(observed) if "-" in observed else parse_timestamp(observed)
        )
    loinc = value.get("loinc")
    if loinc is None and row is not None:
        found = codes.loinc_for(row.mdc, unit)
        loinc = found[0] if found else None
    return ack.AlertValue(
        mdc_code=row.mdc if row else (int(mdc) if mdc is not None else None),
        mdc_term=row.mdc_name if row else value.get("mdc_term"),
        value=float(value["value"]),
        ucum=unit,
        observed_at=observed,
        loinc=loinc,
    )
