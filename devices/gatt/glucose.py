"""Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34), Glucose Service 1.0.

Why: glucometers store readings and deliver them on request through the Record Access Control
Point (:mod:`devices.gatt.racp`), each record carrying a sequence number the bridge uses to ask
only for what it has not seen.

Glucose Measurement (GLS §3.106 of the GATT Specification Supplement): flags uint8 (bit 0 time
offset present, bit 1 concentration + type-sample location present, bit 2 concentration unit
mol/L (else kg/L), bit 3 sensor status annunciation present, bit 4 context information follows;
bits 5-7 reserved) | sequence number uint16 | base time Date Time (mandatory) | time offset
sint16 minutes | concentration SFLOAT | type (low nibble) and sample location (high nibble)
uint8 | sensor status annunciation uint16. ``time`` = base time + offset minutes (the offset is
kept in extra "time_offset_minutes" too). The unit bit without the concentration bit is
inconsistent → InvalidFlags. The unit is kept as sent ("kg/L" or "mol/L"), never converted.

Type → MDC code: 1 capillary whole blood, 2 capillary plasma, 3 venous whole blood, 4 venous
plasma, 5 arterial whole blood, 6 arterial plasma, 7 undetermined whole blood, 8 undetermined
plasma, 9 interstitial fluid, 10 control solution (MDC_CONC_GLU_*); others reserved →
InvalidValue. Sample location: 1 finger, 2 alternate site test, 3 earlobe, 4 control solution,
15 not available; others reserved → InvalidValue.

Context (GSS "Glucose Measurement Context"): flags (bit 0 carbohydrate, bit 1 meal, bit 2
tester-health, bit 3 exercise, bit 4 medication, bit 5 medication unit litre (else kg; needs
bit 4), bit 6 HbA1c, bit 7 extended flags present) | sequence number | extended flags uint8
(all RFU: non-zero → InvalidFlags) | carbohydrate id uint8 + carbohydrate SFLOAT kg | meal
uint8 | tester (low nibble) / health (high nibble) | exercise duration uint16 s + intensity
uint8 % | medication id uint8 + medication SFLOAT kg or L | HbA1c SFLOAT %.
"""

from __future__ import annotations

import struct
from datetime import timedelta

from devices.gatt import mdc
from devices.gatt.datetime_field import TIME_UNKNOWN_FLAG, encode_date_time, from_fields
from devices.gatt.errors import EncodeError, InvalidFlags, InvalidValue
from devices.gatt.measurement import Component, FlagNames, Measurement, make_extra
from devices.gatt.reader import S16, U16, Buffer, Reader
from devices.gatt.sfloat import encode_component_sfloat, sfloat_component
from devices.gatt.uuids import GLUCOSE_MEASUREMENT, GLUCOSE_MEASUREMENT_CONTEXT

KIND = "glucose"
KIND_CONTEXT = "glucose_context"
_HEAD = struct.Struct("<BHHBBBBB")
_CONTEXT_HEAD = struct.Struct("<BH")
_EXERCISE = struct.Struct("<HB")
_RESERVED = 0xE0
_OFFSET, _CONC, _MOL, _ANNUNCIATION, _CONTEXT = 0x01, 0x02, 0x04, 0x08, 0x10

GLUCOSE_TYPES: dict[int, tuple[str, int]] = {
    1: ("capillary_whole_blood", mdc.MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD),
    2: ("capillary_plasma", mdc.MDC_CONC_GLU_CAPILLARY_PLASMA),
    3: ("venous_whole_blood", mdc.MDC_CONC_GLU_VENOUS_WHOLEBLOOD),
    4: ("venous_plasma", mdc.MDC_CONC_GLU_VENOUS_PLASMA),
    5: ("arterial_whole_blood", mdc.MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD),
    6: ("arterial_plasma", mdc.MDC_CONC_GLU_ARTERIAL_PLASMA),
    7: ("undetermined_whole_blood", mdc.MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD),
    8: ("undetermined_plasma", mdc.MDC_CONC_GLU_UNDETERMINED_PLASMA),
    9: ("interstitial_fluid", mdc.MDC_CONC_GLU_ISF),
    10: ("control_solution", mdc.MDC_CONC_GLU_CONTROL),
}
SAMPLE_LOCATIONS = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
_TYPE_CODE = {name: code for code, (name, _) in GLUCOSE_TYPES.items()}
_TYPE_OF_MDC = {code: t for t, (_, code) in GLUCOSE_TYPES.items()}
_LOCATION_CODE = {name: code for code, name in SAMPLE_LOCATIONS.items()}

