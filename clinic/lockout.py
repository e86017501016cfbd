"""Login throttling and lockout, on the shared cache (Redis with services, memory embedded).

After `LOGIN_FAILURE_LIMIT` failed logins for one username, or from one client address, within
`LOGIN_LOCKOUT_SECONDS`, `LockoutBackend` refuses every further attempt for that username or
address until the window has passed; a correct password does not get through a lock. A successful
login clears the username's count. It works for every login form (pages and admin) because it is
the authentication backend (Django's ModelBackend with the lock check first), and counts through
Django's `user_login_failed` signal.

django-axes would do this too, but its backend requires the request on every `authenticate()`
call, which Django's test client `login()` does not pass; this small limiter does not.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver


def _limit() -> int:
    return getattr(settings, "LOGIN_FAILURE_LIMIT", 5)


def _window() -> int:
    return getattr(settings, "LOGIN_LOCKOUT_SECONDS", 900)


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().casefold().encode()).hexdigest()[:32]
    return f"login-fail:{kind}:{digest}"


def client_address(request) -> str:
    if request is None:
        return ""
    return request.META.get("REMOTE_ADDR", "")


def _keys(username: str, request) -> list[str]:
    keys = [_key("user", username)] if username else []
    address = client_address(request)
    if address:
        keys.append(_key("addr", address))
    return keys


def is_locked(username: str, request=None) -> bool:
    return any((cache.get(k) or 0) >= _limit() for k in _keys(username, request))


def record_failure(username: str, request=None) -> None:
    for key in _keys(username, request):
        if cache.add(key, 1, _window()):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, _window())


def reset(username: str) -> None:
    cache.delete(_key("user", username))


class LockoutBackend(ModelBackend):
    """Django's ModelBackend, refusing (PermissionDenied ends Django's loop) while locked.

    It is the project's only backend, so `force_login` and sessions use it as they would
    ModelBackend.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and is_locked(username, request):
            raise PermissionDenied("too many failed logins; try again later")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    record_failure(str(credentials.get("username") or ""), request)


@receiver(user_logged_in)
def _clear_on_success(sender, request, user, **kwargs):
    reset(user.get_username())
