"""MLLP framing (pure decoder) and the asyncio listener end to end with python-hl7's client."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import hl7
import pytest
from hl7.mllp import open_hl7_connection
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.hl7 import ack, ingest, mllp, pcd01
from devices.hl7.errors import UnknownPatient
from devices.hl7.mllp import FrameDecoder, FrameTooLarge, frame

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"

MESSAGE_A = b"MSH|^~\\&|A||||20090101||ORU^R01|1|P|2.6\rPID|||1\r"
MESSAGE_B = b"MSH|^~\\&|B||||20090101||ORU^R01|2|P|2.6\rPID|||2\r"


# --- the decoder -------------------------------------------------------------------------


def test_frame_wraps_in_start_and_end_blocks() -> None:
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_one_frame_in_one_read() -> None:
    assert FrameDecoder().feed(frame(MESSAGE_A)) == [MESSAGE_A]


def test_frame_split_at_every_position_including_between_end_block_bytes() -> None:
    stream = frame(MESSAGE_A)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == [MESSAGE_A], cut


def test_byte_by_byte_feeding() -> None:
    decoder = FrameDecoder()
    frames = [f for b in frame(MESSAGE_A) + frame(MESSAGE_B) for f in decoder.feed(bytes([b]))]
    assert frames == [MESSAGE_A, MESSAGE_B]


def test_several_frames_in_one_read() -> None:
    assert FrameDecoder().feed(frame(MESSAGE_A) + frame(MESSAGE_B) + frame(MESSAGE_A)) == [
        MESSAGE_A,
        MESSAGE_B,
        MESSAGE_A,
    ]


def test_garbage_between_frames_is_discarded_and_counted() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(b"junk" + frame(MESSAGE_A) + b"\r\n" + frame(MESSAGE_B) + b"tail")
    assert frames == [MESSAGE_A, MESSAGE_B]
    assert decoder.garbage_bytes == len(b"junk") + 2 + 4
    assert not decoder.in_frame


def test_start_block_inside_a_frame_resynchronises_on_it() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x0bMSH|cut short" + frame(MESSAGE_A)) == [MESSAGE_A]
    assert decoder.garbage_bytes == len(b"\x0bMSH|cut short")


def test_end_block_without_cr_is_not_an_end() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x0bMSH|x\x1cZ" + frame(MESSAGE_A)) == [MESSAGE_A]
    assert decoder.garbage_bytes == len(b"\x0bMSH|x\x1cZ")


def test_oversized_frame_is_dropped_reported_and_decoding_resumes() -> None:
    decoder = FrameDecoder(max_frame=100)
    big = MESSAGE_A + b"OBX|" + b"9" * 500 + b"\r"
    stream = frame(big) + frame(MESSAGE_B)
    events = [e for i in range(0, len(stream), 7) for e in decoder.feed_events(stream[i : i + 7])]
    assert len(events) == 2
    dropped, kept = events
    assert isinstance(dropped, FrameTooLarge)
    assert dropped.size == len(big)
    assert dropped.head.startswith(MESSAGE_A)  # enough to answer with its control id
    assert kept == MESSAGE_B
    assert decoder.oversized_frames == 1
    assert FrameDecoder(max_frame=100).feed(stream) == [MESSAGE_B]


def test_frame_of_exactly_max_size_is_kept() -> None:
    assert FrameDecoder(max_frame=len(MESSAGE_A)).feed(frame(MESSAGE_A)) == [MESSAGE_A]


payloads = st.lists(
    st.binary(max_size=200).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(payloads, st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
def test_any_chunking_of_a_stream_of_frames_yields_the_same_frames(messages, cuts) -> None:
    stream = b"".join(frame(m) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out = [f for a, b in zip(points, points[1:], strict=False) for f in decoder.feed(stream[a:b])]
    assert out == messages
    assert decoder.garbage_bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=10), st.integers(min_value=1, max_value=64))
def test_any_bytes_never_raise_and_a_clean_frame_afterwards_is_decoded(chunks, max_frame) -> None:
    decoder = FrameDecoder(max_frame=max_frame + len(MESSAGE_A))
    for chunk in chunks:
        for event in decoder.feed_events(chunk):
            assert isinstance(event, bytes | FrameTooLarge)
    # Whatever came before, a start block resynchronises (an unfinished frame is discarded).
    assert decoder.feed(frame(MESSAGE_A))[-1:] == [MESSAGE_A]


# --- the listener end to end ---------------------------------------------------------------

ORU_NAMES = [
    "hapi_pcd01_bp_withdrawn_datatype",
    "ipf_continua_bp_timesync",
    "ipf_continua_glucose",
    "ipf_continua_oximeter",
    "ipf_continua_scale_two_obr",
    "ipf_continua_thermometer_fahrenheit",
    "ipf_pcd01_bp_request",
    "ipf_pcd01_maximum_request_edgecases",
    "ipf_pcd01_multiparam_monitor_gateway",
    "pythonhl7_sample_oru_glucose_lab",
]


def with_control_id(raw: bytes, control_id: str) -> bytes:
    """The message with MSH-10 replaced, so each delivery is distinguishable."""
    first, sep, rest = raw.partition(b"\r")
    fields = first.split(b"|")
    fields[9] = control_id.encode()
    return b"|".join(fields) + sep + rest


class RecordingStore:
    """Storage stand-in: records control ids in arrival order, slowly and out of step."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.rng = random.Random(7)

    async def __call__(self, oru: pcd01.Oru) -> None:
        await asyncio.sleep(self.rng.random() / 200)
        if oru.control_id.endswith("-crash"):
            raise RuntimeError("storage failed")
        if oru.patient_identifiers[0].value == "UNKNOWN":
            raise UnknownPatient()
        self.stored.append(oru.control_id)


