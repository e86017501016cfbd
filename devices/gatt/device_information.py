"""Device Information Service 1.1 characteristics (0x2A23-0x2A29).

Why: the PHD IG's Device resource needs the manufacturer, model, serial number, versions and the
EUI-64 system id of each monitor; the bridge reads them once per pairing.

Strings (0x2A29 manufacturer name, 0x2A24 model number, 0x2A25 serial number, 0x2A26 firmware
revision, 0x2A27 hardware revision, 0x2A28 software revision) are UTF-8 without terminator;
trailing NUL padding, which some devices send, is stripped. Invalid UTF-8 → InvalidValue.

System ID (0x2A23): 8 octets, LSO first: a 40-bit manufacturer-defined identifier followed by a
24-bit Organizationally Unique Identifier. As a 64-bit number that is ``OUI << 40 | id``, which
is the EUI-64; it is rendered as 16 upper-case hex digits without separators, the form the PHD
IG uses for the IEEE EUI-64 device identifier (e.g. "123456FFFEABCDEF").

Measurement: kind "device_information", no components, one ``extra`` pair whose key names the
characteristic ("manufacturer_name", "model_number", "serial_number", "firmware_revision",
"hardware_revision", "software_revision", "system_id").
"""

from __future__ import annotations

from collections.abc import Callable

from devices.gatt import uuids
from devices.gatt.errors import EncodeError, InvalidValue
from devices.gatt.measurement import Measurement
from devices.gatt.reader import Buffer, Reader

KIND = "device_information"

FIELDS: dict[int, str] = {
    uuids.MANUFACTURER_NAME_STRING: "manufacturer_name",
    uuids.MODEL_NUMBER_STRING: "model_number",
    uuids.SERIAL_NUMBER_STRING: "serial_number",
    uuids.FIRMWARE_REVISION_STRING: "firmware_revision",
    uuids.HARDWARE_REVISION_STRING: "hardware_revision",
    uuids.SOFTWARE_REVISION_STRING: "software_revision",
    uuids.SYSTEM_ID: "system_id",
}
UUID_OF_FIELD = {name: uuid for uuid, name in FIELDS.items()}


def _string_decoder(uuid: int) -> Callable[[Buffer], Measurement]:
    key = FIELDS[uuid]

    def decode(data: Buffer) -> Measurement:
        try:
            text = bytes(data).rstrip(b"\x00").decode("utf-8")
        except UnicodeDecodeError as exc:
            Reader(data, uuid).fail(InvalidValue, f"not UTF-8: {exc.reason}")
        return Measurement(kind=KIND, extra=((key, text),))

    decode.__name__ = f"decode_{key}"
    decode.__doc__ = f"Decode the {key.replace('_', ' ')} string characteristic (0x{uuid:04X})."
    return decode


decode_manufacturer_name = _string_decoder(uuids.MANUFACTURER_NAME_STRING)
decode_model_number = _string_decoder(uuids.MODEL_NUMBER_STRING)
decode_serial_number = _string_decoder(uuids.SERIAL_NUMBER_STRING)
decode_firmware_revision = _string_decoder(uuids.FIRMWARE_REVISION_STRING)
decode_hardware_revision = _string_decoder(uuids.HARDWARE_REVISION_STRING)
decode_software_revision = _string_decoder(uuids.SOFTWARE_REVISION_STRING)


def decode_system_id(data: Buffer) -> Measurement:
    """Decode System ID (0x2A23) to its EUI-64 string."""
    r = Reader(data, uuids.SYSTEM_ID)
    raw = r.take(8)
    r.finish()
    return Measurement(kind=KIND, extra=(("system_id", f"{int.from_bytes(raw, 'little'):016X}"),))


def encode_device_information(m: Measurement) -> bytes:
    """Encode a "device_information" measurement (its single extra pair)."""
    if len(m.extra) != 1 or m.extra[0][0] not in UUID_OF_FIELD:
        raise EncodeError("a device information measurement has exactly one known extra pair")
    key, value = m.extra[0]
    if not isinstance(value, str):
        raise EncodeError(f"{key} must be a string")
    if key == "system_id":
        if len(value) != 16:
            raise EncodeError("a system id is 16 hex digits")
        try:
            return int(value, 16).to_bytes(8, "little")
        except ValueError:
            raise EncodeError(f"system id {value!r} is not hex") from None
    return value.encode("utf-8")
