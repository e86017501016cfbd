"""HL7 v2 ORU^R01 into the shared record: the storage side of the MLLP listener.

`receive(raw)` is the whole synchronous path for one message — parse (`devices.hl7.pcd01`),
resolve the patient, map to FHIR (`fhir.mapping.hl7v2`), write, commit — and returns the ACK
bytes to send. It never raises: every failure becomes an AE/AR ACK and a row in the message
store. `receive_many(items)` does the same for the messages that queued up while the store was
busy, in one transaction (group commit), and still answers each message as `receive` would.
`store_oru(oru)` is the storage contract of `devices.hl7.ingest.make_handler` (returns after
commit, idempotent on MSH-10, raises `UnknownPatient`), for callers that parse elsewhere.
`make_handler()` gives the listener an async handler that hands groups to a few store threads,
so the event loop keeps serving the other connections while a group waits on the database.

A message's `Hl7Message` row, Devices, Observations and vitals rows commit together. Alone, the
row is inserted first, so a concurrent copy of the same message waits on its unique key and then
finds it stored (AA, nothing new); in a group it is inserted last, with the same effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from django.db import (
    IntegrityError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from clinic.access import actor_for_interface
from clinic.identity import InvalidResidentId, parse_resident_id
from clinic.models import Hospital, Patient, PatientIdentifier
from devices.hl7 import ack, er7, mllp, pcd01
from devices.hl7 import charset as charsets
from devices.hl7.errors import (
    DATA_TYPE_ERROR,
    UNKNOWN_KEY_IDENTIFIER,
    ApplicationError,
    ContentError,
    Hl7Error,
    UnknownPatient,
)
from devices.models import Hl7Message
from fhir import store
from fhir.errors import FhirError, Forbidden
from fhir.mapping import hl7v2

logger = logging.getLogger(__name__)

SOURCE = "hl7"
# PID-3.5 identifier types (HL7 table 0203) that mean "resident identity number" in China.
RESIDENT_ID_TYPES = frozenset({"NNCHN", "NI", "CN-RIC"})
# Store threads. Two: one group computes (mapping, validation: the GIL) while the other waits on
# PostgreSQL. More threads only make the groups smaller (bench/bench_mllp_store.py).
DEFAULT_WORKERS = 2
# Most messages stored in one transaction (50 typical 10-OBX messages write about 300 resources).
DEFAULT_MAX_GROUP = 50


@dataclass(frozen=True, slots=True)
class Stored:
    """What `store_oru` did: the message row, and whether this delivery wrote anything."""

    message: Hl7Message
    created: bool


# --- the whole path ---------------------------------------------------------------------------


def receive(raw: bytes, *, parsed: pcd01.Oru | Hl7Error | None = None) -> bytes:
    """Store one inbound message and return the ACK to send; never raises.

    `parsed` is the result of `pcd01.parse_bytes(raw)` when the caller parsed elsewhere (a
    process pool); otherwise the message is parsed here.
    """
    header = None
    try:
        header = ack.read_header(raw)
        accepted = _accept(raw, header, parsed)
        store_oru(
            accepted.oru,
            raw_text=accepted.raw_text,
            ack_code=accepted.ack_code,
            ack_raw=accepted.ack_raw,
            message_type=accepted.message_type,
        )
        return accepted.reply
    except Exception as exc:
        reply = ack.error_ack(raw, exc)
        error = exc if isinstance(exc, Hl7Error) else ApplicationError()
        if isinstance(exc, Hl7Error):
            logger.info("HL7 message refused: %r", exc)
        else:
            logger.exception("HL7 message could not be stored")
        try:
            _record_refusal(raw, header, error, reply, detail=_describe(exc))
        except Exception:  # the store is down: the sender still gets its ACK and resends
            logger.exception("could not record a refused HL7 message")
        return reply


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A parsed message and the AA that will answer it once it is committed."""

    oru: pcd01.Oru
    reply: bytes
    raw_text: str
    ack_code: str
    ack_raw: str
    message_type: str


def _accept(
    raw: bytes, header: er7.MessageHeader, parsed: pcd01.Oru | Hl7Error | None
) -> _Accepted:
    if isinstance(parsed, Hl7Error):
        raise parsed
    oru = parsed if parsed is not None else pcd01.parse_bytes(raw)
    control_id, now = uuid.uuid4().hex[:20], datetime.now(pcd01.LOCAL_ZONE)
    return _Accepted(
        oru=oru,
        reply=ack.build_ack(header, control_id=control_id, now=now),
        raw_text=_text(raw),
        ack_code=ack.ack_code(header, None),
        ack_raw=ack.build_ack_text(header, control_id=control_id, now=now),
        message_type=_message_type(header),
    )


