"""PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F).

Why: SpO2 is a NEWS2 parameter; Pulse Oximeter Service 1.0 §3.1-3.2 and the GATT Specification
Supplement define both characteristics.

Spot-check: flags uint8 (bit 0 time stamp, bit 1 measurement status, bit 2 device and sensor
status, bit 3 pulse amplitude index, bit 4 device clock is not set; bits 5-7 reserved) | SpO2
SFLOAT % | pulse rate SFLOAT /min | time stamp | measurement status uint16 | device and sensor
status uint24 | pulse amplitude index SFLOAT %.

Continuous: flags uint8 (bit 0 SpO2PR-Fast, bit 1 SpO2PR-Slow, bit 2 measurement status, bit 3
device and sensor status, bit 4 pulse amplitude index; bits 5-7 reserved) | SpO2PR-Normal
(SpO2, PR) | SpO2PR-Fast | SpO2PR-Slow | measurement status | device and sensor status | PAI.

Components: SpO2 MDC_PULS_OXIM_SAT_O2 "%", pulse rate MDC_PULS_OXIM_PULS_RATE "/min", pulse
amplitude index MDC_PULS_OXIM_PERF_REL "%". Fast and slow averages carry ``modality`` "fast" /
"slow" (IEEE 11073-10404 keeps the code and adds MDC_MODALITY_FAST/SLOW).

Flags: measurement status bits 5-15 ("measurement_ongoing", "early_estimated_data",
"validated_data", "fully_qualified_data", "data_from_measurement_storage",
"data_for_demonstration", "data_for_testing", "calibration_ongoing", "measurement_unavailable",
"questionable_measurement_detected", "invalid_measurement_detected"), device and sensor status
bits 0-15 (names in ``DEVICE_STATUS``), "device_clock_not_set", "time_unknown". Reserved status
bits are ignored (RFU bits do not change the layout).
"""

from __future__ import annotations

import struct

from devices.gatt import mdc
from devices.gatt.datetime_field import DATE_TIME, TIME_UNKNOWN_FLAG, encode_date_time, from_fields
from devices.gatt.errors import EncodeError, InvalidFlags
from devices.gatt.measurement import Component, FlagNames, Measurement
from devices.gatt.reader import Buffer, Reader
from devices.gatt.sfloat import encode_component_sfloat, sfloat_component
from devices.gatt.uuids import PLX_CONTINUOUS_MEASUREMENT, PLX_SPOT_CHECK_MEASUREMENT

KIND_SPOT = "plx_spot_check"
KIND_CONTINUOUS = "plx_continuous"
_HEAD = struct.Struct("<BHH")
_PAIR = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_DEVICE = struct.Struct("<HB")
_RESERVED = 0xE0

MEASUREMENT_STATUS = (None,) * 5 + (
    "measurement_ongoing",
    "early_estimated_data",
    "validated_data",
    "fully_qualified_data",
    "data_from_measurement_storage",
    "data_for_demonstration",
    "data_for_testing",
    "calibration_ongoing",
    "measurement_unavailable",
    "questionable_measurement_detected",
    "invalid_measurement_detected",
)
DEVICE_STATUS = (
    "extended_display_update_ongoing",
    "equipment_malfunction_detected",
    "signal_processing_irregularity_detected",
    "inadequate_signal_detected",
    "poor_signal_detected",
    "low_perfusion_detected",
    "erratic_signal_detected",
    "nonpulsatile_signal_detected",
    "questionable_pulse_detected",
    "signal_analysis_ongoing",
    "sensor_interference_detected",
    "sensor_unconnected_to_user",
    "unknown_sensor_connected",
    "sensor_displaced",
    "sensor_malfunctioning",
    "sensor_disconnected",
)
# Word layout: bits 0-15 measurement status, 16-31 device status, 32-33 ours.
FLAGS = FlagNames(*MEASUREMENT_STATUS, *DEVICE_STATUS, TIME_UNKNOWN_FLAG, "device_clock_not_set")
_TIME_UNKNOWN_BIT = 1 << 32
_CLOCK_NOT_SET_BIT = 1 << 33


def _pair(spo2: int, pr: int, modality: str | None) -> tuple[Component, Component]:
    return (
        sfloat_component(spo2, mdc.MDC_PULS_OXIM_SAT_O2, "%", modality),
        sfloat_component(pr, mdc.MDC_PULS_OXIM_PULS_RATE, "/min", modality),
    )


