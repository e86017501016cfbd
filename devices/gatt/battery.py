"""Battery Level (0x2A19), Battery Service 1.0 §3.1.

Why: a flat monitor is the commonest reason readings stop; the clinic's low-battery rule needs
the level as a component like any other (MDC_ATTR_VAL_BATT_CHARGE, "%").

Layout: exactly one uint8, 0..100 %. 101..255 are not allowed → InvalidValue.
"""

from __future__ import annotations

from devices.gatt import mdc
from devices.gatt.errors import EncodeError, InvalidValue
from devices.gatt.measurement import Component, Measurement
from devices.gatt.reader import Buffer, Reader
from devices.gatt.uuids import BATTERY_LEVEL

KIND = "battery"
_LEVELS = tuple(
    Measurement(kind=KIND, components=(Component(mdc.MDC_ATTR_VAL_BATT_CHARGE, float(v), "%"),))
    for v in range(101)
)


def decode_battery_level(data: Buffer) -> Measurement:
    """Decode a Battery Level read or notification."""
    r = Reader(data, BATTERY_LEVEL)
    level = r.u8()
    r.finish()
    if level > 100:
        r.fail(InvalidValue, f"battery level {level} % above 100")
    return _LEVELS[level]


def encode_battery_level(m: Measurement) -> bytes:
    """Encode a "battery" measurement."""
    c = m.component(mdc.MDC_ATTR_VAL_BATT_CHARGE)
    if c is None or c.value is None or c.value != int(c.value) or not 0 <= c.value <= 100:
        raise EncodeError("a battery measurement needs a whole percentage 0..100")
    return bytes([int(c.value)])
