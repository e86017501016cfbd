"""Hypothesis strategies that build canonical Measurements of every kind (no tests here).

Named test_gatt_* only so that it lives beside the tests that import it.

Components are built from raw wire words through the decoders' own helpers, so every value is
one the wire can carry; flags are drawn from each module's named-flag tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import strategies as st

from devices.gatt import blood_pressure, cgm, glucose, mdc, pulse_oximeter, thermometer
from devices.gatt.measurement import Component, Measurement, make_extra
from devices.gatt.sfloat import float_component, sfloat_component

U16 = st.integers(0, 0xFFFF)


def sf(code: int, unit: str, modality: str | None = None) -> st.SearchStrategy[Component]:
    return U16.map(lambda raw: sfloat_component(raw, code, unit, modality))


def subsets(names) -> st.SearchStrategy[frozenset[str]]:
    return st.sets(st.sampled_from([n for n in names if n])).map(frozenset)


stamps = st.datetimes(
    min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda d: d.replace(microsecond=0))
# (time, flags): absent, present but unknown, or a real time.
time_field = st.one_of(
    st.just((None, frozenset())),
    st.just((None, frozenset({"time_unknown"}))),
    stamps.map(lambda t: (t, frozenset())),
)
user_field = st.one_of(
    st.just((None, frozenset())),
    st.just((None, frozenset({"user_unknown"}))),
    st.integers(0, 254).map(lambda u: (u, frozenset())),
)


@st.composite
def heart_rate(draw) -> Measurement:
    comps = [Component(mdc.MDC_ECG_HEART_RATE, float(draw(U16)), "/min")]
    if draw(st.booleans()):
        comps.append(Component(mdc.MDC_HF_ENERGY, float(draw(U16)), "kJ"))
    comps += [
        Component(mdc.MDC_ECG_TIME_PD_RR_GL, raw / 1024, "s")
        for raw in draw(st.lists(U16, max_size=9))
    ]
    contact = draw(
        st.sampled_from(
            [
                frozenset(),
                frozenset({"sensor_contact_supported"}),
                frozenset({"sensor_contact_supported", "sensor_contact_detected"}),
            ]
        )
    )
    return Measurement(kind="heart_rate", components=tuple(comps), flags=contact)


@st.composite
def blood_pressure_m(draw, cuff: bool = False) -> Measurement:
    unit = draw(st.sampled_from(["mm[Hg]", "kPa"]))
    if cuff:
        comps = [draw(sf(mdc.MDC_PRESS_CUFF, unit))]
    else:
        comps = [
            draw(sf(code, unit))
            for code in (
                mdc.MDC_PRESS_BLD_NONINV_SYS,
                mdc.MDC_PRESS_BLD_NONINV_DIA,
                mdc.MDC_PRESS_BLD_NONINV_MEAN,
            )
        ]
    if draw(st.booleans()):
        comps.append(draw(sf(mdc.MDC_PULS_RATE_NON_INV, "/min")))
    time, tflags = draw(time_field)
    user, uflags = draw(user_field)
    status = draw(subsets(blood_pressure.FLAGS.names[:6]))
    if {"pulse_rate_above_upper_limit", "pulse_rate_below_lower_limit"} <= status:
        status -= {"pulse_rate_below_lower_limit"}
    return Measurement(
        kind="intermediate_cuff_pressure" if cuff else "blood_pressure",
        components=tuple(comps),
        time=time,
        flags=tflags | uflags | status,
        user_id=user,
    )


@st.composite
def temperature(draw) -> Measurement:
    unit = draw(st.sampled_from(["Cel", "[degF]"]))
    t = draw(st.one_of(st.none(), st.sampled_from(sorted(thermometer.TEMPERATURE_TYPES))))
    code = mdc.MDC_TEMP_BODY if t is None else thermometer.TEMPERATURE_TYPES[t][1]
    time, tflags = draw(time_field)
    return Measurement(
        kind="temperature",
        components=(float_component(draw(st.integers(0, 0xFFFFFFFF)), code, unit),),
        time=time,
        flags=tflags,
        extra=() if t is None else (("temperature_type", thermometer.TEMPERATURE_TYPES[t][0]),),
    )


def _pair(draw, modality):
    return [
        draw(sf(mdc.MDC_PULS_OXIM_SAT_O2, "%", modality)),
        draw(sf(mdc.MDC_PULS_OXIM_PULS_RATE, "/min", modality)),
    ]


@st.composite
def plx(draw, continuous: bool) -> Measurement:
    comps = _pair(draw, None)
    flags = draw(subsets(pulse_oximeter.MEASUREMENT_STATUS + pulse_oximeter.DEVICE_STATUS))
    time = None
    if continuous:
        for modality in ("fast", "slow"):
            if draw(st.booleans()):
                comps += _pair(draw, modality)
    else:
        time, tflags = draw(time_field)
        flags |= tflags
        if draw(st.booleans()):
            flags |= {"device_clock_not_set"}
    if draw(st.booleans()):
        comps.append(draw(sf(mdc.MDC_PULS_OXIM_PERF_REL, "%")))
    return Measurement(
        kind="plx_continuous" if continuous else "plx_spot_check",
        components=tuple(comps),
        time=time,
        flags=flags,
    )


@st.composite
def glucose_m(draw) -> Measurement:
    extra: dict = {}
    flags = set(draw(subsets(glucose.FLAGS.names[:12])))
    if draw(st.booleans()):
        flags.add("context_follows")
    base = draw(
        st.one_of(
            st.none(),
            st.datetimes(datetime(1600, 1, 1), datetime(9990, 1, 1)).map(
                lambda d: d.replace(microsecond=0)
            ),
        )
    )
    offset = draw(st.one_of(st.none(), st.integers(-32768, 32767)))
    time = base
    if offset is not None:
        extra["time_offset_minutes"] = offset
        if base is not None:
            time = base + timedelta(minutes=offset)
    if time is None:
        flags.add("time_unknown")
    comps: tuple = ()
    if draw(st.booleans()):
        t = draw(st.sampled_from(sorted(glucose.GLUCOSE_TYPES)))
        name, code = glucose.GLUCOSE_TYPES[t]
        extra["glucose_type"] = name
        extra["sample_location"] = draw(st.sampled_from(sorted(glucose.SAMPLE_LOCATIONS.values())))
        comps = (draw(sf(code, draw(st.sampled_from(["kg/L", "mol/L"])))),)
    return Measurement(
        kind="glucose",
        components=comps,
        time=time,
        flags=frozenset(flags),
        sequence=draw(U16),
        extra=make_extra(**extra),
    )


@st.composite
def glucose_context(draw) -> Measurement:
    extra: dict = {}
    comps = []
    if draw(st.booleans()):
        extra["carbohydrate_id"] = draw(st.sampled_from(sorted(glucose.CARBOHYDRATES.values())))
        comps.append(draw(sf(mdc.MDC_CTXT_GLU_CARB, "kg")))
    if draw(st.booleans()):
        extra["meal"] = draw(st.sampled_from(sorted(glucose.MEALS.values())))
    if draw(st.booleans()):
        extra["tester"] = draw(st.sampled_from(sorted(glucose.TESTERS.values())))
        extra["health"] = draw(st.sampled_from(sorted(glucose.HEALTH.values())))
    if draw(st.booleans()):
        extra["exercise_duration_s"] = draw(U16)
        extra["exercise_intensity_percent"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        extra["medication_id"] = draw(st.sampled_from(sorted(glucose.MEDICATIONS.values())))
        comps.append(draw(sf(mdc.MDC_CTXT_MEDICATION, draw(st.sampled_from(["kg", "L"])))))
    if draw(st.booleans()):
        comps.append(draw(sf(mdc.MDC_CONC_HBA1C, "%")))
    return Measurement(
        kind="glucose_context",
        components=tuple(comps),
        sequence=draw(U16),
        extra=make_extra(**extra),
    )


@st.composite
def weight(draw) -> Measurement:
    imperial = draw(st.booleans())
    raw = draw(U16)
    flags = set()
    if raw == 0xFFFF:
        comps = [Component(mdc.MDC_MASS_BODY_ACTUAL, None, "[lb_av]" if imperial else "kg", "NaN")]
        flags.add("measurement_unsuccessful")
    else:
        comps = [
            Component(
                mdc.MDC_MASS_BODY_ACTUAL,
                raw / 100 if imperial else raw * 5 / 1000,
                "[lb_av]" if imperial else "kg",
            )
        ]
    if draw(st.booleans()):
        comps.append(
            Component(mdc.MDC_RATIO_MASS_BODY_LEN_SQ, draw(st.integers(0, 0xFFFE)) / 10, "kg/m2")
        )
        h = draw(st.integers(0, 0xFFFE))
        comps.append(
            Component(
                mdc.MDC_LEN_BODY_ACTUAL,
                h / 10 if imperial else h / 1000,
                "[in_i]" if imperial else "m",
            )
        )
    time, tflags = draw(time_field)
    user, uflags = draw(user_field)
    return Measurement(
        kind="weight",
        components=tuple(comps),
        time=time,
        flags=frozenset(flags) | tflags | uflags,
        user_id=user,
    )


@st.composite
def cgm_m(draw) -> Measurement:
    extra = {"time_offset_minutes": draw(U16)}
    for key in ("trend", "quality"):
        if draw(st.booleans()):
            extra[key] = cgm._special_or_value(draw(U16))
    flags = draw(subsets(cgm.STATUS_OCTET + cgm.CAL_TEMP_OCTET + cgm.WARNING_OCTET))
    if draw(st.booleans()):
        flags |= {"e2e_crc"}
    return Measurement(
        kind="cgm",
        components=(draw(sf(mdc.MDC_CONC_GLU_ISF, "mg/dL")),),
        flags=flags,
        extra=make_extra(**extra),
    )


battery = st.integers(0, 100).map(
    lambda v: Measurement(
        kind="battery", components=(Component(mdc.MDC_ATTR_VAL_BATT_CHARGE, float(v), "%"),)
    )
)
device_information = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "manufacturer_name",
                "model_number",
                "serial_number",
                "firmware_revision",
                "hardware_revision",
                "software_revision",
            ]
        ),
        st.text(max_size=40).filter(lambda s: not s.endswith("\x00")),
    ),
    st.tuples(st.just("system_id"), st.integers(0, 2**64 - 1).map(lambda v: f"{v:016X}")),
).map(lambda kv: Measurement(kind="device_information", extra=(kv,)))

ALL_KINDS = {
    "heart_rate": heart_rate(),
    "blood_pressure": blood_pressure_m(),
    "intermediate_cuff_pressure": blood_pressure_m(cuff=True),
    "temperature": temperature(),
    "plx_spot_check": plx(continuous=False),
    "plx_continuous": plx(continuous=True),
    "glucose": glucose_m(),
    "glucose_context": glucose_context(),
    "weight": weight(),
    "cgm": cgm_m(),
    "battery": battery,
    "device_information": device_information,
}