@pytest.fixture
async def listener():
    store = RecordingStore()
    server = await mllp.serve("127.0.0.1", 0, ingest.make_handler(store), max_frame=64 * 1024)
    try:
        yield server, store
    finally:
        await server.close()


async def python_hl7_client(port: int, messages: list[bytes]) -> list[hl7.Message]:
    """Send messages one by one over one connection with python-hl7's asyncio MLLP client."""
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="latin-1")
    try:
        replies = []
        for message in messages:
            writer.writeblock(message)
            await writer.drain()
            replies.append(hl7.parse((await reader.readblock()).decode("latin-1")))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


def msa(reply: hl7.Message) -> tuple[str, str]:
    segment = reply.segment("MSA")
    return str(segment[1]), str(segment[2])


async def test_concurrent_connections_get_their_own_acks_despite_bad_neighbours(listener) -> None:
    server, store = listener
    port = server.port
    connections = 5
    plans = []
    for c in range(connections):
        messages, expected = [], []
        for i, name in enumerate(ORU_NAMES):
            control_id = f"C{c}-{i}"
            messages.append(with_control_id((DATA / f"{name}.hl7").read_bytes(), control_id))
            expected.append(("AA", control_id))
        messages.append((DATA / "hl7apy_missing_msh9_edgecase.hl7").read_bytes())
        expected.append(("AR", "0123456789"))
        plans.append((messages, expected))

    async def disconnect_mid_frame() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0b" + (DATA / "ipf_pcd01_bp_request.hl7").read_bytes()[:80])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def send_garbage() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(bytes(range(256)) * 4 + b"\x1c\x0d\x0b\x0b\x1c")
        await writer.drain()
        writer.write_eof()
        data = await reader.read()
        writer.close()
        return data

    results = await asyncio.gather(
        *(python_hl7_client(port, messages) for messages, _ in plans),
        disconnect_mid_frame(),
        send_garbage(),
    )
    for (_, expected), replies in zip(plans, results[:connections], strict=True):
        assert [msa(r) for r in replies] == expected
    # The garbage sender got nothing back but an orderly close; nobody else noticed.
    assert results[-1] == b""
    # Each connection's messages were stored in the order it sent them.
    for c in range(connections):
        mine = [cid for cid in store.stored if cid.startswith(f"C{c}-")]
        assert mine == [f"C{c}-{i}" for i in range(len(ORU_NAMES))]


async def test_errors_are_acked_and_the_connection_keeps_serving(listener) -> None:
    server, _ = listener
    bp = (DATA / "ipf_pcd01_bp_request.hl7").read_bytes()
    oversized = with_control_id(bp, "BIG") + b"NTE|1||" + b"x" * (70 * 1024) + b"\r"
    messages = [
        bp.replace(b"|120|", b"|abc|"),
        with_control_id(bp, "X-crash"),
        bp.replace(b"789567^^^", b"UNKNOWN^^^"),
        oversized,
        b"not an HL7 message",
        with_control_id(bp, "AFTER"),
    ]
    replies = await python_hl7_client(server.port, messages)
    assert [msa(r) for r in replies] == [
        ("AE", "MSGID1234"),
        ("AE", "X-crash"),
        ("AE", "MSGID1234"),
        ("AR", "BIG"),
        ("AR", ""),
        ("AA", "AFTER"),
    ]
    codes = [str(r.segment("ERR")[3][0][0]) for r in replies[:5]]
    assert codes == ["102", "207", "204", "207", "100"]


async def test_gb18030_message_round_trips_over_mllp(listener) -> None:
    server, _ = listener
    text = (DATA / "ipf_pcd01_bp_request.hl7").read_text("ascii")
    text = text.replace("|NE|AL|||||IHE", "|NE|AL||GB 18030-2000|||IHE").replace(
        "Doe^John^Joseph", "欧阳^娜娜"
    )
    raw = text.encode("gb18030")
    assert pcd01.parse_bytes(raw).patient_name == pcd01.PersonName("欧阳", "娜娜", None)
    reply = await mllp.send("127.0.0.1", server.port, raw)
    parsed = ack.parse_ack(reply)
    assert (parsed.code, parsed.control_id) == ("AA", "MSGID1234")
    assert b"|GB 18030-2000" in reply


async def test_many_messages_on_one_connection_with_our_client(listener) -> None:
    server, store = listener
    bp = (DATA / "ipf_pcd01_bp_request.hl7").read_bytes()
    async with mllp.MllpClient("127.0.0.1", server.port) as client:
        for i in range(20):
            reply = ack.parse_ack(await client.send(with_control_id(bp, f"M{i}")))
            assert (reply.code, reply.control_id) == ("AA", f"M{i}")
    assert store.stored == [f"M{i}" for i in range(20)]


async def test_pipelined_messages_are_answered_in_order(listener) -> None:
    server, _ = listener
    bp = (DATA / "ipf_pcd01_bp_request.hl7").read_bytes()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"".join(frame(with_control_id(bp, f"P{i}")) for i in range(10)))
    await writer.drain()
    decoder, replies = FrameDecoder(), []
    while len(replies) < 10:
        replies += decoder.feed(await reader.read(65536))
    writer.close()
    assert [ack.parse_ack(r).control_id for r in replies] == [f"P{i}" for i in range(10)]
