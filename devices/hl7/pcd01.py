"""IHE PCD-01 (ORU^R01 "communicate PCD data") parsed into plain frozen values.

`er7.split_segments` does the ER7 segmentation (checked against hl7apy in the tests); this
module turns the raw segments into `Oru`/`Obx` values a FHIR mapper can use without knowing HL7, and decides, deliberately, what to do with the odd
messages real devices send. Those decisions, each tested against a reference message:

* OBX-2 empty but OBX-5 filled (Continua glucose context OBXs): accepted. A value with components
  is read as a coded value, anything else as text; a number is never guessed. Rejecting would
  lose the glucose reading beside it.
* ``""`` (explicit HL7 null) in a field is read as "no value", never as the two-character text.
* No CR after the last segment, LF or CRLF segment ends: accepted (normalised first).
* Status written in OBX-10 instead of OBX-11: status stays None. OBX-10 is "nature of abnormal
  test" where "R" means something else; guessing a result status would be worse than none.
* Repetitions: PID-3 gives every identifier, OBX-8/OBX-18 every repetition; elsewhere the first
  repetition counts. Sub-components are split (PID-3.4 namespace & OID & type).
* A metric without OBX-14/OBX-18 inherits time and device from its nearest ancestor in the
  OBX-4 containment tree (the BP compound OBX carries the time of systolic/diastolic/mean, the
  MDS OBX the EUI-64), then from OBR-7; that is how PCD-01 senders avoid repeating them.
* No PID, no PID-3, no OBR, an OBX before any OBR, a non-numeric NM, an unknown unit or status
  and a malformed timestamp are content errors (AE); not ORU^R01, empty MSH-9, an unsupported
  version or an unreadable MSH are rejections (AR).

Timestamps without a UTC offset are read in Asia/Shanghai, the zone of every device we deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from devices.hl7 import charset as charsets
from devices.hl7 import er7, units
from devices.hl7.errors import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION_ID,
    ContentError,
    Hl7Error,
    UnsupportedMessage,
)

__all__ = [
    "ContentError",
    "Equipment",
    "HierarchicDesignator",
    "Hl7Error",
    "Obx",
    "Oru",
    "PatientId",
    "PersonName",
    "UnsupportedMessage",
    "parse",
    "parse_bytes",
    "parse_timestamp",
]

LOCAL_ZONE = ZoneInfo("Asia/Shanghai")
RESULT_STATUSES = frozenset("CDFINOPRSUWX")  # HL7 table 0085
_CODED_TYPES = frozenset({"CWE", "CE", "CNE", "CF", "CV"})


@dataclass(frozen=True, slots=True)
class HierarchicDesignator:
    """HD: an application or facility, e.g. ``AcmeInc^ACDE48234567ABCD^EUI-64``."""

    namespace_id: str | None
    universal_id: str | None = None
    universal_id_type: str | None = None


@dataclass(frozen=True, slots=True)
class PatientId:
    """One repetition of PID-3 (CX)."""

    value: str
    assigning_authority: str | None
    type_code: str | None


@dataclass(frozen=True, slots=True)
class PersonName:
    """PID-5 (XPN), first repetition."""

    family: str | None
    given: str | None
    middle: str | None = None


@dataclass(frozen=True, slots=True)
class Equipment:
    """One repetition of OBX-18 (EI): the device that produced the observation."""

    identifier: str | None
    namespace: str | None = None
    universal_id: str | None = None
    universal_id_type: str | None = None

    @property
    def eui64(self) -> str | None:
        """The EUI-64, whichever of the two ways PCD-01 senders write it."""
        if (self.universal_id_type or "").upper() == "EUI-64":
            return self.universal_id
        if (self.namespace or "").upper() == "EUI-64":
            return self.identifier
        return None


@dataclass(frozen=True, slots=True)
class Obx:
    """One OBX, with what it inherits from the containment tree already resolved."""

    set_id: int | None
    value_type: str | None
    code: str
    code_text: str | None
    code_system: str | None
    mdc_code: int | None
    mdc_term: str | None
    loinc: str | None
    value: float | None
    text: str | None
    value_code: str | None
    samples: tuple[float, ...]
    unit_code: int | None
    unit_term: str | None
    ucum: str | None
    reference_range: str | None
    abnormal_flags: tuple[str, ...]
    status: str | None
    observed_at: datetime | None
    equipment: tuple[Equipment, ...]
    hierarchy: tuple[int, ...]
    parent: str | None
    obr_index: int


@dataclass(frozen=True, slots=True)
class Oru:
    """An ORU^R01. Idempotency is the caller's job: key it on `control_id` (MSH-10)."""

    control_id: str
    sending_application: HierarchicDesignator | None
    sending_facility: HierarchicDesignator | None
    receiving_application: HierarchicDesignator | None
    receiving_facility: HierarchicDesignator | None
    message_time: datetime | None
    version: str
    accept_ack_type: str | None
    application_ack_type: str | None
    charset: str | None
    patient_identifiers: tuple[PatientId, ...]
    patient_name: PersonName | None
    observations: tuple[Obx, ...]


