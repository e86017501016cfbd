"""The permission matrix of issue 8: every role against every page, API endpoint and WebSocket,
for their own patient, someone else's, and guessed ids; every denial checked as well as every
grant.

Roles: the patient (own / other), the doctor of the patient's hub and of another hub, the
clinician of the referred hospital and of another, the hospital system with and without scope,
the bridge, the administrator and anonymous. Targets: 陈美玲 (Tianhe hub, referred to zsy),
李建国 (Futian hub, refused consent), a Foshan patient who consented, and an id nobody has.

URL patterns are discovered from config.urls, so a page added later is held to the generic rule
(anonymous denied; a patient id in the URL answers only those who may read that patient) even
before it gets an exact row here.
"""

from __future__ import annotations

import json
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.security.conftest import FHIR, build_world, register, token_for

SESSION_ROLES = {
    "patient_own": "chenmeiling",
    "patient_other": "lijianguo",
    "doctor_hub": "dr_tianhe",
    "doctor_other_hub": "dr_futian",
    "clinician_referred": "clin_zsy",
    "clinician_other": "clin_szph",
    "admin": "admin",
}
TOKEN_ROLES = ("system_scoped", "system_unscoped", "bridge")
ROLES = (*SESSION_ROLES, *TOKEN_ROLES, "anonymous")

# Who may read whom (independent of clinic.access: this is DESIGN.md's security model by hand).
SEES = {
    "patient_own": {"chen"},
    "patient_other": {"li"},
    "doctor_hub": {"chen"},
    "doctor_other_hub": {"li"},
    "clinician_referred": {"chen", "consenting"},
    "clinician_other": {"consenting"},
    "system_scoped": {"chen", "consenting"},
    "system_unscoped": set(),
    "bridge": set(),
    "admin": {"chen", "li", "consenting"},
    "anonymous": set(),
}
TARGETS = ("chen", "li", "consenting", "guessed")
LOGIN = "/login/"
PUBLIC = {
    "frontend:login",
    "fhir:metadata",
    "smart-config",
    "smart-token",
    "set_language",
    None,  # the unnamed root /.well-known/smart-configuration
}


@pytest.fixture
def matrix(demo, client):
    """The world, one Observation per patient, and an HTTP client per role."""
    from clinic.access import actor_for_user
    from clinic.models import Patient
    from devices.models import Bridge
    from fhir import store
    from tests.fhir import bundles

    world = build_world()
    admin = actor_for_user(world.users["admin"])
    observations = {}
    for n, name in enumerate(("chen", "li", "consenting")):
        patient = getattr(world, name)
        bundle = bundles.upload(patient.resident_id, 1, eui=f"00112233445566{n:02d}")
        response = store.process_bundle(admin, bundle)
        observations[name] = response["entry"][1]["response"]["location"].split("/")[1]
    bridge = Bridge(name="陈美玲家")
    bridge_token = bridge.issue_token()
    bridge.save()
    bridge.patients.set([world.chen])
    scoped = register(world.zsy, "system/*.rs system/Patient.c")
    unscoped = register(world.zsy, "system/Device.rs")
    headers = {
        "system_scoped": f"Bearer {token_for(client, scoped, 'system/*.rs system/Patient.c')}",
        "system_unscoped": f"Bearer {token_for(client, unscoped, 'system/Device.rs')}",
        "bridge": f"Bearer {bridge_token}",
    }
    ids = {name: getattr(world, name).pk for name in ("chen", "li", "consenting")}
    ids["guessed"] = (Patient.objects.order_by("-pk").values_list("pk", flat=True).first()) + 977
    return world, ids, observations, headers


def _client_for(role: str, world, headers):
    from django.test import Client

    c = Client(enforce_csrf_checks=False)
    if role in SESSION_ROLES:
        c.force_login(world.users[SESSION_ROLES[role]])
    if role in headers:
        c.defaults["HTTP_AUTHORIZATION"] = headers[role]
    return c


