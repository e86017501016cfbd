"""FHIR views of people and places whose source of truth is a Django model (see docs/fhir.md).

Patients, practitioners, hospitals and communities are edited in clinic/community (admin, seed,
patient index); the FHIR API renders them read-only as Patient, Practitioner, Organization and
Location, with ids equal to the model's primary key.
"""

from __future__ import annotations

from clinic.lookup import RESIDENT_ID_SYSTEM, SOCIAL_SECURITY_SYSTEM
from clinic.models import Hospital, Patient, Practitioner

PROJECTED_TYPES = ("Patient", "Practitioner", "Organization", "Location")


def _meta(obj) -> dict:
    stamp = getattr(obj, "updated_at", None) or getattr(obj, "created_at", None)
    return {"versionId": "1", **({"lastUpdated": stamp.isoformat()} if stamp else {})}


def patient(p: Patient) -> dict:
    identifiers = []
    if p.resident_id:
        identifiers.append(
            {
                "use": "official",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NNCHN"}
                    ]
                },
                "system": RESIDENT_ID_SYSTEM,
                "value": p.resident_id,
            }
        )
    if p.social_security_no:
        identifiers.append({"system": SOCIAL_SECURITY_SYSTEM, "value": p.social_security_no})
    identifiers += [{"system": i.system, "value": i.value} for i in p.identifiers.all()]
    body: dict = {
        "resourceType": "Patient",
        "id": str(p.pk),
        "meta": _meta(p),
        "identifier": identifiers,
        "active": True,
        "name": [
            {
                "use": "official",
                "text": p.name,
                **({"family": p.family_name} if p.family_name else {}),
                **({"given": [p.given_name]} if p.given_name else {}),
            }
        ],
        "gender": p.sex,
        "birthDate": p.birth_date.isoformat(),
    }
    if p.phone:
        body["telecom"] = [{"system": "phone", "value": p.phone, "use": "mobile"}]
    if p.address or p.city:
        body["address"] = [{"text": p.address, "city": p.get_city_display(), "country": "CN"}]
    return body


def practitioner(p: Practitioner) -> dict:
    body = {
        "resourceType": "Practitioner",
        "id": str(p.pk),
        "meta": _meta(p),
        "identifier": [{"system": "urn:sg:practitioner", "value": p.user.get_username()}],
        "active": True,
        "name": [{"text": p.name}],
    }
    if p.phone:
        body["telecom"] = [{"system": "phone", "value": p.phone}]
    return body


def organization(h: Hospital) -> dict:
    return {
        "resourceType": "Organization",
        "id": str(h.pk),
        "meta": _meta(h),
        "identifier": [{"system": i["system"], "value": i["value"]} for i in h.identifiers]
        + [{"system": "urn:sg:hospital", "value": h.code}],
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                    }
                ]
            }
        ],
        "name": h.name,
        **({"alias": [h.name_en]} if h.name_en else {}),
        "address": [{"city": h.get_city_display(), "country": "CN"}],
    }


def location(c) -> dict:
    return {
        "resourceType": "Location",
        "id": str(c.pk),
        "meta": _meta(c),
        "identifier": [{"system": "urn:sg:community", "value": c.code}],
        "status": "active",
        "name": c.name,
        **({"alias": [c.name_en]} if c.name_en else {}),
        "mode": "instance",
        "type": [{"text": "community"}],
        "address": [{"city": c.get_city_display(), "district": c.district, "country": "CN"}],
    }
