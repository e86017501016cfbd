"""Who looked at a record and why: the patient's own access log, any patient's for an
administrator, and the break-the-glass form for hospital clinicians.

Views stay thin: the access checks are clinic.access / clinic.consent, the records fhir.audit.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from clinic import roles
from clinic.access import actor_for_user, can_read_patient
from clinic.consent import check_break_glass, do_break_glass
from clinic.lookup import find_patient
from clinic.models import Patient, Practitioner, SystemClient
from fhir import audit
from fhir.models import AuditEvent

PAGE_SIZE = 50
ACTIONS = {"C": "create", "R": "read", "U": "update", "D": "delete", "E": "execute"}


def _who(events) -> dict[str, str]:
    """Readable names for agent ids: practitioners by username, systems by client id."""
    usernames = {e.agent_id for e in events if e.agent_type == "user"}
    names = {
        p.user.get_username(): f"{p.name} · {p.hospital.name if p.hospital else p.get_role_display()}"
        for p in Practitioner.objects.filter(user__username__in=usernames).select_related(
            "user", "hospital"
        )
    }
    client_ids = {e.agent_id.removeprefix("client/") for e in events if e.agent_type == "system"}
    for client in SystemClient.objects.filter(application__client_id__in=client_ids).select_related(
        "application", "hospital"
    ):
        names[f"client/{client.application.client_id}"] = (
            f"{client.application.name} · {client.hospital.name}"
        )
    return names


def _render_log(request, patient: Patient, *, heading: str):
    events = AuditEvent.objects.filter(patient=patient).order_by("-id")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    names = _who(page.object_list)
    rows = [
        {
            "event": e,
            "who": names.get(e.agent_id, e.agent_id),
            "action": ACTIONS.get(e.action, e.action),
            "break_glass": e.purpose.startswith("BTG"),
        }
        for e in page.object_list
    ]
    return render(
        request,
        "frontend/audit_log.html",
        {"patient": patient, "page": page, "rows": rows, "heading": heading},
    )


@login_required
def my_access_log(request):
    """The patient's own record: everyone who read or wrote it, when, through what, and why."""
    patient = getattr(request.user, "patient", None)
    if roles.role_of(request.user) != roles.PATIENT or patient is None:
        raise PermissionDenied
    return _render_log(request, patient, heading="own")


@login_required
def patient_access_log(request, pk: int):
    """Any patient's access log for an administrator; a patient only their own (404 otherwise)."""
    actor = actor_for_user(request.user)
    patient = Patient.objects.filter(pk=pk).first()
    own = patient is not None and patient.user_id == request.user.pk
    if patient is None or not (own or actor.role == roles.ADMIN):
        raise Http404("No such patient")
    if not own:
        audit.record(
            actor,
            action="R",
            channel="page",
            patient_id=patient.pk,
            entity=request.path[:200],
            detail="access log",
        )
    return _render_log(request, patient, heading="own" if own else "admin")


@login_required
def break_glass(request):
    """A hospital clinician opens a record they may not otherwise see: reason required,
    time-boxed, flagged for review, audited with purpose BTG."""
    actor = actor_for_user(request.user)
    if actor.role != roles.HOSPITAL_CLINICIAN:
        raise PermissionDenied
    errors: list[str] = []
    if request.method == "POST":
        identifier = request.POST.get("identifier", "").strip()
        reason = request.POST.get("reason", "").strip()
        patient = find_patient(identifier) if identifier else None
        if patient is None:
            errors.append("no patient has this identifier")
        else:
            try:
                check_break_glass(actor, patient, reason)
            except ValidationError as exc:
                errors.extend(exc.messages)
            else:
                if not can_read_patient(actor, patient):
                    do_break_glass(actor, patient, reason)
                return redirect(reverse("frontend:patient-timeline", args=[patient.pk]))
    return render(request, "frontend/audit_break_glass.html", {"errors": errors})