# --- several messages in one transaction ------------------------------------------------------


Inbound = tuple[bytes, "pcd01.Oru | Hl7Error | None"]


@dataclass(slots=True)
class _Member:
    """One message of a group: where its ACK goes, and what it will write."""

    index: int
    raw: bytes
    accepted: _Accepted
    key: dict[str, str]
    prepared: _Prepared
    message: Hl7Message | None = None
    duplicate: bool = False


class _StoreApart(Exception):
    """The group cannot be stored as one; each message goes through `receive` on its own."""


def receive_many(items: list[Inbound]) -> list[bytes]:
    """Store several inbound messages and return their ACKs, in order; never raises.

    The messages that arrived while the store was busy are written in one transaction, as one
    transaction Bundle per sending application: a few COPY statements, one audit append and one
    commit for the group, where one message alone costs the same round trips. Every ACK still
    follows the commit of its data. A message that cannot be prepared (unknown patient, a
    content error) takes the one-message path, which answers its AE and keeps the refusal; if
    the group's write fails for any reason, it rolls back and each message is stored on its own,
    so one bad message never costs the others anything but time.
    """
    replies: dict[int, bytes] = {}
    members: list[_Member] = []
    lookups: _Lookups | None = None
    for index, (raw, parsed) in enumerate(items):
        try:
            lookups = lookups or _Lookups()
            accepted = _accept(raw, ack.read_header(raw), parsed)
            prepared = _prepare(accepted.oru, lookups)
            members.append(_Member(index, raw, accepted, _key(accepted.oru), prepared))
        except Exception:
            replies[index] = receive(raw, parsed=parsed)
    if members:
        try:
            with transaction.atomic():
                _store_group(members)
            for member in members:
                replies[member.index] = member.accepted.reply
        except Exception as exc:
            logger.info("a group of %d HL7 messages is stored one by one: %r", len(members), exc)
            for member in members:
                replies[member.index] = receive(member.raw, parsed=member.accepted.oru)
    return [replies[index] for index in range(len(items))]


def _store_group(members: list[_Member]) -> None:
    """`_store` for several messages at once (inside the caller's transaction)."""
    keys = [tuple(m.key.values()) for m in members]
    if len(set(keys)) < len(keys):
        raise _StoreApart("the same message twice in one group")
    existing = {
        tuple(_key_of(row).values()): row
        for row in Hl7Message.objects.select_for_update().filter(
            direction=Hl7Message.Direction.IN, control_id__in={m.key["control_id"] for m in members}
        )
    }
    fresh, kept = [], []  # new rows; rows of earlier refusals of these messages
    for member, key in zip(members, keys, strict=True):
        member.message = existing.get(key)
        if member.message is None:
            member.message = Hl7Message(**member.key)
            fresh.append(member.message)
        elif member.message.status == Hl7Message.Status.STORED:
            member.duplicate = True
        else:
            kept.append(member.message)
    writing = [m for m in members if not m.duplicate]
    for patient_id in sorted({m.prepared.patient.pk for m in writing}):
        _share_patient_key(patient_id)
    by_application: dict[str, list[_Member]] = {}
    for member in writing:
        by_application.setdefault(member.prepared.application, []).append(member)
    for group in by_application.values():
        response = _write(group[0].prepared.actor, [e for m in group for e in m.prepared.entries])
        start = 0
        for member in group:
            end = start + len(member.prepared.entries)
            accepted = member.accepted
            _mark_stored(
                member.message,
                member.prepared,
                response["entry"][start:end],
                accepted.raw_text,
                accepted.ack_code,
                accepted.ack_raw,
                accepted.message_type,
            )
            start = end
    # New rows go in complete, after the data. A concurrent copy of one of these messages has
    # either committed first (IntegrityError here: the group is redone one by one and finds it
    # stored) or waits on this insert's unique key and then finds it stored.
    Hl7Message.objects.bulk_create(fresh)
    for message in kept:
        message.save()
    Hl7Message.objects.filter(pk__in=[m.message.pk for m in members if m.duplicate]).update(
        attempts=F("attempts") + 1
    )