# Sensor Status Annunciation bits 0-11, then our own flags.
FLAGS = FlagNames(
    "device_battery_low",
    "sensor_malfunction",
    "sample_size_insufficient",
    "strip_insertion_error",
    "strip_type_incorrect",
    "result_above_device_range",
    "result_below_device_range",
    "sensor_temperature_too_high",
    "sensor_temperature_too_low",
    "sensor_read_interrupted",
    "general_device_fault",
    "time_fault",
    TIME_UNKNOWN_FLAG,
    "context_follows",
)
_ANNUNCIATION_MASK = 0x0FFF


def decode_glucose(data: Buffer) -> Measurement:
    """Decode one Glucose Measurement notification (one stored record)."""
    r = Reader(data, GLUCOSE_MEASUREMENT)
    flags, sequence, *stamp = r.unpack(_HEAD)
    if flags & _RESERVED:
        r.fail(InvalidFlags, f"reserved flag bits set: 0x{flags:02X}")
    if flags & _MOL and not flags & _CONC:
        r.fail(InvalidFlags, "concentration unit flag set without a concentration")
    time = from_fields(tuple(stamp), r)
    bits = 0x2000 if flags & _CONTEXT else 0
    extra: dict[str, str | int] = {}
    if flags & _OFFSET:
        offset = r.unpack(S16)[0]
        extra["time_offset_minutes"] = offset
        if time is not None:
            time += timedelta(minutes=offset)
    if time is None:
        bits |= 0x1000
    components: tuple[Component, ...] = ()
    if flags & _CONC:
        raw = r.u16()
        type_location = r.u8()
        entry = GLUCOSE_TYPES.get(type_location & 0x0F)
        location = SAMPLE_LOCATIONS.get(type_location >> 4)
        if entry is None or location is None:
            r.fail(InvalidValue, f"reserved glucose type/sample location 0x{type_location:02X}")
        extra["glucose_type"] = entry[0]
        extra["sample_location"] = location
        components = (sfloat_component(raw, entry[1], "mol/L" if flags & _MOL else "kg/L"),)
    if flags & _ANNUNCIATION:
        bits |= r.u16() & _ANNUNCIATION_MASK
    r.finish()
    return Measurement(
        kind=KIND,
        components=components,
        time=time,
        flags=FLAGS.decode(bits),
        sequence=sequence,
        extra=make_extra(**extra) if extra else (),
    )


def encode_glucose(m: Measurement) -> bytes:
    """Encode a "glucose" measurement; ``sequence`` is required."""
    if m.sequence is None or not 0 <= m.sequence <= 0xFFFF:
        raise EncodeError("a glucose record needs a sequence number 0..65535")
    extra = m.extra_dict()
    offset = extra.get("time_offset_minutes")
    base = m.time
    flags = 0
    tail = bytearray()
    if offset is not None:
        if not isinstance(offset, int) or not -32768 <= offset <= 32767:
            raise EncodeError(f"time offset {offset!r} is not a sint16")
        flags |= _OFFSET
        tail += S16.pack(offset)
        if base is not None:
            base -= timedelta(minutes=offset)
    if m.components:
        if len(m.components) != 1:
            raise EncodeError("a glucose record has at most one concentration")
        c = m.components[0]
        type_code = _TYPE_OF_MDC.get(c.mdc)
        location = _LOCATION_CODE.get(str(extra.get("sample_location")))
        if type_code is None or location is None or c.unit not in ("kg/L", "mol/L"):
            raise EncodeError(f"cannot encode glucose component {c!r} / {extra}")
        flags |= _CONC | (_MOL if c.unit == "mol/L" else 0)
        tail += U16.pack(encode_component_sfloat(c))
        tail.append(type_code | location << 4)
    bits = FLAGS.encode(m.flags)
    if bits & _ANNUNCIATION_MASK:
        flags |= _ANNUNCIATION
        tail += U16.pack(bits & _ANNUNCIATION_MASK)
    if "context_follows" in m.flags:
        flags |= _CONTEXT
    return bytes([flags]) + U16.pack(m.sequence) + encode_date_time(base) + bytes(tail)


CARBOHYDRATES = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEALS = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
HEALTH = {
    1: "minor_health_issues",
    2: "major_health_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_health_issues",
    15: "not_available",
}
MEDICATIONS = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}


def _lookup(r: Reader, table: dict[int, str], value: int, what: str) -> str:
    name = table.get(value)
    if name is None:
        r.fail(InvalidValue, f"reserved {what} {value}")
    return name


