"""Writing the shared record: create, update, delete, and transaction/batch Bundles.

Contract for callers: pass an `Actor` (clinic.access); every write checks it with
`can_write_patient` and leaves an audit record. A create with a business identifier that already
exists returns the stored resource (200) instead of a copy: the database's unique constraint on
(type, system, value) decides, inside a savepoint, so parallel replays of the same upload still
store each reading once. Typed vitals rows are written in the same transaction; rule evaluation
is announced only after commit (`fhir.signals.vitals_stored`).
"""

from __future__ import annotations

import copy
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from clinic.access import Actor, can_write_patient
from clinic.lookup import find_patient
from clinic.models import Patient
from fhir import audit, bulk, params, vitals
from fhir.errors import (
    BadRequest,
    FhirError,
    Forbidden,
    Gone,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    TooLarge,
    Unprocessable,
)
from fhir.models import (
    Resource,
    ResourceIdentifier,
    SearchDate,
    SearchQuantity,
    SearchReference,
    SearchString,
    SearchToken,
    VitalSign,
)
from fhir.signals import vitals_stored
from fhir.validation import validate_resource

BRIDGE_WRITABLE = {"Observation", "Device"}


@dataclass
class WriteResult:
    resource: Resource
    created: bool
    status: str  # "201 Created" | "200 OK"
    vital_ids: list[int] = field(default_factory=list)


def _now():
    return timezone.now()


# --- patients -----------------------------------------------------------------------------------


def resolve_patient(reference: dict | None) -> Patient | None:
    """The Patient a reference points at: `Patient/{id}` or a logical identifier reference."""
    if not reference:
        return None
    target = params.reference_target(reference)
    if target:
        if target[0] != "Patient":
            raise Unprocessable(f"subject must reference a Patient, not {target[0]}")
        patient = Patient.objects.filter(pk=int(target[1])).first() if target[1].isdigit() else None
        if patient is None:
            raise Unprocessable(f"unknown patient {reference['reference']!r}")
        return patient
    identifier = reference.get("identifier") if isinstance(reference, dict) else None
    if identifier and identifier.get("value"):
        patient = find_patient(identifier["value"], identifier.get("system"))
        if patient is None:
            raise Unprocessable(
                f"unknown patient identifier {identifier.get('system', '')}|{identifier['value']}"
            )
        return patient
    raise Unprocessable("the patient reference has neither a reference nor an identifier")


def _patient_of(body: dict, cache: dict | None = None) -> Patient | None:
    """Resolve (and rewrite to `Patient/{id}`) the resource's patient; `cache` spans a Bundle."""
    path = params.PATIENT_PATHS.get(body["resourceType"])
    if not path:
        return None
    ref = body.get(path)
    if isinstance(ref, list):
        ref = ref[0] if ref else None
    if cache is None:
        patient = resolve_patient(ref)
    else:
        key = repr(ref)
        if key not in cache:
            cache[key] = resolve_patient(ref)
        patient = cache[key]
    if patient is not None:
        body[path] = {**ref, "reference": f"Patient/{patient.pk}"}
    return patient


def _check_write(actor: Actor, resource_type: str, patient: Patient | None) -> None:
    if actor.kind == "anonymous":
        raise Forbidden("authentication required")
    if actor.is_bridge and resource_type not in BRIDGE_WRITABLE:
        raise Forbidden(f"a bridge may write Observation and Device only, not {resource_type}")
    if patient is None:
        if actor.is_bridge or actor.role in (
            "admin",
            "community_doctor",
            "hospital_clinician",
            "hospital_system",
            "interface",
        ):
            return
        raise Forbidden("not allowed to write this resource")
    if not can_write_patient(actor, patient):
        if actor.is_bridge:
            raise Forbidden(
                f"this bridge serves another household: it may not write for patient {patient.pk}"
            )
        raise Forbidden(f"not allowed to write the record of patient {patient.pk}")


# --- index --------------------------------------------------------------------------------------


