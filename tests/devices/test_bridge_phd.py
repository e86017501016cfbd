"""devices.bridge.phd: readings → PHD-IG transaction Bundles, validated by fhir.resources R4B."""

from __future__ import annotations

import types
from datetime import datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.bundle import Bundle

from devices import gatt
from devices.bridge.phd import Gateway, build_bundle
from devices.bridge.reading import MonitorInfo, make_reading, reading_from_json, reading_to_json
from devices.gatt.measurement import Component, Measurement, make_extra

CST = timezone(timedelta(hours=8))
PATIENT = "440106195803120021"
GATEWAY = Gateway("02-4F-1A-FF-FE-33-9C-07")
RECEIVED = datetime(2025, 3, 1, 8, 3, 0, tzinfo=CST)


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """pytest-django's fixture is asked for by the root conftest; these tests run without Django."""
    return types.SimpleNamespace()


def _via_gatt(m: Measurement) -> Measurement:
    """Send the measurement through the real encoder and decoder, as the bridge receives it."""
    return gatt.decode(gatt.characteristic_for(m), gatt.encode(m))


def _reading(
    m: Measurement,
    kind: str,
    *,
    system_id: str | None = "00-1C-05-FF-FE-01-02-03",
    offset_s: int = 130,
):
    mon = MonitorInfo(
        address="c0:26:da:01:02:03",
        kind=kind,
        system_id=system_id,
        manufacturer="Omron",
        model="BP7000",
        serial="12345",
        firmware="1.2",
    )
    return make_reading(
        patient_id=PATIENT,
        monitor=mon,
        measurement=_via_gatt(m),
        received_at=RECEIVED,
        clock_offset=timedelta(seconds=offset_s),
    )


