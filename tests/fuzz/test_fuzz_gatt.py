"""Any bytes from a Bluetooth monitor decode to Measurements or raise DecodeError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.gatt import KNOWN_CHARACTERISTICS, decode, decode_all
from devices.gatt.errors import DecodeError
from devices.gatt.measurement import Measurement
from tests.fuzz.budget import fuzz_settings

CHARACTERISTICS = st.sampled_from(sorted(KNOWN_CHARACTERISTICS))
# Flags bytes with every combination of optional fields, then anything: reaches the field parsers
# far more often than uniform bytes, which mostly fail the length guard.
PAYLOADS = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(lambda t: bytes([t[0]]) + t[1]),
)


@pytest.mark.parametrize("whole", [False, True], ids=["decode", "decode_all"])
@fuzz_settings(400)
@given(characteristic=CHARACTERISTICS, payload=PAYLOADS)
def test_any_payload_decodes_or_raises_decode_error(
    whole: bool, characteristic: int, payload: bytes
) -> None:
    try:
        result = (
            decode_all(characteristic, payload) if whole else (decode(characteristic, payload),)
        )
    except DecodeError:
        return
    assert all(isinstance(m, Measurement) for m in result)


@fuzz_settings(100)
@given(characteristic=st.integers(0, 0xFFFF), payload=st.binary(max_size=16))
def test_an_unknown_characteristic_is_a_decode_error(characteristic: int, payload: bytes) -> None:
    try:
        decode(characteristic, payload)
    except DecodeError:
        return
    assert characteristic in KNOWN_CHARACTERISTICS
