"""Decoding inbound messages by MSH-18, and writing replies in the sender's character set."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.hl7 import ack, charset, pcd01
from devices.hl7.errors import ContentError

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
BP = (DATA / "ipf_pcd01_bp_request.hl7").read_text("ascii")


def with_charset_and_name(msh18: str, name: str) -> str:
    """The IPF BP request with MSH-18 set and PID-5 replaced (family^given)."""
    text = BP.replace("|NE|AL|||||IHE", f"|NE|AL||{msh18}|||IHE", 1)
    return text.replace("Doe^John^Joseph^^^^L^A", name, 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"MSH|^~\\&|A|B|C|D|20090101||ORU^R01|1|P|2.6||||||UNICODE UTF-8\rPID|", "UNICODE UTF-8"),
        (b"MSH|^~\\&|A|B|C|D|20090101||ORU^R01|1|P|2.6||||||8859/1~ISO IR87|EN\r", "8859/1"),
        (b"MSH#^~\\&#A#B#C#D#20090101##ORU^R01#1#P#2.6######GB 18030-2000\r", "GB 18030-2000"),
        (b"MSH|^~\\&|A|B|C|D|20090101||ORU^R01|1|P|2.6\rPID|", ""),
        (b"garbage", ""),
    ],
)
def test_msh18_is_found_at_the_byte_level(raw: bytes, expected: str) -> None:
    assert charset.declared_charset(raw) == expected


def test_gb18030_patient_name_round_trips_through_parse_and_ack() -> None:
    raw = with_charset_and_name("GB 18030-2000", "张^三丰").encode("gb18030")
    oru = pcd01.parse_bytes(raw)
    assert oru.charset == "GB 18030-2000"
    assert oru.patient_name == pcd01.PersonName("张", "三丰", None)

    header = ack.read_header(raw)
    reply = ack.build_ack(header)
    assert b"|GB 18030-2000" in reply
    assert charset.decode(reply).startswith("MSH|^~\\&|SG-RPM|")


def test_gb18030_name_whose_bytes_contain_delimiters_is_read_after_decoding() -> None:
    # "倈" is 0x82 0x7C ("|") and "俕" 0x82 0x5E ("^") in GB 18030: splitting the body before
    # decoding would break the name; only MSH is split at the byte level.
    assert "倈".encode("gb18030") == b"\x82|" and "俕".encode("gb18030") == b"\x82^"
    raw = with_charset_and_name("GB 18030-2000", "倈^俕").encode("gb18030")
    assert pcd01.parse_bytes(raw).patient_name == pcd01.PersonName("倈", "俕", None)


def test_utf8_declared_and_undeclared_are_read_as_utf8() -> None:
    for msh18 in ("UNICODE UTF-8", ""):
        raw = with_charset_and_name(msh18, "李^四").encode("utf-8")
        assert pcd01.parse_bytes(raw).patient_name == pcd01.PersonName("李", "四", None)


def test_latin1_reference_message_is_decoded_as_8859_1() -> None:
    raw = (DATA / "ipf_pcd01_maximum_request_edgecases.hl7").read_bytes()
    raw = raw.replace(b"Doe^John", "Müller^Jörg".encode("latin-1"))
    assert pcd01.parse_bytes(raw).patient_name == pcd01.PersonName("Müller", "Jörg", "Joseph")


def test_iso_ir87_japanese_name_is_decoded() -> None:
    raw = with_charset_and_name("ISO IR87", "山田^太郎").encode("iso2022_jp")
    assert pcd01.parse_bytes(raw).patient_name == pcd01.PersonName("山田", "太郎", None)


def test_iso_ir58_accepts_7bit_escapes_and_8bit_gb2312() -> None:
    seven_bit = charset.encode("MSH|张三|x", "ISO IR58")
    assert seven_bit == b"MSH|\x1b$AUEH}\x1b(B|x"
    assert max(seven_bit) < 0x80
    prefix = b"MSH|^~\\&|A|B|C|D|20090101||ORU^R01|1|P|2.6||||||ISO IR58\r"
    assert charset.decode(prefix + seven_bit).endswith("MSH|张三|x")
    assert charset.decode(prefix + "张三".encode("gb2312")).endswith("张三")


def test_unknown_charset_is_a_content_error_and_the_ack_falls_back_to_utf8() -> None:
    raw = with_charset_and_name("KLINGON", "Doe^John").encode("ascii")
    with pytest.raises(ContentError) as caught:
        pcd01.parse_bytes(raw)
    assert (caught.value.code, caught.value.segment, caught.value.field) == (103, "MSH", 18)
    reply = ack.error_ack(raw, caught.value).decode("utf-8")
    assert "KLINGON" not in reply.split("\r")[0]
    assert reply.split("\r")[1] == "MSA|AE|MSGID1234"


def test_bytes_invalid_for_the_declared_charset_are_a_content_error() -> None:
    raw = with_charset_and_name("UNICODE UTF-8", "Doe^John").encode("ascii") + b"\xff\xfe"
    with pytest.raises(ContentError) as caught:
        pcd01.parse_bytes(raw)
    assert (caught.value.code, caught.value.field) == (102, 18)


def test_reply_characters_the_charset_cannot_hold_are_replaced_not_fatal() -> None:
    assert charset.encode("MSH|张", "ASCII") == b"MSH|?"
    assert charset.encode("MSH|张", "NOT A CHARSET") == "MSH|张".encode()
