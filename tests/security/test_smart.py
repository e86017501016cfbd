"""SMART Backend Services: discovery, JWT client assertions at /auth/token, scopes on /fhir/,
and a real FHIR client (fhirpy) over a live server seeing exactly what its hospital may."""

from __future__ import annotations

import json
from datetime import date

import jwt
import pytest
import requests

from tests.security.conftest import FHIR, make_key, register, request_token, token_for


def _ids(bundle: dict) -> set[int]:
    return {
        int(e["resource"]["id"])
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == "Patient"
    }


def test_smart_configuration_is_published_at_both_well_known_places(client, db):
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        body = client.get(path).json()
        assert body["token_endpoint"] == "http://testserver/auth/token"
        assert body["grant_types_supported"] == ["client_credentials"]
        assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert {"RS384", "ES384"} == set(body["token_endpoint_auth_signing_alg_values_supported"])
        assert "system/Patient.rs" in body["scopes_supported"]
        assert "client-confidential-asymmetric" in body["capabilities"]
        assert "permission-v2" in body["capabilities"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_signed_assertion_gets_a_token_with_the_granted_scopes(client, world, alg):
    key = register(world.zsy, "system/Patient.rs system/Observation.cruds", alg=alg)
    response = request_token(client, key, "system/Patient.rs system/Observation.rs")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert set(body["scope"].split()) == {"system/Patient.rs", "system/Observation.rs"}
    assert 0 < body["expires_in"] <= 300
    assert "refresh_token" not in body


def test_token_is_stored_only_as_a_checksum(client, world):
    from oauth2_provider.models import AccessToken

    key = register(world.zsy, "system/Patient.rs")
    token = token_for(client, key, "system/Patient.rs")
    stored = AccessToken.objects.get()
    assert stored.token == "" and token not in stored.token_checksum


def test_bad_assertions_are_refused(client, world):
    key = register(world.zsy, "system/*.rs")
    aud = "http://testserver/auth/token"
    other_private, _ = make_key()
    forged = jwt.encode(
        {"iss": key.client_id, "sub": key.client_id, "aud": aud, "exp": 9999999999, "jti": "x"},
        other_private,
        algorithm="RS384",
        headers={"kid": key.kid},
    )
    hs = jwt.encode(
        {"iss": key.client_id, "sub": key.client_id, "aud": aud, "exp": 9999999999, "jti": "y"},
        "a-shared-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    cases = {
        "signed by another key": forged,
        "symmetric algorithm": hs,
        "wrong audience": key.assertion("http://evil.example/token"),
        "expired": key.assertion(aud, exp_in=-120),
        "too far ahead": key.assertion(aud, exp_in=3600),
        "sub is not the client": key.assertion(aud, sub="someone-else"),
    }
    for name, assertion in cases.items():
        response = request_token(client, key, "system/*.rs", assertion=assertion)
        assert response.status_code in (400, 401), name
        assert response.json()["error"] == "invalid_client", name


def test_a_replayed_assertion_is_refused(client, world):
    key = register(world.zsy, "system/*.rs")
    assertion = key.assertion("http://testserver/auth/token", jti="once")
    assert request_token(client, key, "system/*.rs", assertion=assertion).status_code == 200
    again = request_token(client, key, "system/*.rs", assertion=assertion)
    assert again.json()["error"] == "invalid_client"


def test_a_client_secret_is_not_accepted(client, world):
    key = register(world.zsy, "system/*.rs")
    response = client.post(
        "/auth/token",
        {
            "grant_type": "client_credentials",
            "client_id": key.client_id,
            "client_secret": "",
            "scope": "system/*.rs",
        },
    )
    assert response.json()["error"] == "invalid_client"


def test_scopes_beyond_the_registration_are_refused(client, world):
    key = register(world.zsy, "system/Patient.rs")
    for scope in ("system/Observation.rs", "system/Patient.cruds", "system/*.rs", "user/*.rs"):
        response = request_token(client, key, scope)
        assert response.json().get("error") == "invalid_scope", scope


def test_an_inactive_client_gets_no_token_and_its_tokens_stop_working(client, world):
    from clinic.models import SystemClient

    key = register(world.zsy, "system/*.rs")
    token = token_for(client, key, "system/*.rs")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/fhir/Patient", **auth).status_code == 200
    SystemClient.objects.update(is_active=False)
    assert client.get("/fhir/Patient", **auth).status_code == 401
    assert request_token(client, key, "system/*.rs").json()["error"] == "invalid_client"


def test_an_expired_token_is_401(client, world):
    from django.utils import timezone
    from oauth2_provider.models import AccessToken

    key = register(world.zsy, "system/*.rs")
    token = token_for(client, key, "system/*.rs")
    AccessToken.objects.update(expires=timezone.now())
    response = client.get("/fhir/Patient", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_scopes_are_enforced_per_interaction(client, world):
    """read/vread/history → r, search → s, create → c, update → u, delete → d."""
    from tests.fhir import bundles

    full = register(world.zsy, "system/*.cruds")
    admin_token = token_for(client, full, "system/*.cruds")
    admin = {"HTTP_AUTHORIZATION": f"Bearer {admin_token}"}
    # zsy sees 陈美玲 by referral: it may write her Observations with .c
    device = bundles.upload(world.chen.resident_id, 1)
    response = client.post("/fhir/", json.dumps(device), content_type=FHIR, **admin)
    assert response.status_code == 200, response.content
    obs_id = response.json()["entry"][1]["response"]["location"].split("/")[1]

    cases = [
        ("system/Observation.s", "get", f"/fhir/Observation?subject=Patient/{world.chen.pk}", 200),
        ("system/Observation.s", "get", f"/fhir/Observation/{obs_id}", 403),
        ("system/Observation.r", "get", f"/fhir/Observation/{obs_id}", 200),
        ("system/Observation.r", "get", f"/fhir/Observation/{obs_id}/_history", 200),
        ("system/Observation.r", "get", f"/fhir/Observation/{obs_id}/_history/1", 200),
        ("system/Observation.r", "get", "/fhir/Observation", 403),
        ("system/Observation.r", "delete", f"/fhir/Observation/{obs_id}", 403),
        ("system/Patient.rs", "get", f"/fhir/Patient/{world.chen.pk}", 200),
        ("system/Patient.rs", "get", f"/fhir/Observation/{obs_id}", 403),
        ("system/Patient.rs", "get", f"/fhir/Patient/{world.chen.pk}/$everything", 403),
        ("system/*.rs", "get", f"/fhir/Patient/{world.chen.pk}/$everything", 200),
        ("system/Patient.rs", "get", "/fhir/Patient?_revinclude=Observation:patient", 403),
        ("system/Patient.rs", "post", "/fhir/Patient/_search", 200),
        ("system/Observation.r", "post", "/fhir/Observation/_search", 403),
    ]
    for scope, method, path, expected in cases:
        token = token_for(client, full, scope)
        response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == expected, (scope, method, path, response.content[:300])

    read_only = token_for(client, full, "system/Observation.rs")
    bundle = bundles.upload(world.chen.resident_id, 1, start_minute=30)
    response = client.post(
        "/fhir/", json.dumps(bundle), content_type=FHIR, HTTP_AUTHORIZATION=f"Bearer {read_only}"
    )
    assert response.status_code == 403
    assert "system/Device.c" in response.json()["issue"][0]["diagnostics"] or (
        "system/Observation.c" in response.json()["issue"][0]["diagnostics"]
    )
    deleter = token_for(client, full, "system/Observation.d")
    response = client.delete(f"/fhir/Observation/{obs_id}", HTTP_AUTHORIZATION=f"Bearer {deleter}")
    assert response.status_code == 204


def test_system_sees_exactly_what_a_clinician_of_its_hospital_sees(client, world):
    from clinic.access import actor_for_user, readable_patients

    for hospital, clinician in ((world.zsy, "clin_zsy"), (world.szph, "clin_szph")):
        key = register(hospital, "system/Patient.rs")
        token = token_for(client, key, "system/Patient.rs")
        response = client.get("/fhir/Patient?_count=500", HTTP_AUTHORIZATION=f"Bearer {token}")
        expected = set(
            readable_patients(actor_for_user(world.users[clinician])).values_list("pk", flat=True)
        )
        assert _ids(response.json()) == expected


# --- a real FHIR client over a live server -----------------------------------------------------


@pytest.mark.timeout(120)
def test_fhirpy_client_sees_exactly_consented_and_referred_patients(live_server, world):
    from fhirpy import SyncFHIRClient

    from clinic.access import actor_for_user
    from clinic.consent import do_record_consent

    key = register(world.zsy, "system/Patient.rs system/Consent.rs system/Observation.rs")
    token_url = f"{live_server.url}/auth/token"
    response = requests.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "system/Patient.rs system/Consent.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": key.assertion(token_url),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    fhir = SyncFHIRClient(f"{live_server.url}/fhir", authorization=f"Bearer {token}")

    seen = {int(p.id) for p in fhir.resources("Patient").limit(100).fetch()}
    assert seen == {world.chen.pk, world.consenting.pk}  # referred + consented; not 李建国

    consents = fhir.resources("Consent").search(patient=world.consenting.pk).fetch()
    assert [c["status"] for c in consents] == ["active"]
    assert consents[0]["scope"]["coding"][0]["code"] == "patient-privacy"

    # The patient revokes: the very next request no longer shows them.
    do_record_consent(
        actor_for_user(world.users["admin"]), world.consenting, "revoked", valid_from=date.today()
    )
    seen = {int(p.id) for p in fhir.resources("Patient").limit(100).fetch()}
    assert seen == {world.chen.pk}
    from fhirpy.base.exceptions import ResourceNotFound

    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", world.consenting.pk).to_resource()
