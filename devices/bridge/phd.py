"""Readings → a FHIR R4B transaction Bundle shaped as the HL7 Personal Health Device IG says.

Why: the server (and any PHD-IG-aware FHIR server) ingests one transaction per upload; every
entry is conditional (``ifNoneExist`` on a stable identifier) so a replayed batch creates
nothing new. Pure: plain dicts in, plain dicts out; no fhir.resources at run time.

Shape (PHD IG STU 1/2 mapped to R4B):

- a gateway Device (the bridge: ``MDC_MOC_VMS_MDS_AHD``, identifier = its EUI-64 under the
  IEEE 11073 System ID OID) and one Device per monitor (System ID EUI-64, else its Bluetooth
  address under ``urn:sg:ble-address``; type = the MDC device specialization);
- one Observation per measured quantity, coded MDC and vital-signs LOINC side by side, UCUM
  quantities, ``effectiveDateTime`` already clock-corrected by the session, ``subject`` as a
  logical reference by resident identity number, ``device`` → the monitor's fullUrl, the
  gateway in the ``observation-gatewayDevice`` extension (the R4 form the PHD IG STU 1 uses;
  STU 2's ``device-gateway`` needs R5's CodeableReference);
- blood pressure as the 85354-9 / 150020 panel with systolic/diastolic/mean components; the
  cuff's pulse rate as its own Observation;
- SFLOAT/FLOAT specials → ``dataAbsentReason`` on the component (or Observation) they sit on;
- measurement status bits → a separate PhdBitsEnumerationObservation ``derivedFrom`` the
  measurement: blood pressure uses MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS (8410608) with the
  IG's ASN1ToHL7 codes ``8410608.<bit>`` valued ``Y`` (v2-0136), exactly as the IG's
  ``bpm-status`` example; other kinds (oximeter device status, glucose annunciations, ...)
  name their GATT flags in our code system ``urn:sg:gatt-status`` because their 11073 bit
  positions are not a one-to-one match of the Bluetooth ones.

Glucose is converted by an exact power of ten to the unit its LOINC code needs (kg/L →
mg/dL with 2339-0, mol/L → mmol/L with 15074-8); pressure, temperature and weight stay in the
monitor's unit (kPa, [degF], [lb_av] are valid UCUM) and the server converts with
:mod:`devices.codes`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from devices import codes
from devices.bridge.reading import MonitorInfo, Reading, observation_id
from devices.gatt.measurement import Component, Measurement

SYSID_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
BLE_SYSTEM = "urn:sg:ble-address"
OBSERVATION_ID_SYSTEM = "urn:sg:phd-observation"
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.2"
GATEWAY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
ASN1_SYSTEM = "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7"
YES_NO_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0136"
GATT_STATUS_SYSTEM = "urn:sg:gatt-status"
CONTINUA_ID_SYSTEM = "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers"
_UUID_NS = uuid.UUID("6f1c1bde-4a39-5b0e-9d61-2b1e5c0de7a1")

DATA_ABSENT = {
    "NaN": "not-a-number",
    "NRes": "error",
    "+INF": "positive-infinity",
    "-INF": "negative-infinity",
    "reserved": "unsupported",
}

# MDC_DEV_SPEC_PROFILE_* (partition 8, PHD IG "specialization codes" table).
SPECIALIZATIONS: dict[str, tuple[int, str]] = {
    "pulse_oximeter": (528388, "MDC_DEV_SPEC_PROFILE_PULS_OXIM"),
    "blood_pressure": (528391, "MDC_DEV_SPEC_PROFILE_BPM"),
    "thermometer": (528392, "MDC_DEV_SPEC_PROFILE_TEMP"),
    "weight_scale": (528399, "MDC_DEV_SPEC_PROFILE_SCALE"),
    "glucose_meter": (528401, "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
    "cgm": (528409, "MDC_DEV_SPEC_PROFILE_CGM"),
    "heart_rate": (528425, "MDC_DEV_SPEC_PROFILE_HF_CARDIO"),
}
MDS_AHD = (531981, "MDC_MOC_VMS_MDS_AHD")
MDC_ID_PROD_SPEC_FW = 531976

BP_STATUS_MDC = 8410608
# Bluetooth BP status flag → (IEEE 11073-10407 measurement-status bit, IG code text).
BP_STATUS_BITS = {
    "body_movement": (0, "body-movement"),
    "cuff_fit_loose": (1, "cuff-too-loose"),
    "irregular_pulse": (2, "irregular-pulse"),
    "pulse_rate_above_upper_limit": (3, "pr-exceeds-upper-limit"),
    "pulse_rate_below_lower_limit": (4, "pr-less-than-lower-limit"),
    "improper_measurement_position": (5, "improper-body-position"),
}
STATUS_MDC = {
    "plx_spot_check": (150604, "MDC_PULS_OXIM_DEV_STATUS"),
    "plx_continuous": (150604, "MDC_PULS_OXIM_DEV_STATUS"),
    "glucose": (8417752, "MDC_GLU_METER_DEV_STATUS"),
}
# Flags that describe the record rather than a problem with the measurement.
INFORMATIONAL_FLAGS = frozenset(
    {
        "time_unknown",
        "user_unknown",
        "context_follows",
        "sensor_contact_supported",
        "sensor_contact_detected",
        "device_clock_not_set",
        "measurement_unsuccessful",
        "e2e_crc",
        "validated_data",
        "fully_qualified_data",
        "data_from_measurement_storage",
        "extended_display_update_ongoing",
        "signal_analysis_ongoing",
    }
)
# Kinds the bridge uploads; others (intermediate cuff pressure, glucose context) are not vitals.
SKIPPED_KINDS = frozenset({"intermediate_cuff_pressure", "glucose_context"})

# Exact decimal rescaling to the unit the LOINC code / vital-signs profile expects.
_RESCALE = {
    ("glucose", "kg/L"): (1e5, "mg/dL"),
    ("glucose", "mol/L"): (1e3, "mmol/L"),
    ("height", "m"): (1e2, "cm"),
}


@dataclass(frozen=True, slots=True)
class Gateway:
    """The bridge as a PHD gateway (PHG)."""

    eui64: str
    name: str = "Smart Guangdong home bridge"
    version: str | None = None


@dataclass(frozen=True, slots=True)
class BuiltBundle:
    """The Bundle plus, per entry, the outbox key it carries (``None`` for Devices)."""

    bundle: dict[str, Any]
    entry_keys: list[str | None]


def full_url(kind: str, identity: str) -> str:
    """A deterministic ``urn:uuid`` so equal input gives an equal Bundle (and tests compare whole)."""
    return f"urn:uuid:{uuid.uuid5(_UUID_NS, kind + '|' + identity)}"


def _num(v: float) -> float | int:
    r = round(v, 6)
    return int(r) if r.is_integer() and abs(r) < 1e15 else r


def _mdc_coding(code: int, display: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"system": codes.MDC_SYSTEM, "code": str(code)}
    if display:
        c["display"] = display
    return c


def _concept(mdc: int, unit: str | None) -> dict[str, Any]:
    row = codes.by_mdc(mdc)
    coding = [_mdc_coding(mdc, row.mdc_name if row else None)]
    loinc = codes.loinc_for(mdc, unit)
    if loinc:
        coding.append({"system": codes.LOINC_SYSTEM, "code": loinc[0], "display": loinc[1]})
        coding.extend({"system": codes.LOINC_SYSTEM, "code": extra} for extra in row.loinc_extra)  # type: ignore[union-attr]
    concept: dict[str, Any] = {"coding": coding}
    if row:
        concept["text"] = row.display
    return concept


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": _num(value), "unit": unit, "system": codes.UCUM_SYSTEM, "code": unit}


def _absent(special: str) -> dict[str, Any]:
    code = DATA_ABSENT.get(special, "unsupported")
    return {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": code}], "text": special}


def _value(c: Component) -> tuple[str, dict[str, Any]]:
    """``("valueQuantity", ...)`` or ``("dataAbsentReason", ...)`` for one component."""
    if c.special is not None or c.value is None:
        return "dataAbsentReason", _absent(c.special or "NaN")
    factor, unit = _RESCALE.get((codes.vital_key(c.mdc) or "", c.unit), (1.0, c.unit))
    return "valueQuantity", _quantity(c.value * factor, unit)


def _sent_unit(c: Component) -> str:
    return _RESCALE.get((codes.vital_key(c.mdc) or "", c.unit), (1.0, c.unit))[1]


def gateway_device(gw: Gateway) -> dict[str, Any]:
    """The PHG Device resource."""
    dev: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [_sysid_identifier(gw.eui64)],
        "type": {"coding": [_mdc_coding(*MDS_AHD)], "text": "Personal health gateway"},
        "deviceName": [{"name": gw.name, "type": "user-friendly-name"}],
    }
    if gw.version:
        dev["version"] = [{"value": gw.version}]
    return dev


def _sysid_identifier(eui64: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": CONTINUA_ID_SYSTEM, "code": "SYSID"}]},
        "system": SYSID_SYSTEM,
        "value": eui64,
    }


def monitor_identity(m: MonitorInfo) -> tuple[str, str]:
    """(system, value) of the identifier the server matches a monitor Device on."""
    if m.system_id:
        return SYSID_SYSTEM, m.system_id
    return BLE_SYSTEM, m.address.upper()


def monitor_device(m: MonitorInfo) -> dict[str, Any]:
    """A monitor (PHD) Device resource."""
    identifiers = []
    if m.system_id:
        identifiers.append(_sysid_identifier(m.system_id))
    identifiers.append({"system": BLE_SYSTEM, "value": m.address.upper()})
    dev: dict[str, Any] = {"resourceType": "Device", "identifier": identifiers}
    spec = SPECIALIZATIONS.get(m.kind)
    if spec:
        dev["type"] = {"coding": [_mdc_coding(*spec)]}
        dev["specialization"] = [{"systemType": {"coding": [_mdc_coding(*spec)]}}]
    if m.manufacturer:
        dev["manufacturer"] = m.manufacturer
    if m.serial:
        dev["serialNumber"] = m.serial
    if m.model:
        dev["modelNumber"] = m.model
    if m.name:
        dev["deviceName"] = [{"name": m.name, "type": "user-friendly-name"}]
    if m.firmware:
        dev["version"] = [
            {
                "type": {"coding": [_mdc_coding(MDC_ID_PROD_SPEC_FW, "MDC_ID_PROD_SPEC_FW")]},
                "value": m.firmware,
            }
        ]
    return dev


class _ObservationFactory:
    """Builds the Observations of one reading (shared header, identifiers per MDC code)."""

    def __init__(self, r: Reading, device_url: str, gateway_url: str) -> None:
        self.r = r
        self.device_url = device_url
        self.gateway_url = gateway_url
        self.out: list[tuple[str, dict[str, Any]]] = []

    def ident(self, mdc: int) -> str:
        r = self.r
        return observation_id(r.monitor.device_key, mdc, r.measurement, r.received_at)

    def base(self, mdc: int, concept: dict[str, Any], vital: bool) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "extension": [
                {"url": GATEWAY_EXTENSION, "valueReference": {"reference": self.gateway_url}}
            ],
            "identifier": [{"system": OBSERVATION_ID_SYSTEM, "value": self.ident(mdc)}],
            "status": "final",
        }
        if vital:
            obs["category"] = [
                {
                    "coding": [
                        {"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}
                    ],
                    "text": "Vital Signs",
                }
            ]
        obs["code"] = concept
        obs["subject"] = {"identifier": {"system": RESIDENT_ID_SYSTEM, "value": self.r.patient_id}}
        obs["effectiveDateTime"] = self.r.effective.isoformat(timespec="seconds")
        obs["device"] = {"reference": self.device_url}
        return obs

    def add(self, obs: dict[str, Any]) -> str:
        ident = obs["identifier"][0]["value"]
        url = full_url("Observation", ident)
        self.out.append((url, obs))
        return url

    def simple(self, c: Component) -> str:
        row = codes.by_mdc(c.mdc)
        obs = self.base(c.mdc, _concept(c.mdc, _sent_unit(c)), bool(row and row.vital_sign))
        field, value = _value(c)
        obs[field] = value
        return self.add(obs)

    def bp_panel(self, parts: Sequence[Component]) -> str:
        obs = self.base(codes.BP_PANEL.mdc, _concept(codes.BP_PANEL.mdc, None), True)
        comps = []
        for c in parts:
            comp: dict[str, Any] = {"code": _concept(c.mdc, c.unit)}
            field, value = _value(c)
            comp[field] = value
            comps.append(comp)
        obs["component"] = comps
        return self.add(obs)

    def status(self, flags: Iterable[str], derived_from: str) -> None:
        m = self.r.measurement
        problems = sorted(f for f in flags if f not in INFORMATIONAL_FLAGS)
        if not problems:
            return
        if m.kind == "blood_pressure":
            bits = [(BP_STATUS_BITS[f], f) for f in problems if f in BP_STATUS_BITS]
            if not bits:
                return
            concept = {
                "coding": [_mdc_coding(BP_STATUS_MDC, "MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS")],
                "text": "Measuring process issues",
            }
            comps = [
                {
                    "code": {
                        "coding": [{"system": ASN1_SYSTEM, "code": f"{BP_STATUS_MDC}.{bit}"}],
                        "text": text,
                    },
                    "valueCodeableConcept": {"coding": [{"system": YES_NO_SYSTEM, "code": "Y"}]},
                }
                for (bit, text), _ in sorted(bits)
            ]
            obs = self.base(BP_STATUS_MDC, concept, False)
        else:
            code, name = STATUS_MDC.get(m.kind, (0, ""))
            if code:
                concept = {"coding": [_mdc_coding(code, name)], "text": "Device status"}
                obs = self.base(code, concept, False)
            else:
                concept = {
                    "coding": [{"system": GATT_STATUS_SYSTEM, "code": m.kind}],
                    "text": "Device status",
                }
                obs = self.base(0, concept, False)
                obs["identifier"][0]["value"] = self.ident(0).replace(".0.", ".status.", 1)
            comps = [
                {
                    "code": {
                        "coding": [{"system": GATT_STATUS_SYSTEM, "code": f}],
                        "text": f.replace("_", " "),
                    },
                    "valueCodeableConcept": {"coding": [{"system": YES_NO_SYSTEM, "code": "Y"}]},
                }
                for f in problems
            ]
        obs["derivedFrom"] = [{"reference": derived_from}]
        obs["component"] = comps
        self.add(obs)


def observations(r: Reading, device_url: str, gateway_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(fullUrl, Observation) pairs for one reading, in a stable order."""
    m: Measurement = r.measurement
    if m.kind in SKIPPED_KINDS:
        return []
    f = _ObservationFactory(r, device_url, gateway_url)
    first_url: str | None = None
    if m.kind == "blood_pressure":
        parts = [c for c in m.components if c.mdc in (150021, 150022, 150023)]
        first_url = f.bp_panel(parts)
        for c in m.components:
            if c.mdc == 149546:
                f.simple(c)
    else:
        seen: set[int] = set()
        for c in m.components:
            # Fast/slow oximetry averages, RR intervals, energy and PAI are not vitals rows.
            if c.modality is not None or c.mdc in seen or codes.by_mdc(c.mdc) is None:
                continue
            seen.add(c.mdc)
            url = f.simple(c)
            first_url = first_url or url
    if first_url:
        f.status(m.flags, first_url)
    return f.out