# Column orders of the rows `_index_rows` and `_vital_rows` build (see fhir.bulk).
RESOURCE_COLUMNS = (
    "resource_type",
    "logical_id",
    "version_id",
    "last_updated",
    "deleted",
    "body",
    "patient_id",
)
IDENTIFIER_COLUMNS = ("resource_id", "resource_type", "system", "value")
INDEX_COLUMNS = {
    SearchToken: ("resource_id", "resource_type", "param", "system", "code"),
    SearchDate: ("resource_id", "resource_type", "param", "start", "end", "patient_id"),
    SearchReference: ("resource_id", "resource_type", "param", "target_type", "target_id"),
    SearchQuantity: ("resource_id", "resource_type", "param", "value", "system", "code"),
    SearchString: ("resource_id", "resource_type", "param", "value"),
}
VITAL_COLUMNS = (
    "patient_id",
    "observation_id",
    "vital",
    "loinc",
    "mdc",
    "effective_at",
    "value",
    "unit",
    "data_absent",
    "device",
    "source",
    "status",
    "flags",
    "created_at",
)
_EFFECTIVE_AT = VITAL_COLUMNS.index("effective_at")


def _index_rows(resource: Resource, body: dict) -> tuple[list[tuple], dict[type, list[tuple]]]:
    """The identifier rows and the search-index rows of a saved resource, as column tuples."""
    rtype, rid = resource.resource_type, resource.pk
    tokens, dates, refs, quantities, strings, identifiers = [], [], [], [], [], set()
    for name, kind, paths in params.STORED_TYPES.get(rtype, []):
        for path in paths:
            for value in params.walk(body, path):
                if kind == params.TOKEN:
                    for system, code in params.tokens(value):
                        tokens.append((rid, rtype, name, system[:255], code[:255]))
                        if name == "identifier" and system:
                            identifiers.add((system[:255], code[:255]))
                elif kind == params.DATE:
                    span = params.date_range(value)
                    if span:
                        dates.append((rid, rtype, name, span[0], span[1], resource.patient_id))
                elif kind == params.REFERENCE:
                    target = params.reference_target(value)
                    if target:
                        refs.append((rid, rtype, name, target[0], target[1]))
                elif kind == params.QUANTITY:
                    if isinstance(value, dict) and value.get("value") is not None:
                        quantities.append(
                            (
                                rid,
                                rtype,
                                name,
                                float(value["value"]),
                                str(value.get("system") or "")[:255],
                                str(value.get("code") or "")[:64],
                            )
                        )
                elif kind == params.STRING and isinstance(value, str):
                    strings.append((rid, rtype, name, value.lower()[:255]))
    identifier_rows = [(rid, rtype, s, v) for s, v in identifiers]
    return identifier_rows, {
        SearchToken: tokens,
        SearchDate: dates,
        SearchReference: refs,
        SearchQuantity: quantities,
        SearchString: strings,
    }


def _write_search_rows(index_rows: dict[type, list[tuple]]) -> None:
    for model, rows in index_rows.items():
        bulk.insert(model, INDEX_COLUMNS[model], rows)


def _index(resource: Resource, body: dict) -> None:
    identifier_rows, index_rows = _index_rows(resource, body)
    # Identifier rows first: their unique constraint is what makes replays idempotent.
    bulk.insert(ResourceIdentifier, IDENTIFIER_COLUMNS, identifier_rows)
    _write_search_rows(index_rows)


def _unindex(resource: Resource) -> None:
    for model in (SearchToken, SearchDate, SearchReference, SearchQuantity, SearchString):
        model.objects.filter(resource=resource).delete()
    ResourceIdentifier.objects.filter(resource=resource).delete()
    VitalSign.objects.filter(observation=resource).delete()


def _store_vitals(resource: Resource, body: dict, source: str) -> tuple[list[int], list[datetime]]:
    """Insert the resource's vitals rows; (their ids, their effective times)."""
    rows = _vital_rows(resource, body, source)
    ids = bulk.insert_returning_ids(VitalSign, VITAL_COLUMNS, rows)
    return ids, [row[_EFFECTIVE_AT] for row in rows]


