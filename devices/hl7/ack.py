"""Messages we write: ACKs for what we receive, and ORU^R01 alerts we send to hospitals.

Acknowledgement codes follow HL7 2.x chapter 2:

* original mode (MSH-15 and MSH-16 empty): AA / AE / AR;
* enhanced mode, application ACK requested (MSH-16 AL, ER or SU): AA / AE / AR, because our
  single reply is sent after the data is committed, i.e. after application processing. This is
  what IHE PCD-01 senders expect (they send MSH-15 NE, MSH-16 AL; IPF's reference reply is AA);
* enhanced mode otherwise (MSH-15 set, MSH-16 empty or NE): commit codes CA / CE / CR.

We always reply, even when a sender says "never", because an MLLP sender that waits on a socket
is worse off without a reply than with one it ignores.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from devices.hl7 import charset as charsets
from devices.hl7 import er7
from devices.hl7.errors import (
    ERROR_TEXT,
    SEGMENT_SEQUENCE_ERROR,
    ApplicationError,
    Hl7Error,
    UnsupportedMessage,
)
from devices.hl7.pcd01 import LOCAL_ZONE, PatientId, PersonName

OUR_APPLICATION = "SG-RPM"
LOCAL_CODE_SYSTEM = "99SGRPM"  # "99" prefix: a locally defined coding system (HL7 table 0396).
_APPLICATION_ACK_WANTED = frozenset({"AL", "ER", "SU"})


def ack_codes(header: er7.MessageHeader | None) -> tuple[str, str, str]:
    """(accept, error, reject) codes for the reply to this message."""
    if header is None:
        return "AA", "AE", "AR"
    accept, application = header.accept_ack_type.upper(), header.application_ack_type.upper()
    if not accept and not application:
        return "AA", "AE", "AR"
    if application in _APPLICATION_ACK_WANTED:
        return "AA", "AE", "AR"
    return "CA", "CE", "CR"


def ack_code(header: er7.MessageHeader | None, error: Hl7Error | None) -> str:
    """MSA-1 for this message and outcome."""
    ok, soft, hard = ack_codes(header)
    if error is None:
        return ok
    return hard if error.ack_code == "AR" else soft


def read_header(raw: bytes) -> er7.MessageHeader | None:
    """MSH of raw bytes, decoded by its own MSH-18 (latin-1 when that is unknown)."""
    try:
        codec = charsets.codec_for(charsets.declared_charset(raw))
    except Hl7Error:
        codec = "latin-1"
    end = raw.find(b"\r")
    first = raw if end < 0 else raw[:end]
    if codec == "iso-ir-58":
        codec = "latin-1"  # MSH-3..21 are ASCII in practice; only the name fields are not.
    return er7.read_header_text(first.decode(codec, errors="replace"))


def build_ack_text(
    header: er7.MessageHeader | None,
    error: Hl7Error | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
    application: str = OUR_APPLICATION,
) -> str:
    """The ACK as text (segments end with CR). `control_id`/`now` are for reproducible tests."""
    if header is None:
        header = er7.MessageHeader(er7.DEFAULT_DELIMITERS, ("MSH", "|", "^~\\&"))
        if error is None or error.ack_code != "AR":
            error = UnsupportedMessage(
                SEGMENT_SEQUENCE_ERROR, "No readable MSH segment", "MSH", segment_seq=1
            )
    d = header.delimiters
    now = now or datetime.now(LOCAL_ZONE)
    version = header.raw(12) or "2.6"
    enhanced = bool(header.accept_ack_type or header.application_ack_type)
    trigger = header.trigger_event
    msh = [
        "MSH",
        d.encoding_characters,
        header.raw(5) or er7.escape(application, d),
        header.raw(6),
        header.raw(3),
        header.raw(4),
        _ts(now),
        "",
        f"ACK{d.component}{trigger}{d.component}ACK" if trigger else "ACK",
        er7.escape(control_id or uuid.uuid4().hex[:20], d),
        header.raw(11) or "P",
        version,
        "",
        "",
        "NE" if enhanced else "",
        "NE" if enhanced else "",
        "",
        _charset_for_reply(header),
    ]
    segments = [d.field.join(msh).rstrip(d.field)]
    segments.append(d.field.join(["MSA", ack_code(header, error), header.raw(10)]))
    if error is not None:
        segments.append(_err_segment(error, d, version))
    return "\r".join(segments) + "\r"


def build_ack(
    header: er7.MessageHeader | None,
    error: Hl7Error | None = None,
    *,
    control_id: str | None = None,
    now: datetime | None = None,
) -> bytes:
    """The ACK encoded in the charset of the message it answers (UTF-8 if that is unknown)."""
    text = build_ack_text(header, error, control_id=control_id, now=now)
    return charsets.encode(text, _charset_for_reply(header) if header else "")


def error_ack(raw: bytes, exc: BaseException) -> bytes:
    """ACK for a message whose processing raised `exc`; never raises itself.

    `Hl7Error`s keep their code and location; anything else is our failure (207, AE, so the
    sender retries). No readable MSH at all gives AR with an empty MSA-2.
    """
    error = exc if isinstance(exc, Hl7Error) else ApplicationError()
    try:
        return build_ack(read_header(raw), error)
    except Exception:  # a bug here must still produce a reply
        return build_ack(None, error)


@dataclass(frozen=True, slots=True)
class Ack:
    """An ACK we received (from a hospital we delivered to), reduced to what a sender needs."""

    code: str
    control_id: str
    error_codes: tuple[int, ...]
    text: str | None

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")


def parse_ack(raw: bytes) -> Ack | None:
    """Read MSA (and ERR codes) of an ACK; None when it is not a readable ACK."""
    try:
        text = er7.normalise_segments(charsets.decode(raw))
    except Hl7Error:
        text = er7.normalise_segments(raw.decode("latin-1"))
    header = er7.read_header_text(text)
    if header is None:
        return None
    d = header.delimiters
    code, control_id, message, errors = None, "", None, []
    for segment in text.split("\r")[1:]:
        fields = segment.split(d.field)
        if fields[0] == "MSA" and len(fields) > 1:
            code = er7.unescape(fields[1], d).strip()
            control_id = er7.unescape(fields[2], d).strip() if len(fields) > 2 else ""
            message = er7.unescape(fields[3], d).strip() or None if len(fields) > 3 else None
        elif fields[0] == "ERR":
            candidates = [fields[3].split(d.component)[0]] if len(fields) > 3 else []
            if len(fields) > 1:  # v2.4 and earlier: ERR-1 ELD, code in component 4
                eld = fields[1].split(d.component)
                candidates.append(eld[3].split(d.subcomponent)[0] if len(eld) > 3 else "")
            errors.extend(int(c) for c in candidates if c.strip().isdigit())
            if len(fields) > 8 and fields[8]:
                message = er7.unescape(fields[8], d)
    if code is None:
        return None
    return Ack(code, control_id, tuple(errors), message)


@dataclass(frozen=True, slots=True)
class AlertValue:
    """One reading that triggered an alert, as it goes into an OBX."""

    mdc_code: int | None
    mdc_term: str | None
    value: float
    ucum: str | None
    observed_at: datetime | None = None
    loinc: str | None = None


def build_oru_for_alert(
    *,
    alert_id: str,
    patient_ids: Sequence[PatientId],
    patient_name: PersonName | None,
    rule_text: str,
    severity: str,
    values: Sequence[AlertValue],
    time: datetime,
    receiving_application: str = "",
    receiving_facility: str = "",
    sending_facility: str = "",
    control_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """An ORU^R01 (v2.6, UTF-8) telling a hospital about an alert. Encode it with UTF-8.

    Shape (MSH-15 NE, MSH-16 AL so the hospital answers AA/AE/AR after it has stored it)::

        MSH|^~\\&|SG-RPM|<sending_facility>|<receiving_application>|<receiving_facility>|<now>||
            ORU^R01^ORU_R01|<control_id>|P|2.6|||NE|AL||UNICODE UTF-8
        PID|||<id>^^^<authority>^<type>~...||<family>^<given>^<middle>
        OBR|1|<alert_id>^SG-RPM||ALERT^Remote monitoring alert^99SGRPM|||<time>
        OBX|1|ST|RULE^Alert rule^99SGRPM||<rule_text>||||||F|||<time>
        OBX|2|CWE|SEVERITY^Alert severity^99SGRPM||<severity>^<severity>^99SGRPM||||||F|||<time>
        OBX|3..|NM|<mdc code>^<MDC term>^MDC[^<loinc>^^LN]||<value>|<ucum>^<ucum>^UCUM||||||F|||<obs time>

    OBR-2 (placer order number) carries the alert id, so the hospital's reply and any later
    correction can be tied to the alert; MSH-10 is fresh for every delivery attempt unless the
    caller passes the same `control_id` to make a retry recognisable as one.
    """
    d = er7.DEFAULT_DELIMITERS

    def esc(value: str | None) -> str:
        return er7.escape(value or "", d)

    now = now or datetime.now(LOCAL_ZONE)
    when = _ts(time)
    ids = "~".join(
        f"{esc(p.value)}^^^{esc(p.assigning_authority)}^{esc(p.type_code)}".rstrip("^")
        for p in patient_ids
    )
    name = ""
    if patient_name is not None:
        name = "^".join(
            esc(p) for p in (patient_name.family, patient_name.given, patient_name.middle)
        ).rstrip("^")
    segments = [
        "|".join(
            [
                "MSH",
                d.encoding_characters,
                OUR_APPLICATION,
                esc(sending_facility),
                esc(receiving_application),
                esc(receiving_facility),
                _ts(now),
                "",
                "ORU^R01^ORU_R01",
                esc(control_id or uuid.uuid4().hex[:20]),
                "P",
                "2.6",
                "",
                "",
                "NE",
                "AL",
                "",
                "UNICODE UTF-8",
            ]
        ),
        f"PID|||{ids}||{name}",
        f"OBR|1|{esc(alert_id)}^{OUR_APPLICATION}||ALERT^Remote monitoring alert^"
        f"{LOCAL_CODE_SYSTEM}|||{when}",
        f"OBX|1|ST|RULE^Alert rule^{LOCAL_CODE_SYSTEM}||{esc(rule_text)}||||||F|||{when}",
        f"OBX|2|CWE|SEVERITY^Alert severity^{LOCAL_CODE_SYSTEM}||{esc(severity)}^{esc(severity)}"
        f"^{LOCAL_CODE_SYSTEM}||||||F|||{when}",
    ]
    for n, v in enumerate(values, start=3):
        code = f"{v.mdc_code if v.mdc_code is not None else ''}^{esc(v.mdc_term)}^MDC"
        if v.loinc:
            code += f"^{esc(v.loinc)}^^LN"
        unit = f"{esc(v.ucum)}^{esc(v.ucum)}^UCUM" if v.ucum else ""
        observed = _ts(v.observed_at) if v.observed_at else when
        segments.append(f"OBX|{n}|NM|{code}||{_number(v.value)}|{unit}||||||F|||{observed}")
    return "\r".join(segments) + "\r"


def _ts(moment: datetime) -> str:
    """HL7 DTM with seconds and offset; naive datetimes are taken as Asia/Shanghai."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_ZONE)
    return moment.strftime("%Y%m%d%H%M%S%z")