T = datetime(2025, 3, 1, 8, 0, 5)
BP = Measurement(
    "blood_pressure",
    (
        Component(150021, 142.0, "mm[Hg]"),
        Component(150022, 91.0, "mm[Hg]"),
        Component(150023, None, "mm[Hg]", "NaN"),
        Component(149546, 78.0, "/min"),
    ),
    T,
    frozenset({"irregular_pulse", "body_movement"}),
    user_id=1,
)
EXAMPLES = {
    "blood_pressure": BP,
    "thermometer": Measurement("temperature", (Component(150364, 38.2, "Cel"),), T, extra=make_extra(temperature_type="body")),
    "pulse_oximeter": Measurement(
        "plx_spot_check", (Component(150456, None, "%", "NRes"), Component(149530, 88.0, "/min")), T
    ),
    "glucose_meter": Measurement(
        "glucose", (Component(160188, 0.0072, "mol/L"),), T, sequence=17,
        extra=make_extra(glucose_type="capillary_plasma", sample_location="finger"),
    ),
    "weight_scale": Measurement(
        "weight", (Component(188736, 72.35, "kg"), Component(188752, 26.6, "kg/m2"), Component(188740, 1.65, "m")), T, user_id=2
    ),
    "heart_rate": Measurement("heart_rate", (Component(147842, 64.0, "/min"),), flags=frozenset({"sensor_contact_supported"})),
    "cgm": Measurement("cgm", (Component(160212, 131.0, "mg/dL"),), extra=make_extra(time_offset_minutes=95)),
    "battery": Measurement("battery", (Component(67996, 80.0, "%"),)),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_bundle_for_each_monitor_kind_is_valid_r4b(kind: str) -> None:
    r = _reading(EXAMPLES[kind], kind)
    built = build_bundle([r], GATEWAY)
    Bundle.model_validate(built.bundle)
    obs = [
        e["resource"]
        for e in built.bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert obs, kind
    assert len(built.entry_keys) == len(built.bundle["entry"])
    for o in obs:
        assert o["subject"] == {
            "identifier": {"system": "urn:oid:2.16.156.10011.1.2", "value": PATIENT}
        }
        assert o["code"]["coding"][0]["system"] in (
            "urn:iso:std:iso:11073:10101",
            "urn:sg:gatt-status",
        )
        assert o["effectiveDateTime"].endswith("+08:00")
        assert (
            o["extension"][0]["url"]
            == "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
        )


def test_glucose_weight_and_spo2_details() -> None:
    glu = build_bundle([_reading(EXAMPLES["glucose_meter"], "glucose_meter")], GATEWAY).bundle[
        "entry"
    ][2]["resource"]
    assert glu["valueQuantity"] == {
        "value": 7.2,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    assert [c["code"] for c in glu["code"]["coding"]] == ["160188", "15074-8"]
    assert glu["identifier"][0]["value"].endswith(".160188.20250301T080005.s17")
    scale = build_bundle([_reading(EXAMPLES["weight_scale"], "weight_scale")], GATEWAY).bundle[
        "entry"
    ][2:]
    by_code = {e["resource"]["code"]["coding"][0]["code"]: e["resource"] for e in scale}
    assert (
        by_code["188740"]["valueQuantity"]["value"] == 165
        and by_code["188740"]["valueQuantity"]["code"] == "cm"
    )
    assert by_code["188736"]["identifier"][0]["value"].endswith(".u2")
    spo2 = build_bundle([_reading(EXAMPLES["pulse_oximeter"], "pulse_oximeter")], GATEWAY).bundle[
        "entry"
    ][2]["resource"]
    assert spo2["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert [c["code"] for c in spo2["code"]["coding"]] == ["150456", "59408-5", "2708-6"]


def test_monitor_without_system_id_is_identified_by_its_address() -> None:
    built = build_bundle(
        [_reading(EXAMPLES["thermometer"], "thermometer", system_id=None)], GATEWAY
    )
    dev = built.bundle["entry"][1]
    assert dev["request"]["ifNoneExist"] == "identifier=urn:sg:ble-address|C0:26:DA:01:02:03"
    obs = built.bundle["entry"][2]["resource"]
    assert obs["identifier"][0]["value"] == "C0:26:DA:01:02:03.150364.20250301T080005"


def test_monitor_without_time_stamp_uses_the_receive_time() -> None:
    obs = build_bundle([_reading(EXAMPLES["heart_rate"], "heart_rate")], GATEWAY).bundle["entry"][
        2
    ]["resource"]
    assert obs["effectiveDateTime"] == "2025-03-01T08:03:00+08:00"
    assert obs["identifier"][0]["value"] == "00-1C-05-FF-FE-01-02-03.147842.r20250301T000300000"


def test_reading_survives_its_json_round_trip() -> None:
    r = _reading(BP, "blood_pressure")
    assert reading_from_json(reading_to_json(r)) == r


def test_one_device_entry_per_monitor_and_keys_per_entry() -> None:
    a = _reading(BP, "blood_pressure")
    b = _reading(
        Measurement("blood_pressure", BP.components, T + timedelta(minutes=5), user_id=1),
        "blood_pressure",
    )
    built = build_bundle([a, b], GATEWAY)
    types_ = [e["resource"]["resourceType"] for e in built.bundle["entry"]]
    assert types_.count("Device") == 2  # gateway + the one cuff
    assert (
        built.entry_keys.count(a.key) == 3 and built.entry_keys.count(b.key) == 2
    )  # a has a status report


def test_blood_pressure_bundle_whole() -> None:
    built = build_bundle([_reading(BP, "blood_pressure")], GATEWAY)
    Bundle.model_validate(built.bundle)
    assert built.bundle == EXPECTED_BP_BUNDLE


MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SYSID = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
GW_URL = "urn:uuid:43ba78ba-fc6d-5e73-ba67-b62a823baa5a"
CUFF_URL = "urn:uuid:0147ab32-f76e-5950-a2bc-c9d674589fda"
PANEL_ID = "00-1C-05-FF-FE-01-02-03.150020.20250301T080005.u1"
PULSE_ID = "00-1C-05-FF-FE-01-02-03.149546.20250301T080005.u1"
STATUS_ID = "00-1C-05-FF-FE-01-02-03.8410608.20250301T080005.u1"
VITAL = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
                "display": "Vital Signs",
            }
        ],
        "text": "Vital Signs",
    }
]
HEADER = {
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
            "valueReference": {"reference": GW_URL},
        }
    ]
}
SUBJECT = {"identifier": {"system": "urn:oid:2.16.156.10011.1.2", "value": PATIENT}}
SYSID_TYPE = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers",
            "code": "SYSID",
        }
    ]
}
BPM = {"coding": [{"system": MDC, "code": "528391", "display": "MDC_DEV_SPEC_PROFILE_BPM"}]}