def _vital_rows(resource: Resource, body: dict, source: str) -> list[tuple]:
    """The typed vitals rows of a saved Observation (VITAL_COLUMNS); 422 when units or time are
    unusable."""
    if resource.resource_type != "Observation" or resource.patient_id is None:
        return []
    try:
        rows = vitals.extract(body)
    except vitals.UnitError as exc:
        raise Unprocessable(str(exc), expression="Observation.valueQuantity.code") from None
    if not rows:
        return []
    when = vitals.effective_time(body)
    if not when:
        raise Unprocessable(
            "a vital-signs Observation needs an effective time", expression="Observation.effective"
        )
    try:
        effective_at = vitals.parse_instant(when)
    except ValueError as exc:
        raise Unprocessable(str(exc), expression="Observation.effective") from None
    device = (body.get("device") or {}).get("reference", "")[:255]
    flags = [
        c.get("code")
        for i in body.get("interpretation", [])
        for c in i.get("coding", [])
        if c.get("code")
    ]
    status = body.get("status", "final")
    now = _now()
    return [
        (
            resource.patient_id,
            resource.pk,
            row.vital,
            row.loinc,
            row.mdc,
            effective_at,
            row.value,
            row.unit,
            row.data_absent,
            device,
            source,
            status,
            flags,
            now,
        )
        for row in rows
    ]


# --- single-resource operations -----------------------------------------------------------------


def parse_if_none_exist(query: str) -> tuple[str, str]:
    """Only `identifier=system|value` is supported for conditional create."""
    if not isinstance(query, str):
        raise BadRequest("ifNoneExist must be a string: identifier=system|value")
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier" or "|" not in pairs[0][1]:
        raise BadRequest("If-None-Exist supports only identifier=system|value")
    system, _, value = pairs[0][1].partition("|")
    return system, value


def _existing_by_identifier(resource_type: str, system: str, value: str) -> Resource | None:
    row = (
        ResourceIdentifier.objects.filter(resource_type=resource_type, system=system, value=value)
        .select_related("resource")
        .first()
    )
    return row.resource if row else None


def create(
    actor: Actor,
    body: dict,
    *,
    if_none_exist: str | None = None,
    source: str = "fhir",
    audit_it: bool = True,
) -> WriteResult:
    """Create a resource (conditionally when `if_none_exist` is given). Runs in a savepoint."""
    body = copy.deepcopy(validate_resource(body))
    rtype = body["resourceType"]
    if rtype not in params.STORED_TYPES:
        raise MethodNotAllowed(f"{rtype} is not stored here (read-only projection or unsupported)")
    patient = _patient_of(body)
    _check_write(actor, rtype, patient)
    if if_none_exist:
        existing = _existing_by_identifier(rtype, *parse_if_none_exist(if_none_exist))
        if existing is not None:
            return WriteResult(existing, False, "200 OK")
    logical_id = str(uuid.uuid4())
    now = _now()
    body["id"] = logical_id
    body["meta"] = {**body.get("meta", {}), "versionId": "1", "lastUpdated": now.isoformat()}
    try:
        with transaction.atomic():
            resource = Resource.objects.create(
                resource_type=rtype,
                logical_id=logical_id,
                last_updated=now,
                body=body,
                patient=patient,
            )
            _index(resource, body)
            vital_ids, vital_times = _store_vitals(resource, body, source)
    except IntegrityError:
        # Another write stored the same business identifier first: return that one.
        for system, value in {(s, c) for s, c in _identifiers(body)}:
            existing = _existing_by_identifier(rtype, system, value)
            if existing is not None:
                return WriteResult(existing, False, "200 OK")
        raise
    if audit_it:
        audit.record(
            actor,
            action="C",
            channel="fhir",
            patient_id=patient.pk if patient else None,
            entity=f"{rtype}/{logical_id}",
        )
    if vital_ids:
        _announce(patient.pk, vital_ids, vital_times)
    return WriteResult(resource, True, "201 Created", vital_ids)


def _identifiers(body: dict):
    for value in body.get("identifier", []) or []:
        if value.get("system") and value.get("value"):
            yield value["system"][:255], str(value["value"])[:255]


def _announce(patient_id: int, vital_ids: list[int], times: Iterable[datetime]) -> None:
    """Tell the rules (after commit) which rows are new, and the effective times they span."""
    times = list(times)
    span = (min(times), max(times))
    transaction.on_commit(
        lambda: vitals_stored.send(
            sender=Resource, patient_id=patient_id, vital_ids=vital_ids, span=span
        )
    )


def get_current(resource_type: str, logical_id: str) -> Resource:
    resource = Resource.objects.filter(resource_type=resource_type, logical_id=logical_id).first()
    if resource is None:
        raise NotFound(f"{resource_type}/{logical_id} is not known")
    if resource.deleted:
        raise Gone(f"{resource_type}/{logical_id} was deleted")
    return resource


