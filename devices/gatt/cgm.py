"""CGM Measurement (0x2AA7), Continuous Glucose Monitoring Service 1.0.1 §3.2 / GSS.

Why: a CGM sensor notifies a reading every 1-5 minutes and backfills stored ones; its records
may be protected end to end by a CRC that we must check before trusting a glucose value.

One record: size uint8 (the whole record, itself included) | flags uint8 (bit 0 trend
present, bit 1 quality present, bit 5 Sensor Status Annunciation Warning-Octet present, bit 6
Cal/Temp-Octet present, bit 7 Status-Octet present; bits 2-4 reserved) | glucose SFLOAT mg/dL |
time offset uint16 minutes since the session start time | annunciation octets in flag-bit order
(Warning, Cal/Temp, Status: the order of the flag bits and of Nordic's nRF5 SDK / nRF Connect
SDK ``cgms_meas_encode``) | trend SFLOAT (mg/dL)/min | quality SFLOAT % | E2E-CRC uint16.

The CRC is present exactly when ``size`` is 2 more than the flags require (a size that is
neither is InvalidFlags). It is CRC-CCITT, polynomial x^16+x^12+x^5+1 (0x1021), seed 0xFFFF,
computed LSB first (reflected) with no final XOR, i.e. CRC-16/MCRF4XX (CGMS 1.0.1 §3.11 "CRC
Calculation"; the Nordic Android BLE Common Library ``CRC16.MCRF4XX`` documents it "used in
Bluetooth LE CGMS service E2E-CRC calculation"). A mismatch raises :class:`CrcMismatch`.

Annunciation bit names follow the GSS: Status-Octet "session_stopped", "device_battery_low",
"sensor_type_incorrect", "sensor_malfunction", "device_specific_alert", "general_device_fault";
Cal/Temp-Octet "time_sync_required", "calibration_not_allowed", "calibration_recommended",
"calibration_required", "sensor_temperature_too_high", "sensor_temperature_too_low";
Warning-Octet "result_below_patient_low", "result_above_patient_high", "result_below_hypo",
"result_above_hyper", "rate_of_decrease_exceeded", "rate_of_increase_exceeded",
"result_below_device_range", "result_above_device_range". A valid CRC adds flag "e2e_crc" (the
encoder appends a CRC when that flag is set).

Measurement: component glucose MDC_CONC_GLU_ISF "mg/dL"; ``time`` is None (the offset is
relative to the CGM Session Start Time, which the bridge reads separately); extra
"time_offset_minutes", "trend" and "quality" (a float, or the special's name such as "NaN").
:func:`decode` takes exactly one record; :func:`decode_records` splits a notification that
packs several.
"""

from __future__ import annotations

import struct

from devices.gatt import mdc
from devices.gatt.errors import (
    CrcMismatch,
    EncodeError,
    InvalidFlags,
    TrailingBytes,
    TruncatedPayload,
)
from devices.gatt.measurement import ExtraValue, FlagNames, Measurement, make_extra
from devices.gatt.reader import U16, Buffer, Reader
from devices.gatt.sfloat import (
    decode_sfloat,
    encode_component_sfloat,
    encode_sfloat,
    sfloat_component,
)
from devices.gatt.uuids import CGM_MEASUREMENT

KIND = "cgm"
_HEAD = struct.Struct("<BBHH")
_RESERVED = 0x1C
_TREND, _QUALITY, _WARNING, _CALTEMP, _STATUS = 0x01, 0x02, 0x20, 0x40, 0x80

STATUS_OCTET = (
    "session_stopped",
    "device_battery_low",
    "sensor_type_incorrect",
    "sensor_malfunction",
    "device_specific_alert",
    "general_device_fault",
    None,
    None,
)
CAL_TEMP_OCTET = (
    "time_sync_required",
    "calibration_not_allowed",
    "calibration_recommended",
    "calibration_required",
    "sensor_temperature_too_high",
    "sensor_temperature_too_low",
    None,
    None,
)
WARNING_OCTET = (
    "result_below_patient_low",
    "result_above_patient_high",
    "result_below_hypo",
    "result_above_hyper",
    "rate_of_decrease_exceeded",
    "rate_of_increase_exceeded",
    "result_below_device_range",
    "result_above_device_range",
)
# Bits 0-23 are the 24-bit annunciation (status, cal/temp, warning), bit 24 is ours.
FLAGS = FlagNames(*STATUS_OCTET, *CAL_TEMP_OCTET, *WARNING_OCTET, "e2e_crc")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1  # 0x8408 = 0x1021 reflected
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_mcrf4xx(data: Buffer, crc: int = 0xFFFF) -> int:
    """CRC-16/MCRF4XX (CRC-CCITT, seed 0xFFFF, reflected, no final XOR) as CGMS E2E-CRC."""
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def _special_or_value(raw: int) -> ExtraValue:
    value, special = decode_sfloat(raw)
    return special if special is not None else value