def decode_glucose_context(data: Buffer) -> Measurement:
    """Decode one Glucose Measurement Context notification."""
    r = Reader(data, GLUCOSE_MEASUREMENT_CONTEXT)
    flags, sequence = r.unpack(_CONTEXT_HEAD)
    if flags & 0x20 and not flags & 0x10:
        r.fail(InvalidFlags, "medication unit flag set without a medication")
    if flags & 0x80:
        extended = r.u8()
        if extended:
            r.fail(InvalidFlags, f"reserved extended flag bits set: 0x{extended:02X}")
    extra: dict[str, str | int] = {}
    components: list[Component] = []
    if flags & 0x01:
        extra["carbohydrate_id"] = _lookup(r, CARBOHYDRATES, r.u8(), "carbohydrate id")
        components.append(sfloat_component(r.u16(), mdc.MDC_CTXT_GLU_CARB, "kg"))
    if flags & 0x02:
        extra["meal"] = _lookup(r, MEALS, r.u8(), "meal")
    if flags & 0x04:
        tester_health = r.u8()
        extra["tester"] = _lookup(r, TESTERS, tester_health & 0x0F, "tester")
        extra["health"] = _lookup(r, HEALTH, tester_health >> 4, "health")
    if flags & 0x08:
        duration, intensity = r.unpack(_EXERCISE)
        if intensity > 100:
            r.fail(InvalidValue, f"exercise intensity {intensity} % above 100")
        extra["exercise_duration_s"] = duration  # 65535 means "overrun"
        extra["exercise_intensity_percent"] = intensity
    if flags & 0x10:
        extra["medication_id"] = _lookup(r, MEDICATIONS, r.u8(), "medication id")
        components.append(
            sfloat_component(r.u16(), mdc.MDC_CTXT_MEDICATION, "L" if flags & 0x20 else "kg")
        )
    if flags & 0x40:
        components.append(sfloat_component(r.u16(), mdc.MDC_CONC_HBA1C, "%"))
    r.finish()
    return Measurement(
        kind=KIND_CONTEXT,
        components=tuple(components),
        sequence=sequence,
        extra=make_extra(**extra) if extra else (),
    )


def _code(table: dict[int, str], name: object, what: str) -> int:
    for code, n in table.items():
        if n == name:
            return code
    raise EncodeError(f"unknown {what} {name!r}")


def encode_glucose_context(m: Measurement) -> bytes:
    """Encode a "glucose_context" measurement; ``sequence`` is required."""
    if m.sequence is None or not 0 <= m.sequence <= 0xFFFF:
        raise EncodeError("a glucose context needs a sequence number 0..65535")
    extra = m.extra_dict()
    flags = 0
    body = bytearray()
    carb = m.component(mdc.MDC_CTXT_GLU_CARB)
    if carb is not None:
        flags |= 0x01
        body.append(_code(CARBOHYDRATES, extra.get("carbohydrate_id"), "carbohydrate id"))
        body += U16.pack(encode_component_sfloat(carb))
    if "meal" in extra:
        flags |= 0x02
        body.append(_code(MEALS, extra["meal"], "meal"))
    if "tester" in extra or "health" in extra:
        flags |= 0x04
        tester = _code(TESTERS, extra.get("tester", "not_available"), "tester")
        health = _code(HEALTH, extra.get("health", "not_available"), "health")
        body.append(tester | health << 4)
    if "exercise_duration_s" in extra:
        duration = extra["exercise_duration_s"]
        intensity = extra.get("exercise_intensity_percent", 0)
        if not isinstance(duration, int) or not isinstance(intensity, int):
            raise EncodeError("exercise duration and intensity are integers")
        if not 0 <= duration <= 0xFFFF or not 0 <= intensity <= 100:
            raise EncodeError("exercise duration or intensity out of range")
        flags |= 0x08
        body += _EXERCISE.pack(duration, intensity)
    medication = m.component(mdc.MDC_CTXT_MEDICATION)
    if medication is not None:
        if medication.unit not in ("kg", "L"):
            raise EncodeError(f"medication unit {medication.unit!r} is neither kg nor L")
        flags |= 0x10 | (0x20 if medication.unit == "L" else 0)
        body.append(_code(MEDICATIONS, extra.get("medication_id"), "medication id"))
        body += U16.pack(encode_component_sfloat(medication))
    hba1c = m.component(mdc.MDC_CONC_HBA1C)
    if hba1c is not None:
        flags |= 0x40
        body += U16.pack(encode_component_sfloat(hba1c))
    return _CONTEXT_HEAD.pack(flags, m.sequence) + bytes(body)