def update(
    actor: Actor, resource_type: str, logical_id: str, body: dict, *, if_match: str | None = None
) -> WriteResult:
    body = copy.deepcopy(validate_resource(body, resource_type))
    if body.get("id") != logical_id:
        raise BadRequest(
            f"the body's id {body.get('id')!r} does not match the URL's {logical_id!r}"
        )
    if resource_type not in params.STORED_TYPES:
        raise MethodNotAllowed(f"{resource_type} is read-only here")
    patient = _patient_of(body)
    _check_write(actor, resource_type, patient)
    with transaction.atomic():
        resource = (
            Resource.objects.select_for_update()
            .filter(resource_type=resource_type, logical_id=logical_id)
            .first()
        )
        if resource is None:
            raise NotFound(
                f"{resource_type}/{logical_id} is not known (update-as-create is not supported)"
            )
        if resource.patient_id and not can_write_patient(actor, resource.patient_id):
            raise Forbidden(f"not allowed to write {resource_type}/{logical_id}")
        if if_match and if_match.strip('W/"') != str(resource.version_id):
            raise PreconditionFailed(f"version is {resource.version_id}, If-Match asked {if_match}")
        now = _now()
        resource.as_version().save()  # the version this update replaces goes to the history
        resource.version_id += 1
        body["meta"] = {
            **body.get("meta", {}),
            "versionId": str(resource.version_id),
            "lastUpdated": now.isoformat(),
        }
        resource.body, resource.last_updated, resource.deleted, resource.patient = (
            body,
            now,
            False,
            patient,
        )
        resource.save()
        _unindex(resource)
        try:
            with transaction.atomic():
                _index(resource, body)
        except IntegrityError:
            from fhir.errors import Conflict

            raise Conflict("another resource already has this identifier") from None
        vital_ids, vital_times = _store_vitals(resource, body, "fhir")
        audit.record(
            actor,
            action="U",
            channel="fhir",
            patient_id=patient.pk if patient else None,
            entity=f"{resource_type}/{logical_id}",
        )
        if vital_ids:
            _announce(patient.pk, vital_ids, vital_times)
    return WriteResult(resource, False, "200 OK", vital_ids)


def delete(actor: Actor, resource_type: str, logical_id: str) -> None:
    if actor.is_bridge:
        raise Forbidden("a bridge may not delete")
    with transaction.atomic():
        resource = (
            Resource.objects.select_for_update()
            .filter(resource_type=resource_type, logical_id=logical_id)
            .first()
        )
        if resource is None or resource.deleted:
            return  # FHIR: deleting what is not there succeeds
        if resource.patient_id and not can_write_patient(actor, resource.patient_id):
            raise Forbidden(f"not allowed to delete {resource_type}/{logical_id}")
        if resource.patient_id is None and actor.role != "admin":
            raise Forbidden("only an administrator deletes resources outside a patient's record")
        now = _now()
        resource.as_version().save()
        resource.version_id += 1
        resource.deleted, resource.last_updated = True, now
        resource.save()
        _unindex(resource)
        audit.record(
            actor,
            action="D",
            channel="fhir",
            patient_id=resource.patient_id,
            entity=f"{resource_type}/{logical_id}",
        )


# --- Bundles ------------------------------------------------------------------------------------


def _rewrite_refs(node, mapping: dict[str, str]):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in mapping:
                node[key] = mapping[value]
            else:
                _rewrite_refs(value, mapping)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, mapping)


