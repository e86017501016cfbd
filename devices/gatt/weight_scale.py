"""Weight Measurement (0x2A9D), Weight Scale Service 1.0 / GATT Specification Supplement.

Why: daily weight is how heart-failure patients are followed at home.

Layout: flags uint8 (bit 0 imperial units, bit 1 time stamp, bit 2 user id, bit 3 BMI and height
present; bits 4-7 reserved) | weight uint16 (SI: 0.005 kg, imperial: 0.01 lb) | time stamp |
user id uint8 (255 unknown user) | BMI uint16 (0.1 kg/m2) | height uint16 (SI: 0.001 m,
imperial: 0.1 in).

A weight of 0xFFFF means "Measurement Unsuccessful": the weight component gets ``value=None``,
``special="NaN"`` and the measurement the flag "measurement_unsuccessful" (the same NaN that an
SFLOAT would carry, so downstream code has one way to see a missing value).
Units: "kg" / "[lb_av]", "kg/m2", "m" / "[in_i]" as sent.
"""

from __future__ import annotations

import struct

from devices.gatt import mdc
from devices.gatt.datetime_field import DATE_TIME, TIME_UNKNOWN_FLAG, encode_date_time, from_fields
from devices.gatt.errors import EncodeError, InvalidFlags
from devices.gatt.measurement import Component, FlagNames, Measurement
from devices.gatt.reader import U16, Buffer, Reader
from devices.gatt.uuids import WEIGHT_MEASUREMENT

KIND = "weight"
_HEAD = struct.Struct("<BH")
_BMI_HEIGHT = struct.Struct("<HH")
_RESERVED = 0xF0
_IMPERIAL, _TIME, _USER, _BMI = 0x01, 0x02, 0x04, 0x08
_UNSUCCESSFUL = 0xFFFF
FLAGS = FlagNames(TIME_UNKNOWN_FLAG, "user_unknown", "measurement_unsuccessful")

# (numerator, denominator) of each resolution: value = raw * num / den, exact decimal scaling.
_WEIGHT = {False: (5, 1000, "kg"), True: (1, 100, "[lb_av]")}
_HEIGHT = {False: (1, 1000, "m"), True: (1, 10, "[in_i]")}
_NAN_WEIGHT = {
    imperial: Component(mdc.MDC_MASS_BODY_ACTUAL, None, unit, "NaN")
    for imperial, (_, _, unit) in _WEIGHT.items()
}
_CACHE: dict[tuple[int, int, bool], Component] = {}


def _scaled(code: int, raw: int, imperial: bool, table: dict) -> Component:
    key = (code, raw, imperial)
    c = _CACHE.get(key)
    if c is None:
        num, den, unit = table[imperial]
        c = Component(code, raw * num / den, unit)
        if len(_CACHE) > 20_000:
            _CACHE.clear()
        _CACHE[key] = c
    return c


_BMI_TABLE = {False: (1, 10, "kg/m2"), True: (1, 10, "kg/m2")}


def decode_weight(data: Buffer) -> Measurement:
    """Decode one Weight Measurement indication."""
    r = Reader(data, WEIGHT_MEASUREMENT)
    flags, raw = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    imperial = bool(flags & _IMPERIAL)
    bits = 0
    if raw == _UNSUCCESSFUL:
        components = [_NAN_WEIGHT[imperial]]
        bits |= 4
    else:
        components = [_scaled(mdc.MDC_MASS_BODY_ACTUAL, raw, imperial, _WEIGHT)]
    time = None
    if flags & _TIME:
        time = from_fields(r.unpack(DATE_TIME), r)
        if time is None:
            bits |= 1
    user_id = None
    if flags & _USER:
        user_id = r.u8()
        if user_id == 0xFF:
            user_id = None
            bits |= 2
    if flags & _BMI:
        bmi, height = r.unpack(_BMI_HEIGHT)
        components.append(_scaled(mdc.MDC_RATIO_MASS_BODY_LEN_SQ, bmi, imperial, _BMI_TABLE))
        components.append(_scaled(mdc.MDC_LEN_BODY_ACTUAL, height, imperial, _HEIGHT))
    r.finish()
    return Measurement(
        kind=KIND,
        components=tuple(components),
        time=time,
        flags=FLAGS.decode(bits),
        user_id=user_id,
    )


def _raw(c: Component, num: int, den: int) -> int:
    if c.value is None:
        raise EncodeError(f"{c!r} has no value")
    raw = round(c.value * den / num)
    if not 0 <= raw < 0xFFFF or raw * num / den != c.value:
        raise EncodeError(f"{c.value!r} is not a multiple of {num}/{den} in range")
    return raw


def encode_weight(m: Measurement) -> bytes:
    """Encode a "weight" measurement."""
    weight = m.component(mdc.MDC_MASS_BODY_ACTUAL)
    if weight is None or weight.unit not in ("kg", "[lb_av]"):
        raise EncodeError("a weight measurement needs a weight in kg or [lb_av]")
    imperial = weight.unit == "[lb_av]"
    flags = _IMPERIAL if imperial else 0
    if weight.special is not None:
        raw = _UNSUCCESSFUL
    else:
        num, den, _ = _WEIGHT[imperial]
        raw = _raw(weight, num, den)
    body = bytearray(U16.pack(raw))
    if m.time is not None or TIME_UNKNOWN_FLAG in m.flags:
        flags |= _TIME
        body += encode_date_time(m.time)
    if m.user_id is not None:
        if not 0 <= m.user_id < 0xFF:
            raise EncodeError(f"user id {m.user_id} outside 0..254")
        flags |= _USER
        body.append(m.user_id)
    elif "user_unknown" in m.flags:
        flags |= _USER
        body.append(0xFF)
    bmi = m.component(mdc.MDC_RATIO_MASS_BODY_LEN_SQ)
    height = m.component(mdc.MDC_LEN_BODY_ACTUAL)
    if (bmi is None) != (height is None):
        raise EncodeError("BMI and height are sent together")
    if bmi is not None and height is not None:
        if height.unit != _HEIGHT[imperial][2]:
            raise EncodeError(f"height unit {height.unit!r} does not match the weight unit")
        flags |= _BMI
        body += _BMI_HEIGHT.pack(_raw(bmi, 1, 10), _raw(height, *_HEIGHT[imperial][:2]))
    return bytes([flags]) + bytes(body)