def _statuses(r: Reader, measurement: bool, device: bool) -> int:
    bits = 0
    if measurement:
        bits = r.u16()
    if device:
        lo, hi = r.unpack(_DEVICE)
        bits |= (lo | hi << 16) << 16
    return bits


def decode_plx_spot_check(data: Buffer) -> Measurement:
    """Decode one PLX Spot-check Measurement indication."""
    r = Reader(data, PLX_SPOT_CHECK_MEASUREMENT)
    flags, spo2, pr = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    components = list(_pair(spo2, pr, None))
    time = None
    bits = _CLOCK_NOT_SET_BIT if flags & 0x10 else 0
    if flags & 0x01:
        time = from_fields(r.unpack(DATE_TIME), r)
        if time is None:
            bits |= _TIME_UNKNOWN_BIT
    bits |= _statuses(r, bool(flags & 0x02), bool(flags & 0x04))
    if flags & 0x08:
        components.append(sfloat_component(r.u16(), mdc.MDC_PULS_OXIM_PERF_REL, "%"))
    r.finish()
    return Measurement(
        kind=KIND_SPOT, components=tuple(components), time=time, flags=FLAGS.decode(bits)
    )


def decode_plx_continuous(data: Buffer) -> Measurement:
    """Decode one PLX Continuous Measurement notification."""
    r = Reader(data, PLX_CONTINUOUS_MEASUREMENT)
    flags, spo2, pr = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    components = list(_pair(spo2, pr, None))
    if flags & 0x01:
        components.extend(_pair(*r.unpack(_PAIR), "fast"))
    if flags & 0x02:
        components.extend(_pair(*r.unpack(_PAIR), "slow"))
    bits = _statuses(r, bool(flags & 0x04), bool(flags & 0x08))
    if flags & 0x10:
        components.append(sfloat_component(r.u16(), mdc.MDC_PULS_OXIM_PERF_REL, "%"))
    r.finish()
    return Measurement(kind=KIND_CONTINUOUS, components=tuple(components), flags=FLAGS.decode(bits))


def _find(m: Measurement, code: int, modality: str | None) -> Component | None:
    return m.component(code, modality)


def _pair_bytes(m: Measurement, modality: str | None) -> bytes | None:
    spo2 = _find(m, mdc.MDC_PULS_OXIM_SAT_O2, modality)
    pr = _find(m, mdc.MDC_PULS_OXIM_PULS_RATE, modality)
    if spo2 is None and pr is None:
        return None
    if spo2 is None or pr is None:
        raise EncodeError(f"SpO2 and pulse rate come in pairs (modality {modality})")
    return _PAIR.pack(encode_component_sfloat(spo2), encode_component_sfloat(pr))


def _status_bytes(m: Measurement) -> tuple[bytes | None, bytes | None]:
    bits = FLAGS.encode(m.flags)
    measurement = bits & 0xFFFF
    device = (bits >> 16) & 0xFFFF
    return (
        _U16.pack(measurement) if measurement else None,
        _DEVICE.pack(device, 0) if device else None,
    )


def encode_plx(m: Measurement) -> bytes:
    """Encode a "plx_spot_check" or "plx_continuous" measurement."""
    normal = _pair_bytes(m, None)
    if normal is None:
        raise EncodeError("a PLX measurement needs SpO2 and pulse rate")
    pai = _find(m, mdc.MDC_PULS_OXIM_PERF_REL, None)
    measurement_status, device_status = _status_bytes(m)
    flags = 0
    body = bytearray(normal)
    if m.kind == KIND_SPOT:
        if "device_clock_not_set" in m.flags:
            flags |= 0x10
        if m.time is not None or TIME_UNKNOWN_FLAG in m.flags:
            flags |= 0x01
            body += encode_date_time(m.time)
        bits = (0x02, 0x04, 0x08)
    elif m.kind == KIND_CONTINUOUS:
        for bit, modality in ((0x01, "fast"), (0x02, "slow")):
            extra = _pair_bytes(m, modality)
            if extra is not None:
                flags |= bit
                body += extra
        bits = (0x04, 0x08, 0x10)
    else:
        raise EncodeError(f"not a PLX kind: {m.kind!r}")
    if measurement_status is not None:
        flags |= bits[0]
        body += measurement_status
    if device_status is not None:
        flags |= bits[1]
        body += device_status
    if pai is not None:
        flags |= bits[2]
        body += _U16.pack(encode_component_sfloat(pai))
    return bytes([flags]) + bytes(body)
