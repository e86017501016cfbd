"""ACKs we write (codes, ERR, modes), ACKs we read, and the ORU^R01 alert we send."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import hl7  # python-hl7, an independent reader for what we write
import pytest

from devices.hl7 import ack, er7, pcd01
from devices.hl7.errors import ContentError, UnknownPatient

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2009, 7, 26, 9, 57, 31, tzinfo=SHANGHAI)
BP = (DATA / "ipf_pcd01_bp_request.hl7").read_bytes()


def reply(raw: bytes, error=None) -> str:
    return ack.build_ack(ack.read_header(raw), error, control_id="ACK1", now=NOW).decode()


def with_ack_types(raw: bytes, msh15: str, msh16: str) -> bytes:
    return raw.replace(b"|NE|AL|", f"|{msh15}|{msh16}|".encode(), 1)


def test_good_pcd01_message_gets_the_ack_ipf_expects() -> None:
    text = reply(BP)
    assert text == (
        "MSH|^~\\&|SG-RPM||AcmeInc^ACDE48234567ABCD^EUI-64||20090726095731+0800||"
        "ACK^R01^ACK|ACK1|P|2.6|||NE|NE\r"
        "MSA|AA|MSGID1234\r"
    )
    # IPF's reference answer to the same request (NE/AL) is AA for MSGID1234, as ours.
    reference = ack.parse_ack((DATA / "ipf_ack_pcd01_AA.hl7").read_bytes())
    ours = ack.parse_ack(text.encode())
    assert (ours.code, ours.control_id) == (reference.code, reference.control_id)


def test_content_error_ack_has_err_with_location_code_and_severity() -> None:
    error = ContentError(102, "'abc' is not a number (NM)", "OBX", 5, segment_seq=3)
    segments = reply(BP, error).split("\r")
    assert segments[1] == "MSA|AA|MSGID1234".replace("AA", "AE")
    assert segments[2] == "ERR||OBX^3^5|102^Data type error^HL70357|E||||'abc' is not a number (NM)"
    parsed = hl7.parse("\r".join(segments))
    assert str(parsed.segment("ERR")[3][0][0]) == "102"
    assert str(parsed.segment("ERR")[4]) == "E"


def test_unknown_patient_is_reported_as_204_on_pid_3() -> None:
    segments = reply(BP, UnknownPatient()).split("\r")
    assert segments[1] == "MSA|AE|MSGID1234"
    assert segments[2].startswith("ERR||PID^1^3|204^Unknown key identifier^HL70357|E|")


def test_user_text_with_delimiters_is_escaped_in_err() -> None:
    error = ContentError(103, "Unknown unit 'a|b^c'", "OBX", 6, segment_seq=1)
    err = reply(BP, error).split("\r")[2]
    assert err.endswith("Unknown unit 'a\\F\\b\\S\\c'")
    assert ack.parse_ack(reply(BP, error).encode()).text == "Unknown unit 'a|b^c'"


@pytest.mark.parametrize(
    ("msh15", "msh16", "codes"),
    [
        ("", "", ("AA", "AE", "AR")),  # original mode
        ("NE", "AL", ("AA", "AE", "AR")),  # PCD-01: application ACK requested
        ("AL", "ER", ("AA", "AE", "AR")),
        ("AL", "NE", ("CA", "CE", "CR")),  # only a commit ACK requested
        ("AL", "", ("CA", "CE", "CR")),
        ("NE", "NE", ("CA", "CE", "CR")),  # "never": we still reply, with a commit code
    ],
)
def test_ack_codes_follow_the_acknowledgement_mode(msh15, msh16, codes) -> None:
    raw = with_ack_types(BP, msh15, msh16)
    ok = reply(raw).split("\r")[1]
    soft = reply(raw, ContentError(102, "bad", "OBX", 5)).split("\r")[1]
    hard = reply(raw, pcd01.UnsupportedMessage(200, "no", "MSH", 9)).split("\r")[1]
    assert (ok, soft, hard) == tuple(f"MSA|{c}|MSGID1234" for c in codes)


def test_original_mode_ack_does_not_declare_ack_types() -> None:
    msh = reply(with_ack_types(BP, "", "")).split("\r")[0]
    assert msh.endswith("|ACK1|P|2.6")


def test_missing_msh9_reference_gets_ar_with_its_control_id() -> None:
    raw = (DATA / "hl7apy_missing_msh9_edgecase.hl7").read_bytes()
    with pytest.raises(pcd01.UnsupportedMessage) as caught:
        pcd01.parse_bytes(raw)
    text = ack.error_ack(raw, caught.value).decode()
    msh, msa, err = text.rstrip("\r").split("\r")
    assert msh.split("|")[2:6] == ["REC APP", "REC FAC", "SEND APP", "SEND FAC"]
    assert msa == "MSA|AR|0123456789"
    assert err.startswith("ERR||MSH^1^9|101^")


def test_unreadable_message_gets_ar_with_empty_control_id() -> None:
    text = ack.error_ack(b"\x00\xffnot hl7 at all", ValueError("boom")).decode()
    assert text.split("\r")[1] == "MSA|AR|"


def test_our_own_failure_is_an_ae_207_so_the_sender_retries() -> None:
    text = ack.error_ack(BP, RuntimeError("database is down")).decode()
    assert text.split("\r")[1] == "MSA|AE|MSGID1234"
    assert "|207^Application internal error^HL70357|E|" in text
    assert "database" not in text  # internals are logged, not sent


def test_v24_sender_gets_err_1_which_its_version_defines() -> None:
    raw = (DATA / "pythonhl7_sample_oru_glucose_lab.hl7").read_bytes()
    error = ContentError(102, "bad", "OBX", 5, segment_seq=1)
    err = reply(raw, error).split("\r")[2]
    assert err == "ERR|OBX^1^5^102&Data type error&HL70357"
    assert ack.parse_ack(reply(raw, error).encode()).error_codes == (102,)


@pytest.mark.parametrize(
    ("name", "code", "control_id", "errors"),
    [
        ("ipf_ack_pcd01_AA", "AA", "MSGID1234", ()),
        ("ipf_ack_pcd01_CE_with_ERR", "CE", "20070701132554000008", (100,)),
        ("ipf_ack_wan_AA", "AA", "MSGID1234", ()),
        ("ipf_ack_wan_INVALID_CE_no_msh15", "CE", "MSGID1234", ()),
    ],
)
def test_reference_acks_are_read(name, code, control_id, errors) -> None:
    result = ack.parse_ack((DATA / f"{name}.hl7").read_bytes())
    assert (result.code, result.control_id, result.error_codes) == (code, control_id, errors)
    assert result.accepted == (code == "AA")


def test_parse_ack_of_something_else_is_none() -> None:
    assert ack.parse_ack(b"hello") is None
    assert ack.parse_ack(BP) is None


def test_alert_oru_is_a_pcd01_message_our_parser_and_python_hl7_read_back() -> None:
    text = ack.build_oru_for_alert(
        alert_id="ALERT-42",
        patient_ids=[pcd01.PatientId("44010619900101001X", "CN-RIC", "NNCHN")],
        patient_name=pcd01.PersonName("张", "三", None),
        rule_text="Systolic > 180 mmHg | twice in 1 h",
        severity="high",
        values=[
            ack.AlertValue(150021, "MDC_PRESS_BLD_NONINV_SYS", 185.0, "mm[Hg]", loinc="8480-6"),
            ack.AlertValue(150022, "MDC_PRESS_BLD_NONINV_DIA", 101.5, "mm[Hg]"),
        ],
        time=datetime(2026, 3, 1, 8, 30, tzinfo=SHANGHAI),
        receiving_application="HIS",
        receiving_facility="GZ-PEOPLES-1",
        control_id="OUT-1",
        now=NOW,
    )
    assert text.startswith(
        "MSH|^~\\&|SG-RPM||HIS|GZ-PEOPLES-1|20090726095731+0800||ORU^R01^ORU_R01|OUT-1|P|2.6"
        "|||NE|AL||UNICODE UTF-8\r"
    )
    oru = pcd01.parse_bytes(text.encode("utf-8"))
    assert oru.patient_identifiers == (pcd01.PatientId("44010619900101001X", "CN-RIC", "NNCHN"),)
    assert oru.patient_name == pcd01.PersonName("张", "三", None)
    rule, severity, systolic, diastolic = oru.observations
    assert rule.text == "Systolic > 180 mmHg | twice in 1 h"
    assert severity.value_code == "high"
    assert (systolic.mdc_code, systolic.loinc, systolic.value, systolic.ucum) == (
        150021,
        "8480-6",
        185.0,
        "mm[Hg]",
    )
    assert diastolic.value == 101.5
    assert systolic.observed_at == datetime(2026, 3, 1, 8, 30, tzinfo=SHANGHAI)
    assert str(hl7.parse(text).segment("OBR")[2][0][0]) == "ALERT-42"


def test_escape_and_unescape_round_trip() -> None:
    d = er7.DEFAULT_DELIMITERS
    text = "a|b^c~d&e\\f\rg"
    assert er7.unescape(er7.escape(text, d), d) == text.replace("\r", "\n")
