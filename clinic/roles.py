"""The roles of DESIGN.md's security model, as Django groups, and where each one lands."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.utils.translation import gettext_lazy as _

PATIENT = "patient"
COMMUNITY_DOCTOR = "community_doctor"
HOSPITAL_CLINICIAN = "hospital_clinician"
ADMIN = "admin"
# Not a group: a machine client of a hospital (OAuth2, clinic.models.SystemClient).
HOSPITAL_SYSTEM = "hospital_system"

ROLES: dict[str, str] = {
    PATIENT: _("Patient"),
    COMMUNITY_DOCTOR: _("Community doctor"),
    HOSPITAL_CLINICIAN: _("Hospital clinician"),
    ADMIN: _("Administrator"),
}

LANDING_URL_NAMES = {
    ADMIN: "admin:index",
    COMMUNITY_DOCTOR: "frontend:hub-board",
    HOSPITAL_CLINICIAN: "frontend:hospital-inbox",
    PATIENT: "frontend:patient-home",
}


class UnknownRole(ValueError):
    pass


def ensure_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def assign_role(user, role: str) -> None:
    """Put the user in the role's group; an unknown role is refused, never created."""
    if role not in ROLES:
        raise UnknownRole(f"unknown role {role!r}; known roles: {', '.join(ROLES)}")
    group, _created = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if role == ADMIN:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])


def role_of(user) -> str | None:
    """The user's role, most privileged first; None for anonymous or role-less users."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in (ADMIN, HOSPITAL_CLINICIAN, COMMUNITY_DOCTOR, PATIENT):
        if role in names:
            return role
    return None