def _sees(role: str, target: str) -> bool:
    return target in SEES[role]


def _is_login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].split("?")[0].endswith(
        ("/login/", "/admin/login/")
    )


def _denied(response) -> bool:
    return _is_login_redirect(response) or response.status_code in (401, 403, 404, 405)


# --- exact rows: the endpoints that show one patient's data --------------------------------------


def _fhir_expect(role: str, target: str, *, needs_scope: bool = True) -> int:
    if role == "anonymous":
        return 401
    if role == "bridge":
        return 403
    if role == "system_unscoped" and needs_scope:
        return 403
    return 200 if _sees(role, target) else 404


def _page_expect(role: str, target: str) -> int | str:
    if role not in SESSION_ROLES:
        return "login"
    return 200 if _sees(role, target) else 404


def test_every_role_against_every_patient_endpoint(matrix):
    world, ids, observations, headers = matrix
    failures = []
    for role in ROLES:
        c = _client_for(role, world, headers)
        for target in TARGETS:
            pk = ids[target]
            obs = observations.get(target, "00000000-0000-0000-0000-000000000000")
            rows = [
                ("page timeline", "get", f"/patients/{pk}/", _page_expect(role, target)),
                ("page vitals", "get", f"/patients/{pk}/vitals.json", _page_expect(role, target)),
                ("fhir read", "get", f"/fhir/Patient/{pk}", _fhir_expect(role, target)),
                (
                    "fhir everything",
                    "get",
                    f"/fhir/Patient/{pk}/$everything",
                    _fhir_expect(role, target),
                ),
                ("fhir obs read", "get", f"/fhir/Observation/{obs}", _fhir_expect(role, target)),
                (
                    "fhir obs history",
                    "get",
                    f"/fhir/Observation/{obs}/_history",
                    _fhir_expect(role, target),
                ),
                (
                    "access log",
                    "get",
                    f"/access-log/patients/{pk}/",
                    "login"
                    if role not in SESSION_ROLES
                    else (
                        200
                        if role == "admin"
                        and target != "guessed"
                        or (role, target) in {("patient_own", "chen"), ("patient_other", "li")}
                        else 404
                    ),
                ),
            ]
            for label, method, path, expected in rows:
                response = getattr(c, method)(path)
                if expected == "login":
                    ok = _is_login_redirect(response)
                elif expected == 200 and label.startswith("page"):
                    # a patient's own timeline sends them to /me/: a grant, not a denial
                    ok = response.status_code == 200 or (
                        response.status_code == 302 and not _is_login_redirect(response)
                    )
                else:
                    ok = response.status_code == expected
                if not ok:
                    failures.append((role, target, label, expected, response.status_code))
    assert failures == [], "\n".join(map(str, failures))


def test_every_role_searching_sees_exactly_its_patients(matrix):
    """Searches never 404: they answer with exactly the readable patients' data, or refuse."""
    world, ids, observations, headers = matrix
    failures = []
    for role in ROLES:
        c = _client_for(role, world, headers)
        for target in TARGETS:
            pk = ids[target]
            for label, path, rtype in (
                ("patient by id", f"/fhir/Patient?_id={pk}", "Patient"),
                ("observations", f"/fhir/Observation?subject=Patient/{pk}", "Observation"),
                ("consents", f"/fhir/Consent?patient={pk}", "Consent"),
            ):
                response = c.get(path)
                expected = _fhir_expect(role, target)
                if expected in (401, 403):
                    if response.status_code != expected:
                        failures.append((role, target, label, expected, response.status_code))
                    continue
                if response.status_code != 200:
                    failures.append((role, target, label, 200, response.status_code))
                    continue
                found = [e for e in response.json()["entry"] if e["search"]["mode"] == "match"]
                visible = _sees(role, target) and not (rtype == "Consent" and target == "chen")
                if bool(found) != visible:
                    failures.append((role, target, label, "visible" if visible else "none", found))
    assert failures == [], "\n".join(map(str, failures))


