"""Every resource the server emits validates with fhir.resources R4B: we walk the API's answers
(capability, reads, searches, history, $everything, transaction responses and errors) and
validate each resource and each Bundle entry."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from clinic.models import Patient
from fhir.models import Resource
from tests.conftest import CHEN
from tests.fhir import bundles

FHIR = "application/fhir+json"


def validate_all(body: dict, seen: list[str]) -> None:
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    seen.append(body["resourceType"])
    for entry in body.get("entry", []) if body["resourceType"] == "Bundle" else []:
        if "resource" in entry:
            validate_all(entry["resource"], seen)
        if "outcome" in entry.get("response", {}):
            validate_all(entry["response"]["outcome"], seen)


@pytest.fixture
def doctor(bridge_client, client):
    response = bridge_client.post("/fhir/", json.dumps(bundles.upload(CHEN, 3)), content_type=FHIR)
    assert response.status_code == 200
    validate_all(response.json(), [])
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="admin", password="sgdemo2026")
    return client


def test_every_emitted_resource_validates(doctor):
    chen = Patient.objects.get(resident_id=CHEN)
    record = [
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{chen.pk}"},
            "code": {"text": "高血压"},
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
        },
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{chen.pk}"},
            "code": {"text": "青霉素"},
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": {"reference": f"Patient/{chen.pk}"},
            "medicationCodeableConcept": {"text": "氨氯地平 5 mg"},
        },
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{chen.pk}"},
            "period": {"start": "2026-10-01T09:00:00+08:00"},
        },
    ]
    seen: list[str] = []
    for body in record:
        response = doctor.post(f"/fhir/{body['resourceType']}", json.dumps(body), content_type=FHIR)
        assert response.status_code == 201, response.content
        validate_all(response.json(), seen)
    observation = Resource.objects.filter(resource_type="Observation").first()
    paths = [
        "/fhir/metadata",
        f"/fhir/Patient/{chen.pk}",
        f"/fhir/Patient?identifier={CHEN}&_revinclude=Observation:patient",
        f"/fhir/Patient/{chen.pk}/$everything",
        f"/fhir/Observation?patient=Patient/{chen.pk}&_include=Observation:device&_count=2",
        f"/fhir/Observation/{observation.logical_id}",
        f"/fhir/Observation/{observation.logical_id}/_history",
        f"/fhir/Observation/{observation.logical_id}/_history/1",
        "/fhir/Observation?_elements=code,valueQuantity",
        "/fhir/Observation?unknown-param=1",
        "/fhir/Device",
        "/fhir/Condition",
        "/fhir/AllergyIntolerance",
        "/fhir/MedicationStatement",
        "/fhir/Encounter",
        "/fhir/Practitioner",
        "/fhir/Organization",
        "/fhir/Location",
        f"/fhir/AuditEvent?patient=Patient/{chen.pk}",
        "/fhir/Observation/does-not-exist",
        "/fhir/Nonsense",
    ]
    for path in paths:
        response = doctor.get(path)
        validate_all(response.json(), seen)
    for rtype in (
        "Bundle",
        "CapabilityStatement",
        "Patient",
        "Observation",
        "Device",
        "Condition",
        "Practitioner",
        "Organization",
        "Location",
        "AuditEvent",
        "OperationOutcome",
    ):
        assert rtype in seen, f"no {rtype} was emitted and checked"
