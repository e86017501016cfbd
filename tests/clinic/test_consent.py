"""Consent, referral and break-the-glass decide what a hospital sees (clinic.access), at once;
consent decisions read back as FHIR Consent."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from clinic.access import access_basis, actor_for_user, can_read_patient, readable_patients
from clinic.consent import check_break_glass, do_break_glass, do_record_consent
from clinic.models import BreakGlassAccess, Hospital, Patient, Referral
from fhir import projections
from tests.conftest import CHEN, LI


@pytest.fixture
def people(demo):
    users = {u.username: u for u in get_user_model().objects.all()}
    return {
        "chen": Patient.objects.get(resident_id=CHEN),
        "li": Patient.objects.get(resident_id=LI),
        "zsy": actor_for_user(users["clin_zsy"]),
        "szph": actor_for_user(users["clin_szph"]),
        "admin": actor_for_user(users["admin"]),
        "chen_user": actor_for_user(users["chenmeiling"]),
        "users": users,
    }


def test_a_hospital_sees_nobody_without_a_basis(people):
    assert not readable_patients(people["zsy"]).exists()


def test_consent_given_then_revoked_takes_effect_at_once(people):
    chen, zsy = people["chen"], people["zsy"]
    do_record_consent(people["chen_user"], chen, "given")
    assert can_read_patient(zsy, chen) and can_read_patient(people["szph"], chen)
    assert access_basis(zsy, chen.pk) == "TREAT"
    do_record_consent(people["chen_user"], chen, "revoked")
    assert not can_read_patient(zsy, chen)


def test_consent_outside_its_period_gives_nothing(people):
    chen = people["chen"]
    today = timezone.localdate()
    do_record_consent(people["admin"], chen, "given", valid_from=today + timedelta(days=1))
    assert not can_read_patient(people["zsy"], chen)
    do_record_consent(
        people["admin"], chen, "given", valid_from=date(2020, 1, 1), valid_to=date(2021, 1, 1)
    )
    assert not can_read_patient(people["zsy"], chen)


def test_only_the_patient_or_admin_records_consent(people):
    from clinic.consent import check_record_consent

    check_record_consent(people["chen_user"], people["chen"])
    check_record_consent(people["admin"], people["chen"])
    with pytest.raises(PermissionDenied):
        check_record_consent(people["zsy"], people["chen"])
    with pytest.raises(PermissionDenied):
        check_record_consent(people["chen_user"], people["li"])


def test_an_active_referral_shows_the_patient_to_that_hospital_only(people):
    chen = people["chen"]
    referral = Referral.objects.create(
        patient=chen, hospital=Hospital.objects.get(code="zsy"), reason="escalated"
    )
    assert can_read_patient(people["zsy"], chen) and not can_read_patient(people["szph"], chen)
    referral.status = Referral.Status.CLOSED
    referral.save()
    assert not can_read_patient(people["zsy"], chen)


def test_regression_issue_8_someone_elses_break_glass_with_a_closed_referral_grants_nothing(
    people,
):
    """The old query joined referrals twice: a closed referral plus another clinician's
    break-the-glass let the whole hospital in."""
    chen = people["chen"]
    Referral.objects.create(
        patient=chen,
        hospital=Hospital.objects.get(code="zsy"),
        reason="old",
        status=Referral.Status.CLOSED,
    )
    do_break_glass(people["szph"], chen, "cardiac arrest in the ED, no records")
    assert can_read_patient(people["szph"], chen)
    assert not can_read_patient(people["zsy"], chen)


def test_break_glass_is_personal_reasoned_time_boxed_and_audited(people):
    from fhir.models import AuditEvent

    li, szph = people["li"], people["szph"]
    with pytest.raises(ValidationError):
        check_break_glass(szph, li, "urgent")
    with pytest.raises(PermissionDenied):
        check_break_glass(people["admin"], li, "a long enough reason here")
    access = do_break_glass(
        szph, li, "unconscious, brought in by ambulance", duration=timedelta(days=9)
    )
    assert access.expires_at <= timezone.now() + timedelta(hours=24)
    assert not access.reviewed
    assert access_basis(szph, li.pk) == "BTG"
    event = AuditEvent.objects.filter(patient=li, action="E").get()
    assert event.purpose == "BTG" and "ambulance" in event.detail
    BreakGlassAccess.objects.update(expires_at=timezone.now())
    assert not can_read_patient(szph, li)


def test_a_hospital_system_never_sees_through_break_glass(people):
    from clinic import roles
    from clinic.access import Actor

    system = Actor(
        kind="system",
        id="client/x",
        role=roles.HOSPITAL_SYSTEM,
        hospital_id=people["szph"].hospital_id,
    )
    do_break_glass(people["szph"], people["li"], "unconscious, brought in by ambulance")
    assert not can_read_patient(system, people["li"])


def test_consent_as_fhir(people):
    from fhir.resources.R4B.consent import Consent as FhirConsent

    given = do_record_consent(
        people["chen_user"], people["chen"], "given", valid_to=date(2030, 1, 1)
    )
    body = projections.consent(given)
    FhirConsent.model_validate(body)
    assert body["status"] == "active"
    assert body["scope"]["coding"][0]["code"] == "patient-privacy"
    assert body["provision"] == {
        "type": "permit",
        "period": {"start": given.valid_from.isoformat(), "end": "2030-01-01"},
    }
    refused = do_record_consent(people["chen_user"], people["chen"], "refused")
    assert projections.consent(refused)["status"] == "rejected"
    assert projections.consent(refused)["provision"]["type"] == "deny"
    revoked = do_record_consent(people["chen_user"], people["chen"], "revoked")
    assert projections.consent(revoked)["status"] == "inactive"
    assert projections.consent(given, superseded=True)["status"] == "inactive"


def test_consent_search_over_fhir(people, client):
    do_record_consent(people["chen_user"], people["chen"], "given")
    do_record_consent(people["chen_user"], people["chen"], "revoked")
    client.force_login(people["users"]["chenmeiling"])
    bundle = client.get(f"/fhir/Consent?patient={people['chen'].pk}").json()
    assert [e["resource"]["status"] for e in bundle["entry"]] == ["inactive", "inactive"]
    bundle = client.get(f"/fhir/Consent?patient={people['li'].pk}").json()
    assert bundle["total"] == 0
