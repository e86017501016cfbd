"""fhir.mapping.hl7v2: reference PCD-01 messages → FHIR R4B Observations (pure, no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation

from devices.hl7 import pcd01
from devices.hl7.errors import ContentError
from fhir import vitals
from fhir.mapping import hl7v2

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
ORU_FILES = sorted(
    p.stem
    for p in DATA.glob("*.hl7")
    if not p.stem.startswith(("ipf_ack", "hl7apy_missing")) and "repetition" not in p.stem
)


def mapped(name: str, text: bytes | None = None) -> hl7v2.Mapped:
    oru = pcd01.parse_bytes(text if text is not None else (DATA / f"{name}.hl7").read_bytes())
    return hl7v2.map_oru(oru, patient_reference="Patient/7")


def codes_of(concept: dict) -> list[tuple[str | None, str]]:
    return [(c.get("system"), c["code"]) for c in concept["coding"]]


@pytest.mark.parametrize("name", ORU_FILES)
def test_every_resource_is_valid_r4b_and_round_trips(name: str) -> None:
    result = mapped(name)
    assert result.observations
    for device in result.devices:
        assert Device.model_validate(device).model_dump(mode="json", exclude_none=True) == device
    for obs in result.observations:
        dumped = Observation.model_validate(obs).model_dump(mode="json", exclude_none=True)
        # fhir.resources writes a zero UTC offset as "Z"; the instant is the same.
        assert json.loads(json.dumps(dumped)) == json.loads(json.dumps(obs).replace("+00:00", "Z"))
        assert obs["subject"] == {"reference": "Patient/7"}


def test_blood_pressure_becomes_one_panel_like_the_bridge_makes() -> None:
    (panel,) = mapped("ipf_pcd01_bp_request").observations
    assert panel == {
        "resourceType": "Observation",
        "extension": [
            {
                "url": hl7v2.GATEWAY_EXTENSION,
                "valueReference": {
                    "identifier": {"system": hl7v2.SYSID_SYSTEM, "value": "ACDE48234567ABCD"}
                },
            },
            {
                "url": hl7v2.OBX_EXTENSION,
                "extension": [
                    {"url": "setId", "valueInteger": 2},
                    {"url": "subId", "valueString": "1.0.1"},
                    {"url": "obr", "valueInteger": 1},
                    {"url": "resultStatus", "valueCode": "R"},
                ],
            },
        ],
        "identifier": [{"system": "urn:sg:hl7-obx", "value": "AcmeInc.MSGID1234.2"}],
        "status": "preliminary",
        "category": [
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
        ],
        "code": {
            "coding": [
                {"system": MDC, "code": "150020", "display": "MDC_PRESS_BLD_NONINV"},
                {
                    "system": LOINC,
                    "code": "85354-9",
                    "display": "Blood pressure panel with all children optional",
                },
            ],
            "text": "Blood pressure",
        },
        "subject": {"reference": "Patient/7"},
        "effectiveDateTime": "2009-08-13T09:57:15+05:00",
        "device": {"identifier": {"system": hl7v2.SYSID_SYSTEM, "value": "0123456789ABCDEF"}},
        "component": [
            {
                "extension": [
                    {
                        "url": hl7v2.OBX_EXTENSION,
                        "extension": [
                            {"url": "setId", "valueInteger": n},
                            {"url": "subId", "valueString": f"1.0.1.{n - 2}"},
                            {"url": "obr", "valueInteger": 1},
                            {"url": "resultStatus", "valueCode": "R"},
                        ],
                    }
                ],
                "code": {
                    "coding": [
                        {"system": MDC, "code": str(mdc), "display": term},
                        {"system": LOINC, "code": loinc, "display": display},
                    ],
                    "text": display,
                },
                "valueQuantity": {
                    "value": value,
                    "unit": "mm[Hg]",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            }
            for n, mdc, term, loinc, display, value in (
                (3, 150021, "MDC_PRESS_BLD_NONINV_SYS", "8480-6", "Systolic blood pressure", 120),
                (4, 150022, "MDC_PRESS_BLD_NONINV_DIA", "8462-4", "Diastolic blood pressure", 80),
                (5, 150023, "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "Mean blood pressure", 100),
            )
        ],
    }
    assert [(r.vital, r.value) for r in vitals.extract(panel)] == [
        ("systolic_bp", 120.0),
        ("diastolic_bp", 80.0),
        ("mean_bp", 100.0),
    ]


def test_devices_are_the_gateway_and_the_monitor_by_eui64() -> None:
    devices = mapped("ipf_pcd01_bp_request").devices
    assert [d["identifier"][0]["value"] for d in devices] == [
        "ACDE48234567ABCD",
        "0123456789ABCDEF",
    ]
    assert devices[1]["type"]["coding"][0]["code"] == "528391"


def test_container_compound_status_x_does_not_cancel_the_panel() -> None:
    (panel,) = mapped("ipf_continua_bp_timesync").observations  # time-sync and clock skipped
    assert panel["status"] == "preliminary"


def test_component_statuses_fold_into_the_panel_and_deleted_values_are_absent() -> None:
    panel = mapped("ipf_pcd01_maximum_request_edgecases").observations[0]
    assert panel["status"] == "corrected"  # components C, D, F
    systolic, diastolic, mean = panel["component"]
    assert systolic["valueQuantity"]["value"] == 140
    assert diastolic["dataAbsentReason"]["coding"][0]["code"] == "error"  # OBX-11 D
    assert mean["valueQuantity"]["value"] == 100


@pytest.mark.parametrize(
    ("hl7", "fhir"),
    [
        ("F", "final"),
        ("P", "preliminary"),
        ("C", "corrected"),
        ("X", "cancelled"),
        ("D", "entered-in-error"),
        ("R", "preliminary"),
        ("U", "final"),
    ],
)
def test_obx_11_maps_to_observation_status(hl7: str, fhir: str) -> None:
    raw = (
        (DATA / "ipf_continua_oximeter.hl7")
        .read_bytes()
        .replace(b"|||||R|||", f"|||||{hl7}|||".encode(), 1)
    )
    spo2 = mapped("", raw).observations[0]
    assert spo2["status"] == fhir


def test_two_obr_groups_get_distinct_identifiers() -> None:
    ids = [o["identifier"][0]["value"] for o in mapped("ipf_continua_scale_two_obr").observations]
    assert len(ids) == len(set(ids)) == 6
    restarting = mapped("ipf_pcd01_maximum_request_edgecases").observations
    assert {o["identifier"][0]["value"] for o in restarting} >= {
        "SendFac.MSGID1234.1-2",
        "SendFac.MSGID1234.2-3",
    }


def test_units_and_loinc_follow_the_value() -> None:
    glucose = mapped("ipf_continua_glucose").observations[0]
    assert codes_of(glucose["code"]) == [(MDC, "160184"), (LOINC, "2339-0")]  # mg/dL → mass LOINC
    assert glucose["valueQuantity"]["code"] == "mg/dL"
    (temp,) = mapped("ipf_continua_thermometer_fahrenheit").observations
    assert temp["valueQuantity"] == {
        "value": 98.6,
        "unit": "[degF]",
        "system": "http://unitsofmeasure.org",
        "code": "[degF]",
    }
    assert vitals.extract(temp)[0].value == 37.0


def test_waveform_and_codes_and_non_vitals() -> None:
    spo2, pleth = mapped("ipf_continua_oximeter").observations
    assert codes_of(spo2["code"]) == [(MDC, "150456"), (LOINC, "59408-5"), (LOINC, "2708-6")]
    assert pleth["valueSampledData"]["data"] == "12 123 24 12 234 55 66 77 88 99"
    assert "category" not in pleth
    monitor = mapped("ipf_pcd01_multiparam_monitor_gateway").observations
    assert [o["code"]["coding"][0]["code"] for o in monitor if "category" in o] == ["147842"]
    status = [o for o in mapped("ipf_continua_glucose").observations if "valueCodeableConcept" in o]
    assert status[0]["valueCodeableConcept"]["coding"][0]["code"] == "1"


BP_LINE = b"OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|120|266016^MDC_DIM_MMHG^MDC|||||R"


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        (b"OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|120||||||R", 6, "units"),
        (b"OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|120|%^%^UCUM|||||R", 6, "cannot"),
    ],
)
def test_vital_without_a_fitting_unit_is_a_content_error(
    line: bytes, field: int, words: str
) -> None:
    raw = (DATA / "ipf_pcd01_bp_request.hl7").read_bytes().replace(BP_LINE, line)
    with pytest.raises(ContentError) as caught:
        mapped("", raw)
    assert (caught.value.segment, caught.value.segment_seq, caught.value.field) == ("OBX", 3, field)
    assert words in caught.value.message


def test_special_and_missing_values_become_data_absent_reason() -> None:
    raw = b"\r".join(
        [
            b"MSH|^~\\&|M^0123456789ABCDEF^EUI-64||||20260301||ORU^R01|S1|P|2.6",
            b"PID|||1^^^H^MR",
            b"OBR|1|||x|||20260301083000",
            b"OBX|1|ST|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|NaN|262688^MDC_DIM_PERCENT^MDC|||||F",
            b"OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.0.0.2||264864^MDC_DIM_BEAT_PER_MIN^MDC|||||X",
        ]
    )
    spo2, pulse = mapped("", raw).observations
    assert spo2["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"
    assert pulse["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert pulse["status"] == "cancelled"


def test_observation_without_any_time_is_a_content_error() -> None:
    raw = b"\r".join(
        [
            b"MSH|^~\\&|M||||20260301||ORU^R01|T1|P|2.6",
            b"PID|||1^^^H^MR",
            b"OBR|1|||x",
            b"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|97|262688^MDC_DIM_PERCENT^MDC|||||F",
        ]
    )
    with pytest.raises(ContentError) as caught:
        mapped("", raw)
    assert caught.value.field == 14