def _with_refs_rewritten(node, mapping: dict[str, str]):
    """``node`` with every reference found in ``mapping`` replaced, without changing ``node``:
    only the dicts and lists on the way to a replaced reference are copied, the rest is shared
    (a deep copy of every reading cost more than validating it)."""
    if isinstance(node, dict):
        copied = None
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in mapping:
                new = mapping[value]
            else:
                new = _with_refs_rewritten(value, mapping)
            if new is not value:
                if copied is None:
                    copied = dict(node)
                copied[key] = new
        return node if copied is None else copied
    if isinstance(node, list):
        items = [_with_refs_rewritten(item, mapping) for item in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    return node


def _refs_in(node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str) and ref.startswith("urn:"):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _check_bundle(bundle: dict, kinds: tuple[str, ...]) -> list[dict]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base expects a Bundle")
    if bundle.get("type") not in kinds:
        raise BadRequest(f"Bundle.type must be one of {', '.join(kinds)}", expression="Bundle.type")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be a list")
    if len(entries) > settings.FHIR_MAX_BUNDLE_ENTRIES:
        raise TooLarge(
            f"the Bundle has {len(entries)} entries; the limit is {settings.FHIR_MAX_BUNDLE_ENTRIES}"
        )
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequest(f"entry {i} is not an object")
        full_url = entry.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise BadRequest(
                f"entry {i}: fullUrl must be a string", expression=f"Bundle.entry[{i}].fullUrl"
            )
        if full_url:
            if full_url in seen:
                raise BadRequest(
                    f"entry {i}: duplicate fullUrl {full_url}",
                    expression=f"Bundle.entry[{i}].fullUrl",
                )
            seen.add(full_url)
        request = entry.get("request")
        if not isinstance(request, dict) or request.get("method") not in (
            "POST",
            "PUT",
            "DELETE",
            "GET",
        ):
            raise BadRequest(
                f"entry {i}: request.method must be POST, PUT, DELETE or GET",
                expression=f"Bundle.entry[{i}].request",
            )
    return entries


def _process_entry(actor: Actor, entry: dict, source: str) -> tuple[WriteResult | None, dict]:
    request = entry["request"]
    method, url = request["method"], request.get("url", "")
    if method == "POST":
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise BadRequest("a POST entry needs a resource")
        result = create(
            actor, resource, if_none_exist=request.get("ifNoneExist"), source=source, audit_it=False
        )
        return result, {
            "status": result.status,
            "location": f"{result.resource.resource_type}/{result.resource.logical_id}/_history/{result.resource.version_id}",
            "etag": f'W/"{result.resource.version_id}"',
            "lastModified": result.resource.last_updated.isoformat(),
        }
    if method == "PUT":
        rtype, _, logical_id = url.partition("/")
        result = update(
            actor, rtype, logical_id, entry.get("resource"), if_match=request.get("ifMatch")
        )
        return result, {
            "status": result.status,
            "location": f"{rtype}/{logical_id}/_history/{result.resource.version_id}",
        }
    if method == "DELETE":
        rtype, _, logical_id = url.partition("/")
        delete(actor, rtype, logical_id)
        return None, {"status": "204 No Content"}
    raise MethodNotAllowed("GET inside a transaction or batch is not supported; search separately")


def _order(entries: list[dict]) -> list[int]:
    """DELETE, then POST in reference order (a referenced urn:uuid first), then PUT."""
    rank = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
    posts = [i for i, e in enumerate(entries) if e["request"]["method"] == "POST"]
    by_url = {entries[i].get("fullUrl"): i for i in posts if entries[i].get("fullUrl")}
    ordered: list[int] = []
    done: set[int] = set()

    def visit(i: int, trail: frozenset[int]) -> None:
        if i in done or i in trail:
            return
        for ref in _refs_in(entries[i].get("resource")):
            if ref in by_url:
                visit(by_url[ref], trail | {i})
        done.add(i)
        ordered.append(i)

    for i in posts:
        visit(i, frozenset())
    others = sorted(
        (i for i in range(len(entries)) if i not in done),
        key=lambda i: rank[entries[i]["request"]["method"]],
    )
    return (
        [i for i in others if rank[entries[i]["request"]["method"]] == 0]
        + ordered
        + [i for i in others if rank[entries[i]["request"]["method"]] > 0]
    )


def process_bundle(actor: Actor, bundle: dict, *, source: str = "fhir") -> dict:
    """Run a transaction (all or nothing) or batch (each entry alone) Bundle; return the response."""
    entries = _check_bundle(bundle, ("transaction", "batch"))
    if bundle["type"] == "transaction":
        return _transaction(actor, entries, source)
    return _batch(actor, entries, source)


def _transaction(actor: Actor, entries: list[dict], source: str) -> dict:
    if all(e["request"]["method"] == "POST" for e in entries):
        try:
            with transaction.atomic():
                bulk.allow_generic_plans()
                return _bulk_create_transaction(actor, entries, source)
        except _RaceLost:
            pass  # a concurrent upload stored some of the same readings: go entry by entry
    return _entrywise_transaction(actor, entries, source)


class _RaceLost(Exception):
    """A unique identifier was inserted by a concurrent transaction after our look-up."""


@dataclass
class _Planned:
    index: int
    body: dict
    rtype: str
    patient: Patient | None
    identifiers: set[tuple[str, str]]
    existing: Resource | None = None
    resource: Resource | None = None


def _channel(source: str) -> str:
    """The audit channel of a write: HL7 and DICOM feeds have their own, uploads are FHIR."""
    return source if source in ("hl7", "dicom") else "fhir"


def _audit_writes(actor: Actor, source: str, written: dict[int | None, list[str]]) -> None:
    """One audit record per patient whose record a transaction wrote, appended together."""
    audit.record_many(
        actor,
        [
            audit.Access(
                action="C",
                channel=_channel(source),
                patient_id=patient_id,
                entity=targets[0],
                detail=f"transaction wrote {len(targets)} resources",
            )
            for patient_id, targets in written.items()
        ],
    )


def _bulk_create_transaction(actor: Actor, entries: list[dict], source: str) -> dict:
    """All-create transactions (every bridge and HL7 upload) in a handful of statements.

    The same checks as `create`, but patients are resolved once per Bundle, existing identifiers
    are found with one query, and rows are inserted per table in bulk. Identifier rows go in
    last within a savepoint; a unique violation means a concurrent upload won a race, and the
    caller redoes the Bundle entry by entry (which answers 200 for what the other stored).
    """
    patients: dict = {}
    checked: set[tuple[str, int | None]] = set()
    planned: list[_Planned] = []
    for i, entry in enumerate(entries):
        try:
            resource = entry.get("resource")
            if not isinstance(resource, dict):
                raise BadRequest("a POST entry needs a resource")
            # A shallow copy: id and meta are set on it, references are rewritten copy-on-write
            # (`_with_refs_rewritten`), and the request's own dicts are never changed, so a
            # Bundle redone entry by entry after a lost race starts from what was sent.
            body = dict(validate_resource(resource))
            rtype = body["resourceType"]
            if rtype not in params.STORED_TYPES:
                raise MethodNotAllowed(
                    f"{rtype} is not stored here (read-only projection or unsupported)"
                )
            patient = _patient_of(body, patients)
            key = (rtype, patient.pk if patient else None)
            if key not in checked:
                _check_write(actor, rtype, patient)
                checked.add(key)
            conditional = entry["request"].get("ifNoneExist")
            identifiers = {parse_if_none_exist(conditional)} if conditional else set()
        except FhirError as exc:
            exc.diagnostics = f"entry {i}: {exc.diagnostics}"
            raise
        planned.append(_Planned(i, body, rtype, patient, identifiers | set(_identifiers(body))))

    # One look-up for every conditional identifier in the Bundle.
    wanted = defaultdict(set)
    for p in planned:
        if entries[p.index]["request"].get("ifNoneExist"):
            for system, value in p.identifiers:
                wanted[(p.rtype, system)].add(value)
    found: dict[tuple[str, str, str], Resource] = {}
    for (rtype, system), values in wanted.items():
        rows = ResourceIdentifier.objects.filter(
            resource_type=rtype, system=system, value__in=values
        ).select_related("resource")
        for row in rows:
            found[(rtype, system, row.value)] = row.resource
    mapping: dict[str, str] = {}
    seen_in_bundle: dict[tuple[str, str, str], _Planned] = {}
    now = _now()
    for p in planned:
        if entries[p.index]["request"].get("ifNoneExist"):
            for system, value in p.identifiers:
                key = (p.rtype, system, value)
                if key in found:
                    p.existing = found[key]
                elif key in seen_in_bundle:
                    p.existing = seen_in_bundle[key].resource
        if p.existing is None:
            logical_id = str(uuid.uuid4())
            p.body["id"] = logical_id
            p.body["meta"] = {
                **p.body.get("meta", {}),
                "versionId": "1",
                "lastUpdated": now.isoformat(),
            }
            p.resource = Resource(
                resource_type=p.rtype,
                logical_id=logical_id,
                last_updated=now,
                body=p.body,
                patient=p.patient,
            )
            for system, value in p.identifiers:
                seen_in_bundle.setdefault((p.rtype, system, value), p)
        target = p.existing or p.resource
        if entries[p.index].get("fullUrl"):
            mapping[entries[p.index]["fullUrl"]] = f"{target.resource_type}/{target.logical_id}"

    new = [p for p in planned if p.existing is None]
    for p in new:
        p.body = p.resource.body = _with_refs_rewritten(p.body, mapping)
    ids = bulk.insert_returning_ids(
        Resource,
        RESOURCE_COLUMNS,
        [
            (p.rtype, p.resource.logical_id, 1, now, False, p.body, p.resource.patient_id)
            for p in new
        ],
    )
    for p, pk in zip(new, ids, strict=True):
        p.resource.pk = p.resource.id = pk
        p.resource._state.adding = False
    identifier_rows, index_rows, vital_rows = [], defaultdict(list), []
    for p in new:
        try:
            identifiers, rows = _index_rows(p.resource, p.body)
            vital_rows += _vital_rows(p.resource, p.body, source)
        except FhirError as exc:
            exc.diagnostics = f"entry {p.index}: {exc.diagnostics}"
            raise
        identifier_rows += identifiers
        for model, items in rows.items():
            index_rows[model] += items
    try:
        with transaction.atomic():
            bulk.insert(ResourceIdentifier, IDENTIFIER_COLUMNS, identifier_rows)
    except IntegrityError:
        raise _RaceLost from None
    _write_search_rows(index_rows)
    vital_ids = bulk.insert_returning_ids(VitalSign, VITAL_COLUMNS, vital_rows)

    by_patient: dict[int | None, list[str]] = defaultdict(list)
    for p in new:
        by_patient[p.patient.pk if p.patient else None].append(f"{p.rtype}/{p.resource.logical_id}")
    _audit_writes(actor, source, by_patient)
    vitals_by_patient: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for row, vital_id in zip(vital_rows, vital_ids, strict=True):
        vitals_by_patient[row[0]].append((vital_id, row[_EFFECTIVE_AT]))
    for patient_id, stored in vitals_by_patient.items():
        _announce(patient_id, [i for i, _ in stored], [at for _, at in stored])

    responses = []
    for p in planned:
        r = p.existing or p.resource
        responses.append(
            {
                "response": {
                    "status": "200 OK" if p.existing else "201 Created",
                    "location": f"{r.resource_type}/{r.logical_id}/_history/{r.version_id}",
                    "etag": f'W/"{r.version_id}"',
                    "lastModified": r.last_updated.isoformat(),
                }
            }
        )
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}


