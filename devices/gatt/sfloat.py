"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) medical number formats.

Why: every Bluetooth health measurement carries its values in these formats (IEEE 11073-20601
§F.6 "FLOAT-Type"/"SFLOAT-Type", referenced by the Bluetooth GATT Specification Supplement,
"medfloat16"/"medfloat32"). A value is ``mantissa * 10**exponent``:

- SFLOAT: 4-bit signed exponent (high nibble), 12-bit signed mantissa (two's complement).
  Specials: 0x07FF NaN, 0x0800 NRes (not at this resolution), 0x07FE +INF, 0x0802 -INF,
  0x0801 reserved.
- FLOAT: 8-bit signed exponent (high octet), 24-bit signed mantissa.
  Specials: 0x007FFFFF NaN, 0x00800000 NRes, 0x007FFFFE +INF, 0x00800002 -INF,
  0x00800001 reserved.

Special values stay special: decoders return ``(None, "NaN")``, never a number. Decoded values
are the double nearest to the exact decimal ``m * 10**e`` (``m / 10**-e`` is correctly rounded
while ``10**-e`` is exact, and Decimal beyond), so 120.0 stays 120.0 and 36.6 reads 36.6.
Encoders take that double back to the shortest decimal (``repr``) and so round-trip exactly.
"""

from __future__ import annotations

from decimal import Decimal

from devices.gatt.errors import EncodeError
from devices.gatt.measurement import Component

SFLOAT_SPECIALS: dict[int, str] = {
    0x07FF: "NaN",
    0x0800: "NRes",
    0x07FE: "+INF",
    0x0802: "-INF",
    0x0801: "reserved",
}
FLOAT_SPECIALS: dict[int, str] = {
    0x007FFFFF: "NaN",
    0x00800000: "NRes",
    0x007FFFFE: "+INF",
    0x00800002: "-INF",
    0x00800001: "reserved",
}
_SFLOAT_RAW_OF = {name: raw for raw, name in SFLOAT_SPECIALS.items()}
_FLOAT_RAW_OF = {name: raw for raw, name in FLOAT_SPECIALS.items()}

# Powers of ten that are exact doubles (10**22 is the largest).
_EXACT_POW10 = tuple(10.0**k for k in range(23))


def scale(mantissa: int, exponent: int) -> float:
    """``mantissa * 10**exponent`` as the nearest double."""
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    if exponent >= -22:
        return mantissa / _EXACT_POW10[-exponent]
    return float(Decimal(mantissa).scaleb(exponent))


def decode_sfloat(raw: int) -> tuple[float | None, str | None]:
    """Decode a 16-bit SFLOAT word to ``(value, special)``."""
    special = SFLOAT_SPECIALS.get(raw)
    if special is not None:
        return None, special
    mantissa = raw & 0x0FFF
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 8:
        exponent -= 16
    return scale(mantissa, exponent), None


def decode_float(raw: int) -> tuple[float | None, str | None]:
    """Decode a 32-bit FLOAT word to ``(value, special)``."""
    special = FLOAT_SPECIALS.get(raw)
    if special is not None:
        return None, special
    mantissa = raw & 0x00FFFFFF
    if mantissa >= 0x00800000:
        mantissa -= 0x01000000
    exponent = raw >> 24
    if exponent >= 128:
        exponent -= 256
    return scale(mantissa, exponent), None


def _decimal_parts(value: float) -> tuple[int, int]:
    """Shortest decimal ``(mantissa, exponent)`` of a finite double, trailing zeros stripped."""
    if value != value or value in (float("inf"), float("-inf")):
        raise EncodeError(f"{value!r} is not finite; use a special value instead")
    d = Decimal(repr(float(value)))
    if d == 0:
        return 0, 0
    sign, digits, exponent = d.normalize().as_tuple()
    mantissa = int("".join(map(str, digits)))
    assert isinstance(exponent, int)
    return (-mantissa if sign else mantissa), exponent


def _fit(value: float, m_bits: int, e_bits: int, specials: dict[int, str]) -> int:
    mantissa, exponent = _decimal_parts(value)
    max_e = (1 << (e_bits - 1)) - 1
    while exponent > max_e:
        mantissa *= 10
        exponent -= 1
    lo, hi = -(1 << (m_bits - 1)), (1 << (m_bits - 1)) - 1
    if exponent < -(1 << (e_bits - 1)) or not lo <= mantissa <= hi:
        raise EncodeError(f"{value!r} does not fit a {m_bits}-bit mantissa")
    raw = ((exponent & ((1 << e_bits) - 1)) << m_bits) | (mantissa & ((1 << m_bits) - 1))
    if raw in specials:
        raise EncodeError(f"{value!r} collides with a reserved special encoding")
    return raw


def encode_sfloat(value: float | None, special: str | None = None) -> int:
    """Encode a value (or special name) as a 16-bit SFLOAT word."""
    if special is not None:
        try:
            return _SFLOAT_RAW_OF[special]
        except KeyError:
            raise EncodeError(f"unknown special value {special!r}") from None
    if value is None:
        raise EncodeError("a component without special needs a value")
    return _fit(value, 12, 4, SFLOAT_SPECIALS)


def encode_float(value: float | None, special: str | None = None) -> int:
    """Encode a value (or special name) as a 32-bit FLOAT word."""
    if special is not None:
        try:
            return _FLOAT_RAW_OF[special]
        except KeyError:
            raise EncodeError(f"unknown special value {special!r}") from None
    if value is None:
        raise EncodeError("a component without special needs a value")
    return _fit(value, 24, 8, FLOAT_SPECIALS)


# Components are immutable, and a monitor repeats the same few values all day: caching them by
# raw word avoids rebuilding identical objects on the bridge's hot path. Bounded: cleared when big.
_COMPONENT_CACHE: dict[tuple, Component] = {}
_CACHE_LIMIT = 20_000


def sfloat_component(raw: int, mdc: int, unit: str, modality: str | None = None) -> Component:
    """The :class:`Component` for an SFLOAT word (cached)."""
    key = (raw, mdc, unit, modality)
    c = _COMPONENT_CACHE.get(key)
    if c is None:
        value, special = decode_sfloat(raw)
        c = Component(mdc=mdc, value=value, unit=unit, special=special, modality=modality)
        if len(_COMPONENT_CACHE) >= _CACHE_LIMIT:
            _COMPONENT_CACHE.clear()
        _COMPONENT_CACHE[key] = c
    return c


def float_component(raw: int, mdc: int, unit: str) -> Component:
    """The :class:`Component` for a FLOAT word (cached)."""
    key = (raw | 1 << 32, mdc, unit, None)
    c = _COMPONENT_CACHE.get(key)
    if c is None:
        value, special = decode_float(raw)
        c = Component(mdc=mdc, value=value, unit=unit, special=special)
        if len(_COMPONENT_CACHE) >= _CACHE_LIMIT:
            _COMPONENT_CACHE.clear()
        _COMPONENT_CACHE[key] = c
    return c


def encode_component_sfloat(c: Component) -> int:
    return encode_sfloat(c.value, c.special)


def encode_component_float(c: Component) -> int:
    return encode_float(c.value, c.special)