def _number(value: float) -> str:
    """NM text: no exponent, no trailing '.0' noise."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _charset_for_reply(header: er7.MessageHeader) -> str:
    """Echo the sender's MSH-18 when we can write it, else leave it empty (UTF-8/ASCII)."""
    declared = header.raw(18)
    try:
        charsets.codec_for(header.charset)
    except Hl7Error:
        return ""
    return declared


def _err_segment(error: Hl7Error, d: er7.Delimiters, version: str) -> str:
    """ERR for the error; ERR-1 (ELD) for v2.1-2.4 receivers, ERR-2/3/4/8 from v2.5 on."""
    c, s = d.component, d.subcomponent
    text = ERROR_TEXT.get(error.code, "Error")
    message = er7.escape(error.message, d)
    if version[:3] in ("2.1", "2.2", "2.3", "2.4"):
        location = c.join(
            [
                error.segment or "",
                str(error.segment_seq or 1) if error.segment else "",
                str(error.field or ""),
            ]
        )
        return f"ERR{d.field}{location}{c}{error.code}{s}{er7.escape(text, d)}{s}HL70357"
    location = ""
    if error.segment:
        parts = [error.segment, str(error.segment_seq or 1), str(error.field or "")]
        if error.component:
            parts += ["1", str(error.component)]
        location = c.join(parts).rstrip(c)
    code = f"{error.code}{c}{er7.escape(text, d)}{c}HL70357"
    return d.field.join(["ERR", "", location, code, "E", "", "", "", message])
