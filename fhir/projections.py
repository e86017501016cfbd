"""FHIR views of people and places whose source of truth is a Django model (see docs/fhir.md).

Patients, practitioners, hospitals and communities are edited in clinic/community (admin, seed,
patient index); the FHIR API renders them read-only as Patient, Practitioner, Organization and
Location, with ids equal to the model's primary key.
"""

from __future__ import annotations

from clinic.lookup import RESIDENT_ID_SYSTEM, SOCIAL_SECURITY_SYSTEM
from clinic.models import Consent, Hospital, Patient, Practitioner

PROJECTED_TYPES = ("Patient", "Practitioner", "Organization", "Location", "Consent")


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
    links = _patient_links(p)
    if links:
        body["link"] = links
        body["active"] = not p.merged_into_id
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
        "address": {"city": c.get_city_display(), "district": c.district, "country": "CN"},
    }


def _patient_links(p: Patient) -> list[dict]:
    """Patient.link from the patient index: replaced-by on a merged record, replaces on the
    survivor (one entry per record merged into it)."""
    links = []
    if p.merged_into_id:
        links.append({"other": {"reference": f"Patient/{p.merged_into_id}"}, "type": "replaced-by"})
    for pk in Patient.objects.filter(merged_into=p).values_list("pk", flat=True).order_by("pk"):
        links.append({"other": {"reference": f"Patient/{pk}"}, "type": "replaces"})
    return links


CONSENT_STATUS = {
    Consent.Status.GIVEN: "active",
    Consent.Status.REFUSED: "rejected",
    Consent.Status.REVOKED: "inactive",
}


def consent(c: Consent, *, superseded: bool = False) -> dict:
    """A consent decision as FHIR R4B Consent (scope patient-privacy, opt-in to sharing).

    given → active (permit), refused → rejected (deny), revoked → inactive (deny); a "given"
    that a later decision replaced is inactive too.
    """
    status = "inactive" if superseded and c.status == Consent.Status.GIVEN else None
    permit = c.status == Consent.Status.GIVEN
    period = {"start": c.valid_from.isoformat()}
    if c.valid_to:
        period["end"] = c.valid_to.isoformat()
    return {
        "resourceType": "Consent",
        "id": str(c.pk),
        "meta": {"versionId": "1", "lastUpdated": c.recorded_at.isoformat()},
        "status": status or CONSENT_STATUS[c.status],
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                    "display": "Privacy Consent",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://loinc.org",
                        "code": "59284-0",
                        "display": "Patient Consent",
                    }
                ],
                "text": "Province-wide sharing of the remote-monitoring record",
            }
        ],
        "patient": {"reference": f"Patient/{c.patient_id}"},
        "dateTime": c.recorded_at.isoformat(),
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN" if permit else "OPTOUT",
                }
            ]
        },
        "provision": {"type": "permit" if permit else "deny", "period": period},
    }
