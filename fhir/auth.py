"""Who is calling the FHIR API, and how often: a session user, a bridge token, or an OAuth2
access token of a hospital system (SMART Backend Services, see fhir.smart)."""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from clinic.access import ANONYMOUS, Actor, actor_for_bridge, actor_for_user
from fhir.errors import FhirError, NotAuthenticated


class TooManyRequests(FhirError):
    status, code = 429, "throttled"

    def __init__(self, diagnostics: str, *, retry_after: int):
        super().__init__(diagnostics)
        self.headers = {"Retry-After": str(retry_after)}


logger = logging.getLogger(__name__)


def authenticate(request: HttpRequest) -> tuple[Actor, object | None]:
    """(actor, bridge or None). A bearer token that matches nothing is a 401, never anonymous."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthenticated("use Authorization: Bearer <token>")
        from devices.models import Bridge

        bridge = Bridge.authenticate(token)
        if bridge is not None:
            return actor_for_bridge(bridge), bridge
        from fhir.smart import actor_for_access_token

        actor = actor_for_access_token(token)
        if actor is None:
            raise NotAuthenticated(
                "the bearer token is not valid (unknown, expired, revoked or mistyped)"
            )
        return actor, None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return actor_for_user(user), None
    return ANONYMOUS, None


def _rate(kind: str) -> tuple[int, int] | None:
    spec = getattr(settings, "FHIR_RATE_LIMITS", {}).get(kind)
    if not spec:
        return None
    count, _, seconds = str(spec).partition("/")
    return int(count), int(seconds or 60)


def throttle(actor: Actor) -> None:
    """Per-bridge and per-client fixed-window limits on the shared cache; 429 with Retry-After.

    People are not limited here (their logins are, in clinic.lockout); device interfaces inside
    the hospital network are not either.
    """
    kind = "bridge" if actor.is_bridge else ("system" if actor.is_hospital_system else None)
    rate = _rate(kind) if kind else None
    if rate is None:
        return
    limit, window = rate
    now = time.time()
    slot = int(now // window)
    key = f"fhir-rate:{actor.id}:{slot}"
    try:
        if cache.add(key, 1, window + 1):
            return
        try:
            used = cache.incr(key)
        except ValueError:  # the window's key expired between add and incr
            cache.add(key, 1, window + 1)
            return
    except Exception:  # the cache (Redis) is down: readings matter more than the rate limit
        logger.warning("rate-limit cache unavailable; letting %s through", actor.id, exc_info=True)
        return
    if used > limit:
        retry = max(1, math.ceil((slot + 1) * window - now))
        raise TooManyRequests(
            f"rate limit of {limit} requests per {window} s exceeded for {actor.id}",
            retry_after=retry,
        )
