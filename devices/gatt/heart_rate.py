"""Heart Rate Measurement (0x2A37), Heart Rate Service 1.0 §3.1 / GATT Specification Supplement.

Why: chest straps and watches notify this characteristic about once a second; it is the most
frequent payload the bridge sees, so the decoder is table-driven and allocation-light.

Layout: flags uint8; heart rate uint8 (flags bit 0 = 0) or uint16 (bit 0 = 1); energy expended
uint16 kJ (bit 3); one or more RR-intervals uint16 in 1/1024 s (bit 4), filling the rest of the
payload. Bits 1-2 are the sensor contact status (0b10 supported but not detected, 0b11 detected;
0b00/0b01 not supported). Bits 5-7 are reserved → :class:`InvalidFlags`.

Measurement: kind "heart_rate"; components heart rate (MDC_ECG_HEART_RATE, "/min"), energy
expended (MDC_HF_ENERGY, "kJ"), then each RR interval in order (MDC_ECG_TIME_PD_RR_GL, "s",
exact binary fraction raw/1024); flags "sensor_contact_supported", "sensor_contact_detected".
The heart rate has no time stamp (``time`` is ``None``): the bridge stamps it on receipt.
"""

from __future__ import annotations

import struct

from devices.gatt import mdc
from devices.gatt.errors import EncodeError, InvalidFlags, TruncatedPayload
from devices.gatt.measurement import NO_FLAGS, Component, Measurement
from devices.gatt.reader import U16, Buffer, Reader
from devices.gatt.uuids import HEART_RATE_MEASUREMENT

KIND = "heart_rate"
_RESERVED = 0xE0
_FLAG_UINT16 = 0x01
_FLAG_ENERGY = 0x08
_FLAG_RR = 0x10
_CONTACT_SUPPORTED = "sensor_contact_supported"
_CONTACT_DETECTED = "sensor_contact_detected"
_CONTACT_FLAGS = (
    NO_FLAGS,
    NO_FLAGS,
    frozenset({_CONTACT_SUPPORTED}),
    frozenset({_CONTACT_SUPPORTED, _CONTACT_DETECTED}),
)
# ATT payloads are at most 512 bytes, so at most 255 RR intervals follow the flags.
_RR_LAYOUTS = tuple(struct.Struct(f"<{n}H") for n in range(256))
_HR_U8 = tuple(Component(mdc.MDC_ECG_HEART_RATE, float(v), "/min") for v in range(256))
_RR_CACHE: dict[int, Component] = {}


def _rr(raw: int) -> Component:
    c = _RR_CACHE.get(raw)
    if c is None:
        c = _RR_CACHE[raw] = Component(mdc.MDC_ECG_TIME_PD_RR_GL, raw / 1024, "s")
    return c


def decode_heart_rate(data: Buffer) -> Measurement:
    """Decode one Heart Rate Measurement notification."""
    r = Reader(data, HEART_RATE_MEASUREMENT)
    flags = r.u8()
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    if flags & _FLAG_UINT16:
        components = [Component(mdc.MDC_ECG_HEART_RATE, float(r.u16()), "/min")]
    else:
        components = [_HR_U8[r.u8()]]
    if flags & _FLAG_ENERGY:
        components.append(Component(mdc.MDC_HF_ENERGY, float(r.u16()), "kJ"))
    if flags & _FLAG_RR:
        n = r.remaining()
        if n == 0 or n & 1 or n > 510:
            r.fail(TruncatedPayload, f"RR-interval field of {n} byte(s) is not whole uint16s")
        components.extend(map(_rr, _RR_LAYOUTS[n >> 1].unpack_from(r.data, r.pos)))
        r.pos = r.end
    else:
        r.finish()
    return Measurement(
        kind=KIND, components=tuple(components), flags=_CONTACT_FLAGS[(flags >> 1) & 3]
    )


def _uint(value: float | None, limit: int, what: str) -> int:
    if value is None or value != int(value) or not 0 <= value <= limit:
        raise EncodeError(f"{what} {value!r} is not an integer in 0..{limit}")
    return int(value)


def encode_heart_rate(m: Measurement) -> bytes:
    """Encode a "heart_rate" measurement (uint8 rate when it fits, else uint16)."""
    rate = energy = None
    rr: list[int] = []
    for c in m.components:
        if c.special is not None:
            raise EncodeError("Heart Rate Measurement has no special values")
        if c.mdc == mdc.MDC_ECG_HEART_RATE and rate is None:
            rate = _uint(c.value, 0xFFFF, "heart rate")
        elif c.mdc == mdc.MDC_HF_ENERGY and energy is None:
            energy = _uint(c.value, 0xFFFF, "energy expended")
        elif c.mdc == mdc.MDC_ECG_TIME_PD_RR_GL:
            rr.append(_uint((c.value or 0.0) * 1024, 0xFFFF, "RR interval * 1024"))
        else:
            raise EncodeError(f"unexpected component {c!r}")
    if rate is None:
        raise EncodeError("a heart rate measurement needs a heart rate")
    flags = 0
    if _CONTACT_DETECTED in m.flags:
        flags |= 0b110
    elif _CONTACT_SUPPORTED in m.flags:
        flags |= 0b100
    body = bytearray()
    if rate > 0xFF:
        flags |= _FLAG_UINT16
        body += U16.pack(rate)
    else:
        body.append(rate)
    if energy is not None:
        flags |= _FLAG_ENERGY
        body += U16.pack(energy)
    if len(rr) > 255:
        raise EncodeError("at most 255 RR intervals fit one notification")
    if rr:
        flags |= _FLAG_RR
        body += _RR_LAYOUTS[len(rr)].pack(*rr)
    return bytes([flags]) + bytes(body)