def parse_bytes(raw: bytes) -> Oru:
    """Decode by MSH-18, then parse. Raises only `Hl7Error`."""
    return parse(charsets.decode(raw))


def parse(text: str) -> Oru:
    """Parse an ORU^R01 message. Raises only `Hl7Error` (and its subclasses)."""
    text = er7.normalise_segments(text)
    header = er7.read_header_text(text)
    if header is None:
        raise UnsupportedMessage(
            SEGMENT_SEQUENCE_ERROR,
            "Message does not start with a readable MSH segment",
            "MSH",
            segment_seq=1,
        )
    _check_header(header)
    segments = _segments(text, header.delimiters)
    return _Builder(header.delimiters).build(segments)


def parse_timestamp(value: str) -> datetime | None:
    """HL7 TS/DTM (``YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]``) to an aware datetime.

    Missing offset means Asia/Shanghai. Raises ValueError on anything else.
    """
    value = value.strip()
    if not value:
        return None
    m = _TS.fullmatch(value)
    if m is None:
        raise ValueError(f"not an HL7 timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if fraction and second is None:
        raise ValueError(f"fraction without seconds: {value!r}")
    micro = int((fraction or "0").ljust(6, "0")[:6])
    tz: timezone | ZoneInfo = LOCAL_ZONE
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            raise ValueError(f"bad UTC offset: {value!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        tz = timezone(-delta if offset[0] == "-" else delta)
    return datetime(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        micro,
        tzinfo=tz,
    )


_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?")
_NM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_SUB_ID = re.compile(r"\d+(?:\.\d+)*")


def _check_header(header: er7.MessageHeader) -> None:
    """Reject early what is not ours, before reading any segment."""
    if not header.message_type:
        raise UnsupportedMessage(
            REQUIRED_FIELD_MISSING, "MSH-9 (message type) is empty", "MSH", 9, segment_seq=1
        )
    if header.message_type.upper() != "ORU":
        raise UnsupportedMessage(
            UNSUPPORTED_MESSAGE_TYPE,
            f"Message type {header.message_type!r} is not supported, only ORU^R01",
            "MSH",
            9,
            segment_seq=1,
        )
    if header.trigger_event.upper() != "R01":
        raise UnsupportedMessage(
            UNSUPPORTED_EVENT_CODE,
            f"Trigger event {header.trigger_event!r} is not supported, only R01",
            "MSH",
            9,
            segment_seq=1,
            component=2,
        )
    if not header.version:
        raise UnsupportedMessage(
            UNSUPPORTED_VERSION_ID, "MSH-12 (version) is empty", "MSH", 12, segment_seq=1
        )
    if header.version not in er7.SUPPORTED_VERSIONS:
        raise UnsupportedMessage(
            UNSUPPORTED_VERSION_ID,
            f"The version {header.version} is not supported",
            "MSH",
            12,
            segment_seq=1,
        )
    if not header.control_id:
        raise ContentError(
            REQUIRED_FIELD_MISSING, "MSH-10 (control id) is empty", "MSH", 10, segment_seq=1
        )


@dataclass(slots=True)
class _Segment:
    name: str
    seq: int
    fields: dict[int, list[str]]

    def reps(self, n: int) -> list[str]:
        return self.fields.get(n, [])

    def raw(self, n: int) -> str:
        reps = self.fields.get(n)
        return reps[0] if reps else ""


def _segments(text: str, d: er7.Delimiters) -> list[_Segment]:
    """Segment and field texts (raw ER7, still escaped), numbered per segment id."""
    try:
        raw_segments = er7.split_segments(text, d)
    except er7.SegmentError as exc:
        raise ContentError(
            SEGMENT_SEQUENCE_ERROR, f"Message structure could not be parsed: {exc}"
        ) from None
    result: list[_Segment] = []
    seen: dict[str, int] = {}
    for segment in raw_segments:
        seen[segment.name] = seen.get(segment.name, 0) + 1
        fields = {n: list(reps) for n, reps in enumerate(segment.fields) if n and any(reps)}
        result.append(_Segment(segment.name, seen[segment.name], fields))
    return result


def _value(raw: str, d: er7.Delimiters) -> str | None:
    """One component/sub-component as text; empty and the HL7 null ``""`` are None."""
    if not raw or raw == '""':
        return None
    text = er7.unescape(raw, d).strip()
    return text or None


def _components(raw: str, d: er7.Delimiters) -> list[str | None]:
    if raw == '""':
        return []
    return [_value(c, d) for c in raw.split(d.component)]


def _component(parts: list[str | None], n: int) -> str | None:
    return parts[n - 1] if n <= len(parts) else None


def _hd(raw: str, d: er7.Delimiters) -> HierarchicDesignator | None:
    parts = _components(raw, d)
    if not any(parts):
        return None
    return HierarchicDesignator(_component(parts, 1), _component(parts, 2), _component(parts, 3))


class _Builder:
    """Walks the segments once; holds only the delimiters and what it has seen so far."""

    def __init__(self, d: er7.Delimiters) -> None:
        self.d = d

    def error(
        self, code: int, message: str, seg: _Segment, field: int, component: int | None = None
    ) -> ContentError:
        return ContentError(
            code, message, seg.name, field, segment_seq=seg.seq, component=component
        )

    def timestamp(self, seg: _Segment, field: int) -> datetime | None:
        raw = seg.raw(field).split(self.d.component, 1)[0]
        if raw == '""':
            return None
        try:
            return parse_timestamp(er7.unescape(raw, self.d))
        except ValueError as exc:
            raise self.error(DATA_TYPE_ERROR, str(exc), seg, field) from None

    def build(self, segments: list[_Segment]) -> Oru:
        d = self.d
        msh = segments[0]
        pid: _Segment | None = None
        obr_times: dict[int, datetime | None] = {}
        pending: list[dict[str, Any]] = []
        obr_index = 0
        for seg in segments[1:]:
            if seg.name == "PID" and pid is None:
                pid = seg
            elif seg.name == "OBR":
                obr_index += 1
                obr_times[obr_index] = self.timestamp(seg, 7)
            elif seg.name == "OBX":
                if obr_index == 0:
                    raise self.error(SEGMENT_SEQUENCE_ERROR, "OBX before any OBR", seg, 1)
                pending.append(self.obx(seg, obr_index))
        if pid is None:
            raise ContentError(SEGMENT_SEQUENCE_ERROR, "Missing required PID segment", "PID")
        if obr_index == 0:
            raise ContentError(SEGMENT_SEQUENCE_ERROR, "Missing required OBR segment", "OBR")
        identifiers = self.patient_ids(pid)
        if not identifiers:
            raise self.error(REQUIRED_FIELD_MISSING, "PID-3 holds no identifier", pid, 3)
        return Oru(
            control_id=_value(msh.raw(10), d) or "",
            sending_application=_hd(msh.raw(3), d),
            sending_facility=_hd(msh.raw(4), d),
            receiving_application=_hd(msh.raw(5), d),
            receiving_facility=_hd(msh.raw(6), d),
            message_time=self.timestamp(msh, 7),
            version=_value(msh.raw(12).split(d.component, 1)[0], d) or "",
            accept_ack_type=_value(msh.raw(15), d),
            application_ack_type=_value(msh.raw(16), d),
            charset=_value(msh.raw(18), d),
            patient_identifiers=identifiers,
            patient_name=self.person_name(pid),
            observations=_resolve(pending, obr_times),
        )

    def patient_ids(self, pid: _Segment) -> tuple[PatientId, ...]:
        d = self.d
        out: list[PatientId] = []
        for rep in pid.reps(3):
            parts = rep.split(d.component)
            value = _value(parts[0], d)
            if value is None:
                continue
            authority = None
            if len(parts) > 3:
                subs = [_value(s, d) for s in parts[3].split(d.subcomponent)]
                authority = next((s for s in subs[:2] if s), None)
            type_code = _value(parts[4], d) if len(parts) > 4 else None
            out.append(PatientId(value, authority, type_code))
        return tuple(out)

    def person_name(self, pid: _Segment) -> PersonName | None:
        parts = _components(pid.raw(5), self.d)
        family_raw = pid.raw(5).split(self.d.component, 1)[0]
        family = _value(family_raw.split(self.d.subcomponent, 1)[0], self.d)
        given, middle = _component(parts, 2), _component(parts, 3)
        if not (family or given or middle):
            return None
        return PersonName(family, given, middle)

    def obx(self, seg: _Segment, obr_index: int) -> dict[str, Any]:
        d = self.d
        set_id_text = _value(seg.raw(1), d)
        value_type = (_value(seg.raw(2), d) or "").upper() or None

        ident = _components(seg.raw(3), d)
        code = _component(ident, 1)
        if code is None:
            raise self.error(REQUIRED_FIELD_MISSING, "OBX-3 (observation id) is empty", seg, 3)
        mdc_code = mdc_term = loinc = None
        for base in (0, 3):
            c_code, c_text, c_system = (_component(ident, base + i) for i in (1, 2, 3))
            system = (c_system or "").upper()
            if system == "MDC" and c_code:
                mdc_code = int(c_code) if c_code.isdigit() else mdc_code
                mdc_term = c_text if c_text and c_text.startswith("MDC_") else mdc_term
            elif system == "LN" and c_code:
                loinc = c_code

        value, text, value_code, samples = self.observation_value(seg, value_type)

        unit_code = unit_term = ucum = None
        unit_parts = _components(seg.raw(6), d)
        if any(unit_parts):
            u_code, u_text, u_system = (_component(unit_parts, i) or "" for i in (1, 2, 3))
            found = units.ucum_for(u_code, u_text, u_system)
            if found is None:
                raise self.error(TABLE_VALUE_NOT_FOUND, f"Unknown unit {seg.raw(6)!r}", seg, 6)
            unit_code, unit_term, ucum = found

        status = (_value(seg.raw(11), d) or "").upper() or None
        if status is not None and status not in RESULT_STATUSES:
            raise self.error(TABLE_VALUE_NOT_FOUND, f"Unknown result status {status!r}", seg, 11)

        equipment = []
        for rep in seg.reps(18):
            parts = _components(rep, d)
            if any(parts):
                equipment.append(Equipment(*(_component(parts, i) for i in (1, 2, 3, 4))))

        sub_id = _value(seg.raw(4), d) or ""
        hierarchy = tuple(int(p) for p in sub_id.split(".")) if _SUB_ID.fullmatch(sub_id) else ()
        flags = tuple(f for f in (_value(r, d) for r in seg.reps(8)) if f)
        return {
            "set_id": int(set_id_text) if set_id_text and set_id_text.isdigit() else None,
            "value_type": value_type,
            "code": code,
            "code_text": _component(ident, 2),
            "code_system": _component(ident, 3),
            "mdc_code": mdc_code,
            "mdc_term": mdc_term,
            "loinc": loinc,
            "value": value,
            "text": text,
            "value_code": value_code,
            "samples": samples,
            "unit_code": unit_code,
            "unit_term": unit_term,
            "ucum": ucum,
            "reference_range": _value(seg.raw(7), d),
            "abnormal_flags": flags,
            "status": status,
            "observed_at": self.timestamp(seg, 14),
            "equipment": tuple(equipment),
            "hierarchy": hierarchy,
            "parent": None,
            "obr_index": obr_index,
        }

    def observation_value(
        self, seg: _Segment, value_type: str | None
    ) -> tuple[float | None, str | None, str | None, tuple[float, ...]]:
        """(value, text, value_code, samples) of OBX-5 according to OBX-2."""
        d = self.d
        raw = seg.raw(5)
        if not raw or raw == '""':
            return None, None, None, ()
        parts = _components(raw, d)

        def number(text: str | None, component: int | None = None) -> float | None:
            if text is None:
                return None
            if not _NM.fullmatch(text):
                raise self.error(
                    DATA_TYPE_ERROR,
                    f"{text!r} is not a number ({value_type})",
                    seg,
                    5,
                    component,
                )
            return float(text)

        if value_type == "NM":
            if len(parts) > 1:
                raise self.error(DATA_TYPE_ERROR, f"{raw!r} is not a number (NM)", seg, 5)
            return number(parts[0]), None, None, ()
        if value_type == "SN":
            comparator, num1, separator, num2 = (_component(parts, i) for i in (1, 2, 3, 4))
            value = number(num1, 2)
            number(num2, 4)
            shown = None
            if comparator or separator:
                shown = "".join(p for p in (comparator, num1, separator, num2) if p)
            return value, shown, None, ()
        if value_type == "NA":
            # An empty sample keeps its position as NaN, so the waveform's timing is not shifted.
            samples = tuple(
                float("nan") if p is None else float(number(p, i + 1) or 0.0)
                for i, p in enumerate(parts)
            )
            return None, None, None, samples
        if value_type in _CODED_TYPES or (value_type is None and len(parts) > 1):
            code, label = _component(parts, 1), _component(parts, 2)
            return None, label or code, code, ()
        text = " ".join(p for p in parts if p) or None
        return None, text, None, ()


def _resolve(
    pending: list[dict[str, Any]], obr_times: dict[int, datetime | None]
) -> tuple[Obx, ...]:
    """Fill parent, time and device from the OBX-4 containment tree, within one OBR."""
    by_node: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
    for item in pending:
        if item["hierarchy"]:
            by_node.setdefault((item["obr_index"], item["hierarchy"]), item)
    result: list[Obx] = []
    for item in pending:
        group, node = item["obr_index"], item["hierarchy"]
        ancestors = [
            by_node[(group, node[:k])]
            for k in range(len(node) - 1, 0, -1)
            if (group, node[:k]) in by_node
        ]
        resolved = dict(item)
        if ancestors:
            top = ancestors[0]
            resolved["parent"] = top["mdc_term"] or top["code_text"] or top["code"]
        if resolved["observed_at"] is None:
            times = [a["observed_at"] for a in ancestors if a["observed_at"] is not None]
            resolved["observed_at"] = times[0] if times else obr_times.get(group)
        if not resolved["equipment"]:
            devices = [a["equipment"] for a in ancestors if a["equipment"]]
            resolved["equipment"] = devices[0] if devices else ()
        result.append(Obx(**resolved))
    return tuple(result)
