"""HL7 v2 ORU^R01 (IHE PCD-01) → FHIR R4B Observations shaped like the bridge's PHD Observations.

Pure: takes the parsed `devices.hl7.pcd01.Oru` and returns plain dicts; no Django, no I/O.
Problems a sender must hear about are raised as `devices.hl7.errors.ContentError` (AE) with the
OBX they sit on, so the listener can name them in the ERR segment.

What an Observation looks like (the same as `devices.bridge.phd` makes for Bluetooth readings):

* ``code``: the MDC coding (``urn:iso:std:iso:11073:10101``) and, beside it, LOINC — the one the
  sender wrote, else the vital-signs LOINC of the MDC code from `devices.codes`; ``text`` is our
  display name. A non-MDC, non-LOINC OBX-3 keeps its code under ``urn:sg:hl7v2-cs:<system>``.
* ``category`` vital-signs only for codes the vital-signs profile knows (otherwise the profile's
  LOINC requirement would be broken: an arterial line or glucose context is not a vital sign);
* NM/SN values → ``valueQuantity`` in UCUM (OBX-6 is already UCUM after `devices.hl7.units`);
  CWE/CE → ``valueCodeableConcept``; DTM → ``valueDateTime``; NA → ``valueSampledData`` (PCD-01
  carries no sample period, so ``period`` is 0 = unknown); other text → ``valueString``;
* no value, or the 11073 special values NaN/NRes/±INF written as text → ``dataAbsentReason``
  (OBX-11 X → not-performed, N → not-asked, special values as the bridge codes them);
* ``effectiveDateTime`` from OBX-14 (already inherited from the containment tree/OBR-7 by the
  parser); a metric without any time is a content error;
* ``status`` from OBX-11 through HL7's v2-to-FHIR table 0085 map (`RESULT_STATUS`);
* ``subject`` the resolved ``Patient/{id}``; ``device`` a logical reference by EUI-64 (OBX-18,
  System ID system) that storage turns into ``Device/{id}``; the gateway (MSH-3 when it is an
  EUI-64) in the ``observation-gatewayDevice`` extension, as the bridge does;
* ``identifier`` ``urn:sg:hl7-obx|<sender>.<MSH-10>.<obx key>`` (see `observation_identifier`),
  so a replayed message finds what it stored before;
* blood pressure: systolic/diastolic/mean (150021/2/3) under one parent become one panel
  Observation 150020 / 85354-9 with three components (the compound OBX, when the sender wrote
  one, gives the identifier and hierarchy; the status is folded from the components, a
  component's own D/W/X status replacing its value by ``dataAbsentReason``);
* the OBX containment tree (OBX-4 "MDS.VMD.channel.metric") is kept in the
  `OBX_EXTENSION` complex extension (setId, subId, obr, resultStatus) on each Observation and BP
  component; a metric whose parent OBX is itself a stored metric (a glucose context and its
  duration) is linked with ``hasMember`` from the parent, by identifier.

Skipped on purpose: container OBXs without a value (MDS/VMD/channel: the MDS gives Device.type)
and device attributes of MDC partition 1 (clock, time-sync) that are not in `devices.codes`
(battery is): they describe the monitor, not the patient, and stay in the stored raw message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from devices import codes
from devices.hl7.errors import (
    REQUIRED_FIELD_MISSING,
    TABLE_VALUE_NOT_FOUND,
    ContentError,
)
from devices.hl7.pcd01 import Obx, Oru, parse_timestamp
from fhir import vitals

OBX_IDENTIFIER_SYSTEM = "urn:sg:hl7-obx"
OBX_EXTENSION = "urn:sg:fhir:StructureDefinition:hl7v2-obx"
SYSID_SYSTEM = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"  # IEEE 11073 System ID (EUI-64)
CONTINUA_ID_SYSTEM = "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers"
GATEWAY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LOCAL_CODE_SYSTEM = "urn:sg:hl7v2-cs:"

# HL7 table 0085 (OBX-11) → Observation.status, as the HL7 v2-to-FHIR IG maps it.
RESULT_STATUS = {
    "C": "corrected",
    "D": "entered-in-error",
    "F": "final",
    "I": "registered",
    "N": "cancelled",
    "O": "registered",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "U": "final",
    "W": "entered-in-error",
    "X": "cancelled",
}
# OBX-11 without a status: PCD-01 requires one; a result sent without it is taken as final.
DEFAULT_STATUS = "final"
# Which status a BP panel takes when its components disagree (first match wins).
_PANEL_STATUS_ORDER = (
    "corrected",
    "preliminary",
    "registered",
    "final",
    "cancelled",
    "entered-in-error",
)
_ABSENT_FOR_STATUS = {"X": "not-performed", "N": "not-asked", "D": "error", "W": "error"}
# 11073 special values written as text (as the bridge's SFLOAT specials are coded).
_SPECIAL_TEXT = {
    "NAN": "not-a-number",
    "NRES": "error",
    "+INF": "positive-infinity",
    "INF": "positive-infinity",
    "-INF": "negative-infinity",
}
_INTERPRETATIONS = frozenset({"H", "HH", "L", "LL", "N", "A", "AA", "HU", "LU", "<", ">"})
_CODED = frozenset({"CWE", "CE", "CNE", "CF", "CV"})
_DATES = frozenset({"DTM", "TS", "DT"})
_BP_PARTS = (150021, 150022, 150023)
_BP_LOINCS = ("8480-6", "8462-4", "8478-0")
_DEVICE_SPEC_PARTITION = 8
_ATTRIBUTE_PARTITION = 1


@dataclass(frozen=True, slots=True)
class Mapped:
    """The resources of one message: Devices first (Observations refer to them by EUI-64)."""

    devices: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)


def sender_of(oru: Oru) -> str:
    """Who numbered MSH-10: the sending facility (MSH-4), else the sending application (MSH-3).

    PCD-01 gateways often leave MSH-4 empty and name themselves (with their EUI-64) in MSH-3.
    """
    for hd in (oru.sending_facility, oru.sending_application):
        if hd is not None and (hd.namespace_id or hd.universal_id):
            return hd.namespace_id or hd.universal_id or ""
    return "-"


def observation_identifier(sender: str, control_id: str, key: str) -> dict[str, str]:
    return {"system": OBX_IDENTIFIER_SYSTEM, "value": f"{sender}.{control_id}.{key}"}


def map_oru(oru: Oru, *, patient_reference: str, sender: str | None = None) -> Mapped:
    """The Devices and Observations of `oru` for the patient at `patient_reference`."""
    return _Mapper(oru, patient_reference, sender or sender_of(oru)).run()


def _mdc_partition(code: int | None) -> int | None:
    return None if code is None else code // 65536


def _num(value: float) -> float | int:
    r = round(value, 6)
    return int(r) if r.is_integer() and abs(r) < 1e15 else r


class _Mapper:
    def __init__(self, oru: Oru, patient_reference: str, sender: str) -> None:
        self.oru = oru
        self.patient_reference = patient_reference
        self.sender = sender
        set_ids = [o.set_id for o in oru.observations]
        # OBX-1 restarts at 1 in each OBR group for some senders; then the OBR number is needed.
        self.set_ids_unique = None not in set_ids and len(set(set_ids)) == len(set_ids)
        self.by_node = {(o.obr_index, o.hierarchy): o for o in oru.observations if o.hierarchy}
        self.gateway = self._gateway_eui64()

    # --- keys and shared parts ------------------------------------------------------------

    def key(self, obx: Obx, position: int) -> str:
        if obx.set_id is not None:
            local = str(obx.set_id)
        elif obx.hierarchy:
            local = ".".join(map(str, obx.hierarchy))
        else:
            local = f"#{position}"
        return local if self.set_ids_unique else f"{obx.obr_index}-{local}"

    def seq(self, obx: Obx) -> int:
        """1-based occurrence of this OBX in the message, for ERR-2."""
        return self.oru.observations.index(obx) + 1

    def _gateway_eui64(self) -> str | None:
        app = self.oru.sending_application
        if app and (app.universal_id_type or "").upper() == "EUI-64" and app.universal_id:
            return app.universal_id
        return None

    def extension(self, obx: Obx) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if obx.set_id is not None:
            parts.append({"url": "setId", "valueInteger": obx.set_id})
        if obx.hierarchy:
            parts.append({"url": "subId", "valueString": ".".join(map(str, obx.hierarchy))})
        parts.append({"url": "obr", "valueInteger": obx.obr_index})
        if obx.status:
            parts.append({"url": "resultStatus", "valueCode": obx.status})
        return {"url": OBX_EXTENSION, "extension": parts}

    def concept(self, obx: Obx, mdc: int | None = None) -> dict[str, Any]:
        mdc = obx.mdc_code if mdc is None else mdc
        row = codes.by_mdc(mdc) if mdc is not None else None
        coding: list[dict[str, Any]] = []
        if mdc is not None:
            mdc_coding: dict[str, Any] = {"system": codes.MDC_SYSTEM, "code": str(mdc)}
            name = (row.mdc_name if row else None) or obx.mdc_term
            if name:
                mdc_coding["display"] = name
            coding.append(mdc_coding)
        loinc = obx.loinc
        loinc_display = None
        if loinc is None and mdc is not None:
            found = codes.loinc_for(mdc, obx.ucum)
            if found:
                loinc, loinc_display = found
        if loinc:
            ln: dict[str, Any] = {"system": codes.LOINC_SYSTEM, "code": loinc}
            if loinc_display:
                ln["display"] = loinc_display
            coding.append(ln)
            if row and obx.loinc is None:
                coding.extend({"system": codes.LOINC_SYSTEM, "code": x} for x in row.loinc_extra)
        if mdc is None and obx.loinc is None:
            local: dict[str, Any] = {"code": obx.code}
            if obx.code_system:
                local["system"] = LOCAL_CODE_SYSTEM + obx.code_system
            if obx.code_text:
                local["display"] = obx.code_text
            coding.append(local)
        concept: dict[str, Any] = {"coding": coding}
        text = (row.display if row else None) or obx.code_text or obx.mdc_term
        if text:
            concept["text"] = text
        return concept

    def is_vital(self, obx: Obx, mdc: int | None = None) -> bool:
        mdc = obx.mdc_code if mdc is None else mdc
        row = codes.by_mdc(mdc) if mdc is not None else None
        if row is not None:
            return row.vital_sign and row.loinc is not None
        return obx.loinc is not None and obx.loinc in vitals.BY_LOINC

    def vital_key(self, obx: Obx) -> str | None:
        if obx.loinc and obx.loinc in vitals.BY_LOINC:
            return vitals.BY_LOINC[obx.loinc]
        return vitals.BY_MDC.get(obx.mdc_code) if obx.mdc_code is not None else None

    def status(self, obx: Obx) -> str:
        return RESULT_STATUS.get(obx.status or "", DEFAULT_STATUS)

    def base(self, obx: Obx, concept: dict[str, Any], vital: bool, key: str) -> dict[str, Any]:
        extensions = [self.extension(obx)]
        if self.gateway:
            extensions.insert(
                0,
                {
                    "url": GATEWAY_EXTENSION,
                    "valueReference": {
                        "identifier": {"system": SYSID_SYSTEM, "value": self.gateway}
                    },
                },
            )
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "extension": extensions,
            "identifier": [observation_identifier(self.sender, self.oru.control_id, key)],
            "status": self.status(obx),
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
        obs["subject"] = {"reference": self.patient_reference}
        if obx.observed_at is None:
            raise ContentError(
                REQUIRED_FIELD_MISSING,
                "No observation time: OBX-14, its parent OBX and OBR-7 are all empty",
                "OBX",
                14,
                segment_seq=self.seq(obx),
            )
        obs["effectiveDateTime"] = obx.observed_at.isoformat()
        eui = self.device_of(obx)
        if eui:
            obs["device"] = {"identifier": {"system": SYSID_SYSTEM, "value": eui}}
        if obx.reference_range:
            obs["referenceRange"] = [{"text": obx.reference_range}]
        flags = [f.upper() for f in obx.abnormal_flags if f.upper() in _INTERPRETATIONS]
        if flags:
            obs["interpretation"] = [
                {"coding": [{"system": INTERPRETATION_SYSTEM, "code": f}]} for f in flags
            ]
        return obs

    def device_of(self, obx: Obx) -> str | None:
        return next((e.eui64 for e in obx.equipment if e.eui64), None)

    # --- values ---------------------------------------------------------------------------

    def value(self, obx: Obx) -> tuple[str, Any]:
        """(element name, value) for OBX-5: a value[x] or dataAbsentReason."""
        vt = obx.value_type
        if obx.samples:
            return "valueSampledData", self.sampled(obx)
        if obx.value is not None:
            return "valueQuantity", self.quantity(obx)
        if obx.value_code is not None or (vt in _CODED and obx.text):
            coding: dict[str, Any] = {"code": obx.value_code or obx.text}
            if obx.text and obx.text.startswith("MDC_"):
                coding["system"] = codes.MDC_SYSTEM
            if obx.text:
                coding["display"] = obx.text
            concept: dict[str, Any] = {"coding": [coding]}
            if obx.text:
                concept["text"] = obx.text
            return "valueCodeableConcept", concept
        if obx.text is not None:
            special = _SPECIAL_TEXT.get(obx.text.strip().upper())
            if special:
                return "dataAbsentReason", _absent(special, obx.text)
            if vt in _DATES:
                try:
                    moment = parse_timestamp(obx.text)
                except ValueError:
                    moment = None
                if moment is not None:
                    return "valueDateTime", moment.isoformat()
            return "valueString", obx.text
        reason = _ABSENT_FOR_STATUS.get(obx.status or "", "unknown")
        return "dataAbsentReason", _absent(reason, None)

    def quantity(self, obx: Obx) -> dict[str, Any]:
        assert obx.value is not None
        vital = self.vital_key(obx)
        if vital is not None:
            if not obx.ucum:
                raise ContentError(
                    REQUIRED_FIELD_MISSING,
                    f"OBX-6 (units) is empty; a {vital.replace('_', ' ')} value needs a unit",
                    "OBX",
                    6,
                    segment_seq=self.seq(obx),
                )
            try:
                vitals.to_canonical(vital, obx.value, obx.ucum)
            except vitals.UnitError:
                raise ContentError(
                    TABLE_VALUE_NOT_FOUND,
                    f"Unit {obx.ucum!r} cannot express {vital.replace('_', ' ')}",
                    "OBX",
                    6,
                    segment_seq=self.seq(obx),
                ) from None
        quantity: dict[str, Any] = {"value": _num(obx.value)}
        if obx.text:
            comparator = obx.text[: len(obx.text) - len(obx.text.lstrip("<>="))]
            if comparator in ("<", "<=", ">=", ">"):
                quantity["comparator"] = comparator
        if obx.ucum:
            quantity.update(unit=obx.ucum, system=codes.UCUM_SYSTEM, code=obx.ucum)
        return quantity

    def sampled(self, obx: Obx) -> dict[str, Any]:
        data = " ".join("E" if math.isnan(s) else str(_num(s)) for s in obx.samples)
        origin: dict[str, Any] = {"value": 0}
        if obx.ucum:
            origin.update(unit=obx.ucum, system=codes.UCUM_SYSTEM, code=obx.ucum)
        return {"origin": origin, "period": 0, "dimensions": 1, "data": data}

    # --- the walk -------------------------------------------------------------------------

    def skipped(self, obx: Obx) -> bool:
        has_value = (
            obx.value is not None
            or obx.text is not None
            or obx.value_code is not None
            or bool(obx.samples)
        )
        if not has_value and obx.value_type is None:
            return True  # an MDS/VMD/channel container
        if _mdc_partition(obx.mdc_code) == _ATTRIBUTE_PARTITION:
            return codes.by_mdc(obx.mdc_code or 0) is None
        return False

    def bp_groups(self) -> dict[tuple[int, tuple[int, ...]], list[Obx]]:
        """BP metrics grouped by their parent node (OBR, OBX-4 without its last level)."""
        groups: dict[tuple[int, tuple[int, ...]], list[Obx]] = {}
        for obx in self.oru.observations:
            if obx.mdc_code in _BP_PARTS or obx.loinc in _BP_LOINCS:
                parent = obx.hierarchy[:-1] if obx.hierarchy else ()
                groups.setdefault((obx.obr_index, parent), []).append(obx)
        return {k: v for k, v in groups.items() if len(v) > 1 or k[1]}

    def run(self) -> Mapped:
        observations: list[dict[str, Any]] = []
        by_obx: dict[int, dict[str, Any]] = {}  # id(obx) → its Observation
        grouped: set[int] = set()
        keys = {id(o): self.key(o, n) for n, o in enumerate(self.oru.observations, start=1)}

        for (obr, parent), parts in self.bp_groups().items():
            compound = self.by_node.get((obr, parent)) if parent else None
            head = compound or parts[0]
            key = keys[id(compound)] if compound else f"{keys[id(parts[0])]}-bp"
            panel = self.base(head, self.concept(head, codes.BP_PANEL.mdc), True, key)
            if compound is None:
                panel["extension"][-1] = self.extension(parts[0])
            components = []
            statuses = []
            for obx in parts:
                component: dict[str, Any] = {
                    "extension": [self.extension(obx)],
                    "code": self.concept(obx),
                }
                name, value = self.value(obx)
                if obx.status in ("D", "W", "X"):
                    name, value = "dataAbsentReason", _absent(_ABSENT_FOR_STATUS[obx.status], None)
                component[name] = value
                components.append(component)
                statuses.append(self.status(obx))
                grouped.add(id(obx))
            # The compound is a container: PCD-01 senders mark it X ("no value here"), so the
            # panel's status comes from its measured parts.
            panel["status"] = next(
                (s for s in _PANEL_STATUS_ORDER if s in statuses), DEFAULT_STATUS
            )
            if not panel.get("device"):
                eui = next((self.device_of(p) for p in parts if self.device_of(p)), None)
                if eui:
                    panel["device"] = {"identifier": {"system": SYSID_SYSTEM, "value": eui}}
            panel["component"] = components
            observations.append(panel)
            if compound is not None:
                grouped.add(id(compound))
                by_obx[id(compound)] = panel

        for obx in self.oru.observations:
            if id(obx) in grouped or self.skipped(obx):
                continue
            obs = self.base(obx, self.concept(obx), self.is_vital(obx), keys[id(obx)])
            name, value = self.value(obx)
            obs[name] = value
            observations.append(obs)
            by_obx[id(obx)] = obs

        # Keep metric-under-metric containment (a context and its qualifier) as hasMember.
        for obx in self.oru.observations:
            child = by_obx.get(id(obx))
            if child is None or not obx.hierarchy or child.get("component"):
                continue
            parent_obx = self.by_node.get((obx.obr_index, obx.hierarchy[:-1]))
            parent = by_obx.get(id(parent_obx)) if parent_obx is not None else None
            if parent is not None and parent is not child:
                parent.setdefault("hasMember", []).append(
                    {"identifier": child["identifier"][0], "display": child["code"].get("text")}
                )
        return Mapped(self.devices(), observations)

    def devices(self) -> list[dict[str, Any]]:
        """One Device per EUI-64: the gateway (MSH-3) and each monitor (OBX-18)."""
        found: dict[str, dict[str, Any]] = {}
        if self.gateway:
            found[self.gateway] = _device(self.gateway, None, "Gateway")
        for obx in self.oru.observations:
            eui = self.device_of(obx)
            if not eui:
                continue
            spec = None
            if _mdc_partition(obx.mdc_code) == _DEVICE_SPEC_PARTITION and len(obx.hierarchy) <= 1:
                spec = (obx.mdc_code, obx.mdc_term)
            if eui not in found or (spec and "type" not in found[eui]):
                found[eui] = _device(eui, spec, None)
        return list(found.values())


def _absent(code: str, text: str | None) -> dict[str, Any]:
    reason: dict[str, Any] = {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": code}]}
    if text:
        reason["text"] = text
    return reason


def _device(eui64: str, spec: tuple[int | None, str | None] | None, name: str | None) -> dict:
    device: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [
            {
                "type": {"coding": [{"system": CONTINUA_ID_SYSTEM, "code": "SYSID"}]},
                "system": SYSID_SYSTEM,
                "value": eui64,
            }
        ],
    }
    if spec and spec[0] is not None:
        coding: dict[str, Any] = {"system": codes.MDC_SYSTEM, "code": str(spec[0])}
        if spec[1]:
            coding["display"] = spec[1]
        device["type"] = {"coding": [coding]}
    if name:
        device["deviceName"] = [{"name": name, "type": "user-friendly-name"}]
    return device