def store_oru(
    oru: pcd01.Oru,
    *,
    raw_text: str = "",
    ack_code: str = "AA",
    ack_raw: str = "",
    message_type: str = "ORU^R01",
) -> Stored:
    """Write `oru` and its message row in one transaction; return after the commit.

    Idempotent on (sending application, sending facility, MSH-10): a message already stored
    returns ``created=False`` and writes nothing but the delivery count. Raises
    `UnknownPatient` when no patient matches PID-3, `ContentError` for content the record
    cannot take (AE), and lets database failures through (the caller answers AE; the sender
    resends).
    """
    key = _key(oru)
    for _ in range(2):  # a second pass only after losing an insert race on the unique key
        try:
            with transaction.atomic():
                return _store(oru, key, raw_text, ack_code, ack_raw, message_type)
        except _Raced:
            continue
    raise ApplicationError("the message row is locked by another delivery; resend")


class _Raced(Exception):
    """Another connection inserted the same message row first."""


def _store(
    oru: pcd01.Oru,
    key: dict[str, str],
    raw_text: str,
    ack_code: str,
    ack_raw: str,
    message_type: str,
) -> Stored:
    try:
        with transaction.atomic():
            message = Hl7Message.objects.create(status=Hl7Message.Status.STORED, **key)
    except IntegrityError:
        message = Hl7Message.objects.select_for_update().filter(**key).first()
        if message is None:
            raise _Raced() from None
        if message.status == Hl7Message.Status.STORED:
            Hl7Message.objects.filter(pk=message.pk).update(attempts=message.attempts + 1)
            message.attempts += 1
            return Stored(message, False)

    prepared = _prepare(oru)
    _share_patient_key(prepared.patient.pk)
    response = _write(prepared.actor, prepared.entries)
    _mark_stored(message, prepared, response["entry"], raw_text, ack_code, ack_raw, message_type)
    message.save()
    return Stored(message, True)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What one message will write, worked out before any write: sender, patient, entries."""

    hospital: Hospital | None
    patient: Patient
    application: str
    entries: list[dict]

    @property
    def actor(self):
        return actor_for_interface(self.application)


class _Lookups:
    """What the messages of one group look up alike: the hospitals (read once) and the patient
    of each PID-3 (a monitor's messages name the same patient, one query for all of them)."""

    def __init__(self) -> None:
        self.hospitals = Hospitals()
        self._patients: dict[tuple, Patient] = {}

    def patient(self, oru: pcd01.Oru, sending_hospital: Hospital | None) -> Patient:
        key = (sending_hospital.pk if sending_hospital else None, oru.patient_identifiers)
        if key not in self._patients:
            self._patients[key] = resolve_patient(oru, sending_hospital, self.hospitals)
        return self._patients[key]


def _prepare(oru: pcd01.Oru, lookups: _Lookups | None = None) -> _Prepared:
    """Resolve the sender and the patient and map the message to transaction-Bundle entries.

    Only reads: raises `UnknownPatient` or `ContentError` before anything is written.
    """
    lookups = lookups or _Lookups()
    hospital = _sending_hospital(oru, lookups.hospitals)
    patient = lookups.patient(oru, hospital)
    mapped = hl7v2.map_oru(
        oru, patient_reference=f"Patient/{patient.pk}", sender=hl7v2.sender_of(oru)
    )
    # One transaction Bundle per message: fhir.store writes it in bulk (a few statements for
    # the whole message) with the same validation, access check and idempotency as an upload.
    entries, device_refs = [], {}
    for device in mapped.devices:
        identifier = device["identifier"][0]
        url = f"urn:uuid:{uuid.uuid4()}"
        device_refs[identifier["value"]] = url
        entries.append(
            _entry(url, device, _if_none_exist(identifier["system"], identifier["value"]))
        )
    for observation in mapped.observations:
        _link_devices(observation, device_refs)
        identifier = observation["identifier"][0]
        entries.append(
            _entry(
                f"urn:uuid:{uuid.uuid4()}",
                observation,
                _if_none_exist(identifier["system"], identifier["value"]),
            )
        )
    return _Prepared(hospital, patient, _application_name(oru), entries)


def _write(actor, entries: list[dict]) -> dict:
    """Store the entries as one transaction Bundle; FHIR refusals become HL7 errors."""
    try:
        return store.process_bundle(
            actor,
            {"resourceType": "Bundle", "type": "transaction", "entry": entries},
            source=SOURCE,
        )
    except Forbidden as exc:
        raise ApplicationError(f"not allowed to write: {exc.diagnostics}") from None
    except FhirError as exc:
        # Validation or unit problems the mapper did not foresee: the sender must fix them.
        raise ContentError(DATA_TYPE_ERROR, exc.diagnostics, "OBX") from None


def _mark_stored(
    message: Hl7Message,
    prepared: _Prepared,
    response_entries: list[dict],
    raw_text: str,
    ack_code: str,
    ack_raw: str,
    message_type: str,
) -> None:
    """Fill the message row for a stored message (the caller saves it)."""
    now = timezone.now()
    written = [
        e["response"]["location"].split("/_history/")[0]
        for e in response_entries
        if e["response"]["location"].startswith("Observation/")
    ]
    message.status = Hl7Message.Status.STORED
    message.raw = raw_text
    message.message_type = message_type
    message.received_at = now
    message.ack_code = ack_code
    message.ack_text = f"stored {len(written)} observations"
    message.ack_raw = ack_raw
    message.error = ""
    message.hospital = prepared.hospital
    message.patient = prepared.patient
    message.resources = written
    message.attempts += 1
    message.last_attempt_at = now


def _share_patient_key(patient_id: int) -> None:
    """Take now the KEY SHARE lock that the deferred foreign-key checks would take at COMMIT.

    `audit.record` holds a global advisory lock until COMMIT; code that locks the patient row
    and then audits (alert evaluation) takes them in the other order. Taking the patient lock
    first gives everyone the same order: patient row, then audit lock — no deadlock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(Patient._meta.db_table)
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE", [patient_id])


def _entry(full_url: str, resource: dict, if_none_exist: str) -> dict:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            "ifNoneExist": if_none_exist,
        },
    }


def _link_devices(observation: dict, device_refs: dict[str, str]) -> None:
    """Logical EUI-64 references from the mapper → the Devices' entries in the Bundle."""
    targets = [observation.get("device")] + [
        e.get("valueReference") for e in observation.get("extension", [])
    ]
    for target in targets:
        if isinstance(target, dict) and "identifier" in target:
            ref = device_refs.get(target["identifier"].get("value", ""))
            if ref:
                target["reference"] = ref


def _if_none_exist(system: str, value: str) -> str:
    # MSH-10 may hold '&', '+' or '%': quote so parse_qsl gives the value back unchanged.
    return "identifier=" + quote(f"{system}|{value}", safe="|:/")


# --- who sent it, who it is about -------------------------------------------------------------


def _hd_text(hd: pcd01.HierarchicDesignator | None) -> str:
    if hd is None:
        return ""
    parts = [hd.namespace_id or "", hd.universal_id or "", hd.universal_id_type or ""]
    return "^".join(parts).rstrip("^")


def _application_name(oru: pcd01.Oru) -> str:
    app = oru.sending_application
    if app is None:
        return "hl7"
    return app.namespace_id or app.universal_id or "hl7"


def _key(oru: pcd01.Oru) -> dict[str, str]:
    return {
        "direction": Hl7Message.Direction.IN,
        "sending_application": _hd_text(oru.sending_application)[:227],
        "sending_facility": _hd_text(oru.sending_facility)[:227],
        "control_id": oru.control_id[:199],
    }


def _key_of(message: Hl7Message) -> dict[str, str]:
    """The same key, read from a stored row (in `_key`'s order)."""
    return {
        "direction": message.direction,
        "sending_application": message.sending_application,
        "sending_facility": message.sending_facility,
        "control_id": message.control_id,
    }


class Hospitals:
    """The hospitals, read once, found by any of the names a message may use for them.

    A group of messages resolves its senders and assigning authorities against one read of
    the (small) hospital table rather than one per name.
    """

    def __init__(self) -> None:
        self._known = [
            (
                hospital,
                {hospital.code.lower(), hospital.name.lower(), hospital.name_en.lower()}
                | {
                    str(i.get("value", "")).lower()
                    for i in hospital.identifiers or []
                    if isinstance(i, dict)
                },
            )
            for hospital in Hospital.objects.all()
        ]

    def named(self, *names: str | None) -> Hospital | None:
        """The hospital whose code, name, English name or an identifier value is in `names`."""
        wanted = {n.strip().lower() for n in names if n and n.strip()}
        if not wanted:
            return None
        for hospital, known in self._known:
            if known & wanted:
                return hospital
        return None


def _sending_hospital(oru: pcd01.Oru, hospitals: Hospitals) -> Hospital | None:
    facility = oru.sending_facility
    if facility is None:
        return None
    return hospitals.named(facility.namespace_id, facility.universal_id)


def resolve_patient(
    oru: pcd01.Oru, sending_hospital: Hospital | None = None, hospitals: Hospitals | None = None
) -> Patient:
    """The one patient PID-3 names; `UnknownPatient` when none, `ContentError` when several.

    Per repetition: an 18-digit resident identity number (valid check digit, or type NNCHN)
    is looked up as such; any other value is a hospital number, looked up among
    `PatientIdentifier`s assigned by the hospital PID-3.4 names (code, name or identifier),
    or whose system is PID-3.4 itself, or — without PID-3.4 — assigned by the sending facility.
    A number whose assigner we cannot tell is never matched: an MRN is only unique within its
    hospital, and a wrong patient is worse than an AE.
    """
    found: dict[int, Patient] = {}
    hospitals = hospitals or Hospitals()
    for pid in oru.patient_identifiers:
        patient = _match(pid, sending_hospital, hospitals)
        if patient is not None:
            found[patient.pk] = patient
    if not found:
        shown = ", ".join(
            p.value
            + (
                f" ({', '.join(x for x in (p.assigning_authority, p.type_code) if x)})"
                if p.assigning_authority or p.type_code
                else ""
            )
            for p in oru.patient_identifiers
        )
        raise UnknownPatient(f"No patient matches PID-3 {shown}")
    if len(found) > 1:
        raise ContentError(
            UNKNOWN_KEY_IDENTIFIER,
            "PID-3 identifiers name different patients",
            "PID",
            3,
            segment_seq=1,
        )
    return next(iter(found.values()))


def _is_resident_id(pid: pcd01.PatientId) -> bool:
    if (pid.type_code or "").upper() in RESIDENT_ID_TYPES:
        return True
    try:
        parse_resident_id(pid.value.upper())
    except InvalidResidentId:
        return False
    return True


def _match(
    pid: pcd01.PatientId, sending_hospital: Hospital | None, hospitals: Hospitals
) -> Patient | None:
    value = pid.value.strip()
    if _is_resident_id(pid):
        patient = Patient.objects.filter(resident_id=value.upper()).first()
        if patient is not None or (pid.type_code or "").upper() in RESIDENT_ID_TYPES:
            return patient
    rows = PatientIdentifier.objects.filter(value=value).select_related("patient")
    authority = (pid.assigning_authority or "").strip()
    if authority:
        hospital = hospitals.named(authority)
        if hospital is not None:
            row = rows.filter(assigner=hospital).first()
            if row is not None:
                return row.patient
        row = rows.filter(system__in=[authority, f"urn:oid:{authority}"]).first()
        return row.patient if row else None
    if sending_hospital is not None:
        row = rows.filter(assigner=sending_hospital).first()
        return row.patient if row else None
    return None


# --- refusals ---------------------------------------------------------------------------------


def _text(raw: bytes) -> str:
    try:
        return charsets.decode(raw)
    except Exception:
        return raw.decode("latin-1")


def _message_type(header: er7.MessageHeader | None) -> str:
    if header is None or not header.message_type:
        return ""
    return f"{header.message_type}^{header.trigger_event}".rstrip("^")[:40]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Hl7Error):
        where = f" at {exc.location}" if exc.location else ""
        return f"{exc.code} {exc.message}{where}"
    return f"{type(exc).__name__}: {exc}"


