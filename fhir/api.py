"""The FHIR REST API at /fhir/ (application/fhir+json). Thin: authenticate, parse, call
`fhir.store` or `fhir.search`, render. Every error leaves as an OperationOutcome."""

from __future__ import annotations

import json
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from fhir import search, smart, store
from fhir.auth import authenticate, throttle
from fhir.capability import capability_statement
from fhir.errors import (
    BadRequest,
    FhirError,
    Forbidden,
    MethodNotAllowed,
    NotAuthenticated,
    TooLarge,
)

FHIR_JSON = "application/fhir+json; charset=utf-8"


def respond(body: dict | None, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False) if body is not None else b"",
        status=status,
        content_type=FHIR_JSON,
    )
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _csrf_failed(request: HttpRequest) -> bool:
    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None


def endpoint(view):
    """Authenticate, enforce CSRF for session writes, and turn FhirErrors into OperationOutcomes."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        try:
            actor, bridge = authenticate(request)
            throttle(actor)
            smart.require_for_request(actor, view.__name__, request, kwargs)
            if (
                request.method not in ("GET", "HEAD", "OPTIONS")
                and bridge is None
                and actor.kind == "user"
                and _csrf_failed(request)
            ):
                raise Forbidden(
                    "CSRF check failed: send the X-CSRFToken header with session requests"
                )
            request.fhir_bridge = bridge
            return view(request, actor, *args, **kwargs)
        except FhirError as exc:
            headers = (
                {"WWW-Authenticate": 'Bearer realm="fhir"'}
                if isinstance(exc, NotAuthenticated)
                else getattr(exc, "headers", {})
            )
            return respond(exc.outcome(), exc.status, headers)
        except RequestDataTooBig:
            exc = TooLarge(f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes")
            return respond(exc.outcome(), exc.status)

    return wrapper


def _json_body(request: HttpRequest) -> dict:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise
    content_type = request.content_type or ""
    if content_type not in ("application/fhir+json", "application/json", "application/json+fhir"):
        raise BadRequest(f"unsupported content type {content_type!r}; send application/fhir+json")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _require_user(actor) -> None:
    if actor.kind == "anonymous":
        raise NotAuthenticated("log in or send a bearer token")


def _strict(request: HttpRequest) -> bool:
    return "handling=strict" in request.headers.get("Prefer", "").replace(" ", "")


def _base() -> str:
    return settings.FHIR_BASE_URL.rstrip("/")


def _written(result) -> HttpResponse:
    r = result.resource
    return respond(
        r.body,
        201 if result.created else 200,
        {
            "Location": f"{_base()}/{r.resource_type}/{r.logical_id}/_history/{r.version_id}",
            "ETag": f'W/"{r.version_id}"',
            "Last-Modified": r.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        },
    )


@endpoint
def base(request: HttpRequest, actor):
    if request.method != "POST":
        raise MethodNotAllowed("the base accepts POST of a transaction or batch Bundle")
    _require_user(actor)
    bundle = _json_body(request)
    smart.require_for_bundle(actor, bundle)
    response = store.process_bundle(actor, bundle, source="ble" if request.fhir_bridge else "fhir")
    if request.fhir_bridge is not None:
        from devices.health import record_upload

        record_upload(request.fhir_bridge, bundle)
    return respond(response)


@endpoint
def metadata(request: HttpRequest, actor):
    return respond(capability_statement())


def _searchset(
    request: HttpRequest,
    rtype: str,
    result: search.SearchResult,
    query: list[tuple[str, str]],
    path: str,
) -> dict:
    summary = dict(query).get("_summary")
    bundle: dict = {"resourceType": "Bundle", "type": "searchset", "total": result.total}
    if summary == "count":
        return bundle
    elements = [e for e in dict(query).get("_elements", "").split(",") if e]
    plain = [(k, v) for k, v in query if k not in ("_offset",)]

    def link(relation: str, offset: int) -> dict:
        return {
            "relation": relation,
            "url": f"{_base()}/{path}?{urlencode(plain + [('_offset', str(offset))])}",
        }

    links = [link("self", result.offset)]
    if result.count and result.offset + result.count < result.total:
        links.append(link("next", result.offset + result.count))
    if result.offset > 0:
        links.append(link("previous", max(result.offset - result.count, 0)))
    bundle["link"] = links
    entries = []
    for body in result.resources:
        if elements:
            # mandatory elements stay, so a subsetted resource still validates
            keep = {"resourceType", "id", "meta", "status", "code", "intent", *elements}
            body = {k: v for k, v in body.items() if k in keep}
            body["meta"] = {
                **body.get("meta", {}),
                "tag": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                        "code": "SUBSETTED",
                    }
                ],
            }
        entries.append(
            {
                "fullUrl": f"{_base()}/{body['resourceType']}/{body['id']}",
                "resource": body,
                "search": {"mode": "match"},
            }
        )
    for body in result.included:
        entries.append(
            {
                "fullUrl": f"{_base()}/{body['resourceType']}/{body['id']}",
                "resource": body,
                "search": {"mode": "include"},
            }
        )
    if result.ignored:
        entries.append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-supported",
                            "diagnostics": f"ignored unknown search parameters: {', '.join(result.ignored)}",
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            }
        )
    bundle["entry"] = entries
    return bundle


@endpoint
def type_level(request: HttpRequest, actor, rtype: str):
    _require_user(actor)
    if request.method == "GET":
        query = [(k, v) for k in request.GET for v in request.GET.getlist(k)]
        result = search.search(actor, rtype, query, strict=_strict(request))
        return respond(_searchset(request, rtype, result, query, rtype))
    if request.method == "POST" and rtype == "Patient":
        return _register_patient(actor, _json_body(request))
    if request.method == "POST":
        result = store.create(
            actor, _json_body(request), if_none_exist=request.headers.get("If-None-Exist")
        )
        if result.resource.resource_type != rtype:
            raise BadRequest(f"resourceType must be {rtype}")
        return _written(result)
    raise MethodNotAllowed(f"{request.method} is not supported on /{rtype}")


def _register_patient(actor, body: dict) -> HttpResponse:
    """POST /Patient goes through the master patient index (docs/security.md): 201 with the
    new id, or 200 with the id of the patient it matched. The body is the Patient only when the
    caller may read it; otherwise an OperationOutcome names the id and why it is not shown."""
    from django.db import transaction

    from clinic import mpi
    from clinic.access import can_read_patient
    from fhir import audit, projections
    from fhir.errors import Unprocessable
    from fhir.validation import validate_resource

    try:
        mpi.check_register(actor)
    except PermissionDenied as exc:
        raise Forbidden(str(exc)) from None
    body = validate_resource(body, "Patient")
    source = mpi.source_hospital(actor)
    try:
        with transaction.atomic():
            registration = mpi.do_register(
                mpi.from_fhir(body, assigner=source.code if source else ""), source=source
            )
            patient = registration.patient
            audit.record(
                actor,
                action="C" if registration.created else "U",
                channel="fhir",
                patient_id=patient.pk,
                entity=f"Patient/{patient.pk}",
                detail=f"patient index: {registration.outcome}"
                + (f", review {registration.review.pk}" if registration.review else ""),
            )
    except mpi.MpiError as exc:
        raise Unprocessable(str(exc)) from None
    if can_read_patient(actor, patient):
        shown = projections.patient(patient)
    else:
        shown = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{'registered' if registration.created else 'matched'} "
                    f"Patient/{patient.pk} ({registration.outcome}); reading the record needs "
                    "the patient's consent, a referral to your hospital or break-the-glass",
                }
            ],
        }
    return respond(
        shown,
        201 if registration.created else 200,
        {"Location": f"{_base()}/Patient/{patient.pk}"},
    )


@endpoint
def type_search(request: HttpRequest, actor, rtype: str):
    _require_user(actor)
    if request.method != "POST":
        raise MethodNotAllowed("_search takes POST with form parameters")
    query = [(k, v) for k in request.POST for v in request.POST.getlist(k)]
    result = search.search(actor, rtype, query, strict=_strict(request))
    return respond(_searchset(request, rtype, result, query, rtype))


@endpoint
def instance(request: HttpRequest, actor, rtype: str, logical_id: str):
    _require_user(actor)
    if request.method == "GET":
        body = search.read(actor, rtype, logical_id)
        version = body.get("meta", {}).get("versionId", "1")
        return respond(body, headers={"ETag": f'W/"{version}"'})
    if request.method == "PUT":
        result = store.update(
            actor, rtype, logical_id, _json_body(request), if_match=request.headers.get("If-Match")
        )
        return _written(result)
    if request.method == "DELETE":
        store.delete(actor, rtype, logical_id)
        return respond(None, 204)
    raise MethodNotAllowed(f"{request.method} is not supported on a resource")


@endpoint
def instance_history(request: HttpRequest, actor, rtype: str, logical_id: str):
    _require_user(actor)
    versions = search.history(actor, rtype, logical_id)
    entries = [
        {
            "fullUrl": f"{_base()}/{rtype}/{logical_id}",
            **({} if v.deleted else {"resource": body}),
            "request": {
                "method": v.method,
                "url": f"{rtype}/{logical_id}" if v.method != "POST" else rtype,
            },
            "response": {
                "status": "410 Gone" if v.deleted else "200 OK",
                "lastModified": v.last_updated.isoformat(),
                "etag": f'W/"{v.version_id}"',
            },
        }
        for v, body in versions
    ]
    return respond(
        {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    )


@endpoint
def instance_version(request: HttpRequest, actor, rtype: str, logical_id: str, version: str):
    _require_user(actor)
    return respond(
        search.vread(actor, rtype, logical_id, version), headers={"ETag": f'W/"{version}"'}
    )


@endpoint
def patient_everything(request: HttpRequest, actor, logical_id: str):
    _require_user(actor)
    query = [(k, v) for k in request.GET for v in request.GET.getlist(k)]
    result = search.everything(actor, logical_id, query)
    return respond(
        _searchset(request, "Patient", result, query, f"Patient/{logical_id}/$everything")
    )
