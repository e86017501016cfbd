"""Malformed and hostile payloads: only a Measurement or a DecodeError, never anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.gatt import (
    DECODERS,
    KNOWN_CHARACTERISTICS,
    characteristic_for,
    decode,
    decode_all,
    encode,
)
from devices.gatt.errors import (
    CrcMismatch,
    DecodeError,
    InvalidFlags,
    InvalidValue,
    TrailingBytes,
    TruncatedPayload,
    UnknownCharacteristic,
)
from devices.gatt.measurement import Measurement
from devices.gatt.racp import decode_racp_response

from .test_gatt_strategies import ALL_KINDS

FULL = {
    # One payload per characteristic with every optional field present (built by the encoders
    # from the vectors of test_gatt_vectors.py).
    0x2A35: bytes.fromhex("1e8a0058000c10e8070301081e000610010400"),
    0x2A36: bytes.fromhex("1f8e00ff07ff07e8070301081e000610010400"),
    0x2A37: bytes.fromhex("1e482c0140030004"),
    0x2A1C: bytes.fromhex("066e0100ffe8070301081e0006"),
    0x2A5E: bytes.fromhex("1f61003d00e8070301081e00800020000019f0"),
    0x2A5F: bytes.fromhex("1f6200480061004a0000084900800020000019f0"),
    0x2A18: bytes.fromhex("1b0100e8070301081e00e2ff37b0120100"),
    0x2A34: bytes.fromhex("7f01000105e001510807320101c041f0"),
    0x2A9D: bytes.fromhex("0e8638e8070301081e00fff100c506"),
    0x2AA7: bytes.fromhex("0fe3d2e405000214ff02f0e5f38e3f"),
    0x2A19: b"\x55",
    0x2A23: bytes.fromhex("12efcdabfe563412"),
}


@pytest.mark.parametrize("uuid", sorted(FULL))
def test_full_payloads_decode(uuid):
    assert isinstance(decode(uuid, FULL[uuid]), Measurement)


@pytest.mark.parametrize("uuid", sorted(set(FULL) - {0x2A37}))
def test_every_truncation_is_a_truncated_payload(uuid):
    data = FULL[uuid]
    for n in range(len(data)):
        with pytest.raises(TruncatedPayload):
            decode(uuid, data[:n])


def test_heart_rate_truncations_are_refused_or_a_shorter_rr_list():
    data = FULL[0x2A37]
    for n in range(len(data)):
        try:
            m = decode(0x2A37, data[:n])
        except TruncatedPayload:
            continue
        assert len(m.components) < 4  # an even cut inside the RR list is a shorter valid list


@pytest.mark.parametrize("uuid", sorted(set(FULL) - {0x2A37}))
def test_a_trailing_byte_is_refused(uuid):
    with pytest.raises(TrailingBytes):
        decode(uuid, FULL[uuid] + b"\x00")


@pytest.mark.parametrize(
    ("uuid", "flags"),
    [
        (0x2A35, 0x20),
        (0x2A36, 0x80),
        (0x2A37, 0x20),
        (0x2A1C, 0x08),
        (0x2A5E, 0x20),
        (0x2A5F, 0x40),
        (0x2A18, 0x20),
        (0x2A9D, 0x10),
    ],
)
def test_reserved_flag_bits_are_refused(uuid, flags):
    data = bytearray(FULL[uuid])
    data[0] |= flags
    with pytest.raises(InvalidFlags):
        decode(uuid, bytes(data))


def test_inconsistent_flags_are_refused():
    with pytest.raises(InvalidFlags):  # glucose: mol/L unit without a concentration
        decode(0x2A18, bytes.fromhex("040100e8070301081e00"))
    with pytest.raises(InvalidFlags):  # CGM: size 7 fits no flag combination
        decode(0x2AA7, bytes.fromhex("07000c10060000"))
    with pytest.raises(InvalidFlags):  # CGM reserved flag bit 2
        decode(0x2AA7, bytes.fromhex("06040c100600"))


def test_crc_mismatch_is_refused():
    data = bytearray(FULL[0x2AA7])
    data[2] ^= 0x01
    with pytest.raises(CrcMismatch):
        decode(0x2AA7, bytes(data))


@pytest.mark.parametrize(
    "stamp",
    [
        "e8070d01000000",  # month 13
        "e8070431000000",  # 31 April
        "e8070301180000",  # hour 24
        "e807030100003c",  # second 60
        "01000101000000",  # year 1
    ],
)
def test_impossible_dates_are_invalid_values(stamp):
    with pytest.raises(InvalidValue):
        decode(0x2A1C, bytes.fromhex("026e0100ff") + bytes.fromhex(stamp))


def test_unknown_date_fields_give_no_time_and_a_flag():
    m = decode(0x2A1C, bytes.fromhex("026e0100ff") + bytes.fromhex("00000301081e00"))
    assert m.time is None and "time_unknown" in m.flags
    with pytest.raises(InvalidValue):  # unknown year does not excuse month 13
        decode(0x2A1C, bytes.fromhex("026e0100ff") + bytes.fromhex("00000d01000000"))


@pytest.mark.parametrize(
    "characteristic",
    [0x2A00, 0x10000, -1, "2a", "zz", "0000ffff-0000-1000-8000-00805f9b34fc", "", "0x"],
)
def test_unknown_characteristics_are_refused(characteristic):
    with pytest.raises(UnknownCharacteristic):
        decode(characteristic, b"\x00\x00")


def test_out_of_range_values_are_refused():
    for uuid, data in [
        (0x2A19, b"\x65"),  # battery 101 %
        (0x2A29, b"\xff\xfe"),  # not UTF-8
        (0x2A1C, bytes.fromhex("046e0100ff0a")),  # temperature type 10
        (0x2A18, bytes.fromhex("020100e8070301081e0037b000")),  # glucose type 0
    ]:
        with pytest.raises(InvalidValue):
            decode(uuid, data)


@pytest.mark.parametrize("uuid", sorted(KNOWN_CHARACTERISTICS))
def test_any_bytes_give_a_measurement_or_a_decode_error(uuid):
    decoder = DECODERS[uuid]

    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=40))
    def check(data):
        try:
            result = decoder(data)  # the module function itself, without any safety net
        except DecodeError as exc:
            assert exc.characteristic == uuid
        else:
            assert isinstance(result, Measurement)

    check()


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(KNOWN_CHARACTERISTICS | {0x2A52, 0x2AAA})), st.binary(max_size=64))
def test_decode_over_all_uuids_gives_a_measurement_or_a_decode_error(uuid, data):
    for call in (decode, decode_all):
        with contextlib.suppress(DecodeError):
            call(uuid, data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(ALL_KINDS)).flatmap(lambda k: ALL_KINDS[k]), st.data())
def test_mutated_valid_payloads_never_escape_the_error_tree(m, data):

    payload = bytearray(encode(m))
    if payload:
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(DecodeError):
        decode(characteristic_for(m), bytes(payload))


@given(st.binary(max_size=8))
def test_racp_responses_never_escape_the_error_tree(data):
    with contextlib.suppress(DecodeError):
        decode_racp_response(data)