def _header_hd(header: er7.MessageHeader | None, n: int) -> str:
    if header is None:
        return ""
    d = header.delimiters
    return er7.unescape(header.raw(n), d).strip()[:227]


def _record_refusal(
    raw: bytes, header: er7.MessageHeader | None, error: Hl7Error, reply: bytes, *, detail: str
) -> None:
    """Keep a refused message in the store (status error/rejected) after its rollback.

    A row already ``stored`` for the same key is left alone: the data is in the record and a
    later failing copy of it changes nothing.
    """
    status = Hl7Message.Status.REJECTED if error.ack_code == "AR" else Hl7Message.Status.ERROR
    parsed = ack.parse_ack(reply)
    now = timezone.now()
    fields = {
        "raw": _text(raw),
        "message_type": _message_type(header),
        "receiving_application": _header_hd(header, 5),
        "receiving_facility": _header_hd(header, 6),
        "received_at": now,
        "ack_code": parsed.code if parsed else "",
        "ack_text": error.message,
        "ack_raw": _text(reply),
        "status": status,
        "error": detail,
        "last_attempt_at": now,
    }
    key = {
        "direction": Hl7Message.Direction.IN,
        "sending_application": _header_hd(header, 3),
        "sending_facility": _header_hd(header, 4),
        "control_id": (er7.unescape(header.raw(10), header.delimiters).strip() if header else "")[
            :199
        ],
    }
    with transaction.atomic():
        if not key["control_id"]:
            Hl7Message.objects.create(**key, **fields, attempts=1)
            return
        message, created = Hl7Message.objects.select_for_update().get_or_create(
            **key, defaults={**fields, "attempts": 1}
        )
        if created or message.status == Hl7Message.Status.STORED:
            return
        for name, value in fields.items():
            setattr(message, name, value)
        message.attempts += 1
        message.save()