def _mm(v: int) -> dict:
    return {"value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}


EXPECTED_BP_BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": GW_URL,
            "resource": {
                "resourceType": "Device",
                "identifier": [{"type": SYSID_TYPE, "system": SYSID, "value": "02-4F-1A-FF-FE-33-9C-07"}],
                "type": {"coding": [{"system": MDC, "code": "531981", "display": "MDC_MOC_VMS_MDS_AHD"}], "text": "Personal health gateway"},
                "deviceName": [{"name": "Smart Guangdong home bridge", "type": "user-friendly-name"}],
            },
            "request": {"method": "POST", "url": "Device", "ifNoneExist": f"identifier={SYSID}|02-4F-1A-FF-FE-33-9C-07"},
        },
        {
            "fullUrl": CUFF_URL,
            "resource": {
                "resourceType": "Device",
                "identifier": [
                    {"type": SYSID_TYPE, "system": SYSID, "value": "00-1C-05-FF-FE-01-02-03"},
                    {"system": "urn:sg:ble-address", "value": "C0:26:DA:01:02:03"},
                ],
                "type": BPM,
                "specialization": [{"systemType": BPM}],
                "manufacturer": "Omron",
                "serialNumber": "12345",
                "modelNumber": "BP7000",
                "version": [{"type": {"coding": [{"system": MDC, "code": "531976", "display": "MDC_ID_PROD_SPEC_FW"}]}, "value": "1.2"}],
            },
            "request": {"method": "POST", "url": "Device", "ifNoneExist": f"identifier={SYSID}|00-1C-05-FF-FE-01-02-03"},
        },
        {
            "fullUrl": "urn:uuid:9adc3a63-332a-55ec-bf81-308197c79f60",
            "resource": {
                "resourceType": "Observation",
                **HEADER,
                "identifier": [{"system": "urn:sg:phd-observation", "value": PANEL_ID}],
                "status": "final",
                "category": VITAL,
                "code": {
                    "coding": [
                        {"system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV"},
                        {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel with all children optional"},
                    ],
                    "text": "Blood pressure",
                },
                "subject": SUBJECT,
                "effectiveDateTime": "2025-03-01T08:02:15+08:00",
                "device": {"reference": CUFF_URL},
                "component": [
                    {
                        "code": {
                            "coding": [
                                {"system": MDC, "code": "150021", "display": "MDC_PRESS_BLD_NONINV_SYS"},
                                {"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"},
                            ],
                            "text": "Systolic blood pressure",
                        },
                        "valueQuantity": _mm(142),
                    },
                    {
                        "code": {
                            "coding": [
                                {"system": MDC, "code": "150022", "display": "MDC_PRESS_BLD_NONINV_DIA"},
                                {"system": LOINC, "code": "8462-4", "display": "Diastolic blood pressure"},
                            ],
                            "text": "Diastolic blood pressure",
                        },
                        "valueQuantity": _mm(91),
                    },
                    {
                        "code": {
                            "coding": [
                                {"system": MDC, "code": "150023", "display": "MDC_PRESS_BLD_NONINV_MEAN"},
                                {"system": LOINC, "code": "8478-0", "display": "Mean blood pressure"},
                            ],
                            "text": "Mean blood pressure",
                        },
                        "dataAbsentReason": {
                            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-a-number"}],
                            "text": "NaN",
                        },
                    },
                ],
            },
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier=urn:sg:phd-observation|{PANEL_ID}"},
        },
        {
            "fullUrl": "urn:uuid:6c07d6b8-2836-5ef9-a8a5-6b6c8361a95d",
            "resource": {
                "resourceType": "Observation",
                **HEADER,
                "identifier": [{"system": "urn:sg:phd-observation", "value": PULSE_ID}],
                "status": "final",
                "category": VITAL,
                "code": {
                    "coding": [
                        {"system": MDC, "code": "149546", "display": "MDC_PULS_RATE_NON_INV"},
                        {"system": LOINC, "code": "8867-4", "display": "Heart rate"},
                    ],
                    "text": "Pulse rate",
                },
                "subject": SUBJECT,
                "effectiveDateTime": "2025-03-01T08:02:15+08:00",
                "device": {"reference": CUFF_URL},
                "valueQuantity": {"value": 78, "unit": "/min", "system": UCUM, "code": "/min"},
            },
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier=urn:sg:phd-observation|{PULSE_ID}"},
        },
        {
            "fullUrl": "urn:uuid:b6e5ea93-02d3-56fc-9a92-af729f757cf5",
            "resource": {
                "resourceType": "Observation",
                **HEADER,
                "identifier": [{"system": "urn:sg:phd-observation", "value": STATUS_ID}],
                "status": "final",
                "code": {
                    "coding": [{"system": MDC, "code": "8410608", "display": "MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS"}],
                    "text": "Measuring process issues",
                },
                "subject": SUBJECT,
                "effectiveDateTime": "2025-03-01T08:02:15+08:00",
                "device": {"reference": CUFF_URL},
                "derivedFrom": [{"reference": "urn:uuid:9adc3a63-332a-55ec-bf81-308197c79f60"}],
                "component": [
                    {
                        "code": {"coding": [{"system": "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7", "code": "8410608.0"}], "text": "body-movement"},
                        "valueCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0136", "code": "Y"}]},
                    },
                    {
                        "code": {"coding": [{"system": "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7", "code": "8410608.2"}], "text": "irregular-pulse"},
                        "valueCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0136", "code": "Y"}]},
                    },
                ],
            },
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": f"identifier=urn:sg:phd-observation|{STATUS_ID}"},
        },
    ],
}  # fmt: skip
