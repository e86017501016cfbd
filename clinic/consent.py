"""Consent to province-wide sharing and break-the-glass access: the actions that change who sees
a record. The checks themselves live in `clinic.access`; these only write, and leave an audit
record of each change.

Consent is append-only: every decision (given, refused, revoked) is a new row and the latest
row decides (`clinic.access._consenting_patient_ids`), so the history of decisions stays
readable as FHIR Consent resources and a revocation takes effect on the very next request.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from clinic import roles
from clinic.access import Actor, access_basis
from clinic.models import BreakGlassAccess, Consent, Patient

BREAK_GLASS_MAX = timedelta(hours=24)
BREAK_GLASS_DEFAULT = timedelta(hours=getattr(settings, "BREAK_GLASS_HOURS", 4))
MIN_REASON_CHARS = 10


def _audit(actor: Actor, **kwargs) -> None:
    from fhir import audit  # fhir sits to the right of clinic; imported only when writing

    audit.record(actor, **kwargs)


def check_record_consent(actor: Actor, patient: Patient) -> None:
    """The patient themself or an administrator records a consent decision."""
    own = actor.role == roles.PATIENT and getattr(actor.user, "pk", None) == patient.user_id
    if not (own or actor.role == roles.ADMIN):
        raise PermissionDenied("only the patient or an administrator records consent")


@transaction.atomic
def do_record_consent(
    actor: Actor,
    patient: Patient,
    status: str,
    *,
    valid_from: date | None = None,
    valid_to: date | None = None,
) -> Consent:
    """Append a consent decision (given, refused or revoked); it takes effect at once."""
    if status not in Consent.Status.values:
        raise ValidationError(f"unknown consent status {status!r}")
    today = timezone.localdate()
    consent = Consent.objects.create(
        patient=patient, status=status, valid_from=valid_from or today, valid_to=valid_to
    )
    _audit(
        actor,
        action="U" if status == Consent.Status.REVOKED else "C",
        channel="page" if actor.kind == "user" else actor.kind[:16],
        patient_id=patient.pk,
        entity=f"Consent/{consent.pk}",
        purpose="PATRQT" if actor.role == roles.PATIENT else "HOPERAT",
        detail=f"consent to province-wide sharing: {status}",
    )
    return consent


def check_break_glass(actor: Actor, patient: Patient, reason: str) -> None:
    """Only a hospital clinician breaks the glass, with a written reason, for a record they
    could not otherwise see."""
    if actor.kind != "user" or actor.role != roles.HOSPITAL_CLINICIAN:
        raise PermissionDenied("only a hospital clinician may break the glass")
    if len((reason or "").strip()) < MIN_REASON_CHARS:
        raise ValidationError(f"write the reason (at least {MIN_REASON_CHARS} characters)")
    if patient.merged_into_id:
        raise ValidationError("this record was merged into another; open that one")


@transaction.atomic
def do_break_glass(
    actor: Actor, patient: Patient, reason: str, *, duration: timedelta = BREAK_GLASS_DEFAULT
) -> BreakGlassAccess:
    """Open the record to this clinician for `duration` (at most 24 h), flagged for review."""
    duration = min(duration, BREAK_GLASS_MAX)
    access = BreakGlassAccess.objects.create(
        user=actor.user,
        patient=patient,
        reason=reason.strip(),
        expires_at=timezone.now() + duration,
    )
    _audit(
        actor,
        action="E",
        channel="page",
        patient_id=patient.pk,
        entity=f"BreakGlassAccess/{access.pk}",
        purpose="BTG",
        detail=f"break-the-glass until {access.expires_at:%Y-%m-%d %H:%M}: {reason.strip()}",
    )
    return access


def purpose_for(actor: Actor, patient_id: int | None) -> str:
    """The purpose of use an audit record carries when its caller named none.

    A look through break-the-glass carries "BTG" and the written reason, so the patient reading
    their access log sees why.
    """
    if not patient_id or actor.kind in ("anonymous", "bridge"):
        return ""
    basis = access_basis(actor, patient_id)
    if basis == "BTG":
        glass = (
            BreakGlassAccess.objects.filter(
                user=actor.user, patient_id=patient_id, expires_at__gt=timezone.now()
            )
            .order_by("-created_at")
            .first()
        )
        return f"BTG: {glass.reason}" if glass else "BTG"
    return basis