# --- the listener's handler -------------------------------------------------------------------


class StoreWorkers:
    """The listener's thread pool for database work; each thread keeps its own connection.

    `close()` closes every thread's connections before the pool stops (a test database cannot
    be dropped while a pooled thread still holds a connection to it).
    """

    def __init__(self, size: int = DEFAULT_WORKERS) -> None:
        self.size = size
        self.executor = ThreadPoolExecutor(size, thread_name_prefix="hl7-store")

    def close(self) -> None:
        barrier = threading.Barrier(self.size)

        def close_connections() -> None:
            # One task per thread (they wait for each other), so every thread closes its own.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)
            connections.close_all()

        wait([self.executor.submit(close_connections) for _ in range(self.size)])
        self.executor.shutdown(wait=True)


def _receive_in_worker(items: list[Inbound]) -> list[bytes]:
    close_old_connections()  # as Django does around a request: drop broken or expired ones
    try:
        return receive_many(items)
    finally:
        close_old_connections()


def _parse_or_error(raw: bytes) -> pcd01.Oru | Hl7Error:
    """Module-level so a process pool can pickle it; an Hl7Error comes back as a value."""
    try:
        return pcd01.parse_bytes(raw)
    except Hl7Error as exc:
        return exc


class _GroupCommit:
    """Gives each free store thread everything that queued up while the threads were busy.

    A message that arrives at an idle listener is stored alone, at once; under load the
    messages waiting for a thread go together (`receive_many`), so the per-transaction cost is
    paid once per group instead of once per message. No timer holds a message back.
    """

    def __init__(self, executor: Executor, concurrency: int, max_group: int) -> None:
        self.executor = executor
        self.concurrency = concurrency
        self.max_group = max_group
        self.waiting: list[tuple[bytes, pcd01.Oru | Hl7Error | None, asyncio.Future]] = []
        self.running = 0

    async def store(self, raw: bytes, parsed: pcd01.Oru | Hl7Error | None) -> bytes:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((raw, parsed, future))
        self._start()
        return await future

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        while self.waiting and self.running < self.concurrency:
            group = self.waiting[: self.max_group]
            del self.waiting[: self.max_group]
            self.running += 1
            items = [(raw, parsed) for raw, parsed, _ in group]
            done = loop.run_in_executor(self.executor, _receive_in_worker, items)
            done.add_done_callback(functools.partial(self._finished, group))

    def _finished(self, group: list, done: asyncio.Future) -> None:
        self.running -= 1
        try:
            replies = done.result()
        except Exception as exc:  # receive_many never raises; a dead pool might
            replies = [exc] * len(group)
        for (_, _, future), reply in zip(group, replies, strict=True):
            if future.done():  # the connection went away; the message is stored regardless
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        self._start()


def make_handler(
    workers: StoreWorkers | Executor,
    *,
    parse_executor: Executor | None = None,
    concurrency: int | None = None,
    max_group: int = DEFAULT_MAX_GROUP,
) -> mllp.Handler:
    """An `mllp.serve` handler: messages stored by `receive_many` in `workers`.

    At most `concurrency` groups (default: one per worker thread) of at most `max_group`
    messages are stored at a time. With a `ProcessPoolExecutor` as `parse_executor`, parsing
    runs on other cores and the threads only hold the GIL for the mapping and the database.
    """
    executor = workers.executor if isinstance(workers, StoreWorkers) else workers
    if concurrency is None:
        concurrency = workers.size if isinstance(workers, StoreWorkers) else DEFAULT_WORKERS
    groups = _GroupCommit(executor, concurrency, max_group)

    async def handle(raw: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        parsed: pcd01.Oru | Hl7Error | None = None
        if parse_executor is not None:
            try:
                parsed = await loop.run_in_executor(parse_executor, _parse_or_error, raw)
            except Exception:  # a broken pool: parse in the worker thread instead
                logger.exception("HL7 parse pool failed; parsing in the store thread")
        return await groups.store(raw, parsed)

    return handle
