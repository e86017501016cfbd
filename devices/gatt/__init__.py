"""Pure decoders (and encoders) for Bluetooth SIG health characteristics.

Why: the home bridge turns GATT notifications into device-neutral measurements (MDC code, value,
UCUM unit, device time, status flags) before anything else touches them; keeping this package
free of I/O and Django lets the bridge, the simulators and the tests share it.

Public API:

- ``decode(characteristic, data) -> Measurement``; ``characteristic`` is the 16-bit UUID as an
  int (0x2A35) or any string form ("2a35", "0x2A35", "00002a35-0000-1000-8000-00805f9b34fb").
  Any failure raises a :class:`DecodeError` subclass, never another exception.
- ``decode_all(characteristic, data) -> tuple[Measurement, ...]``: same, but splits CGM
  notifications that pack several records.
- ``encode(measurement) -> bytes`` dispatches on ``measurement.kind`` to the per-module
  ``encode_*`` function (also public: :func:`heart_rate.encode_heart_rate`, ...);
  ``characteristic_for(measurement)`` names the UUID the bytes belong to.

The decode table is a plain dict from 16-bit UUID to function: one lookup per payload.
"""

from __future__ import annotations

from collections.abc import Callable

from devices.gatt import (
    battery,
    blood_pressure,
    cgm,
    device_information,
    glucose,
    heart_rate,
    pulse_oximeter,
    thermometer,
    uuids,
    weight_scale,
)
from devices.gatt.errors import (
    CrcMismatch,
    DecodeError,
    EncodeError,
    InvalidFlags,
    InvalidValue,
    TrailingBytes,
    TruncatedPayload,
    UnknownCharacteristic,
)
from devices.gatt.measurement import Component, Measurement
from devices.gatt.reader import Buffer
from devices.gatt.uuids import to_uuid16

__all__ = [
    "Component",
    "CrcMismatch",
    "DecodeError",
    "EncodeError",
    "InvalidFlags",
    "InvalidValue",
    "KNOWN_CHARACTERISTICS",
    "Measurement",
    "TrailingBytes",
    "TruncatedPayload",
    "UnknownCharacteristic",
    "characteristic_for",
    "decode",
    "decode_all",
    "encode",
]

Decoder = Callable[[Buffer], Measurement]

DECODERS: dict[int, Decoder] = {
    uuids.HEART_RATE_MEASUREMENT: heart_rate.decode_heart_rate,
    uuids.BLOOD_PRESSURE_MEASUREMENT: blood_pressure.decode_blood_pressure,
    uuids.INTERMEDIATE_CUFF_PRESSURE: blood_pressure.decode_intermediate_cuff_pressure,
    uuids.TEMPERATURE_MEASUREMENT: thermometer.decode_temperature,
    uuids.PLX_SPOT_CHECK_MEASUREMENT: pulse_oximeter.decode_plx_spot_check,
    uuids.PLX_CONTINUOUS_MEASUREMENT: pulse_oximeter.decode_plx_continuous,
    uuids.GLUCOSE_MEASUREMENT: glucose.decode_glucose,
    uuids.GLUCOSE_MEASUREMENT_CONTEXT: glucose.decode_glucose_context,
    uuids.WEIGHT_MEASUREMENT: weight_scale.decode_weight,
    uuids.CGM_MEASUREMENT: cgm.decode_cgm,
    uuids.BATTERY_LEVEL: battery.decode_battery_level,
    uuids.MANUFACTURER_NAME_STRING: device_information.decode_manufacturer_name,
    uuids.MODEL_NUMBER_STRING: device_information.decode_model_number,
    uuids.SERIAL_NUMBER_STRING: device_information.decode_serial_number,
    uuids.FIRMWARE_REVISION_STRING: device_information.decode_firmware_revision,
    uuids.HARDWARE_REVISION_STRING: device_information.decode_hardware_revision,
    uuids.SOFTWARE_REVISION_STRING: device_information.decode_software_revision,
    uuids.SYSTEM_ID: device_information.decode_system_id,
}
KNOWN_CHARACTERISTICS = frozenset(DECODERS)

ENCODERS: dict[str, Callable[[Measurement], bytes]] = {
    heart_rate.KIND: heart_rate.encode_heart_rate,
    blood_pressure.KIND: blood_pressure.encode_blood_pressure,
    blood_pressure.KIND_CUFF: blood_pressure.encode_blood_pressure,
    thermometer.KIND: thermometer.encode_temperature,
    pulse_oximeter.KIND_SPOT: pulse_oximeter.encode_plx,
    pulse_oximeter.KIND_CONTINUOUS: pulse_oximeter.encode_plx,
    glucose.KIND: glucose.encode_glucose,
    glucose.KIND_CONTEXT: glucose.encode_glucose_context,
    weight_scale.KIND: weight_scale.encode_weight,
    cgm.KIND: cgm.encode_cgm,
    battery.KIND: battery.encode_battery_level,
    device_information.KIND: device_information.encode_device_information,
}
_CHARACTERISTIC_OF_KIND = {
    heart_rate.KIND: uuids.HEART_RATE_MEASUREMENT,
    blood_pressure.KIND: uuids.BLOOD_PRESSURE_MEASUREMENT,
    blood_pressure.KIND_CUFF: uuids.INTERMEDIATE_CUFF_PRESSURE,
    thermometer.KIND: uuids.TEMPERATURE_MEASUREMENT,
    pulse_oximeter.KIND_SPOT: uuids.PLX_SPOT_CHECK_MEASUREMENT,
    pulse_oximeter.KIND_CONTINUOUS: uuids.PLX_CONTINUOUS_MEASUREMENT,
    glucose.KIND: uuids.GLUCOSE_MEASUREMENT,
    glucose.KIND_CONTEXT: uuids.GLUCOSE_MEASUREMENT_CONTEXT,
    weight_scale.KIND: uuids.WEIGHT_MEASUREMENT,
    cgm.KIND: uuids.CGM_MEASUREMENT,
    battery.KIND: uuids.BATTERY_LEVEL,
}


def decode(characteristic: int | str, data: Buffer) -> Measurement:
    """Decode one payload of ``characteristic`` into a :class:`Measurement`."""
    key = characteristic if type(characteristic) is int else to_uuid16(characteristic)
    decoder = DECODERS.get(key)
    if decoder is None:
        raise UnknownCharacteristic(
            "no decoder for this characteristic", characteristic=key, data=bytes(data)
        )
    return decoder(data)


def decode_all(characteristic: int | str, data: Buffer) -> tuple[Measurement, ...]:
    """Decode a payload that may hold several records (CGM); one-element tuple otherwise."""
    key = characteristic if type(characteristic) is int else to_uuid16(characteristic)
    if key == uuids.CGM_MEASUREMENT:
        return cgm.decode_records(data)
    return (decode(key, data),)


def encode(measurement: Measurement) -> bytes:
    """Encode a measurement into the payload of its characteristic (for simulated monitors)."""
    encoder = ENCODERS.get(measurement.kind)
    if encoder is None:
        raise EncodeError(f"no encoder for kind {measurement.kind!r}")
    return encoder(measurement)


def characteristic_for(measurement: Measurement) -> int:
    """The 16-bit UUID whose payload :func:`encode` produces for this measurement."""
    if measurement.kind == device_information.KIND and len(measurement.extra) == 1:
        uuid = device_information.UUID_OF_FIELD.get(measurement.extra[0][0])
        if uuid is not None:
            return uuid
    try:
        return _CHARACTERISTIC_OF_KIND[measurement.kind]
    except KeyError:
        raise EncodeError(f"no characteristic for kind {measurement.kind!r}") from None
