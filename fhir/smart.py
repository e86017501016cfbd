"""SMART Backend Services for hospital systems: discovery, the token endpoint's client check,
and SMART v2 scopes enforced on every /fhir/ interaction.

A hospital system (HIS/EMR) is a django-oauth-toolkit Application with the client-credentials
grant, bound to a hospital by a `clinic.models.SystemClient` that holds its public keys (JWKS).
It asks for a token at `/auth/token` with ``grant_type=client_credentials``,
``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and a
``client_assertion`` JWT signed with its private key (RS384 or ES384): iss = sub = client_id,
aud = the token endpoint, a unique jti and an exp at most five minutes ahead. DOT cannot verify
such assertions itself, so `SmartValidator` does that with PyJWT and hands DOT the client; DOT
issues and stores the access token (as a checksum only). `fhir.auth` turns the token into an
Actor whose `scopes` are checked here and whose hospital decides, in `clinic.access`, which
patients it sees.

Scopes: ``system/<Type|*>.<cruds>`` (SMART v2; c create, r read, u update, d delete, s search),
and the v1 forms ``.read`` (= rs) and ``.write`` (= cud). Granular scopes with query parameters
(``?category=``) are refused at the token endpoint rather than silently widened.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes

from clinic.access import Actor
from fhir.errors import Forbidden

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
PERMISSIONS = "cruds"
_SCOPE = re.compile(r"^(system|user|patient)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|[cruds]+)$")


# --- scopes (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    context: str
    resource_type: str  # a type or "*"
    permissions: frozenset[str]


def parse_scope(text: str) -> Scope | None:
    """A SMART scope, or None for anything else (openid, launch, query-restricted scopes)."""
    m = _SCOPE.match(text or "")
    if not m:
        return None
    context, rtype, perms = m.groups()
    if perms == "read":
        letters = "rs"
    elif perms == "write":
        letters = "cud"
    elif perms == "*":
        letters = PERMISSIONS
    else:
        # v2 letters appear at most once and in the order c r u d s
        if "".join(c for c in PERMISSIONS if c in perms) != perms:
            return None
        letters = perms
    return Scope(context, rtype, frozenset(letters))


def permits(scopes, resource_type: str, permission: str) -> bool:
    """Whether any of the granted system scopes allows `permission` on `resource_type`."""
    for text in scopes:
        s = parse_scope(text)
        if (
            s
            and s.context == "system"
            and s.resource_type in ("*", resource_type)
            and permission in s.permissions
        ):
            return True
    return False


def covers(granted, requested: str) -> bool:
    """Whether the client's registered scopes include everything the requested scope grants."""
    want = parse_scope(requested)
    if want is None or want.context != "system":
        return False
    held = [g for g in map(parse_scope, granted) if g and g.context == "system"]
    return all(
        any(g.resource_type in ("*", want.resource_type) and p in g.permissions for g in held)
        for p in want.permissions
    )


def scopes_supported() -> list[str]:
    types = sorted(
        {"Patient", "Observation", "Device", "Consent", "AuditEvent", "DiagnosticReport", "*"}
    )
    return [f"system/{t}.{p}" for t in types for p in ("rs", "cruds")] + [
        "system/*.read",
        "system/*.write",
    ]


# --- enforcement on /fhir/ --------------------------------------------------------------------


def require(actor: Actor, resource_type: str, permission: str) -> None:
    """Raise 403 unless a hospital system's token grants `permission` on `resource_type`.

    People and bridges are not scope-limited (their role decides, in clinic.access); only
    OAuth2 clients carry scopes.
    """
    if not actor.is_hospital_system:
        return
    if not permits(actor.scopes, resource_type, permission):
        raise Forbidden(
            f"the access token's scopes do not allow this: system/{resource_type}.{permission} "
            f"is needed (granted: {' '.join(sorted(actor.scopes)) or 'none'})"
        )


_INCLUDE_TARGETS = {"subject": "Patient", "patient": "Patient", "device": "Device"}


