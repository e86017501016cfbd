"""The listener's ER7 splitter against hl7apy, the reference parser named in DESIGN.md.

`er7.split_segments` replaced hl7apy on the hot path for speed (docs/scaling.md); these tests
hold it to hl7apy's reading of the same text: every reference message and generated ones give
the same segment ids and, in every field PCD-01 reads, the same texts repetition by repetition.
Other fields are left out because hl7apy re-writes them by their typed definition (an XTN in
PID-13 moves its number to component 18), which says nothing about splitting.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.hl7 import charset, er7, pcd01
from devices.hl7.errors import SEGMENT_SEQUENCE_ERROR, UNSUPPORTED_VERSION_ID

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
DEFAULT = er7.DEFAULT_DELIMITERS


# The fields devices/hl7/pcd01.py reads, per segment.
READ = {
    "MSH": {3, 4, 5, 6, 7, 9, 10, 12, 15, 16, 18},
    "PID": {3, 5},
    "OBR": {7},
    "OBX": {1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 18},
}


def _hl7apy_fields(text: str) -> list[tuple[str, dict[int, list[str]]]]:
    """(segment id, {position: [repetition texts]}) as hl7apy reads them; MSH-1/2 left out."""
    message = parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    result = []
    for segment in message.children:
        fields: dict[int, list[str]] = {}
        for field in segment.children:
            position = int(str(field.name).rsplit("_", 1)[1])
            text = _trim(field.to_er7(), DEFAULT)
            if position in READ.get(str(segment.name), ()) and text:
                fields.setdefault(position, []).append(text)
        result.append((str(segment.name), fields))
    return result


def _ours(text: str) -> list[tuple[str, dict[int, list[str]]]]:
    d = er7.read_header_text(text).delimiters
    result = []
    for segment in er7.split_segments(text, d):
        fields = {}
        for n, reps in enumerate(segment.fields):
            # hl7apy drops empty repetitions and trailing empty components when it re-writes.
            texts = [t for t in (_trim(r, d) for r in reps) if t]
            if n in READ.get(segment.name, ()) and texts:
                fields[n] = texts
        result.append((segment.name, fields))
    return result


def _trim(raw: str, d: er7.Delimiters) -> str:
    """Drop what pcd01 ignores anyway: surrounding blanks and trailing empty parts."""
    components = [
        d.subcomponent.join(s.strip() for s in c.split(d.subcomponent)).rstrip(d.subcomponent)
        for c in raw.split(d.component)
    ]
    return d.component.join(components).rstrip(d.component)


def _normalised(name: str) -> str:
    return er7.normalise_segments(charset.decode((DATA / name).read_bytes()))


REFERENCE_MESSAGES = sorted(
    p.name for p in DATA.glob("*.hl7") if er7.read_header_text(_normalised(p.name)) is not None
)


@pytest.mark.parametrize("name", REFERENCE_MESSAGES)
def test_reference_message_splits_as_hl7apy_reads_it(name: str) -> None:
    text = _normalised(name)
    assert _ours(text) == _hl7apy_fields(text)


def test_there_are_reference_messages_to_compare() -> None:
    assert len(REFERENCE_MESSAGES) >= 10


# Letters only: hl7apy re-writes numbers by type ("00" in an SI field becomes "0").
_TEXT = st.text(alphabet="ABCxyz _:", max_size=8)
_COMPONENT = st.lists(_TEXT, min_size=1, max_size=3).map("&".join)
_REPETITION = st.lists(_COMPONENT, min_size=1, max_size=3).map("^".join)
_FIELD = st.lists(_REPETITION, min_size=1, max_size=3).map("~".join)
_SEGMENT = st.tuples(
    st.sampled_from(["PID", "OBR", "OBX", "NTE"]), st.lists(_FIELD, max_size=8)
).map(lambda s: "|".join([s[0], *s[1]]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_SEGMENT, min_size=1, max_size=6))
def test_generated_messages_split_as_hl7apy_reads_them(segments: list[str]) -> None:
    text = "\r".join(["MSH|^~\\&|A|B|C|D|20260301||ORU^R01|1|P|2.6", *segments])
    assert _ours(text) == _hl7apy_fields(text)


@pytest.mark.parametrize("bad", ["PIDX|||1", "P1|||1", "1ID|||1", "|||1", "P\x00D|1"])
def test_a_segment_without_a_three_character_id_is_a_content_error(bad: str) -> None:
    text = "\r".join(["MSH|^~\\&|A|B|||20260301||ORU^R01|1|P|2.6", bad, "OBR|1"])
    with pytest.raises(pcd01.ContentError) as caught:
        pcd01.parse(text)
    assert caught.value.code == SEGMENT_SEQUENCE_ERROR
    assert "segment 2" in str(caught.value)


@pytest.mark.parametrize("version", ["2.9", "3.0", "2.5.2", "abc"])
def test_a_version_hl7apy_does_not_define_is_rejected(version: str) -> None:
    text = f"MSH|^~\\&|A|B|||20260301||ORU^R01|1|P|{version}\rPID|||1\rOBR|1"
    with pytest.raises(pcd01.UnsupportedMessage) as caught:
        pcd01.parse(text)
    assert caught.value.code == UNSUPPORTED_VERSION_ID


def test_the_supported_versions_are_the_ones_hl7apy_ships() -> None:
    from hl7apy import SUPPORTED_LIBRARIES

    assert frozenset(SUPPORTED_LIBRARIES) == er7.SUPPORTED_VERSIONS


def test_custom_delimiters_split_by_what_msh_declares() -> None:
    text = "MSH#*@!%#A#B#####ORU*R01#7#P#2.6\rPID###1@2*X!S!*AUTH%OID"
    d = er7.read_header_text(text).delimiters
    pid = er7.split_segments(text, d)[1]
    assert pid.fields[3] == ("1", "2*X!S!*AUTH%OID")
    assert er7.unescape("X!S!", d) == "X*"
