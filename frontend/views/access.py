"""Page-level helpers: resolve a patient the user may see (404 otherwise) and audit the look."""

from __future__ import annotations

from django.http import Http404

from clinic.access import Actor, actor_for_user, readable_patients
from clinic.models import Patient
from fhir import audit


def patient_for_page(request, pk: int, *, purpose: str = "") -> tuple[Patient, Actor]:
    """The patient if the user may read them, audited; 404 for "unknown" and "not yours" alike."""
    actor = actor_for_user(request.user)
    patient = readable_patients(actor).filter(pk=pk).select_related("community").first()
    if patient is None:
        raise Http404("No such patient")
    audit.record(
        actor,
        action="R",
        channel="page",
        patient_id=patient.pk,
        entity=request.path[:200],
        purpose=purpose,
    )
    return patient, actor
