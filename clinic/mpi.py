"""The master patient index: one person, one record, however many hospitals send them.

Incoming patients (a hospital's FHIR Patient, an HL7 v2 PID segment) are matched in two steps:

1. Identifiers decide first. The resident identity number (GB 11643), the social security card
   number and any registered hospital identifier (MRN, with its assigner) find a patient exactly.
   A hit whose demographics contradict it (different birth date, opposite sex) or two identifiers
   naming two different patients go to a person for review, never to an automatic link.
2. Without an identifier hit, candidates sharing a birth date, phone or name are scored
   (`score`, a pure function). The weights, in points:

   ============================  =====  =======================================================
   birth date                    +30    −15 when both are known and differ
   family name                   +15    (or +30 for the whole name when it is not split)
   given name                    +15
   sex                           +10    −30 when male/female contradict
   phone (last 11 digits)        +25
   ============================  =====  =======================================================

   ``CERTAIN`` (≥ 80, e.g. name + birth date + phone) links automatically: the incoming
   identifiers are added to the patient. ``PROBABLE`` (≥ 50, e.g. name + birth date + sex)
   registers the incoming record as its own patient, so the sender has an id at once, and
   queues a `MatchReview`; accepting it merges the two. Below that a new patient is created.

A merge (`do_merge`) marks the source ``merged_into`` the target (FHIR Patient.link
replaced-by / replaces), moves its identifiers, FHIR resources (``fhir.models.Resource.patient``
and the Patient references inside them) and typed vitals, and records exactly what moved in a
`PatientMerge`, so `do_unmerge` can put back those rows and no others.

Pure core: `Demographics`, `from_fhir`, `from_pid`, `score`, `classify`. Database layer: the
`find_*`/`match` selectors and the `do_*` actions, each in one transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clinic.identity import InvalidResidentId, parse_resident_id
from clinic.lookup import RESIDENT_ID_SYSTEM, SOCIAL_SECURITY_SYSTEM, find_patient
from clinic.models import (
    City,
    Hospital,
    MatchReview,
    Patient,
    PatientIdentifier,
    PatientMerge,
    Sex,
)

__all__ = [
    "CERTAIN",
    "PROBABLE",
    "Demographics",
    "MpiError",
    "Registration",
    "classify",
    "do_accept_review",
    "do_merge",
    "do_register",
    "do_reject_review",
    "do_unmerge",
    "find_patient",
    "from_fhir",
    "from_pid",
    "match",
    "score",
]

CERTAIN = 80
PROBABLE = 50
WEIGHTS = {
    "birth_date": 30,
    "birth_date_conflict": -15,
    "family": 15,
    "given": 15,
    "name": 30,
    "sex": 10,
    "sex_conflict": -30,
    "phone": 25,
}
MRN_SYSTEM_PREFIX = "urn:sg:mrn:"


class MpiError(ValueError):
    """The incoming record cannot be matched or registered (missing or contradictory data)."""


# --- pure core ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    system: str
    value: str
    assigner: str = ""  # hospital code, when known


@dataclass(frozen=True)
class Demographics:
    """What a sender tells us about a person, normalised."""

    name: str = ""
    family: str = ""
    given: str = ""
    birth_date: date | None = None
    sex: str = Sex.UNKNOWN
    phone: str = ""
    resident_id: str = ""
    social_security_no: str = ""
    identifiers: tuple[Identifier, ...] = field(default_factory=tuple)
    city: str = ""
    address: str = ""


def _norm_name(value: str) -> str:
    return re.sub(r"[\s·.\-]", "", unicodedata.normalize("NFKC", value or "")).casefold()


def _norm_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value or "")
    return digits[-11:]


_SEX_FHIR = {"male": Sex.MALE, "female": Sex.FEMALE, "other": Sex.OTHER, "unknown": Sex.UNKNOWN}
_SEX_V2 = {"M": Sex.MALE, "F": Sex.FEMALE, "O": Sex.OTHER, "A": Sex.OTHER, "U": Sex.UNKNOWN}
_CITY_BY_NAME = {
    **{c.value: c.value for c in City},
    **{str(c.label).casefold(): c.value for c in City},
    "广州": City.GUANGZHOU,
    "广州市": City.GUANGZHOU,
    "深圳": City.SHENZHEN,
    "深圳市": City.SHENZHEN,
    "佛山": City.FOSHAN,
    "佛山市": City.FOSHAN,
    "东莞": City.DONGGUAN,
    "东莞市": City.DONGGUAN,
}


def from_fhir(body: dict, *, assigner: str = "") -> Demographics:
    """Demographics from a FHIR R4/R4B Patient; `assigner` is the sending hospital's code."""
    if not isinstance(body, dict) or body.get("resourceType") != "Patient":
        raise MpiError("expected a FHIR Patient")
    names = [n for n in body.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family = str(name.get("family") or "")
    given = "".join(str(g) for g in name.get("given") or [])
    text = str(name.get("text") or f"{family}{given}")
    birth = None
    if body.get("birthDate"):
        try:
            birth = date.fromisoformat(str(body["birthDate"])[:10])
        except ValueError:
            raise MpiError(f"birthDate {body['birthDate']!r} is not a date") from None
    phone = next(
        (
            str(t.get("value"))
            for t in body.get("telecom") or []
            if isinstance(t, dict) and t.get("system") == "phone" and t.get("value")
        ),
        "",
    )
    resident_id = ssn = ""
    others: list[Identifier] = []
    for ident in body.get("identifier") or []:
        if not isinstance(ident, dict) or not ident.get("value"):
            continue
        system, value = str(ident.get("system") or ""), str(ident["value"]).strip()
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding", []) or []}
        if system == RESIDENT_ID_SYSTEM or (not system and "NNCHN" in codes):
            resident_id = value.upper()
        elif system == SOCIAL_SECURITY_SYSTEM:
            ssn = value
        elif system:
            others.append(Identifier(system, value, assigner))
    address = next((a for a in body.get("address") or [] if isinstance(a, dict)), {})
    city = _CITY_BY_NAME.get(str(address.get("city") or "").casefold(), "")
    return Demographics(
        name=text,
        family=family,
        given=given,
        birth_date=birth,
        sex=_SEX_FHIR.get(str(body.get("gender") or "unknown"), Sex.UNKNOWN),
        phone=phone,
        resident_id=resident_id,
        social_security_no=ssn,
        identifiers=tuple(others),
        city=city,
        address=str(address.get("text") or ""),
    )


def from_pid(
    pid3: str,
    pid5: str = "",
    pid7: str = "",
    pid8: str = "",
    pid13: str = "",
    pid19: str = "",
    *,
    assigner: str = "",
) -> Demographics:
    """Demographics from HL7 v2 PID fields as ER7 text (standard ^ ~ delimiters).

    PID-3 repetitions are CX (``id^^^authority^type``): type NNCHN is the resident identity
    number; others are hospital identifiers in the system ``urn:sg:mrn:{authority}``.
    PID-5 is ``family^given``, PID-7 ``YYYYMMDD``, PID-8 M/F/O/U, PID-13 a phone (XTN or
    plain), PID-19 the social security number.
    """
    resident_id = ""
    others: list[Identifier] = []
    for rep in (pid3 or "").split("~"):
        parts = rep.split("^")
        value = parts[0].strip()
        if not value:
            continue
        authority = parts[3].split("&")[0] if len(parts) > 3 else ""
        kind = parts[4] if len(parts) > 4 else ""
        if kind == "NNCHN":
            resident_id = value.upper()
        else:
            others.append(
                Identifier(f"{MRN_SYSTEM_PREFIX}{authority or assigner}", value, assigner)
            )
    name_parts = (pid5 or "").split("~")[0].split("^")
    family = name_parts[0] if name_parts else ""
    given = name_parts[1] if len(name_parts) > 1 else ""
    birth = None
    if pid7:
        try:
            birth = date(int(pid7[0:4]), int(pid7[4:6]), int(pid7[6:8]))
        except ValueError:
            raise MpiError(f"PID-7 {pid7!r} is not a date") from None
    phone_parts = (pid13 or "").split("~")[0].split("^")
    phone = phone_parts[11] if len(phone_parts) > 11 and phone_parts[11] else phone_parts[0]
    if not phone and len(phone_parts) > 6:
        phone = "".join(phone_parts[5:7])
    return Demographics(
        name=f"{family}{given}",
        family=family,
        given=given,
        birth_date=birth,
        sex=_SEX_V2.get((pid8 or "U")[:1].upper(), Sex.UNKNOWN),
        phone=phone,
        resident_id=resident_id,
        social_security_no=(pid19 or "").strip(),
        identifiers=tuple(others),
    )


@dataclass(frozen=True)
class Score:
    points: int
    reasons: tuple[str, ...]

    @property
    def hard_conflict(self) -> bool:
        return any(r in ("birth_date_conflict", "sex_conflict") for r in self.reasons)


def score(incoming: Demographics, known: Demographics) -> Score:
    """Points for how alike two people's demographics are (weights in the module docstring)."""
    points, reasons = 0, []

    def add(reason: str) -> None:
        nonlocal points
        points += WEIGHTS[reason]
        reasons.append(reason)

    if incoming.birth_date and known.birth_date:
        add("birth_date" if incoming.birth_date == known.birth_date else "birth_date_conflict")
    f1, f2 = _norm_name(incoming.family), _norm_name(known.family)
    g1, g2 = _norm_name(incoming.given), _norm_name(known.given)
    if f1 and f2 and g1 and g2:
        if f1 == f2:
            add("family")
        if g1 == g2:
            add("given")
    else:
        n1 = _norm_name(incoming.name or incoming.family + incoming.given)
        n2 = _norm_name(known.name or known.family + known.given)
        if n1 and n1 == n2:
            add("name")
    binary = (Sex.MALE, Sex.FEMALE)
    if incoming.sex in binary and known.sex in binary:
        add("sex" if incoming.sex == known.sex else "sex_conflict")
    p1, p2 = _norm_phone(incoming.phone), _norm_phone(known.phone)
    if len(p1) >= 7 and p1 == p2:
        add("phone")
    return Score(points, tuple(reasons))


def classify(points: int) -> str:
    """ "certain", "probable" or "none" for a demographic score."""
    if points >= CERTAIN:
        return "certain"
    if points >= PROBABLE:
        return "probable"
    return "none"


# --- database layer -------------------------------------------------------------------------


def demographics_of(patient: Patient) -> Demographics:
    return Demographics(
        name=patient.name,
        family=patient.family_name,
        given=patient.given_name,
        birth_date=patient.birth_date,
        sex=patient.sex,
        phone=patient.phone,
        resident_id=patient.resident_id or "",
        social_security_no=patient.social_security_no or "",
    )


def _survivor(patient: Patient | None) -> Patient | None:
    seen = set()
    while patient is not None and patient.merged_into_id and patient.pk not in seen:
        seen.add(patient.pk)
        patient = patient.merged_into
    return patient


@dataclass
class Match:
    outcome: str  # "identifier" | "certain" | "probable" | "conflict" | "none"
    patient: Patient | None = None
    points: int = 0
    reasons: tuple[str, ...] = ()


def match(incoming: Demographics) -> Match:
    """The best match for an incoming person, without writing anything."""
    by_identifier: dict[int, Patient] = {}
    probes = []
    if incoming.resident_id:
        probes.append((incoming.resident_id, RESIDENT_ID_SYSTEM))
    if incoming.social_security_no:
        probes.append((incoming.social_security_no, SOCIAL_SECURITY_SYSTEM))
    probes += [(i.value, i.system) for i in incoming.identifiers]
    for value, system in probes:
        found = _survivor(find_patient(value, system))
        if found is not None:
            by_identifier[found.pk] = found
    if len(by_identifier) > 1:
        first = next(iter(by_identifier.values()))
        return Match("conflict", first, 0, ("identifiers name different patients",))
    if by_identifier:
        patient = next(iter(by_identifier.values()))
        s = score(incoming, demographics_of(patient))
        if s.hard_conflict:
            return Match("conflict", patient, s.points, ("identifier", *s.reasons))
        return Match("identifier", patient, s.points, ("identifier", *s.reasons))

    candidates = Q()
    if incoming.birth_date:
        candidates |= Q(birth_date=incoming.birth_date)
    phone = _norm_phone(incoming.phone)
    if len(phone) >= 7:
        candidates |= Q(phone__endswith=phone)
    if incoming.name:
        candidates |= Q(name=incoming.name)
    if not candidates:
        return Match("none")
    best: Match = Match("none")
    for patient in Patient.objects.filter(candidates, merged_into__isnull=True)[:500]:
        s = score(incoming, demographics_of(patient))
        if s.points > best.points:
            best = Match(classify(s.points), patient, s.points, s.reasons)
    if best.outcome == "none":
        return Match("none", None, best.points, best.reasons)
    return best


@dataclass
class Registration:
    patient: Patient
    outcome: str  # as Match.outcome
    created: bool
    review: MatchReview | None = None


def _hospital_by_code(code: str) -> Hospital | None:
    return Hospital.objects.filter(code=code).first() if code else None


def _add_identifiers(patient: Patient, incoming: Demographics, source: Hospital | None) -> None:
    """Register the incoming identifiers on the patient; ones held by someone else are skipped."""
    for column, value in (
        ("resident_id", incoming.resident_id),
        ("social_security_no", incoming.social_security_no),
    ):
        if (
            value
            and not getattr(patient, column)
            and not Patient.objects.filter(**{column: value}).exists()
        ):
            setattr(patient, column, value)
            patient.save(update_fields=[column])
    for ident in incoming.identifiers:
        assigner = _hospital_by_code(ident.assigner) or source
        PatientIdentifier.objects.get_or_create(
            system=ident.system[:200],
            value=ident.value[:100],
            defaults={"patient": patient, "assigner": assigner},
        )


def _create(incoming: Demographics, source: Hospital | None, *, with_identifiers: bool) -> Patient:
    if not incoming.name or not incoming.birth_date:
        raise MpiError("a new patient needs at least a name and a birth date")
    if with_identifiers and incoming.resident_id:
        try:
            parse_resident_id(incoming.resident_id)
        except InvalidResidentId as exc:
            raise MpiError(f"invalid resident identity number: {exc}") from None
    patient = Patient(
        name=incoming.name[:100],
        family_name=incoming.family[:50],
        given_name=incoming.given[:50],
        sex=incoming.sex or Sex.UNKNOWN,
        birth_date=incoming.birth_date,
        resident_id=(incoming.resident_id or None) if with_identifiers else None,
        social_security_no=(incoming.social_security_no or None) if with_identifiers else None,
        phone=incoming.phone[:30],
        address=incoming.address[:300],
        city=incoming.city or (source.city if source else City.GUANGZHOU),
    )
    try:
        patient.full_clean(exclude=["community", "user", "merged_into"])
    except Exception as exc:  # ValidationError: report what the sender got wrong
        messages = getattr(exc, "message_dict", None) or {"": [str(exc)]}
        raise MpiError(
            "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in messages.items())
        ) from None
    patient.save()
    if with_identifiers:
        _add_identifiers(patient, Demographics(identifiers=incoming.identifiers), source)
    return patient


@transaction.atomic
def do_register(incoming: Demographics, *, source: Hospital | None = None) -> Registration:
    """Match the incoming person; link, queue for review, or create. Returns the patient to use.

    Callers check the caller's right to register patients first (`check_register`).
    """
    found = match(incoming)
    if found.outcome in ("identifier", "certain"):
        _add_identifiers(found.patient, incoming, source)
        return Registration(found.patient, found.outcome, False)
    if found.outcome in ("probable", "conflict"):
        # Registered on its own, without the identifiers another record already holds, and
        # queued: a person decides whether these are one patient.
        clean = Demographics(
            **{
                **incoming.__dict__,
                "resident_id": ""
                if find_patient(incoming.resident_id, RESIDENT_ID_SYSTEM)
                else incoming.resident_id,
                "social_security_no": ""
                if find_patient(incoming.social_security_no, SOCIAL_SECURITY_SYSTEM)
                else incoming.social_security_no,
                "identifiers": tuple(
                    i for i in incoming.identifiers if find_patient(i.value, i.system) is None
                ),
            }
        )
        patient = _create(clean, source, with_identifiers=True)
        review = MatchReview.objects.create(
            incoming=patient,
            candidate=found.patient,
            score=found.points,
            reasons=list(found.reasons),
            source=source,
            submitted=_as_json(incoming),
        )
        return Registration(patient, found.outcome, True, review)
    patient = _create(incoming, source, with_identifiers=True)
    return Registration(patient, "none", True)


def _as_json(d: Demographics) -> dict:
    return {
        "name": d.name,
        "birth_date": d.birth_date.isoformat() if d.birth_date else None,
        "sex": d.sex,
        "phone": d.phone,
        "resident_id": d.resident_id,
        "social_security_no": d.social_security_no,
        "identifiers": [i.__dict__ for i in d.identifiers],
    }


# --- merge and unmerge ----------------------------------------------------------------------


def _rewrite_patient_refs(node, old: str, new: str):
    if isinstance(node, dict):
        return {
            k: (new if k == "reference" and v == old else _rewrite_patient_refs(v, old, new))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_patient_refs(v, old, new) for v in node]
    return node


def _move_resources(resource_ids: list[int], old: Patient, new: Patient) -> None:
    from fhir.models import Resource, SearchDate, SearchReference

    for resource in Resource.objects.filter(pk__in=resource_ids):
        resource.body = _rewrite_patient_refs(
            resource.body, f"Patient/{old.pk}", f"Patient/{new.pk}"
        )
        resource.patient = new
        resource.save(update_fields=["body", "patient"])
    SearchReference.objects.filter(
        resource_id__in=resource_ids, target_type="Patient", target_id=str(old.pk)
    ).update(target_id=str(new.pk))
    SearchDate.objects.filter(resource_id__in=resource_ids).update(patient=new)


@transaction.atomic
def do_merge(source: Patient, target: Patient, *, by=None, reason: str = "") -> PatientMerge:
    """Merge `source` into `target` (the survivor). Refused for two different identity numbers."""
    from fhir.models import Resource, VitalSign

    source = Patient.objects.select_for_update().get(pk=source.pk)
    target = Patient.objects.select_for_update().get(pk=target.pk)
    if source.pk == target.pk:
        raise MpiError("a patient cannot be merged into itself")
    if source.merged_into_id or target.merged_into_id:
        raise MpiError("one of the two records was already merged; unmerge it first")
    for column in ("resident_id", "social_security_no"):
        a, b = getattr(source, column), getattr(target, column)
        if a and b and a != b:
            raise MpiError(f"the two records have different {column} values: not one person")
    moved: dict = {
        "resources": list(
            Resource.objects.filter(patient=source).values_list("pk", flat=True).order_by("pk")
        ),
        "vitals": list(
            VitalSign.objects.filter(patient=source).values_list("pk", flat=True).order_by("pk")
        ),
        "identifiers": list(source.identifiers.values_list("pk", flat=True).order_by("pk")),
    }
    for column in ("resident_id", "social_security_no"):
        value = getattr(source, column)
        if value and not getattr(target, column):
            moved[column] = value
            setattr(source, column, None)
    source.merged_into = target
    source.save()
    for column in ("resident_id", "social_security_no"):
        if column in moved:
            setattr(target, column, moved[column])
    target.save()
    _move_resources(moved["resources"], source, target)
    VitalSign.objects.filter(pk__in=moved["vitals"]).update(patient=target)
    PatientIdentifier.objects.filter(pk__in=moved["identifiers"]).update(patient=target)
    MatchReview.objects.filter(
        incoming=source, candidate=target, status=MatchReview.Status.PENDING
    ).update(status=MatchReview.Status.ACCEPTED, decided_by=by, decided_at=timezone.now())
    return PatientMerge.objects.create(
        source=source, target=target, moved=moved, reason=reason[:200], created_by=by
    )


@transaction.atomic
def do_unmerge(merge: PatientMerge, *, by=None) -> None:
    """Undo one merge: exactly the rows it moved go back; later writes stay with the survivor."""
    from fhir.models import VitalSign

    merge = PatientMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at:
        raise MpiError("this merge was already undone")
    source = Patient.objects.select_for_update().get(pk=merge.source_id)
    target = Patient.objects.select_for_update().get(pk=merge.target_id)
    moved = merge.moved
    from fhir.models import Resource

    still = list(
        Resource.objects.filter(pk__in=moved.get("resources", []), patient=target).values_list(
            "pk", flat=True
        )
    )
    _move_resources(still, target, source)
    VitalSign.objects.filter(pk__in=moved.get("vitals", []), patient=target).update(patient=source)
    PatientIdentifier.objects.filter(pk__in=moved.get("identifiers", []), patient=target).update(
        patient=source
    )
    for column in ("resident_id", "social_security_no"):
        if column in moved and getattr(target, column) == moved[column]:
            setattr(target, column, None)
    target.save()
    source.merged_into = None
    for column in ("resident_id", "social_security_no"):
        if column in moved:
            setattr(source, column, moved[column])
    source.save()
    merge.undone_at = timezone.now()
    merge.save(update_fields=["undone_at"])


# --- the review queue -----------------------------------------------------------------------


@transaction.atomic
def do_accept_review(review: MatchReview, *, by=None) -> PatientMerge:
    """The two are one person: merge the incoming record into the candidate."""
    review = MatchReview.objects.select_for_update().get(pk=review.pk)
    if review.status != MatchReview.Status.PENDING:
        raise MpiError("this review was already decided")
    merge = do_merge(review.incoming, review.candidate, by=by, reason=f"match review {review.pk}")
    review.status, review.decided_by, review.decided_at = (
        MatchReview.Status.ACCEPTED,
        by,
        timezone.now(),
    )
    review.save(update_fields=["status", "decided_by", "decided_at"])
    return merge


@transaction.atomic
def do_reject_review(review: MatchReview, *, by=None) -> None:
    """Two different people: keep both records."""
    review = MatchReview.objects.select_for_update().get(pk=review.pk)
    if review.status != MatchReview.Status.PENDING:
        raise MpiError("this review was already decided")
    review.status, review.decided_by, review.decided_at = (
        MatchReview.Status.REJECTED,
        by,
        timezone.now(),
    )
    review.save(update_fields=["status", "decided_by", "decided_at"])


# --- who may register -----------------------------------------------------------------------


def check_register(actor) -> None:
    """Hospitals (people, systems with Patient.c, device interfaces) and administrators register
    patients through the index; patients, community doctors and bridges do not."""
    from django.core.exceptions import PermissionDenied

    from clinic import roles

    if actor.role not in (
        roles.ADMIN,
        roles.HOSPITAL_CLINICIAN,
        roles.HOSPITAL_SYSTEM,
        "interface",
    ):
        raise PermissionDenied("only hospitals and administrators register patients")


def source_hospital(actor) -> Hospital | None:
    return Hospital.objects.filter(pk=actor.hospital_id).first() if actor.hospital_id else None