def _entrywise_transaction(actor: Actor, entries: list[dict], source: str) -> dict:
    entries = copy.deepcopy(entries)
    responses: list[dict | None] = [None] * len(entries)
    mapping: dict[str, str] = {}
    written: dict[int | None, list[str]] = defaultdict(list)
    with transaction.atomic():
        for i in _order(entries):
            entry = entries[i]
            if isinstance(entry.get("resource"), dict):
                _rewrite_refs(entry["resource"], mapping)
            try:
                result, response = _process_entry(actor, entry, source)
            except FhirError as exc:
                exc.diagnostics = f"entry {i}: {exc.diagnostics}"
                raise
            responses[i] = {"response": response}
            if result is not None:
                target = f"{result.resource.resource_type}/{result.resource.logical_id}"
                if entry.get("fullUrl"):
                    mapping[entry["fullUrl"]] = target
                if result.created:
                    written[result.resource.patient_id].append(target)
        _audit_writes(actor, source, written)
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}


def _batch(actor: Actor, entries: list[dict], source: str) -> dict:
    responses = []
    for entry in entries:
        try:
            with transaction.atomic():
                result, response = _process_entry(actor, copy.deepcopy(entry), source)
                if result is not None and result.created:
                    audit.record(
                        actor,
                        action="C",
                        channel="fhir",
                        patient_id=result.resource.patient_id,
                        entity=f"{result.resource.resource_type}/{result.resource.logical_id}",
                    )
            responses.append({"response": response})
        except FhirError as exc:
            responses.append({"response": {"status": f"{exc.status}", "outcome": exc.outcome()}})
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}
