"""devices.codes: the MDC ↔ LOINC ↔ UCUM table and the unit conversions the server uses."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from devices import codes
from devices.gatt import mdc


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """Stands in for pytest-django's fixture, which the root conftest's autouse fixture requests;
    these tests run without Django (``-p no:django``)."""
    return types.SimpleNamespace()


REFERENCE = Path("/work/shared/reference/loinc_vitals.json")


def test_each_vital_key_has_a_row() -> None:
    for key in codes.VITAL_KEYS:
        assert codes.codes_for_key(key), key


@pytest.mark.parametrize(
    ("code", "key", "loinc", "unit"),
    [
        (150021, "systolic_bp", "8480-6", "mm[Hg]"),
        (150022, "diastolic_bp", "8462-4", "mm[Hg]"),
        (150023, "mean_bp", "8478-0", "mm[Hg]"),
        (149546, "pulse_rate", "8867-4", "/min"),
        (149530, "pulse_rate", "8867-4", "/min"),
        (147842, "heart_rate", "8867-4", "/min"),
        (150456, "spo2", "59408-5", "%"),
        (150364, "temperature", "8310-5", "Cel"),
        (188736, "weight", "29463-7", "kg"),
        (188740, "height", "8302-2", "cm"),
        (188752, "bmi", "39156-5", "kg/m2"),
        (160184, "glucose", "15074-8", "mmol/L"),
        (151562, "respiratory_rate", "9279-1", "/min"),
        (67996, "battery", None, "%"),
    ],
)
def test_rows_match_the_brief(code: int, key: str, loinc: str | None, unit: str) -> None:
    row = codes.by_mdc(code)
    assert row is not None
    assert (row.key, row.loinc, row.unit) == (key, loinc, unit)


def test_bp_panel_and_spo2_extra_loinc() -> None:
    assert (codes.BP_PANEL.mdc, codes.BP_PANEL.loinc) == (150020, "85354-9")
    assert codes.by_mdc(150456).loinc_extra == ("2708-6",)


def test_loinc_and_ucum_agree_with_the_reference_file() -> None:
    text = REFERENCE.read_text()
    ref = {c["loinc"]: c for c in json.loads(text)["codes"]}
    for row in codes.CODES:
        for loinc in filter(None, (row.loinc, *row.loinc_extra)):
            # BP components are listed inside the panel's entry, not as codes of their own.
            # 8478-0 (mean blood pressure) is not in the reference file; it comes from the brief.
            assert f'"{loinc}"' in text or loinc == "8478-0", (row.mdc_name, loinc)
            allowed = ref.get(loinc, {}).get("ucum")
            if allowed and row.unit:
                assert row.unit in allowed, (row.mdc_name, row.unit, allowed)


def test_every_mdc_code_the_decoders_emit_for_vitals_is_mapped() -> None:
    for name in dir(mdc):
        if (
            name.startswith(("MDC_CONC_GLU_", "MDC_TEMP_"))
            and "CONTROL" not in name
            and "HBA1C" not in name
        ):
            assert codes.by_mdc(getattr(mdc, name)) is not None, name
    for code in (
        mdc.MDC_PRESS_BLD_NONINV_SYS,
        mdc.MDC_PULS_OXIM_SAT_O2,
        mdc.MDC_MASS_BODY_ACTUAL,
        mdc.MDC_ATTR_VAL_BATT_CHARGE,
    ):
        assert codes.by_mdc(code) is not None


def test_glucose_loinc_depends_on_unit() -> None:
    assert codes.loinc_for(160184, "mmol/L")[0] == "15074-8"
    assert codes.loinc_for(160184, "mg/dL")[0] == "2339-0"
    assert codes.loinc_for(160212, "mg/dL") is None  # interstitial fluid: MDC only
    assert codes.by_loinc("2339-0").key == "glucose"


@pytest.mark.parametrize(
    ("value", "unit", "expected", "target"),
    [
        (16.0, "kPa", 120.0098, "mm[Hg]"),
        (98.6, "[degF]", 37.0, "Cel"),
        (150.0, "[lb_av]", 68.0389, "kg"),
        (0.00095, "kg/L", 5.2732, "mmol/L"),
        (0.0054, "mol/L", 5.4, "mmol/L"),
        (90.0, "mg/dL", 4.9957, "mmol/L"),
        (1.72, "m", 172.0, "cm"),
        (120.0, "mm[Hg]", 120.0, "mm[Hg]"),
    ],
)
def test_to_canonical(value: float, unit: str, expected: float, target: str) -> None:
    got, got_unit = codes.to_canonical(value, unit)
    assert got_unit == target
    assert got == pytest.approx(expected, abs=1e-3)
