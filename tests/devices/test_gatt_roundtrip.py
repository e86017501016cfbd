"""Encoder → decoder round trips for every kind and flag combination, and SFLOAT/FLOAT maths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.gatt import characteristic_for, decode, encode
from devices.gatt.errors import EncodeError
from devices.gatt.sfloat import decode_float, decode_sfloat, encode_float, encode_sfloat

from .test_gatt_strategies import ALL_KINDS


@pytest.mark.parametrize("kind", sorted(ALL_KINDS))
def test_every_kind_survives_encode_then_decode(kind):
    @settings(max_examples=300, deadline=None)
    @given(ALL_KINDS[kind])
    def check(m):
        assert decode(characteristic_for(m), encode(m)) == m

    check()


@given(st.integers(0, 0xFFFF))
def test_sfloat_word_round_trips_through_its_value(raw):
    value, special = decode_sfloat(raw)
    assert decode_sfloat(encode_sfloat(value, special)) == (value, special)


@given(st.integers(0, 0xFFFFFFFF))
def test_float_word_round_trips_through_its_value(raw):
    value, special = decode_float(raw)
    assert decode_float(encode_float(value, special)) == (value, special)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0x0078, (120.0, None)),  # 120e0 stays exactly 120.0
        (0xF16E, (36.6, None)),  # 366e-1 reads 36.6, not 36.600000000000001
        (0xE4D2, (12.34, None)),
        (0x1001, (10.0, None)),
        (0x0FFF, (-1.0, None)),
        (0x07FF, (None, "NaN")),
        (0x0800, (None, "NRes")),
        (0x07FE, (None, "+INF")),
        (0x0802, (None, "-INF")),
        (0x0801, (None, "reserved")),
    ],
)
def test_sfloat_values_and_specials(raw, expected):
    assert decode_sfloat(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0xFF00016E, (36.6, None)),
        (0x00000078, (120.0, None)),
        (0x007FFFFF, (None, "NaN")),
        (0x00800000, (None, "NRes")),
        (0x007FFFFE, (None, "+INF")),
        (0x00800002, (None, "-INF")),
        (0x00800001, (None, "reserved")),
    ],
)
def test_float_values_and_specials(raw, expected):
    assert decode_float(raw) == expected


@pytest.mark.parametrize("value", [2047.0, 0.123456789, 1e20, float("nan")])
def test_unrepresentable_sfloat_values_are_refused_by_the_encoder(value):
    with pytest.raises(EncodeError):
        encode_sfloat(value)
