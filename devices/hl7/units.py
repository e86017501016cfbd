"""IEEE 11073-10101 (MDC) units to UCUM, the unit system of the FHIR record.

Only units whose meaning we are sure of are listed; an unlisted unit is a content error rather
than a guess, because a wrong unit on a vital sign is worse than a rejected message.
"""

from __future__ import annotations

# MDC term -> (MDC code or None when we do not rely on the number, UCUM).
MDC_UNITS: dict[str, tuple[int | None, str]] = {
    "MDC_DIM_DIMLESS": (262656, "1"),
    "MDC_DIM_PERCENT": (262688, "%"),
    "MDC_DIM_MMHG": (266016, "mm[Hg]"),
    "MDC_DIM_BEAT_PER_MIN": (264864, "/min"),
    "MDC_DIM_RESP_PER_MIN": (264928, "/min"),
    "MDC_DIM_DEGC": (268192, "Cel"),
    "MDC_DIM_FAHR": (266560, "[degF]"),
    "MDC_DIM_KILO_G": (263875, "kg"),
    "MDC_DIM_G": (263872, "g"),
    "MDC_DIM_MILLI_G": (263890, "mg"),
    "MDC_DIM_LB": (263904, "[lb_av]"),
    "MDC_DIM_CENTI_M": (263441, "cm"),
    "MDC_DIM_INCH": (263520, "[in_i]"),
    "MDC_DIM_KG_PER_M_SQ": (264096, "kg/m2"),
    "MDC_DIM_MILLI_G_PER_DL": (264274, "mg/dL"),
    # The X_ forms are the unprefixed families (g/L, g/dL), not mg/dL.
    "MDC_DIM_X_G_PER_L": (None, "g/L"),
    "MDC_DIM_X_G_PER_DL": (None, "g/dL"),
    "MDC_DIM_MILLI_MOLE_PER_L": (266866, "mmol/L"),
    "MDC_DIM_SEC": (264320, "s"),
    "MDC_DIM_MILLI_SEC": (264338, "ms"),
    "MDC_DIM_MIN": (264352, "min"),
    "MDC_DIM_HR": (264384, "h"),
}

MDC_UNIT_BY_CODE: dict[int, tuple[str, str]] = {
    code: (term, ucum) for term, (code, ucum) in MDC_UNITS.items() if code is not None
}

# UCUM codes we accept when a sender writes UCUM without naming the system.
KNOWN_UCUM: frozenset[str] = frozenset(
    {ucum for _, ucum in MDC_UNITS.values()} | {"L/min", "mL", "L", "kPa", "m", "mm", "d"}
)

# Common non-UCUM spellings seen from devices (IPF's maximal PCD-01 example sends "mmHg").
UNIT_ALIASES: dict[str, str] = {
    "mmHg": "mm[Hg]",
    "mm Hg": "mm[Hg]",
    "bpm": "/min",
    "beats/min": "/min",
    "mg/dl": "mg/dL",
    "mmol/l": "mmol/L",
    "degC": "Cel",
    "°C": "Cel",
    "degF": "[degF]",
    "°F": "[degF]",
}


def ucum_for(code: str, text: str, system: str) -> tuple[int | None, str | None, str] | None:
    """(MDC unit code, MDC term, UCUM) for an OBX-6 triplet, or None if the unit is unknown."""
    system = system.upper()
    if system == "UCUM":
        return None, None, code or text
    if system == "MDC" or text.startswith("MDC_DIM_") or code.startswith("MDC_DIM_"):
        term = text if text.startswith("MDC_DIM_") else code if code.startswith("MDC_DIM_") else ""
        number = int(code) if code.isdigit() else None
        if term in MDC_UNITS:
            return number if number is not None else MDC_UNITS[term][0], term, MDC_UNITS[term][1]
        if number is not None and number in MDC_UNIT_BY_CODE:
            known_term, ucum = MDC_UNIT_BY_CODE[number]
            return number, known_term, ucum
        return None
    for candidate in (code, text):
        if candidate in KNOWN_UCUM:
            return None, None, candidate
        if candidate in UNIT_ALIASES:
            return None, None, UNIT_ALIASES[candidate]
    return None
