"""IEEE 11073-10101 (MDC) codes ↔ vital-signs LOINC ↔ UCUM ↔ display names ↔ our vital keys.

Why: the bridge codes each Observation with MDC *and* LOINC side by side (PHD IG and the FHIR
vital-signs profile), and the server's HL7 v2 and FHIR mappings turn both back into one typed
vitals row. One table, pure and shared, keeps the two ends in agreement.

MDC numbers are those :mod:`devices.gatt.mdc` emits (partition * 65536 + term code). Note on
glucose: IEEE 11073-10417 gives capillary plasma 160188 and *venous* plasma 160196; every
glucose type maps to the one vital key "glucose". LOINC and UCUM were checked against
``/work/shared/reference/loinc_vitals.json`` (FHIR R4 vital-signs profiles); glucose has two
LOINC codes, chosen by unit: 15074-8 (mmol/L, molar) or 2339-0 (mg/dL, mass).

Conversions return values in the canonical unit of the vitals row (mm[Hg], Cel, kg, cm,
mmol/L, /min, %, kg/m2); they are plain arithmetic on floats, so callers round for display.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MDC_SYSTEM = "urn:iso:std:iso:11073:10101"
LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"

VITAL_KEYS = (
    "systolic_bp",
    "diastolic_bp",
    "mean_bp",
    "heart_rate",
    "pulse_rate",
    "spo2",
    "temperature",
    "glucose",
    "weight",
    "height",
    "bmi",
    "respiratory_rate",
    "battery",
)

GLUCOSE_MOLAR_MASS_G_PER_MOL = 180.156
MMHG_PER_KPA = 7.500615758
KG_PER_LB = 0.45359237
CM_PER_INCH = 2.54


@dataclass(frozen=True, slots=True)
class Code:
    """One MDC term with its vital key, LOINC code(s), canonical UCUM unit and display name.

    ``loinc`` is the primary LOINC (the vital-signs profile code); ``loinc_extra`` are further
    LOINC codes sent beside it (SpO2: 59408-5 by pulse oximetry and the core 2708-6).
    ``vital_sign`` says whether the Observation carries the vital-signs category.
    """

    mdc: int
    mdc_name: str
    key: str | None
    loinc: str | None
    loinc_display: str | None
    unit: str | None
    display: str
    vital_sign: bool = True
    loinc_extra: tuple[str, ...] = ()


BP_PANEL = Code(
    150020,
    "MDC_PRESS_BLD_NONINV",
    None,
    "85354-9",
    "Blood pressure panel with all children optional",
    None,
    "Blood pressure",
)

_SYS = ("8480-6", "Systolic blood pressure")
_DIA = ("8462-4", "Diastolic blood pressure")
_MEAN = ("8478-0", "Mean blood pressure")
_HR = ("8867-4", "Heart rate")
_SPO2 = ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")
_TEMP = ("8310-5", "Body temperature")
_GLU = ("15074-8", "Glucose [Moles/volume] in Blood")
_WEIGHT = ("29463-7", "Body weight")
_HEIGHT = ("8302-2", "Body height")
_BMI = ("39156-5", "Body mass index (BMI) [Ratio]")
_RESP = ("9279-1", "Respiratory rate")


def _c(
    mdc: int,
    name: str,
    key: str | None,
    loinc: tuple[str, str] | None,
    unit: str | None,
    display: str,
    **kw: object,
) -> Code:
    return Code(
        mdc,
        name,
        key,
        loinc[0] if loinc else None,
        loinc[1] if loinc else None,
        unit,
        display,
        **kw,
    )  # type: ignore[arg-type]


CODES: tuple[Code, ...] = (
    BP_PANEL,
    _c(
        150021, "MDC_PRESS_BLD_NONINV_SYS", "systolic_bp", _SYS, "mm[Hg]", "Systolic blood pressure"
    ),
    _c(
        150022,
        "MDC_PRESS_BLD_NONINV_DIA",
        "diastolic_bp",
        _DIA,
        "mm[Hg]",
        "Diastolic blood pressure",
    ),
    _c(150023, "MDC_PRESS_BLD_NONINV_MEAN", "mean_bp", _MEAN, "mm[Hg]", "Mean blood pressure"),
    _c(149546, "MDC_PULS_RATE_NON_INV", "pulse_rate", _HR, "/min", "Pulse rate"),
    _c(147842, "MDC_ECG_HEART_RATE", "heart_rate", _HR, "/min", "Heart rate"),
    _c(149530, "MDC_PULS_OXIM_PULS_RATE", "pulse_rate", _HR, "/min", "Pulse rate (oximeter)"),
    _c(
        150456,
        "MDC_PULS_OXIM_SAT_O2",
        "spo2",
        _SPO2,
        "%",
        "Oxygen saturation",
        loinc_extra=("2708-6",),
    ),
    _c(150364, "MDC_TEMP_BODY", "temperature", _TEMP, "Cel", "Body temperature"),
    _c(150392, "MDC_TEMP_TYMP", "temperature", _TEMP, "Cel", "Body temperature (tympanic)"),
    _c(188420, "MDC_TEMP_RECT", "temperature", _TEMP, "Cel", "Body temperature (rectal)"),
    _c(188424, "MDC_TEMP_ORAL", "temperature", _TEMP, "Cel", "Body temperature (oral)"),
    _c(188428, "MDC_TEMP_EAR", "temperature", _TEMP, "Cel", "Body temperature (ear)"),
    _c(188432, "MDC_TEMP_FINGER", "temperature", _TEMP, "Cel", "Body temperature (finger)"),
    _c(188448, "MDC_TEMP_TOE", "temperature", _TEMP, "Cel", "Body temperature (toe)"),
    _c(188452, "MDC_TEMP_AXILLA", "temperature", _TEMP, "Cel", "Body temperature (axillary)"),
    _c(188456, "MDC_TEMP_GIT", "temperature", _TEMP, "Cel", "Body temperature (GI tract)"),
    _c(
        160184,
        "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD",
        "glucose",
        _GLU,
        "mmol/L",
        "Glucose (capillary whole blood)",
    ),
    _c(
        160188,
        "MDC_CONC_GLU_CAPILLARY_PLASMA",
        "glucose",
        _GLU,
        "mmol/L",
        "Glucose (capillary plasma)",
    ),
    _c(
        160192,
        "MDC_CONC_GLU_VENOUS_WHOLEBLOOD",
        "glucose",
        _GLU,
        "mmol/L",
        "Glucose (venous whole blood)",
    ),
    _c(160196, "MDC_CONC_GLU_VENOUS_PLASMA", "glucose", _GLU, "mmol/L", "Glucose (venous plasma)"),
    _c(
        160200,
        "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD",
        "glucose",
        _GLU,
        "mmol/L",
        "Glucose (arterial whole blood)",
    ),
    _c(
        160204,
        "MDC_CONC_GLU_ARTERIAL_PLASMA",
        "glucose",
        _GLU,
        "mmol/L",
        "Glucose (arterial plasma)",
    ),
    _c(
        160364,
        "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD",
        "glucose",
        _GLU,
        "mmol/L",
        "Glucose (whole blood)",
    ),
    _c(160368, "MDC_CONC_GLU_UNDETERMINED_PLASMA", "glucose", _GLU, "mmol/L", "Glucose (plasma)"),
    _c(160020, "MDC_CONC_GLU_GEN", "glucose", _GLU, "mmol/L", "Glucose"),
    # Interstitial fluid (CGM): no blood LOINC applies, so MDC only and no vital-signs category.
    _c(
        160212,
        "MDC_CONC_GLU_ISF",
        "glucose",
        None,
        "mmol/L",
        "Glucose (interstitial fluid)",
        vital_sign=False,
    ),
    _c(188736, "MDC_MASS_BODY_ACTUAL", "weight", _WEIGHT, "kg", "Body weight"),
    _c(188740, "MDC_LEN_BODY_ACTUAL", "height", _HEIGHT, "cm", "Body height"),
    _c(188752, "MDC_RATIO_MASS_BODY_LEN_SQ", "bmi", _BMI, "kg/m2", "Body mass index"),
    _c(151562, "MDC_RESP_RATE", "respiratory_rate", _RESP, "/min", "Respiratory rate"),
    _c(67996, "MDC_ATTR_VAL_BATT_CHARGE", "battery", None, "%", "Battery charge", vital_sign=False),
)

_BY_MDC: dict[int, Code] = {c.mdc: c for c in CODES}
_BY_LOINC: dict[str, Code] = {}
for _code in CODES:
    for _l in (_code.loinc, *_code.loinc_extra):
        if _l:
            _BY_LOINC.setdefault(_l, _code)
_BY_LOINC["2339-0"] = _BY_MDC[160184]
_BY_LOINC["41653-7"] = _BY_MDC[160184]
_BY_LOINC["14743-9"] = _BY_MDC[160184]


def by_mdc(mdc: int) -> Code | None:
    """The table row for an MDC code, or ``None`` for a code we do not map."""
    return _BY_MDC.get(mdc)


def by_loinc(loinc: str) -> Code | None:
    """The first table row carrying this LOINC code (for the server's HL7 v2 mapping)."""
    return _BY_LOINC.get(loinc)


def vital_key(mdc: int) -> str | None:
    """Our vital key ("spo2", ...) for an MDC code."""
    code = _BY_MDC.get(mdc)
    return code.key if code else None


def codes_for_key(key: str) -> tuple[Code, ...]:
    """Every MDC row for one vital key (temperature has one per body site)."""
    return tuple(c for c in CODES if c.key == key)


def loinc_for(mdc: int, unit: str | None = None) -> tuple[str, str] | None:
    """(LOINC, display) for ``mdc`` measured in ``unit``; glucose depends on the unit."""
    code = _BY_MDC.get(mdc)
    if code is None or code.loinc is None:
        return None
    if code.key == "glucose" and unit in ("mg/dL", "kg/L", "g/L", "mg/L"):
        return ("2339-0", "Glucose [Mass/volume] in Blood")
    return (code.loinc, code.loinc_display or code.display)


# --- unit conversions (pure) -------------------------------------------------------------


def kpa_to_mmhg(kpa: float) -> float:
    """Pressure in kPa → mm[Hg] (1 mmHg = 133.322 Pa)."""
    return kpa * MMHG_PER_KPA


def fahrenheit_to_celsius(degf: float) -> float:
    """[degF] → Cel."""
    return (degf - 32.0) * 5.0 / 9.0


def pounds_to_kg(lb: float) -> float:
    """[lb_av] → kg (exact avoirdupois pound)."""
    return lb * KG_PER_LB


def inches_to_cm(inches: float) -> float:
    """[in_i] → cm."""
    return inches * CM_PER_INCH


def glucose_kg_per_l_to_mmol_per_l(kg_per_l: float) -> float:
    """Glucose mass concentration kg/L (as Bluetooth sends it) → mmol/L."""
    return kg_per_l * 1e6 / GLUCOSE_MOLAR_MASS_G_PER_MOL


def glucose_mol_per_l_to_mmol_per_l(mol_per_l: float) -> float:
    """Glucose mol/L (as Bluetooth sends it) → mmol/L."""
    return mol_per_l * 1000.0


def glucose_mg_per_dl_to_mmol_per_l(mg_per_dl: float) -> float:
    """Glucose mg/dL → mmol/L."""
    return mg_per_dl * 10.0 / GLUCOSE_MOLAR_MASS_G_PER_MOL


_TO_CANONICAL: dict[str, tuple[str, Callable[[float], float]]] = {
    "kPa": ("mm[Hg]", kpa_to_mmhg),
    "[degF]": ("Cel", fahrenheit_to_celsius),
    "[lb_av]": ("kg", pounds_to_kg),
    "g": ("kg", lambda v: v / 1000.0),
    "[in_i]": ("cm", inches_to_cm),
    "m": ("cm", lambda v: v * 100.0),
    "kg/L": ("mmol/L", glucose_kg_per_l_to_mmol_per_l),
    "mol/L": ("mmol/L", glucose_mol_per_l_to_mmol_per_l),
    "mg/dL": ("mmol/L", glucose_mg_per_dl_to_mmol_per_l),
    "/s": ("/min", lambda v: v * 60.0),
}


def to_canonical(value: float, unit: str) -> tuple[float, str]:
    """``(value, unit)`` in the vitals row's unit; units already canonical pass through."""
    conv = _TO_CANONICAL.get(unit)
    if conv is None:
        return value, unit
    target, fn = conv
    return fn(value), target
