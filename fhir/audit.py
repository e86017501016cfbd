"""Audit: every read or write of a patient's data leaves a record, chained by SHA-256.

Each record carries the hash of the one before it, so deleting or editing one breaks the chain
(`python manage.py verify_audit` finds where). Appends are serialised: on PostgreSQL with a
transaction-level advisory lock, on SQLite by its single writer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from clinic.access import Actor
from fhir.models import AuditEvent

_LOCK_KEY = 0x5347_4155  # "SGAU"


def _digest(fields: dict, previous_hash: str) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256((previous_hash + canonical).encode()).hexdigest()


def _fields(event: AuditEvent) -> dict:
    return {
        "recorded": event.recorded.isoformat(),
        "action": event.action,
        "outcome": event.outcome,
        "agent_type": event.agent_type,
        "agent_id": event.agent_id,
        "agent_role": event.agent_role,
        "patient": event.patient_id,
        "entity": event.entity,
        "purpose": event.purpose,
        "channel": event.channel,
        "detail": event.detail,
    }


@dataclass(frozen=True, slots=True)
class Access:
    """One access to record: what `record` takes, for `record_many`."""

    action: str
    channel: str
    patient_id: int | None = None
    entity: str = ""
    purpose: str = ""
    detail: str = ""
    outcome: str = "0"


def record(
    actor: Actor,
    *,
    action: str,
    channel: str,
    patient_id: int | None = None,
    entity: str = "",
    purpose: str = "",
    detail: str = "",
    outcome: str = "0",
) -> AuditEvent:
    """Append one audit record. Call inside the transaction of the access it records.

    Without a `purpose` the record carries the basis of the actor's access to the patient
    (clinic.consent.purpose_for: PATRQT, TREAT, HOPERAT, or "BTG: <the written reason>").
    """
    access = Access(action, channel, patient_id, entity, purpose, detail, outcome)
    return record_many(actor, [access])[0]


def record_many(actor: Actor, accesses: list[Access]) -> list[AuditEvent]:
    """Append several records in one step: one lock, one look-up of the chain's end, one insert.

    The chain lock is held until the caller's transaction ends, so a transaction that writes
    for twenty patients (a multi-patient upload, an HL7 feed) takes it once, not twenty times.
    """
    from clinic.consent import purpose_for

    events = [
        AuditEvent(
            action=a.action,
            outcome=a.outcome,
            agent_type=actor.kind,
            agent_id=actor.id,
            agent_role=actor.role or "",
            patient_id=a.patient_id,
            entity=a.entity[:200],
            purpose=(a.purpose or (purpose_for(actor, a.patient_id) if a.patient_id else ""))[:200],
            channel=a.channel,
            detail=a.detail[:500],
        )
        for a in accesses
    ]
    if not events:
        return []
    # Outside a transaction (a read being audited) nothing of the caller's is pending, so
    # there are no deferred checks to run first: two round trips saved on every read.
    caller_pending = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The chain lock is held until the caller's transaction ends and every writer takes
            # it, so it comes last: the caller's deferred foreign-key checks (FOR KEY SHARE on
            # patient rows) run first, and no one waits for a row lock while holding the chain.
            if caller_pending:
                connection.check_constraints()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or ""
        now = timezone.now()
        for event in events:
            event.recorded = now
            event.previous_hash = last
            event.hash = last = _digest(_fields(event), last)
        AuditEvent.objects.bulk_create(events)
    return events


def verify_chain() -> tuple[int, int | None]:
    """Walk the chain; return (records checked, id of the first broken record or None)."""
    previous = ""
    count = 0
    for event in AuditEvent.objects.order_by("id").iterator():
        count += 1
        if event.previous_hash != previous or _digest(_fields(event), previous) != event.hash:
            return count, event.pk
        previous = event.hash
    return count, None


def as_fhir(event: AuditEvent, base_patient_ref: str = "Patient") -> dict:
    """The record as a FHIR R4B AuditEvent."""
    body: dict = {
        "resourceType": "AuditEvent",
        "id": str(event.pk),
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "action": event.action,
        "recorded": event.recorded.isoformat(),
        "outcome": event.outcome,
        "agent": [
            {
                "type": {"text": event.agent_type},
                "who": {"identifier": {"value": event.agent_id}},
                "requestor": True,
                **({"role": [{"text": event.agent_role}]} if event.agent_role else {}),
                **({"purposeOfUse": [{"text": event.purpose}]} if event.purpose else {}),
            }
        ],
        "source": {"observer": {"display": f"smart-guangdong/{event.channel}"}},
    }
    entities = []
    if event.patient_id:
        entities.append({"what": {"reference": f"{base_patient_ref}/{event.patient_id}"}})
    if event.entity:
        entities.append(
            {
                "what": {"display": event.entity},
                **({"description": event.detail} if event.detail else {}),
            }
        )
    if entities:
        body["entity"] = entities
    return body
