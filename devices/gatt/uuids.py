"""Bluetooth SIG 16-bit UUIDs of the health services and characteristics we decode.

Why: the bridge gets UUIDs from bleak as 128-bit strings ("00002a35-0000-1000-8000-00805f9b34fb")
while simulators and tests use ints; :func:`to_uuid16` turns every form into the 16-bit int that
keys the decoder table. Numbers from Bluetooth SIG "Assigned Numbers" §3.4 (services) and §3.8
(characteristics). Glucose's Record Access Control Point codec lives in :mod:`devices.gatt.racp`.
"""

from __future__ import annotations

import uuid as _uuid

from devices.gatt.errors import UnknownCharacteristic

# Services
HEART_RATE_SERVICE = 0x180D
BLOOD_PRESSURE_SERVICE = 0x1810
HEALTH_THERMOMETER_SERVICE = 0x1809
PULSE_OXIMETER_SERVICE = 0x1822
GLUCOSE_SERVICE = 0x1808
WEIGHT_SCALE_SERVICE = 0x181D
CONTINUOUS_GLUCOSE_MONITORING_SERVICE = 0x181F
BATTERY_SERVICE = 0x180F
DEVICE_INFORMATION_SERVICE = 0x180A

# Characteristics
HEART_RATE_MEASUREMENT = 0x2A37
BLOOD_PRESSURE_MEASUREMENT = 0x2A35
INTERMEDIATE_CUFF_PRESSURE = 0x2A36
TEMPERATURE_MEASUREMENT = 0x2A1C
PLX_SPOT_CHECK_MEASUREMENT = 0x2A5E
PLX_CONTINUOUS_MEASUREMENT = 0x2A5F
GLUCOSE_MEASUREMENT = 0x2A18
GLUCOSE_MEASUREMENT_CONTEXT = 0x2A34
RECORD_ACCESS_CONTROL_POINT = 0x2A52
WEIGHT_MEASUREMENT = 0x2A9D
CGM_MEASUREMENT = 0x2AA7
BATTERY_LEVEL = 0x2A19
SYSTEM_ID = 0x2A23
MODEL_NUMBER_STRING = 0x2A24
SERIAL_NUMBER_STRING = 0x2A25
FIRMWARE_REVISION_STRING = 0x2A26
HARDWARE_REVISION_STRING = 0x2A27
SOFTWARE_REVISION_STRING = 0x2A28
MANUFACTURER_NAME_STRING = 0x2A29

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_HEX = frozenset("0123456789abcdef")
_PARSED: dict[str, int] = {}


def to_uuid16(characteristic: int | str | _uuid.UUID) -> int:
    """The 16-bit UUID of ``characteristic`` given as int, "2a35", "0x2A35" or 128-bit form.

    Raises :class:`UnknownCharacteristic` for anything that is not a SIG 16-bit UUID.
    """
    if isinstance(characteristic, int) and not isinstance(characteristic, bool):
        if 0 <= characteristic <= 0xFFFF:
            return characteristic
        raise UnknownCharacteristic(f"{characteristic!r} is not a 16-bit UUID")
    if isinstance(characteristic, _uuid.UUID):
        characteristic = str(characteristic)
    if not isinstance(characteristic, str):
        raise UnknownCharacteristic(f"{characteristic!r} is not a UUID")
    cached = _PARSED.get(characteristic)
    if cached is not None:
        return cached
    s = characteristic.strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    if len(s) == 36 and s.endswith(_BASE_SUFFIX):
        s = s[:8]
    if len(s) == 8 and s.startswith("0000"):
        s = s[4:]
    if not 1 <= len(s) <= 4 or not _HEX.issuperset(s):
        raise UnknownCharacteristic(f"{characteristic!r} is not a Bluetooth SIG 16-bit UUID")
    value = int(s, 16)
    if len(_PARSED) < 1024:
        _PARSED[characteristic] = value
    return value


def to_uuid128(uuid16: int) -> str:
    """The 128-bit string form (what bleak uses) of a 16-bit SIG UUID."""
    return f"0000{uuid16:04x}{_BASE_SUFFIX}"