def require_for_request(actor: Actor, view: str, request: HttpRequest, kwargs: dict) -> None:
    """The scope each /fhir/ interaction needs: read/vread/history r, search s, create c,
    update u, delete d; $everything reads every type, so it needs r on all of them."""
    if not actor.is_hospital_system:
        return
    rtype = kwargs.get("rtype", "Patient")
    method = request.method
    if view == "type_level":
        require(actor, rtype, "s" if method in ("GET", "HEAD") else "c")
    elif view == "type_search":
        require(actor, rtype, "s")
    elif view == "instance":
        require(actor, rtype, {"GET": "r", "HEAD": "r", "PUT": "u", "DELETE": "d"}.get(method, "u"))
    elif view in ("instance_history", "instance_version"):
        require(actor, rtype, "r")
    elif view == "patient_everything":
        require(actor, "*", "r")
    if method in ("GET", "HEAD", "POST") and view in ("type_level", "type_search"):
        params = request.GET if method != "POST" or view == "type_level" else request.POST
        for spec in params.getlist("_revinclude"):
            require(actor, spec.partition(":")[0], "s")
        for spec in params.getlist("_include"):
            target = _INCLUDE_TARGETS.get(spec.split(":")[1] if ":" in spec else "", "*")
            require(actor, target, "r")


def require_for_bundle(actor: Actor, bundle: dict) -> None:
    """Each entry of a transaction/batch Bundle needs the scope its own interaction needs."""
    if not actor.is_hospital_system or not isinstance(bundle, dict):
        return
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        request = entry.get("request") or {}
        method = request.get("method")
        url = str(request.get("url") or "")
        if method == "POST":
            resource = entry.get("resource") or {}
            require(actor, str(resource.get("resourceType") or url.split("/")[0] or "*"), "c")
        elif method in ("PUT", "DELETE"):
            require(actor, url.split("/")[0].split("?")[0] or "*", "u" if method == "PUT" else "d")
        elif method == "GET":
            require(actor, url.split("/")[0].split("?")[0] or "*", "r")


# --- discovery --------------------------------------------------------------------------------


def token_url(request: HttpRequest | None = None) -> str:
    if settings.SMART_TOKEN_URL:
        return settings.SMART_TOKEN_URL
    path = reverse("smart-token")
    if request is not None:
        return request.build_absolute_uri(path)
    base = settings.FHIR_BASE_URL.rstrip("/")
    return base.rsplit("/fhir", 1)[0] + path


def smart_configuration(request: HttpRequest) -> JsonResponse:
    """/.well-known/smart-configuration (also under /fhir/), per SMART App Launch 2.x."""
    return JsonResponse(
        {
            "token_endpoint": token_url(request),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": scopes_supported(),
            "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"],
        }
    )


# --- the token endpoint's client authentication ------------------------------------------------


class AssertionRejected(Exception):
    pass


def _key_for(jwks: dict, header: dict):
    keys = [k for k in (jwks or {}).get("keys", []) if isinstance(k, dict)]
    kid = header.get("kid")
    if kid:
        keys = [k for k in keys if k.get("kid") == kid]
    keys = [k for k in keys if k.get("alg") in (None, header.get("alg"))]
    if not keys:
        raise AssertionRejected("no registered key matches the assertion's kid/alg")
    return jwt.PyJWK.from_dict(keys[0], algorithm=header.get("alg")).key


