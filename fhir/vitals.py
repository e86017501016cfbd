"""Observation JSON → typed vitals rows, in canonical units. Pure: no Django, no I/O.

Every source (Bluetooth bridge, HL7 v2, FHIR clients) ends in an Observation; this is the one
place that turns one into the rows the rules and charts read. A vital is recognised by its LOINC
code (the vital-signs profile) or, failing that, its IEEE 11073 MDC code; values are converted to
the unit the rules use (mm[Hg], /min, %, Cel, kg, mmol/L, m) so kPa cuffs and °F thermometers
are compared against the same thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"

# vital key → canonical UCUM unit
CANONICAL_UNITS = {
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "mean_bp": "mm[Hg]",
    "heart_rate": "/min",
    "spo2": "%",
    "temperature": "Cel",
    "glucose": "mmol/L",
    "weight": "kg",
    "height": "m",
    "bmi": "kg/m2",
    "respiratory_rate": "/min",
    "battery": "%",
}

BY_LOINC = {
    "8480-6": "systolic_bp",
    "8462-4": "diastolic_bp",
    "8478-0": "mean_bp",
    "8867-4": "heart_rate",
    "59408-5": "spo2",
    "2708-6": "spo2",
    "8310-5": "temperature",
    "29463-7": "weight",
    "8302-2": "height",
    "39156-5": "bmi",
    "9279-1": "respiratory_rate",
    "15074-8": "glucose",
    "2339-0": "glucose",
    "2345-7": "glucose",
    "41653-7": "glucose",
}

BY_MDC = {
    150021: "systolic_bp",
    150022: "diastolic_bp",
    150023: "mean_bp",
    149546: "heart_rate",
    147842: "heart_rate",
    149530: "heart_rate",
    150456: "spo2",
    150364: "temperature",  # body; the site-specific codes below come from devices.gatt.mdc
    150392: "temperature",
    188420: "temperature",
    188424: "temperature",
    188428: "temperature",
    188432: "temperature",
    188448: "temperature",
    188452: "temperature",
    188456: "temperature",
    188736: "weight",
    188740: "height",
    188752: "bmi",
    151562: "respiratory_rate",
    151554: "respiratory_rate",
    160184: "glucose",
    160188: "glucose",
    160192: "glucose",
    160196: "glucose",
    160200: "glucose",
    160204: "glucose",
    160212: "glucose",
    160364: "glucose",
    160368: "glucose",
    67996: "battery",
}

# Glucose molar mass for mg/dL ↔ mmol/L (180.156 g/mol → 18.016 mg/dL per mmol/L).
_GLUCOSE_MG_DL_PER_MMOL_L = 18.016


class UnitError(ValueError):
    """The unit cannot be converted to the vital's canonical unit."""


def to_canonical(vital: str, value: float, unit: str) -> float:
    """Convert a value to the vital's canonical unit; raise UnitError when impossible."""
    target = CANONICAL_UNITS.get(vital)
    if target is None or unit == target:
        return value
    u = unit.strip()
    conversions = {
        ("mm[Hg]", "kPa"): lambda v: v * 7.50062,
        ("/min", "{beats}/min"): lambda v: v,
        ("/min", "{beat}/min"): lambda v: v,
        ("/min", "{breaths}/min"): lambda v: v,
        ("%", "%{saturation}"): lambda v: v,
        ("Cel", "[degF]"): lambda v: (v - 32) * 5 / 9,
        ("Cel", "K"): lambda v: v - 273.15,
        ("kg", "[lb_av]"): lambda v: v * 0.45359237,
        ("kg", "g"): lambda v: v / 1000,
        ("m", "cm"): lambda v: v / 100,
        ("m", "[in_i]"): lambda v: v * 0.0254,
        ("mmol/L", "mg/dL"): lambda v: v / _GLUCOSE_MG_DL_PER_MMOL_L,
        ("mmol/L", "kg/L"): lambda v: (
            v * 1e6 / _GLUCOSE_MG_DL_PER_MMOL_L / 10
        ),  # 1 kg/L = 1e5 mg/dL
        ("mmol/L", "mol/L"): lambda v: v * 1000,
        ("mmol/L", "mg/L"): lambda v: v / (_GLUCOSE_MG_DL_PER_MMOL_L * 10),
        ("kg/m2", "kg/m^2"): lambda v: v,
    }
    convert = conversions.get((target, u))
    if convert is None:
        raise UnitError(f"cannot convert {unit!r} to {target} for {vital}")
    return round(convert(value), 3)


@dataclass(frozen=True)
class VitalRow:
    vital: str
    loinc: str
    mdc: int | None
    value: float | None
    unit: str
    data_absent: str


def _identify(codings: list[dict]) -> tuple[str | None, str, int | None]:
    loinc, mdc, vital = "", None, None
    for coding in codings or []:
        system, code = coding.get("system"), str(coding.get("code", ""))
        if system == LOINC:
            loinc = code
            vital = vital or BY_LOINC.get(code)
        elif system == MDC and code.isdigit():
            mdc = int(code)
            vital = vital or BY_MDC.get(mdc)
    if loinc in BY_LOINC:
        vital = BY_LOINC[loinc]
    return vital, loinc, mdc


def _row(element: dict, codings: list[dict]) -> VitalRow | None:
    vital, loinc, mdc = _identify(codings)
    if vital is None:
        return None
    quantity = element.get("valueQuantity")
    absent = element.get("dataAbsentReason")
    if quantity and quantity.get("value") is not None:
        unit = quantity.get("code") or quantity.get("unit") or ""
        value = to_canonical(vital, float(quantity["value"]), unit)
        return VitalRow(vital, loinc, mdc, value, CANONICAL_UNITS[vital], "")
    if absent:
        code = next((c.get("code", "") for c in absent.get("coding", [])), "") or absent.get(
            "text", ""
        )
        return VitalRow(vital, loinc, mdc, None, CANONICAL_UNITS[vital], code or "unknown")
    return None


def extract(observation: dict) -> list[VitalRow]:
    """The vitals in an Observation: its own value and each component's (a BP panel gives three)."""
    rows = []
    own = _row(observation, observation.get("code", {}).get("coding", []))
    if own:
        rows.append(own)
    for component in observation.get("component", []) or []:
        row = _row(component, component.get("code", {}).get("coding", []))
        if row:
            rows.append(row)
    return rows


def effective_time(observation: dict) -> str | None:
    """The instant the reading was taken, as sent (effectiveDateTime, or a period's start)."""
    if observation.get("effectiveDateTime"):
        return observation["effectiveDateTime"]
    if observation.get("effectiveInstant"):
        return observation["effectiveInstant"]
    period = observation.get("effectivePeriod") or {}
    return period.get("start")


def parse_instant(text: str) -> datetime:
    """A FHIR dateTime with a time and zone; partial dates are refused for vitals."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"effective time {text!r} has no time zone")
    return value