def test_audit_trail_is_readable_by_the_patient_and_admin_only(matrix):
    world, ids, _obs, headers = matrix
    for role in ROLES:
        c = _client_for(role, world, headers)
        response = c.get(f"/fhir/AuditEvent?patient={ids['chen']}")
        if role == "anonymous":
            assert response.status_code == 401
        elif role in ("admin", "patient_own"):
            assert response.status_code == 200 and response.json()["total"] > 0, role
        elif role == "patient_other":  # sees only their own trail: nothing of 陈美玲's
            assert response.status_code == 200 and response.json()["total"] == 0
        else:
            assert response.status_code == 403, role
        own_page = c.get("/access-log/")
        if role == "anonymous" or role in TOKEN_ROLES:
            assert _is_login_redirect(own_page), role
        elif role in ("patient_own", "patient_other"):
            assert own_page.status_code == 200
        else:
            assert own_page.status_code == 403, role


def test_writes_are_refused_to_everyone_who_may_not_write(matrix):
    """A reading for 陈美玲 may be written by her bridge, her hub's doctor, the referred
    hospital (person or system with .c) and admin; nobody else, and nobody for a guessed id."""
    from tests.fhir import bundles

    world, ids, _obs, headers = matrix
    may_write_chen = {"doctor_hub", "clinician_referred", "admin", "bridge"}
    for role in ROLES:
        c = _client_for(role, world, headers)
        for minute, (target, resident_id) in enumerate(
            (("chen", world.chen.resident_id), ("li", world.li.resident_id))
        ):
            bundle = bundles.upload(resident_id, 1, start_minute=minute * 7 + ROLES.index(role))
            response = c.post("/fhir/", json.dumps(bundle), content_type=FHIR)
            allowed = target == "chen" and role in may_write_chen
            if role == "doctor_other_hub" and target == "li":
                allowed = True
            if role == "admin":
                allowed = True
            if role == "patient_other" or role.startswith("patient"):
                allowed = False
            assert (response.status_code == 200) == allowed, (role, target, response.content[:200])
            if not allowed:
                assert response.status_code in (401, 403), (role, target)
        guessed = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{ids['guessed']}"},
            "effectiveDateTime": "2026-11-01T08:00:00+08:00",
            "valueQuantity": {
                "value": 70,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
        response = c.post("/fhir/Observation", json.dumps(guessed), content_type=FHIR)
        assert response.status_code in (401, 403, 422), (role, response.status_code)


def test_registering_patients_through_the_index(matrix):
    world, _ids, _obs, headers = matrix
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:sg:mrn:zsy", "value": "ZSY-0001"}],
        "name": [{"family": "测", "given": ["试"]}],
        "gender": "female",
        "birthDate": "1970-01-01",
    }
    for role in ROLES:
        c = _client_for(role, world, headers)
        response = c.post("/fhir/Patient", json.dumps(body), content_type=FHIR)
        if role in ("admin", "clinician_referred", "clinician_other", "system_scoped"):
            assert response.status_code in (200, 201), (role, response.content)
        elif role == "anonymous":
            assert response.status_code == 401
        else:
            assert response.status_code == 403, (role, response.status_code)


# --- every discovered URL pattern -----------------------------------------------------------------