def verify_assertion(assertion: str, *, client_id: str, jwks: dict, audiences: list[str]) -> dict:
    """Check a SMART Backend Services client assertion; return its claims or raise."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise AssertionRejected(f"malformed assertion: {exc}") from None
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise AssertionRejected(f"alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
    try:
        claims = jwt.decode(
            assertion,
            _key_for(jwks, header),
            algorithms=ASSERTION_ALGORITHMS,
            audience=audiences,
            issuer=client_id,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            leeway=30,
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise AssertionRejected(f"assertion rejected: {exc}") from None
    if claims.get("sub") != client_id:
        raise AssertionRejected("sub must be the client_id")
    horizon = datetime.now(UTC) + timedelta(seconds=settings.SMART_ASSERTION_MAX_SECONDS + 30)
    if datetime.fromtimestamp(claims["exp"], UTC) > horizon:
        raise AssertionRejected("exp is more than five minutes ahead")
    return claims


class SmartValidator(OAuth2Validator):
    """DOT's validator, with clients authenticated only by a signed JWT assertion."""

    def authenticate_client(self, request, *args, **kwargs):
        if getattr(request, "client_assertion_type", None) != JWT_BEARER:
            return False  # no shared secrets: SMART Backend Services uses private_key_jwt
        from clinic.models import SystemClient, UsedClientAssertion

        assertion = getattr(request, "client_assertion", None) or ""
        try:
            client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return False
        if not client_id or (request.client_id and request.client_id != client_id):
            return False
        if self._load_application(client_id, request) is None:
            return False
        client = (
            SystemClient.objects.filter(application=request.client, is_active=True)
            .select_related("hospital")
            .first()
        )
        if client is None:
            return False
        audiences = [settings.SMART_TOKEN_URL] if settings.SMART_TOKEN_URL else []
        audiences.append(_absolute_token_uri(request))
        try:
            claims = verify_assertion(
                assertion, client_id=client_id, jwks=client.jwks, audiences=audiences
            )
        except AssertionRejected:
            return False
        try:
            with transaction.atomic():
                UsedClientAssertion.objects.filter(expires_at__lt=timezone.now()).delete()
                UsedClientAssertion.objects.create(
                    client=client,
                    jti=str(claims["jti"])[:255],
                    expires_at=datetime.fromtimestamp(claims["exp"], UTC) + timedelta(minutes=1),
                )
        except IntegrityError:
            return False  # a replayed assertion
        request.system_client = client
        return True

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        registered = _registered_scopes(client)
        return bool(scopes) and all(covers(registered, s) for s in scopes)

    def get_default_scopes(self, client_id, request, *args, **kwargs):
        return _registered_scopes(request.client)


def _absolute_token_uri(request) -> str:
    """The token endpoint as the client addressed it (DOT passes oauthlib a relative path).

    The Host was validated against ALLOWED_HOSTS by CommonMiddleware, and the scheme follows
    Django's `is_secure()` (SECURE_PROXY_SSL_HEADER behind a TLS-terminating proxy).
    """
    headers = request.headers or {}
    scheme = "https" if headers.get("X_DJANGO_OAUTH_TOOLKIT_SECURE") else "http"
    host = headers.get("HTTP_HOST") or headers.get("SERVER_NAME", "")
    return f"{scheme}://{host}{request.uri.split('?')[0]}"


def _registered_scopes(application) -> list[str]:
    client = getattr(application, "system_client", None)
    return client.allowed_scopes.split() if client and client.is_active else []


class SmartScopes(BaseScopes):
    """DOT's scope backend: the SMART scopes a client registered (checked by SmartValidator)."""

    def get_all_scopes(self):
        return {s: s for s in scopes_supported()}

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        return _registered_scopes(application) if application else list(self.get_all_scopes())

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return _registered_scopes(application) if application else []


# --- resolving a presented access token -------------------------------------------------------


def actor_for_access_token(token: str) -> Actor | None:
    """The hospital-system Actor for a valid, unexpired DOT access token; None otherwise."""
    import hashlib

    from oauth2_provider.models import get_access_token_model

    from clinic.access import actor_for_system_client

    access = (
        get_access_token_model()
        .objects.select_related("application__system_client")
        .filter(token_checksum=hashlib.sha256(token.encode()).hexdigest())
        .first()
    )
    if access is None or access.is_expired() or access.application is None:
        return None
    client = getattr(access.application, "system_client", None)
    if client is None or not client.is_active:
        return None
    return actor_for_system_client(client, access.scope.split())


def register_client(
    *, name: str, hospital, jwks: dict | str, scopes: str, client_id: str | None = None
):
    """Register a hospital system: a DOT Application (client credentials) and its SystemClient."""
    from oauth2_provider.models import get_application_model

    from clinic.models import SystemClient

    Application = get_application_model()
    fields = {
        "name": name,
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Application.GRANT_CLIENT_CREDENTIALS,
    }
    if client_id:
        fields["client_id"] = client_id
    with transaction.atomic():
        app = Application.objects.create(**fields)
        return SystemClient.objects.create(
            application=app,
            hospital=hospital,
            jwks=json.loads(jwks) if isinstance(jwks, str) else jwks,
            allowed_scopes=" ".join(scopes.split()),
        )
