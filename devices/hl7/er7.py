"""ER7 ("pipe and hat") encoding rules: delimiters, escapes, segmentation and an MSH reader.

The MSH reader must answer even messages that cannot be parsed (an ACK needs MSH-3..6, MSH-10,
MSH-15/16 and MSH-18), and the charset must be known before the bytes can be decoded at all.

`split_segments` is the listener's parser: ER7 is three nested splits (segment, field,
repetition) and PCD-01 reads raw field texts, so it is done here in a few microseconds per
segment. hl7apy builds a typed tree per message (20-50 ms for ten OBX), which alone would hold
the listener to a few dozen messages a second; it stays the reference the splitter is tested
against (tests/devices/test_hl7_er7.py compares the two on every reference message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEGMENT_SEPARATOR = "\r"
# The HL7 v2 versions whose ORU^R01 we read: those hl7apy ships definitions for.
SUPPORTED_VERSIONS = frozenset(
    {"2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2"}
)
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The five delimiters a message declares in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it must be written."""
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_DELIMITERS = Delimiters()


def delimiters_from_msh(segment: str) -> Delimiters | None:
    """Read the delimiters from an MSH segment, or None if they are unusable.

    Unusable means: missing, repeated, alphanumeric or whitespace; any of these makes every
    later field position meaningless, so the message cannot be read at all.
    """
    if len(segment) < 8 or not segment.startswith("MSH"):
        return None
    field = segment[3]
    end = segment.find(field, 4)
    encoding = segment[4:] if end < 0 else segment[4:end]
    if len(encoding) not in (4, 5):  # 5 when v2.7's truncation character is present
        return None
    chars = field + encoding[:4]
    if len(set(chars)) != 5 or any(c.isalnum() or c.isspace() for c in chars):
        return None
    return Delimiters(field, encoding[0], encoding[1], encoding[2], encoding[3])


_ESCAPE_BODY = re.compile(r"[FSTRE]|X[0-9A-Fa-f]*|\.br|[HN]|C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{4,6}")


def unescape(value: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Resolve \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, hex data and \\.br\\; leave anything else literally.

    Highlighting and character-set switches carry no meaning we store, so they are removed.
    """
    esc = d.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = value.find(esc, i + 1)
        body = value[i + 1 : end] if end > i else ""
        if end < 0 or not _ESCAPE_BODY.fullmatch(body):
            out.append(ch)
            i += 1
            continue
        head = body[0]
        if head == "F":
            out.append(d.field)
        elif head == "S":
            out.append(d.component)
        elif head == "T":
            out.append(d.subcomponent)
        elif head == "R":
            out.append(d.repetition)
        elif head == "E":
            out.append(esc)
        elif head == "X":
            hex_digits = body[1:]
            if len(hex_digits) % 2:
                out.append(value[i : end + 1])
            else:
                out.append(bytes.fromhex(hex_digits).decode("latin-1"))
        elif body == ".br":
            out.append("\n")
        # H, N, C and M escapes are dropped on purpose.
        i = end + 1
    return "".join(out)


def escape(value: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Escape text so it can be written into one ER7 component."""
    esc = d.escape
    table = {
        esc: f"{esc}E{esc}",
        d.field: f"{esc}F{esc}",
        d.component: f"{esc}S{esc}",
        d.subcomponent: f"{esc}T{esc}",
        d.repetition: f"{esc}R{esc}",
        "\r": f"{esc}.br{esc}",
        "\n": f"{esc}.br{esc}",
    }
    return "".join(table.get(c, c) for c in value)


def normalise_segments(text: str) -> str:
    """Return the message with CR-only segment ends and no surrounding blank lines.

    Senders that write LF or CRLF (files, some gateways) are common; hl7apy only splits on CR.
    """
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.strip("\r\n\t \x00")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The MSH segment as raw (still escaped) field texts: ``fields[n]`` is MSH-n."""

    delimiters: Delimiters
    fields: tuple[str, ...]

    def raw(self, n: int) -> str:
        """MSH-n as written (first repetition), or ''."""
        if n >= len(self.fields):
            return ""
        value = self.fields[n]
        if n > 2:
            value = value.split(self.delimiters.repetition, 1)[0]
        return value

    def component(self, n: int, c: int = 1) -> str:
        """Unescaped component c of MSH-n, or ''."""
        parts = self.raw(n).split(self.delimiters.component)
        return unescape(parts[c - 1], self.delimiters).strip() if c <= len(parts) else ""

    @property
    def control_id(self) -> str:
        return self.component(10)

    @property
    def message_type(self) -> str:
        return self.component(9, 1)

    @property
    def trigger_event(self) -> str:
        return self.component(9, 2)

    @property
    def version(self) -> str:
        return self.component(12)

    @property
    def accept_ack_type(self) -> str:
        return self.component(15)

    @property
    def application_ack_type(self) -> str:
        return self.component(16)

    @property
    def charset(self) -> str:
        return self.component(18)


def read_header_text(text: str) -> MessageHeader | None:
    """Read MSH from decoded message text; None when there is no usable MSH."""
    text = text.lstrip("\r\n\t \x00")
    end = min((i for i in (text.find("\r"), text.find("\n")) if i >= 0), default=len(text))
    segment = text[:end]
    d = delimiters_from_msh(segment)
    if d is None:
        return None
    parts = segment.split(d.field)
    return MessageHeader(d, ("MSH", d.field, *parts[1:]))


@dataclass(frozen=True, slots=True)
class RawSegment:
    """One segment as written: ``fields[n]`` holds the repetitions of field n, still escaped.

    ``fields[0]`` is the segment id; for MSH, ``fields[1]`` is the field separator and
    ``fields[2]`` the encoding characters, so every index is the field's HL7 position.
    """

    name: str
    fields: tuple[tuple[str, ...], ...]


class SegmentError(ValueError):
    """A segment whose id is not three letters or digits: nothing after it can be trusted."""


def split_segments(text: str, d: Delimiters) -> list[RawSegment]:
    """Split normalised message text (CR segment ends, MSH first) into raw segments.

    Blank segments are skipped; a segment id that is not ``[A-Z][A-Z0-9]{2}`` (any case)
    raises SegmentError, because a shifted id shifts every field position after it.
    """
    result: list[RawSegment] = []
    for number, line in enumerate((s for s in text.split(SEGMENT_SEPARATOR) if s.strip()), 1):
        parts = line.split(d.field)
        name = parts[0].strip().upper()
        if not _SEGMENT_ID.fullmatch(name):
            raise SegmentError(f"segment {number} has no valid segment id: {parts[0][:10]!r}")
        if name == "MSH":
            fields = [(name,), (d.field,), (parts[1] if len(parts) > 1 else "",)]
            fields += [tuple(p.split(d.repetition)) for p in parts[2:]]
        else:
            fields = [(name,)] + [tuple(p.split(d.repetition)) for p in parts[1:]]
        result.append(RawSegment(name, tuple(fields)))
    return result
