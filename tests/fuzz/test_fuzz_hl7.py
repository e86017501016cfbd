"""MLLP framing and PCD-01 parsing of whatever a hospital network sends: frames or Hl7Error only."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from devices.hl7 import pcd01
from devices.hl7.errors import Hl7Error
from devices.hl7.mllp import END_BLOCK, START_BLOCK, FrameDecoder, FrameTooLarge, frame
from tests.fuzz.budget import fuzz_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
SAMPLES = [p.read_bytes() for p in sorted(DATA.glob("*.hl7"))]
FIELD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
SB, EB = bytes([START_BLOCK]), bytes([END_BLOCK])
MARKERS = st.sampled_from([SB, EB, b"\r", b"\x1c\r", b"|", b"^", b"~", b"\\&"])


def mutated(sample: bytes) -> st.SearchStrategy[bytes]:
    """A real message with one field replaced, or cut short, or with bytes spliced in."""
    fields = sample.split(b"|")
    return st.one_of(
        st.tuples(st.integers(0, len(fields) - 1), FIELD).map(
            lambda t: b"|".join(f if i != t[0] else t[1].encode() for i, f in enumerate(fields))
        ),
        st.integers(0, len(sample)).map(lambda n: sample[:n]),
        st.tuples(st.integers(0, len(sample)), st.binary(max_size=8)).map(
            lambda t: sample[: t[0]] + t[1] + sample[t[0] :]
        ),
    )


MESSAGES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(SAMPLES).flatmap(mutated),
    st.lists(st.one_of(MARKERS, FIELD.map(str.encode)), max_size=30).map(
        lambda parts: b"MSH|^~\\&|" + b"".join(parts)
    ),
)


@fuzz_settings(400)
@given(raw=MESSAGES)
def test_any_message_parses_or_raises_hl7_error(raw: bytes) -> None:
    try:
        oru = pcd01.parse_bytes(raw)
    except Hl7Error:
        return
    assert isinstance(oru, pcd01.Oru)


def shape(event: bytes | FrameTooLarge) -> bytes | int:
    return event.size if isinstance(event, FrameTooLarge) else event


STREAM = st.lists(
    st.one_of(st.binary(max_size=40), MARKERS, st.sampled_from(SAMPLES).map(frame)), max_size=20
)


@fuzz_settings(400)
@given(chunks=STREAM, max_frame=st.integers(1, 400), cuts=st.lists(st.integers(0, 2000)))
def test_frame_decoder_gives_the_same_frames_however_the_stream_is_cut(
    chunks: list[bytes], max_frame: int, cuts: list[int]
) -> None:
    stream = b"".join(chunks)
    whole = FrameDecoder(max_frame).feed_events(stream)
    pieces, at = [], 0
    for cut in sorted({c % (len(stream) + 1) for c in cuts}):
        pieces.append(stream[at:cut])
        at = cut
    pieces.append(stream[at:])
    decoder = FrameDecoder(max_frame)
    split = [e for piece in pieces for e in decoder.feed_events(piece)]
    # The heads of oversized frames may differ by cut (test_regressions.py guards that bug).
    assert [shape(e) for e in split] == [shape(e) for e in whole]
    for event in whole:
        assert isinstance(event, FrameTooLarge) or (len(event) <= max_frame and SB not in event)


@fuzz_settings(200)
@given(messages=st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=4))
def test_framed_messages_come_back_whole(messages: list[bytes]) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"".join(frame(m) for m in messages)) == messages
