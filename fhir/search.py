"""Reading the shared record: read, vread, history, search, $everything. Every patient-data
read goes through `clinic.access.readable_patients` and leaves an audit record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from clinic import roles
from clinic.access import Actor, readable_patients
from clinic.lookup import RESIDENT_ID_SYSTEM, SOCIAL_SECURITY_SYSTEM
from clinic.models import Hospital, Patient, Practitioner
from community.models import Community
from fhir import audit, params, projections
from fhir.errors import BadRequest, Forbidden, Gone, NotFound
from fhir.models import (
    AuditEvent,
    Resource,
    ResourceVersion,
    SearchDate,
    SearchQuantity,
    SearchReference,
    SearchString,
    SearchToken,
)

DEFAULT_COUNT, MAX_COUNT = 20, 500
PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")
SEARCHABLE_TYPES = sorted({*params.STORED_TYPES, *projections.PROJECTED_TYPES, "AuditEvent"})
PROJECTED_PARAMS = {
    "Patient": ["_id", "identifier", "name", "family", "given", "birthdate", "gender", "phone"],
    "Practitioner": ["_id", "name", "identifier"],
    "Organization": ["_id", "name", "identifier"],
    "Location": ["_id", "name", "identifier"],
    "AuditEvent": ["_id", "patient", "date", "agent", "action"],
    "Consent": ["_id", "patient", "status"],
}


@dataclass
class SearchResult:
    resources: list[dict]
    total: int
    offset: int
    count: int
    included: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _deny_bridge(actor: Actor) -> None:
    if actor.is_bridge:
        raise Forbidden("a bridge may write readings but never read the record")
    if actor.kind == "anonymous":
        raise Forbidden("authentication required")


def _split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] == "-"):
        return value[:2], value[2:]
    return "eq", value


def _date_q(field_start: str, field_end: str, raw: str) -> Q:
    prefix, text = _split_prefix(raw)
    try:
        start, end = params.parse_date_param(text)
    except ValueError:
        raise BadRequest(f"invalid date {raw!r}") from None
    return {
        "eq": Q(**{f"{field_start}__gte": start, f"{field_end}__lte": end}),
        "ne": ~Q(**{f"{field_start}__gte": start, f"{field_end}__lte": end}),
        "lt": Q(**{f"{field_start}__lt": start}),
        "le": Q(**{f"{field_start}__lt": end}),
        "gt": Q(**{f"{field_end}__gt": end}),
        "ge": Q(**{f"{field_end}__gt": start}),
        "sa": Q(**{f"{field_start}__gte": end}),
        "eb": Q(**{f"{field_end}__lte": start}),
        "ap": Q(**{f"{field_start}__lt": end, f"{field_end}__gt": start}),
    }[prefix]


def _param_filter(rtype: str, name: str, kind: str, raw: str) -> Q:
    """One parameter value (comma = OR) as a filter on Resource ids."""
    ors = Q()
    for value in raw.split(","):
        if kind == params.TOKEN:
            system, bar, code = value.rpartition("|")
            q = Q(code=code) if code else Q()
            if bar:
                q &= Q(system=system)
            ids = SearchToken.objects.filter(q, resource_type=rtype, param=name)
        elif kind == params.DATE:
            ids = SearchDate.objects.filter(
                _date_q("start", "end", value), resource_type=rtype, param=name
            )
        elif kind == params.REFERENCE:
            target_type, _, target_id = value.rpartition("/")
            q = Q(target_id=target_id)
            if target_type:
                q &= Q(target_type=target_type.split("/")[-1])
            ids = SearchReference.objects.filter(q, resource_type=rtype, param=name)
        elif kind == params.QUANTITY:
            prefix, rest = _split_prefix(value)
            number, *unit = rest.split("|")
            try:
                amount = float(number)
            except ValueError:
                raise BadRequest(f"invalid quantity {value!r}") from None
            lookup = {"eq": "exact", "lt": "lt", "le": "lte", "gt": "gt", "ge": "gte"}.get(prefix)
            if lookup is None:
                raise BadRequest(f"prefix {prefix} is not supported for quantities")
            q = Q(**{f"value__{lookup}": amount})
            if len(unit) == 2 and unit[1]:
                q &= Q(code=unit[1])
            ids = SearchQuantity.objects.filter(q, resource_type=rtype, param=name)
        else:
            ids = SearchString.objects.filter(
                resource_type=rtype, param=name, value__startswith=value.lower()
            )
        ors |= Q(Exists(ids.filter(resource_id=OuterRef("pk"))))
    return ors


def _patient_ids(raw: str) -> list[int] | None:
    """`Patient/12,13` or `12` as patient ids; None when any value is not a plain Patient id."""
    ids = []
    for value in raw.split(","):
        target_type, _, target_id = value.rpartition("/")
        if target_type not in ("", "Patient") or not target_id.isdigit():
            return None
        ids.append(int(target_id))
    return ids


def _resource_query(
    actor: Actor, rtype: str, query: list[tuple[str, str]], strict: bool
) -> tuple[QuerySet, list[str]]:
    known = {name: kind for name, kind, _ in params.STORED_TYPES[rtype]}
    qs = Resource.objects.filter(resource_type=rtype, deleted=False)
    visible = readable_patients(actor)
    qs = (
        qs.filter(Q(patient__in=visible) | Q(patient__isnull=True))
        if actor.role != roles.PATIENT
        else qs.filter(patient__in=visible)
    )
    ignored = []
    patients: set[int] | None = None
    for key, value in query:
        ids = _patient_ids(value) if key.split(":")[0] in ("patient", "subject") else None
        if ids is not None:
            patients = set(ids) if patients is None else patients & set(ids)
    # A patient's date range (date=ge..&date=lt..) is one range on one date value, as clients
    # mean it: one scan of the (type, param, patient, start) index answers it, instead of
    # testing each of the patient's resources against the date index.
    ranges: dict[str, list[str]] = {}
    if patients is not None:
        for key, value in query:
            if known.get(key) == params.DATE and "," not in value:
                ranges.setdefault(key, []).append(value)
    for name, values in ranges.items():
        within = Q()
        for value in values:
            within &= _date_q("start", "end", value)
        dates = SearchDate.objects.filter(
            within, resource_type=rtype, param=name, patient_id__in=patients
        )
        qs = qs.filter(pk__in=dates.values("resource_id"))
    for key, value in query:
        if key in ranges:
            continue
        name = key.split(":")[0]
        if name in (
            "_count",
            "_offset",
            "_sort",
            "_include",
            "_revinclude",
            "_summary",
            "_elements",
            "_format",
        ):
            continue
        if name == "_id":
            qs = qs.filter(logical_id__in=value.split(","))
        elif name == "_lastUpdated":
            qs = qs.filter(_date_q("last_updated", "last_updated", value))
        elif name in ("patient", "subject") and _patient_ids(value) is not None:
            # The compartment column answers patient searches without the reference index.
            qs = qs.filter(patient_id__in=patients)
        elif name in known:
            qs = qs.filter(_param_filter(rtype, name, known[name], value))
        elif strict:
            raise BadRequest(f"unknown search parameter {key!r} for {rtype}")
        else:
            ignored.append(key)
    return qs, ignored


def _patient_query(
    actor: Actor, query: list[tuple[str, str]], strict: bool
) -> tuple[QuerySet, list[str]]:
    qs = readable_patients(actor)
    ignored = []
    for key, value in query:
        name, _, modifier = key.partition(":")
        if name.startswith("_") and name != "_id":
            continue
        if name == "_id":
            qs = qs.filter(pk__in=[v for v in value.split(",") if v.isdigit()])
        elif name == "identifier":
            system, bar, code = value.rpartition("|")
            if system == RESIDENT_ID_SYSTEM:
                qs = qs.filter(resident_id=code.upper())
            elif system == SOCIAL_SECURITY_SYSTEM:
                qs = qs.filter(social_security_no=code)
            elif bar and system:
                qs = qs.filter(identifiers__system=system, identifiers__value=code)
            else:
                qs = qs.filter(
                    Q(resident_id=code.upper())
                    | Q(social_security_no=code)
                    | Q(identifiers__value=code)
                )
        elif name in ("name", "family", "given"):
            column = {"name": "name", "family": "family_name", "given": "given_name"}[name]
            lookup = (
                "exact"
                if modifier == "exact"
                else ("icontains" if modifier == "contains" or name == "name" else "istartswith")
            )
            ors = Q()
            for v in value.split(","):
                ors |= Q(**{f"{column}__{lookup}": v})
            qs = qs.filter(ors)
        elif name == "birthdate":
            prefix, text = _split_prefix(value)
            start, end = params.parse_date_param(text)
            d0, d1 = start.date(), end.date()
            qs = qs.filter(
                {
                    "eq": Q(birth_date__gte=d0, birth_date__lt=d1),
                    "ne": ~Q(birth_date__gte=d0, birth_date__lt=d1),
                    "lt": Q(birth_date__lt=d0),
                    "le": Q(birth_date__lt=d1),
                    "gt": Q(birth_date__gte=d1),
                    "ge": Q(birth_date__gte=d0),
                }.get(prefix, Q(birth_date__gte=d0, birth_date__lt=d1))
            )
        elif name == "gender":
            qs = qs.filter(sex__in=value.split(","))
        elif name == "phone":
            qs = qs.filter(phone=value)
        elif strict:
            raise BadRequest(f"unknown search parameter {key!r} for Patient")
        else:
            ignored.append(key)
    return qs.distinct().order_by("pk"), ignored


def _page(query: list[tuple[str, str]]) -> tuple[int, int]:
    values = dict(query)
    try:
        count = min(int(values.get("_count", DEFAULT_COUNT)), MAX_COUNT)
        offset = max(int(values.get("_offset", 0)), 0)
    except ValueError:
        raise BadRequest("_count and _offset must be whole numbers") from None
    return max(count, 0), offset


def _audit_reads(actor: Actor, bodies: list[dict], patient_ids: list[int | None], how: str) -> None:
    for pid in sorted({p for p in patient_ids if p}):
        audit.record(actor, action="R", channel="fhir", patient_id=pid, entity=how[:200])


def search(
    actor: Actor, rtype: str, query: list[tuple[str, str]], *, strict: bool = False
) -> SearchResult:
    _deny_bridge(actor)
    count, offset = _page(query)
    values = dict(query)
    if rtype == "Patient":
        qs, ignored = _patient_query(actor, query, strict)
        total = qs.count()
        page = list(qs.prefetch_related("identifiers")[offset : offset + count]) if count else []
        bodies = [projections.patient(p) for p in page]
        _audit_reads(actor, bodies, [p.pk for p in page], f"Patient?{_querystring(query)}")
        included = _revinclude_for_patients(actor, page, values.get("_revinclude", ""))
        return SearchResult(bodies, total, offset, count, included, ignored)
    if rtype in ("Practitioner", "Organization", "Location"):
        return _search_directory(actor, rtype, query, count, offset, strict)
    if rtype == "AuditEvent":
        return _search_audit(actor, query, count, offset)
    if rtype == "Consent":
        return _search_consent(actor, query, count, offset)
    if rtype not in params.STORED_TYPES:
        raise NotFound(f"resource type {rtype!r} is not supported")
    qs, ignored = _resource_query(actor, rtype, query, strict)
    by_date = any(key.partition(":")[0] == "date" for key, _ in query)
    qs = _sort(qs, rtype, values.get("_sort", ""), by_date=by_date)
    page, total = page_and_total(qs, offset, count)
    bodies = [r.body for r in page]
    _audit_reads(actor, bodies, [r.patient_id for r in page], f"{rtype}?{_querystring(query)}")
    included = _include(actor, page, [v for k, v in query if k == "_include"])
    return SearchResult(bodies, total, offset, count, included, ignored)


def page_and_total(qs: QuerySet, offset: int, count: int) -> tuple[list, int]:
    """One page of `qs` and the number of all its matches, in one query.

    The total rides on the page as an uncorrelated scalar subquery, which PostgreSQL and SQLite
    run once: one round trip and one plan fewer than `count()` beside the page. (COUNT(*) OVER ()
    was slower: it read every matching body.) An empty page carries no total, so past the end
    the count is asked for on its own.
    """
    if count:
        matches, params = qs.order_by().values("pk").query.sql_with_params()
        total_sql = RawSQL(f"SELECT COUNT(*) FROM ({matches}) AS matches", params)
        page = list(qs.annotate(_total=total_sql)[offset : offset + count])
        if page:
            return page, page[0]._total
    return [], (qs.count() if offset or not count else 0)


def _querystring(query: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in query)


# The same order as last_updated, through an expression PostgreSQL cannot answer from an index.
# With ORDER BY last_updated LIMIT n, a date search of a patient with a long history walked the
# (type, patient, last_updated) index backwards testing every row against the date (138 ms for
# one old day of a patient with 36,000 observations); sorting the few rows the date index finds
# takes 4 ms. Without a date filter the index walk is the fast plan, so it stays.
_LAST_UPDATED_UNINDEXED = Coalesce("last_updated", "last_updated")


def _sort(qs: QuerySet, rtype: str, sort: str, *, by_date: bool = False) -> QuerySet:
    last_updated = _LAST_UPDATED_UNINDEXED if by_date else F("last_updated")
    if not sort:
        return qs.order_by(last_updated.desc(), "-pk")
    orders = []
    for key in sort.split(","):
        desc, name = key.startswith("-"), key.lstrip("-")
        if name == "_lastUpdated":
            orders.append(last_updated.desc() if desc else last_updated.asc())
        elif name == "date" and rtype in params.STORED_TYPES:
            from django.db.models import Max, Min

            qs = qs.annotate(_date=(Max if desc else Min)("vitals__effective_at"))
            orders.append(("-" if desc else "") + "_date")
        else:
            raise BadRequest(f"_sort by {name!r} is not supported (use date or _lastUpdated)")
    return qs.order_by(*orders, "pk")


def _include(actor: Actor, page: list[Resource], includes: list[str]) -> list[dict]:
    out: list[dict] = []
    seen: set[str] = set()
    for spec in includes:
        _, _, path = spec.partition(":")
        for resource in page:
            ref = resource.body.get(path) or resource.body.get(
                {"patient": "subject"}.get(path, path)
            )
            target = params.reference_target(ref) if isinstance(ref, dict) else None
            if not target or "/".join(target) in seen:
                continue
            seen.add("/".join(target))
            try:
                out.append(read(actor, *target, audit_it=False))
            except (NotFound, Forbidden, Gone):
                continue
    return out


def _revinclude_for_patients(actor: Actor, patients: list[Patient], spec: str) -> list[dict]:
    if not spec:
        return []
    rtype, _, _param = spec.partition(":")
    if rtype not in params.STORED_TYPES:
        raise BadRequest(f"_revinclude {spec!r} is not supported")
    qs = Resource.objects.filter(resource_type=rtype, patient__in=patients, deleted=False)[
        :MAX_COUNT
    ]
    return [r.body for r in qs]


def _search_directory(
    actor: Actor, rtype: str, query, count: int, offset: int, strict: bool
) -> SearchResult:
    model, render = {
        "Practitioner": (Practitioner, projections.practitioner),
        "Organization": (Hospital, projections.organization),
        "Location": (Community, projections.location),
    }[rtype]
    qs = model.objects.all().order_by("pk")
    if rtype == "Practitioner":
        qs = qs.select_related("user")
    ignored = []
    for key, value in query:
        name = key.split(":")[0]
        if name.startswith("_") and name != "_id":
            continue
        if name == "_id":
            qs = qs.filter(pk__in=[v for v in value.split(",") if v.isdigit()])
        elif name == "name":
            qs = qs.filter(name__icontains=value)
        elif name == "identifier":
            code = value.rpartition("|")[2]
            qs = qs.filter(user__username=code) if rtype == "Practitioner" else qs.filter(code=code)
        elif strict:
            raise BadRequest(f"unknown search parameter {key!r} for {rtype}")
        else:
            ignored.append(key)
    total = qs.count()
    return SearchResult(
        [render(o) for o in qs[offset : offset + count]], total, offset, count, [], ignored
    )


def _search_audit(actor: Actor, query, count: int, offset: int) -> SearchResult:
    if actor.role == roles.ADMIN:
        qs = AuditEvent.objects.all()
    elif actor.role == roles.PATIENT:
        qs = AuditEvent.objects.filter(patient__in=readable_patients(actor))
    else:
        raise Forbidden(
            "only administrators and patients (for their own record) read the audit trail"
        )
    for key, value in query:
        name = key.split(":")[0]
        if name == "patient":
            qs = qs.filter(patient_id=value.rpartition("/")[2] or None)
        elif name == "date":
            qs = qs.filter(_date_q("recorded", "recorded", value))
        elif name == "agent":
            qs = qs.filter(agent_id=value)
        elif name == "action":
            qs = qs.filter(action=value)
    qs = qs.order_by("-id")
    total = qs.count()
    return SearchResult(
        [audit.as_fhir(e) for e in qs[offset : offset + count]], total, offset, count
    )


def _search_consent(actor: Actor, query, count: int, offset: int) -> SearchResult:
    """Consent decisions (clinic.models.Consent) of the patients the actor may read."""
    from clinic.models import Consent

    qs = Consent.objects.filter(patient__in=readable_patients(actor))
    for key, value in query:
        name = key.split(":")[0]
        if name == "patient":
            target = value.rpartition("/")[2]
            qs = qs.filter(patient_id=int(target)) if target.isdigit() else qs.none()
        elif name == "_id":
            qs = qs.filter(pk__in=[v for v in value.split(",") if v.isdigit()])
        elif name == "status":
            wanted = set(value.split(","))
            codes = [k for k, v in projections.CONSENT_STATUS.items() if v in wanted]
            qs = qs.filter(status__in=codes)
    qs = qs.order_by("-recorded_at", "-pk")
    total = qs.count()
    page = list(qs[offset : offset + count]) if count else []
    latest = {}
    for row in Consent.objects.filter(patient_id__in={c.patient_id for c in page}).order_by(
        "patient_id", "-recorded_at", "-pk"
    ):
        latest.setdefault(row.patient_id, row.pk)
    bodies = [projections.consent(c, superseded=latest.get(c.patient_id) != c.pk) for c in page]
    _audit_reads(actor, bodies, [c.patient_id for c in page], f"Consent?{_querystring(query)}")
    return SearchResult(bodies, total, offset, count)


def read(actor: Actor, rtype: str, logical_id: str, *, audit_it: bool = True) -> dict:
    _deny_bridge(actor)
    if rtype == "Patient":
        patient = (
            readable_patients(actor).filter(pk=int(logical_id)).first()
            if logical_id.isdigit()
            else None
        )
        if patient is None:
            # The same answer for "no such patient" and "not yours": ids are not an oracle.
            raise NotFound(f"Patient/{logical_id} is not known")
        if audit_it:
            audit.record(
                actor,
                action="R",
                channel="fhir",
                patient_id=patient.pk,
                entity=f"Patient/{patient.pk}",
            )
        return projections.patient(patient)
    if rtype in ("Practitioner", "Organization", "Location"):
        result = _search_directory(actor, rtype, [("_id", logical_id)], 1, 0, False)
        if not result.resources:
            raise NotFound(f"{rtype}/{logical_id} is not known")
        return result.resources[0]
    if rtype == "Consent":
        result = _search_consent(actor, [("_id", logical_id)], 1, 0)
        if not result.resources:
            raise NotFound(f"Consent/{logical_id} is not known")
        return result.resources[0]
    if rtype == "AuditEvent":
        result = _search_audit(actor, [], MAX_COUNT, 0)
        found = [r for r in result.resources if r["id"] == logical_id]
        if not found:
            raise NotFound(f"AuditEvent/{logical_id} is not known")
        return found[0]
    if rtype not in params.STORED_TYPES:
        raise NotFound(f"resource type {rtype!r} is not supported")
    resource = Resource.objects.filter(resource_type=rtype, logical_id=logical_id).first()
    if resource is None or not _visible(actor, resource):
        raise NotFound(f"{rtype}/{logical_id} is not known")
    if resource.deleted:
        raise Gone(f"{rtype}/{logical_id} was deleted")
    if audit_it and resource.patient_id:
        audit.record(
            actor,
            action="R",
            channel="fhir",
            patient_id=resource.patient_id,
            entity=f"{rtype}/{logical_id}",
        )
    return resource.body


def _visible(actor: Actor, resource: Resource) -> bool:
    if resource.patient_id is None:
        return actor.role in (
            roles.ADMIN,
            roles.COMMUNITY_DOCTOR,
            roles.HOSPITAL_CLINICIAN,
            roles.HOSPITAL_SYSTEM,
        )
    return readable_patients(actor).filter(pk=resource.patient_id).exists()


def vread(actor: Actor, rtype: str, logical_id: str, version: str) -> dict:
    read(actor, rtype, logical_id, audit_it=False) if rtype in params.STORED_TYPES else None
    wanted = int(version) if version.isdigit() else -1
    resource = Resource.objects.filter(resource_type=rtype, logical_id=logical_id).first()
    if resource is not None and resource.version_id == wanted:
        row = resource.as_version()
    else:
        row = (
            ResourceVersion.objects.filter(
                resource__resource_type=rtype, resource__logical_id=logical_id, version_id=wanted
            )
            .select_related("resource")
            .first()
        )
    if row is None:
        raise NotFound(f"{rtype}/{logical_id}/_history/{version} is not known")
    if row.deleted:
        raise Gone(f"{rtype}/{logical_id} version {version} is a deletion")
    if row.resource.patient_id:
        audit.record(
            actor,
            action="R",
            channel="fhir",
            patient_id=row.resource.patient_id,
            entity=f"{rtype}/{logical_id}/_history/{version}",
        )
    return row.body


def history(actor: Actor, rtype: str, logical_id: str) -> list[tuple[ResourceVersion, dict]]:
    """Every version, newest first: the current one, then those it replaced."""
    _deny_bridge(actor)
    resource = Resource.objects.filter(resource_type=rtype, logical_id=logical_id).first()
    if resource is None or not _visible(actor, resource):
        raise NotFound(f"{rtype}/{logical_id} is not known")
    if resource.patient_id:
        audit.record(
            actor,
            action="R",
            channel="fhir",
            patient_id=resource.patient_id,
            entity=f"{rtype}/{logical_id}/_history",
        )
    versions = [resource.as_version(), *resource.versions.order_by("-version_id")]
    return [(v, v.body) for v in versions]


def everything(actor: Actor, patient_id: str, query: list[tuple[str, str]]) -> SearchResult:
    """Patient/{id}/$everything: the patient and every stored resource in their compartment."""
    patient_body = read(actor, "Patient", patient_id)
    count, offset = _page(query)
    qs = Resource.objects.filter(patient_id=int(patient_id), deleted=False).order_by(
        "resource_type", "last_updated", "pk"
    )
    since = dict(query).get("_since")
    if since:
        qs = qs.filter(last_updated__gte=datetime.fromisoformat(since.replace("Z", "+00:00")))
    total = qs.count() + 1
    bodies = ([patient_body] if offset == 0 else []) + [
        r.body for r in qs[max(offset - 1, 0) : offset - 1 + count if offset else count - 1]
    ]
    audit.record(
        actor,
        action="R",
        channel="fhir",
        patient_id=int(patient_id),
        entity=f"Patient/{patient_id}/$everything",
        detail=f"offset {offset}",
    )
    return SearchResult(bodies, total, offset, count)
