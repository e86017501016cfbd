"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).

Why: the home BP cuff is the pilot's main device; Blood Pressure Service 1.0 §3.1-3.2 and the
GATT Specification Supplement define both characteristics with one layout:

flags uint8 | systolic, diastolic, mean arterial pressure: SFLOAT each (mmHg, or kPa when flags
bit 0) | time stamp: Date Time (bit 1) | pulse rate SFLOAT (bit 2) | user id uint8 (bit 3,
0xFF = unknown user) | measurement status uint16 (bit 4). Bits 5-7 reserved → InvalidFlags.

For Intermediate Cuff Pressure the systolic field carries the current cuff pressure and the
diastolic and mean fields are unused (the spec sets them to NaN); we decode only the cuff
pressure (MDC_PRESS_CUFF) and the encoder writes NaN into the unused fields.

Measurement status → flags: bit 0 "body_movement", bit 1 "cuff_fit_loose", bit 2
"irregular_pulse", bits 3-4 pulse rate range (1 "pulse_rate_above_upper_limit",
2 "pulse_rate_below_lower_limit", 0 within range, 3 reserved → ignored), bit 5
"improper_measurement_position". Reserved status bits are ignored, as the Core Specification
asks receivers to do with RFU bits (they do not change the layout, unlike flag bits). Also
"time_unknown" (see :mod:`datetime_field`) and "user_unknown" (user id 0xFF, ``user_id=None``).
"""

from __future__ import annotations

import struct

from devices.gatt import mdc
from devices.gatt.datetime_field import DATE_TIME, TIME_UNKNOWN_FLAG, encode_date_time, from_fields
from devices.gatt.errors import EncodeError, InvalidFlags
from devices.gatt.measurement import Component, FlagNames, Measurement
from devices.gatt.reader import Buffer, Reader
from devices.gatt.sfloat import encode_component_sfloat, sfloat_component
from devices.gatt.uuids import BLOOD_PRESSURE_MEASUREMENT, INTERMEDIATE_CUFF_PRESSURE

KIND = "blood_pressure"
KIND_CUFF = "intermediate_cuff_pressure"
_HEAD = struct.Struct("<BHHH")
_U16 = struct.Struct("<H")
_RESERVED = 0xE0
_KPA, _TIME, _PULSE, _USER, _STATUS = 0x01, 0x02, 0x04, 0x08, 0x10
_USER_UNKNOWN = 0xFF
_NAN = 0x07FF

# Bit i of the status word (after mapping the pulse-range pair) → flag name; bits 6/7 are ours.
FLAGS = FlagNames(
    "body_movement",
    "cuff_fit_loose",
    "irregular_pulse",
    "pulse_rate_above_upper_limit",
    "pulse_rate_below_lower_limit",
    "improper_measurement_position",
    TIME_UNKNOWN_FLAG,
    "user_unknown",
)
_STATUS_MASK = 0x3F


def _decode(data: Buffer, uuid: int, kind: str) -> Measurement:
    r = Reader(data, uuid)
    flags, systolic, diastolic, mean = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    unit = "kPa" if flags & _KPA else "mm[Hg]"
    if kind == KIND:
        components = [
            sfloat_component(systolic, mdc.MDC_PRESS_BLD_NONINV_SYS, unit),
            sfloat_component(diastolic, mdc.MDC_PRESS_BLD_NONINV_DIA, unit),
            sfloat_component(mean, mdc.MDC_PRESS_BLD_NONINV_MEAN, unit),
        ]
    else:
        components = [sfloat_component(systolic, mdc.MDC_PRESS_CUFF, unit)]
    bits = 0
    time = None
    if flags & _TIME:
        time = from_fields(r.unpack(DATE_TIME), r)
        if time is None:
            bits |= 0x40
    if flags & _PULSE:
        components.append(sfloat_component(r.u16(), mdc.MDC_PULS_RATE_NON_INV, "/min"))
    user_id = None
    if flags & _USER:
        user_id = r.u8()
        if user_id == _USER_UNKNOWN:
            user_id = None
            bits |= 0x80
    if flags & _STATUS:
        status = r.u16() & _STATUS_MASK
        if status & 0x18 == 0x18:  # pulse rate range value 3 is reserved
            status &= ~0x18
        bits |= status
    r.finish()
    return Measurement(
        kind=kind,
        components=tuple(components),
        time=time,
        flags=FLAGS.decode(bits),
        user_id=user_id,
    )


def decode_blood_pressure(data: Buffer) -> Measurement:
    """Decode one Blood Pressure Measurement indication."""
    return _decode(data, BLOOD_PRESSURE_MEASUREMENT, KIND)


def decode_intermediate_cuff_pressure(data: Buffer) -> Measurement:
    """Decode one Intermediate Cuff Pressure notification."""
    return _decode(data, INTERMEDIATE_CUFF_PRESSURE, KIND_CUFF)


def encode_blood_pressure(m: Measurement) -> bytes:
    """Encode a "blood_pressure" or "intermediate_cuff_pressure" measurement."""
    cuff = m.kind == KIND_CUFF
    by_mdc: dict[int, Component] = {}
    for c in m.components:
        by_mdc.setdefault(c.mdc, c)
    pressures = (
        [by_mdc.get(mdc.MDC_PRESS_CUFF)]
        if cuff
        else [
            by_mdc.get(code)
            for code in (
                mdc.MDC_PRESS_BLD_NONINV_SYS,
                mdc.MDC_PRESS_BLD_NONINV_DIA,
                mdc.MDC_PRESS_BLD_NONINV_MEAN,
            )
        ]
    )
    if any(p is None for p in pressures):
        raise EncodeError(f"{m.kind} needs all its pressure components")
    units = {p.unit for p in pressures if p is not None}
    if len(units) != 1 or not units <= {"mm[Hg]", "kPa"}:
        raise EncodeError(f"pressures must share one unit, mm[Hg] or kPa: {units}")
    flags = _KPA if units == {"kPa"} else 0
    raws = [encode_component_sfloat(p) for p in pressures if p is not None]
    if cuff:
        raws += [_NAN, _NAN]
    body = bytearray(_HEAD.pack(0, *raws)[1:])
    if m.time is not None or TIME_UNKNOWN_FLAG in m.flags:
        flags |= _TIME
        body += encode_date_time(m.time)
    pulse = by_mdc.get(mdc.MDC_PULS_RATE_NON_INV)
    if pulse is not None:
        flags |= _PULSE
        body += _U16.pack(encode_component_sfloat(pulse))
    if m.user_id is not None:
        if not 0 <= m.user_id < _USER_UNKNOWN:
            raise EncodeError(f"user id {m.user_id} outside 0..254")
        flags |= _USER
        body.append(m.user_id)
    elif "user_unknown" in m.flags:
        flags |= _USER
        body.append(_USER_UNKNOWN)
    status = FLAGS.encode(m.flags) & _STATUS_MASK
    if status & 0x18 == 0x18:
        raise EncodeError("pulse rate cannot be both above and below its range")
    if status:
        flags |= _STATUS
        body += _U16.pack(status)
    return bytes([flags]) + bytes(body)
