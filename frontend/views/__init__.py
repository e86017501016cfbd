"""Pages. Views stay thin: check the role, call a selector, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render

from clinic import roles


@login_required
def home(request):
    """Send each role to the page it works on."""
    role = roles.role_of(request.user)
    if role is None:
        raise PermissionDenied("This account has no role; ask an administrator.")
    return redirect(roles.LANDING_URL_NAMES[role])


def _require(request, *allowed: str) -> None:
    if roles.role_of(request.user) not in allowed:
        raise PermissionDenied


@login_required
def hub_board(request):
    _require(request, roles.COMMUNITY_DOCTOR)
    practitioner = request.user.practitioner
    hubs = list(practitioner.hubs.all())
    return render(request, "frontend/hub_board.html", {"practitioner": practitioner, "hubs": hubs})


@login_required
def hospital_inbox(request):
    _require(request, roles.HOSPITAL_CLINICIAN)
    practitioner = request.user.practitioner
    return render(
        request,
        "frontend/hospital_inbox.html",
        {"practitioner": practitioner, "hospital": practitioner.hospital},
    )