def build_bundle(readings: Sequence[Reading], gateway: Gateway) -> BuiltBundle:
    """The transaction Bundle for ``readings``; ``entry_keys[i]`` is entry i's outbox key."""
    gw_url = full_url("Device", SYSID_SYSTEM + "|" + gateway.eui64)
    entries: list[dict[str, Any]] = [
        _entry(
            gw_url, gateway_device(gateway), "Device", f"identifier={SYSID_SYSTEM}|{gateway.eui64}"
        )
    ]
    keys: list[str | None] = [None]
    device_urls: dict[tuple[str, str], str] = {}
    obs_entries: list[dict[str, Any]] = []
    obs_keys: list[str | None] = []
    for r in readings:
        system, value = monitor_identity(r.monitor)
        url = device_urls.get((system, value))
        if url is None:
            url = device_urls[(system, value)] = full_url("Device", f"{system}|{value}")
            entries.append(
                _entry(url, monitor_device(r.monitor), "Device", f"identifier={system}|{value}")
            )
            keys.append(None)
        for obs_url, obs in observations(r, url, gw_url):
            ident = obs["identifier"][0]["value"]
            obs_entries.append(
                _entry(obs_url, obs, "Observation", f"identifier={OBSERVATION_ID_SYSTEM}|{ident}")
            )
            obs_keys.append(r.key)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries + obs_entries}
    return BuiltBundle(bundle, keys + obs_keys)


def _entry(url: str, resource: dict[str, Any], rtype: str, if_none_exist: str) -> dict[str, Any]:
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": "POST", "url": rtype, "ifNoneExist": if_none_exist},
    }