def _patterns(resolver=None, prefix="", namespace=None):
    resolver = resolver or get_resolver()
    for p in resolver.url_patterns:
        if isinstance(p, URLResolver):
            ns = p.namespace or namespace
            if ns == "admin":
                continue  # checked by test_admin_is_for_administrators_only
            yield from _patterns(p, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            name = f"{namespace}:{p.name}" if namespace and p.name else p.name
            yield name, prefix + str(p.pattern), p


PARAM_VALUES = {"rtype": "Patient", "version": "1"}


def test_every_discovered_url_denies_anonymous_and_guards_patient_ids(matrix):
    world, ids, _obs, headers = matrix
    checked = 0
    for name, route, _pattern in _patterns():
        if name in PUBLIC or name is None:
            continue
        params = set(re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", route))
        params = {a or b for a, b in params}
        patient_param = next((p for p in params if p in ("pk", "patient_id", "logical_id")), None)
        unknown = params - {"pk", "patient_id", "logical_id", *PARAM_VALUES}
        # unknown parameters (hub or hospital codes): anonymous must still be refused
        kwargs = {p: "x" if unknown else PARAM_VALUES.get(p) for p in params}
        for target in TARGETS if patient_param and not unknown else ("-",):
            if patient_param and not unknown:
                kwargs[patient_param] = (
                    ids[target] if patient_param != "logical_id" else str(ids[target])
                )
            try:
                path = reverse(name, kwargs=kwargs)
            except Exception:
                continue
            for role in ROLES:
                c = _client_for(role, world, headers)
                for method in ("get", "post"):
                    response = getattr(c, method)(path)
                    checked += 1
                    if role == "anonymous":
                        assert _denied(response), (name, path, method, response.status_code)
                    elif patient_param and not unknown and not _sees(role, target):
                        assert _denied(response), (role, name, path, method, response.status_code)
    assert checked > 200


def test_admin_is_for_administrators_only(matrix):
    world, ids, _obs, headers = matrix
    paths = ["/admin/", f"/admin/clinic/patient/{ids['chen']}/change/"]
    paths += [reverse(name) for name in _admin_changelists()]
    for role in ROLES:
        c = _client_for(role, world, headers)
        for path in paths:
            response = c.get(path)
            if role == "admin":
                assert response.status_code == 200, (path, response.status_code)
            else:
                assert _is_login_redirect(response), (role, path, response.status_code)


def _admin_changelists():
    from django.contrib import admin

    for model in admin.site._registry:
        yield f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"


# --- WebSockets ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_every_role_against_every_websocket_stream():
    """Hub streams: that hub's doctors and admin; hospital streams: its clinicians and admin."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth import get_user_model
    from django.test import Client

    from community.seed import seed_demo
    from config.asgi import application

    await sync_to_async(seed_demo)()
    User = get_user_model()
    allowed = {
        "/ws/hub/hub-tianhe/": {"dr_tianhe", "dr_tianhe2", "admin"},
        "/ws/hub/hub-futian/": {"dr_futian", "dr_futian2", "admin"},
        "/ws/hospital/zsy/": {"clin_zsy", "admin"},
        "/ws/hospital/szph/": {"clin_szph", "admin"},
        "/ws/hub/no-such-hub/": {""},
        "/ws/hospital/999/": {""},
    }
    for username in (*SESSION_ROLES.values(), "dr_tianhe2", None):
        cookie = b""
        if username:
            user = await sync_to_async(User.objects.get)(username=username)
            c = Client()
            await sync_to_async(c.force_login)(user)
            cookie = f"sessionid={c.cookies['sessionid'].value}".encode()
        for path, who in allowed.items():
            communicator = WebsocketCommunicator(
                application,
                path,
                headers=[
                    (b"origin", b"http://testserver"),
                    (b"cookie", cookie),
                    (b"host", b"testserver"),
                ],
            )
            connected, _ = await communicator.connect(timeout=5)
            if username in who:
                assert connected, (username, path)
                await communicator.send_json_to({"type": "subscribe", "last_seq": None})
                frame = await communicator.receive_json_from(timeout=5)
                assert frame["type"] == "subscribed", (username, path, frame)
            elif connected:
                frame = await communicator.receive_json_from(timeout=5)
                assert frame["type"] == "error" and frame["code"] == "forbidden", (username, path)
                closed = await communicator.receive_output(timeout=5)
                assert closed["type"] == "websocket.close" and closed["code"] == 4403
            await communicator.disconnect()
    from django.db import connections

    await sync_to_async(connections.close_all)()