def _decode_record(r: Reader, start: int) -> Measurement:
    size, flags, glucose, offset = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    required = 6 + bool(flags & _TREND) * 2 + bool(flags & _QUALITY) * 2
    required += bool(flags & _WARNING) + bool(flags & _CALTEMP) + bool(flags & _STATUS)
    if size == required + 2:
        has_crc = True
    elif size == required:
        has_crc = False
    else:
        r.fail(
            InvalidFlags,
            f"size {size} does not match the flags (needs {required} or {required + 2})",
        )
    if start + size > r.end:
        r.fail(TruncatedPayload, f"record of {size} bytes, only {r.end - start} present")
    if has_crc:
        expected = U16.unpack_from(r.data, start + size - 2)[0]
        actual = crc16_mcrf4xx(memoryview(r.data)[start : start + size - 2])
        if expected != actual:
            r.fail(CrcMismatch, f"E2E-CRC 0x{expected:04X} != computed 0x{actual:04X}")
    bits = 1 << 24 if has_crc else 0
    if flags & _WARNING:
        bits |= r.u8() << 16
    if flags & _CALTEMP:
        bits |= r.u8() << 8
    if flags & _STATUS:
        bits |= r.u8()
    extra: dict[str, ExtraValue] = {"time_offset_minutes": offset}
    if flags & _TREND:
        extra["trend"] = _special_or_value(r.u16())
    if flags & _QUALITY:
        extra["quality"] = _special_or_value(r.u16())
    if has_crc:
        r.pos += 2
    return Measurement(
        kind=KIND,
        components=(sfloat_component(glucose, mdc.MDC_CONC_GLU_ISF, "mg/dL"),),
        flags=FLAGS.decode(bits),
        extra=make_extra(**extra),
    )


def decode_cgm(data: Buffer) -> Measurement:
    """Decode a notification holding exactly one CGM Measurement record."""
    r = Reader(data, CGM_MEASUREMENT)
    m = _decode_record(r, 0)
    if r.pos != r.end:
        r.fail(TrailingBytes, "bytes after the record; use decode_records() for packed records")
    return m


def decode_records(data: Buffer) -> tuple[Measurement, ...]:
    """Decode every CGM Measurement record packed into one notification."""
    r = Reader(data, CGM_MEASUREMENT)
    if r.end == 0:
        r.u8()  # raises TruncatedPayload
    records = []
    while r.pos < r.end:
        records.append(_decode_record(r, r.pos))
    return tuple(records)


def _extra_word(value: ExtraValue, what: str) -> int:
    if isinstance(value, str):
        return encode_sfloat(None, value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return encode_sfloat(float(value))
    raise EncodeError(f"{what} {value!r} is neither a number nor a special name")


def encode_cgm(m: Measurement) -> bytes:
    """Encode a "cgm" measurement as one record (with E2E-CRC if flag "e2e_crc")."""
    glucose = m.component(mdc.MDC_CONC_GLU_ISF)
    if glucose is None or len(m.components) != 1 or glucose.unit != "mg/dL":
        raise EncodeError("a CGM record has exactly one glucose component in mg/dL")
    extra = m.extra_dict()
    offset = extra.get("time_offset_minutes", 0)
    if not isinstance(offset, int) or not 0 <= offset <= 0xFFFF:
        raise EncodeError(f"time offset {offset!r} is not a uint16")
    bits = FLAGS.encode(m.flags)
    flags = 0
    body = bytearray()
    for flag, shift in ((_WARNING, 16), (_CALTEMP, 8), (_STATUS, 0)):
        octet = (bits >> shift) & 0xFF
        if octet:
            flags |= flag
            body.append(octet)
    if "trend" in extra:
        flags |= _TREND
        body += U16.pack(_extra_word(extra["trend"], "trend"))
    if "quality" in extra:
        flags |= _QUALITY
        body += U16.pack(_extra_word(extra["quality"], "quality"))
    crc = "e2e_crc" in m.flags
    size = 6 + len(body) + (2 if crc else 0)
    record = _HEAD.pack(size, flags, encode_component_sfloat(glucose), offset) + bytes(body)
    if crc:
        record += U16.pack(crc16_mcrf4xx(record))
    return record
