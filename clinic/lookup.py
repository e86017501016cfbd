"""Finding a patient by any registered identifier ("one record, one card")."""

from __future__ import annotations

from clinic.models import Patient

RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.2"
SOCIAL_SECURITY_SYSTEM = "urn:oid:2.16.156.10011.1.15"


def find_patient(value: str, system: str | None = None) -> Patient | None:
    """The patient with this identifier; without a system any registered identifier matches.

    A record the patient index merged into another answers with the survivor (FHIR replaced-by).
    """
    return _survivor(_find(value, system))


def _survivor(patient: Patient | None) -> Patient | None:
    hops = 0
    while patient is not None and patient.merged_into_id and hops < 10:
        patient, hops = patient.merged_into, hops + 1
    return patient


def _find(value: str, system: str | None) -> Patient | None:
    value = (value or "").strip()
    if not value:
        return None
    if system in (None, "", RESIDENT_ID_SYSTEM):
        found = Patient.objects.filter(resident_id=value.upper()).first()
        if found or system == RESIDENT_ID_SYSTEM:
            return found
    if system in (None, "", SOCIAL_SECURITY_SYSTEM):
        found = Patient.objects.filter(social_security_no=value).first()
        if found or system == SOCIAL_SECURITY_SYSTEM:
            return found
    extra = Patient.objects.filter(identifiers__value=value)
    if system:
        extra = extra.filter(identifiers__system=system)
    return extra.first()
