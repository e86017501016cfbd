"""Pages. Views stay thin: check the role, call a selector, render."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from clinic import roles


@login_required
def home(request):
    """Send each role to the page it works on."""
    role = roles.role_of(request.user)
    if role is None:
        raise PermissionDenied("This account has no role; ask an administrator.")
    return redirect(roles.LANDING_URL_NAMES[role])
