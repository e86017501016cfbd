"""Temperature Measurement (0x2A1C), Health Thermometer Service 1.0 §3.1.

Why: fever is a NEWS2 parameter; the thermometer reports a 32-bit IEEE 11073 FLOAT, so this is
the one decoder that uses FLOAT rather than SFLOAT.

Layout: flags uint8 (bit 0 Fahrenheit, bit 1 time stamp present, bit 2 temperature type
present; bits 3-7 reserved → InvalidFlags) | temperature FLOAT | time stamp Date Time | type
uint8 (GATT Specification Supplement "Temperature Type": 1 armpit, 2 body (general), 3 ear
(usually earlobe), 4 finger, 5 gastro-intestinal tract, 6 mouth, 7 rectum, 8 toe, 9 tympanum
(ear drum); 0 and 10-255 reserved → InvalidValue).

MDC code per type (IEEE 11073-10408 terms): armpit MDC_TEMP_AXILLA, body MDC_TEMP_BODY, ear
MDC_TEMP_EAR, finger MDC_TEMP_FINGER, GI tract MDC_TEMP_GIT, mouth MDC_TEMP_ORAL, rectum
MDC_TEMP_RECT, toe MDC_TEMP_TOE, tympanum MDC_TEMP_TYMP; no type given → MDC_TEMP_BODY.
Unit "Cel" or "[degF]" as sent (never converted). ``extra`` has "temperature_type" when sent.
"""

from __future__ import annotations

import struct

from devices.gatt import mdc
from devices.gatt.datetime_field import DATE_TIME, TIME_UNKNOWN_FLAG, encode_date_time, from_fields
from devices.gatt.errors import EncodeError, InvalidFlags, InvalidValue
from devices.gatt.measurement import NO_FLAGS, Measurement
from devices.gatt.reader import Buffer, Reader
from devices.gatt.sfloat import encode_component_float, float_component
from devices.gatt.uuids import TEMPERATURE_MEASUREMENT

KIND = "temperature"
_HEAD = struct.Struct("<BI")
_U32 = struct.Struct("<I")
_RESERVED = 0xF8
_FAHRENHEIT, _TIME, _TYPE = 0x01, 0x02, 0x04
_TIME_UNKNOWN = frozenset({TIME_UNKNOWN_FLAG})

TEMPERATURE_TYPES: dict[int, tuple[str, int]] = {
    1: ("armpit", mdc.MDC_TEMP_AXILLA),
    2: ("body", mdc.MDC_TEMP_BODY),
    3: ("ear", mdc.MDC_TEMP_EAR),
    4: ("finger", mdc.MDC_TEMP_FINGER),
    5: ("gastrointestinal_tract", mdc.MDC_TEMP_GIT),
    6: ("mouth", mdc.MDC_TEMP_ORAL),
    7: ("rectum", mdc.MDC_TEMP_RECT),
    8: ("toe", mdc.MDC_TEMP_TOE),
    9: ("tympanum", mdc.MDC_TEMP_TYMP),
}
_TYPE_CODE = {name: code for code, (name, _) in TEMPERATURE_TYPES.items()}
_EXTRA = {code: (("temperature_type", name),) for code, (name, _) in TEMPERATURE_TYPES.items()}


def decode_temperature(data: Buffer) -> Measurement:
    """Decode one Temperature Measurement indication."""
    r = Reader(data, TEMPERATURE_MEASUREMENT)
    flags, raw = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    time = None
    fl = NO_FLAGS
    if flags & _TIME:
        time = from_fields(r.unpack(DATE_TIME), r)
        if time is None:
            fl = _TIME_UNKNOWN
    code = mdc.MDC_TEMP_BODY
    extra: tuple = ()
    if flags & _TYPE:
        t = r.u8()
        entry = TEMPERATURE_TYPES.get(t)
        if entry is None:
            r.fail(InvalidValue, f"temperature type {t} is reserved")
        code = entry[1]
        extra = _EXTRA[t]
    r.finish()
    unit = "[degF]" if flags & _FAHRENHEIT else "Cel"
    return Measurement(
        kind=KIND,
        components=(float_component(raw, code, unit),),
        time=time,
        flags=fl,
        extra=extra,
    )


def encode_temperature(m: Measurement) -> bytes:
    """Encode a "temperature" measurement (the first component is the temperature)."""
    if len(m.components) != 1:
        raise EncodeError("a temperature measurement has exactly one component")
    c = m.components[0]
    if c.unit not in ("Cel", "[degF]"):
        raise EncodeError(f"temperature unit {c.unit!r} is neither Cel nor [degF]")
    flags = _FAHRENHEIT if c.unit == "[degF]" else 0
    body = bytearray(_U32.pack(encode_component_float(c)))
    if m.time is not None or TIME_UNKNOWN_FLAG in m.flags:
        flags |= _TIME
        body += encode_date_time(m.time)
    type_name = m.get_extra("temperature_type")
    if type_name is not None:
        if type_name not in _TYPE_CODE:
            raise EncodeError(f"unknown temperature type {type_name!r}")
        flags |= _TYPE
        body.append(_TYPE_CODE[type_name])  # type: ignore[index]
    return bytes([flags]) + bytes(body)
