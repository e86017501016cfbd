"""Who may see and write whose data: the one place the security model of DESIGN.md is coded.

Views, the FHIR API and WebSocket consumers all call these functions; none re-implements them.
- a patient sees only themself;
- a community doctor sees patients enrolled in communities served by their hubs;
- a hospital clinician (or hospital system) sees a patient with an active referral/escalation to
  their hospital, a current consent to province-wide sharing, or (a clinician only, never a
  machine) their own unexpired break-the-glass access;
- a bridge writes (never reads) and only for its household's patients;
- an admin sees everyone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from clinic import roles
from clinic.models import BreakGlassAccess, Consent, Patient, Referral


@dataclass(frozen=True)
class Actor:
    """The caller of any operation on patient data, whatever the channel."""

    kind: str  # "user" | "bridge" | "system" | "anonymous"
    id: str
    role: str | None = None
    user: object | None = None
    hospital_id: int | None = None
    household: frozenset[int] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)  # SMART scopes of a system client

    @property
    def is_bridge(self) -> bool:
        return self.kind == "bridge"

    @property
    def is_hospital_system(self) -> bool:
        return self.kind == "system" and self.role == roles.HOSPITAL_SYSTEM


ANONYMOUS = Actor(kind="anonymous", id="anonymous")


def actor_for_user(user) -> Actor:
    if user is None or not user.is_authenticated:
        return ANONYMOUS
    role = roles.role_of(user)
    hospital_id = None
    if role == roles.HOSPITAL_CLINICIAN:
        hospital_id = getattr(getattr(user, "practitioner", None), "hospital_id", None)
    return Actor(kind="user", id=user.get_username(), role=role, user=user, hospital_id=hospital_id)


def actor_for_interface(name: str) -> Actor:
    """A hospital device interface (HL7 v2 feed, DICOM import): writes any patient, reads none."""
    return Actor(kind="system", id=f"interface/{name}", role="interface")


def actor_for_system_client(client, scopes) -> Actor:
    """A hospital system (clinic.models.SystemClient) calling with an access token of `scopes`.

    It sees exactly what a clinician of its hospital sees, less break-the-glass (which needs a
    person and a written reason); its SMART scopes narrow that further per resource type.
    """
    return Actor(
        kind="system",
        id=f"client/{client.application.client_id}",
        role=roles.HOSPITAL_SYSTEM,
        hospital_id=client.hospital_id,
        scopes=frozenset(scopes),
    )


def actor_for_bridge(bridge) -> Actor:
    return Actor(
        kind="bridge",
        id=f"bridge/{bridge.pk}",
        role="bridge",
        household=frozenset(bridge.patients.values_list("pk", flat=True)),
    )


# --- hospitals: referral, consent or break-the-glass ------------------------------------------
# Each basis is a subquery of patient ids, evaluated afresh on every call: revoking a consent,
# closing a referral or the end of a break-the-glass window takes effect on the next request.


def _referred_patient_ids(hospital_id: int):
    return Referral.objects.filter(
        hospital_id=hospital_id,
        status__in=[Referral.Status.ACTIVE, Referral.Status.ACCEPTED],
    ).values("patient_id")


def _consenting_patient_ids(today: date):
    """Patients whose latest consent record is 'given' and current."""
    latest = Consent.objects.filter(patient=OuterRef("pk")).order_by("-recorded_at", "-pk")
    return (
        Patient.objects.annotate(
            consent_status=Subquery(latest.values("status")[:1]),
            consent_from=Subquery(latest.values("valid_from")[:1]),
            consent_to=Subquery(latest.values("valid_to")[:1]),
        )
        .filter(consent_status=Consent.Status.GIVEN, consent_from__lte=today)
        .filter(Q(consent_to__isnull=True) | Q(consent_to__gte=today))
        .values("pk")
    )


def _break_glass_patient_ids(user):
    """Break-the-glass is personal: only the user who declared it sees through it, until expiry."""
    return BreakGlassAccess.objects.filter(user=user, expires_at__gt=timezone.now()).values(
        "patient_id"
    )


def _hospital_visible(actor: Actor) -> Q:
    q = Q(pk__in=_referred_patient_ids(actor.hospital_id)) | Q(
        pk__in=_consenting_patient_ids(timezone.localdate())
    )
    if actor.kind == "user" and actor.user is not None:
        q |= Q(pk__in=_break_glass_patient_ids(actor.user))
    return q


def readable_patients(actor: Actor) -> QuerySet[Patient]:
    """Every patient the actor may read; the basis of every list, search and check."""
    if actor.kind == "anonymous" or actor.is_bridge:
        return Patient.objects.none()
    if actor.role == roles.ADMIN:
        return Patient.objects.all()
    if actor.role == roles.PATIENT:
        return Patient.objects.filter(user=actor.user)
    if actor.role == roles.COMMUNITY_DOCTOR:
        return Patient.objects.filter(
            community__hubs__memberships__practitioner__user=actor.user
        ).distinct()
    if actor.role in (roles.HOSPITAL_CLINICIAN, roles.HOSPITAL_SYSTEM) and actor.hospital_id:
        return Patient.objects.filter(_hospital_visible(actor))
    return Patient.objects.none()


def access_basis(actor: Actor, patient_id: int) -> str:
    """Why the actor may see this patient, as a FHIR purpose-of-use for the audit trail.

    PATRQT (their own record), TREAT (care team, referral, consent), BTG (break-the-glass),
    HOPERAT (administration); "" when there is no basis.
    """
    if actor.role == roles.PATIENT:
        return "PATRQT"
    if actor.role == roles.ADMIN:
        return "HOPERAT"
    if actor.role == roles.COMMUNITY_DOCTOR:
        return "TREAT"
    if actor.role in (roles.HOSPITAL_CLINICIAN, roles.HOSPITAL_SYSTEM) and actor.hospital_id:
        if _referred_patient_ids(actor.hospital_id).filter(patient_id=patient_id).exists():
            return "TREAT"
        if _consenting_patient_ids(timezone.localdate()).filter(pk=patient_id).exists():
            return "TREAT"
        if actor.kind == "user" and (
            _break_glass_patient_ids(actor.user).filter(patient_id=patient_id).exists()
        ):
            return "BTG"
    return ""


def can_read_patient(actor: Actor, patient: Patient | int) -> bool:
    pk = patient if isinstance(patient, int) else patient.pk
    return readable_patients(actor).filter(pk=pk).exists()


def can_write_patient(actor: Actor, patient: Patient | int) -> bool:
    """Bridges write for their household; clinicians write where they may read; patients never."""
    pk = patient if isinstance(patient, int) else patient.pk
    if actor.is_bridge:
        return pk in actor.household
    if actor.kind == "system" and actor.role == "interface":
        return True
    if actor.role in (
        roles.ADMIN,
        roles.COMMUNITY_DOCTOR,
        roles.HOSPITAL_CLINICIAN,
        roles.HOSPITAL_SYSTEM,
    ):
        return can_read_patient(actor, pk)
    return False
