"""Who is calling the FHIR API: a session user, a bridge token, or (later) an OAuth2 client."""

from __future__ import annotations

from django.http import HttpRequest

from clinic.access import ANONYMOUS, Actor, actor_for_bridge, actor_for_user
from fhir.errors import NotAuthenticated


def authenticate(request: HttpRequest) -> tuple[Actor, object | None]:
    """(actor, bridge or None). A bearer token that matches nothing is a 401, never anonymous."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("use Authorization: Bearer <token>")
        from devices.models import Bridge

        bridge = Bridge.authenticate(token.strip())
        if bridge is None:
            raise NotAuthenticated("the bearer token is not valid (unknown, revoked or mistyped)")
        return actor_for_bridge(bridge), bridge
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return actor_for_user(user), None
    return ANONYMOUS, None
