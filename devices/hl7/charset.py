"""Decode inbound HL7 bytes by the character set the message declares in MSH-18.

MSH-18 sits inside the bytes we are trying to decode, so it is found at the byte level: the
first segment is split on its own field separator before anything is decoded. That works for
every single-byte and ASCII-compatible multi-byte set we accept, as long as MSH-3..17 hold only
ASCII (they do in practice: application names, ids, codes).

An empty MSH-18 means ASCII by the standard; we read it as UTF-8, ASCII's superset, because many
Chinese senders send UTF-8 without declaring it and refusing them helps nobody.
"""

from __future__ import annotations

import re

from devices.hl7.errors import DATA_TYPE_ERROR, TABLE_VALUE_NOT_FOUND, ContentError

# HL7 table 0211 value -> Python codec. "iso-ir-58" is handled below (no Python codec).
_CODECS: dict[str, str] = {
    "": "utf-8",
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "ISO IR87": "iso2022_jp",
    "ISO IR58": "iso-ir-58",
}

_ISO_IR58 = "iso-ir-58"
# ISO 2022 designations seen with GB 2312: ESC $ A / ESC $ ) A switch to GB 2312, ESC ( B back.
_ISO2022_SWITCH = re.compile(rb"(\x1b\$\)?A|\x1b\(B|\x1b\(J)")


def codec_for(charset: str) -> str:
    """Python codec for an MSH-18 value; ContentError (table value not found) if unknown."""
    key = " ".join(charset.split()).upper()
    try:
        return _CODECS[key]
    except KeyError:
        raise ContentError(
            TABLE_VALUE_NOT_FOUND, f"Unsupported character set {charset!r}", "MSH", 18
        ) from None


def declared_charset(raw: bytes) -> str:
    """MSH-18 (first repetition) read from the raw bytes, '' when absent or unreadable."""
    start = raw.find(b"MSH")
    if start < 0 or len(raw) < start + 8:
        return ""
    cut = [i for i in (raw.find(b"\r", start), raw.find(b"\n", start)) if i >= 0]
    segment = raw[start : min(cut)] if cut else raw[start:]
    sep = segment[3:4]
    if not sep or sep.isalnum() or sep.isspace():
        return ""
    parts = segment.split(sep)
    if len(parts) < 18:
        return ""
    repetition = parts[1][1:2] or b"~"
    value = parts[17].split(repetition, 1)[0]
    return value.decode("latin-1").strip()


def decode(raw: bytes) -> str:
    """Decode a whole message by its MSH-18; ContentError if the set is unknown or bytes invalid."""
    charset = declared_charset(raw)
    codec = codec_for(charset)
    try:
        if codec == _ISO_IR58:
            return _decode_iso_ir58(raw)
        return raw.decode(codec)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContentError(
            DATA_TYPE_ERROR, f"Bytes are not valid {charset or 'UTF-8'}: {exc}", "MSH", 18
        ) from None


def encode(text: str, charset: str) -> bytes:
    """Encode outbound text (an ACK) in the sender's charset; unknown sets fall back to UTF-8.

    Characters the set cannot hold become '?', because an ACK must always go out.
    """
    try:
        codec = codec_for(charset)
    except ContentError:
        codec = "utf-8"
    if codec == _ISO_IR58:
        return _encode_iso_ir58(text)
    return text.encode(codec, errors="replace")


def _decode_iso_ir58(raw: bytes) -> str:
    """GB 2312 either as EUC-CN (8-bit) or 7-bit between ISO 2022 escape sequences."""
    out: list[str] = []
    in_gb = False
    for part in _ISO2022_SWITCH.split(raw):
        if _ISO2022_SWITCH.fullmatch(part):
            in_gb = part.startswith(b"\x1b$")
            continue
        if in_gb:
            part = bytes(
                b | 0x80 if b > 0x20 else b
                for b in part.replace(b"\x0e", b"").replace(b"\x0f", b"")
            )
        out.append(part.decode("gb2312"))
    return "".join(out)


def _encode_iso_ir58(text: str) -> bytes:
    """7-bit ISO 2022 form: GB 2312 runs framed by ESC $ A ... ESC ( B; others become '?'."""
    out = bytearray()
    run = bytearray()

    def flush() -> None:
        if run:
            out.extend(b"\x1b$A" + bytes(b & 0x7F for b in run) + b"\x1b(B")
            run.clear()

    for ch in text:
        if ch.isascii():
            flush()
            out += ch.encode("ascii")
            continue
        try:
            run.extend(ch.encode("gb2312"))
        except UnicodeEncodeError:
            flush()
            out += b"?"
    flush()
    return bytes(out)
