"""The master patient index: pure scoring, registration (link / review / create), merge and
unmerge with the FHIR record following, and POST /fhir/Patient."""

from __future__ import annotations

import json
from datetime import date

import pytest

from clinic import mpi
from clinic.lookup import RESIDENT_ID_SYSTEM
from clinic.models import MatchReview, Patient, PatientIdentifier
from tests.conftest import CHEN

FHIR = "application/fhir+json"
CHEN_FHIR = {
    "resourceType": "Patient",
    "name": [{"use": "official", "family": "陈", "given": ["美玲"]}],
    "gender": "female",
    "birthDate": "1958-03-12",
    "telecom": [{"system": "phone", "value": "+86 138-0013-8021"}],
}


# --- pure core ----------------------------------------------------------------------------------


def _d(**kw) -> mpi.Demographics:
    base = dict(
        family="陈", given="美玲", birth_date=date(1958, 3, 12), sex="female", phone="13800138021"
    )
    return mpi.Demographics(**{**base, **kw})


@pytest.mark.parametrize(
    "incoming,points,outcome",
    [
        (_d(), 95, "certain"),  # name + birth date + sex + phone
        (_d(sex="unknown"), 85, "certain"),
        (_d(phone=""), 70, "probable"),  # name + birth date + sex
        (_d(given="美", phone=""), 55, "probable"),
        (_d(family="李", given="建国"), 65, "probable"),  # birth + sex + phone: a relative's phone
        (_d(birth_date=date(1960, 1, 1), phone=""), 25, "none"),
        (_d(sex="male"), 55, "probable"),  # contradicting sex costs 30 + 10
    ],
)
def test_score_weights(incoming, points, outcome):
    s = mpi.score(incoming, _d())
    assert s.points == points
    assert mpi.classify(s.points) == outcome


def test_phone_is_compared_by_its_last_eleven_digits():
    assert "phone" in mpi.score(_d(phone="+86 138 0013 8021"), _d()).reasons


def test_from_fhir_reads_identifiers_names_and_telecom():
    body = {
        **CHEN_FHIR,
        "identifier": [
            {"system": RESIDENT_ID_SYSTEM, "value": CHEN.lower()},
            {"system": "urn:sg:mrn:zsy", "value": "Z-1"},
        ],
        "address": [{"city": "广州市"}],
    }
    d = mpi.from_fhir(body, assigner="zsy")
    assert (d.family, d.given, d.sex, d.birth_date) == ("陈", "美玲", "female", date(1958, 3, 12))
    assert d.resident_id == CHEN and d.city == "guangzhou"
    assert d.identifiers == (mpi.Identifier("urn:sg:mrn:zsy", "Z-1", "zsy"),)


def test_from_pid_reads_cx_identifiers():
    d = mpi.from_pid(
        f"{CHEN}^^^CHN^NNCHN~778899^^^ZSY^MR",
        "陈^美玲",
        "19580312",
        "F",
        "^PRN^PH^^^^^^^^^13800138021",
        assigner="zsy",
    )
    assert d.resident_id == CHEN and d.sex == "female" and d.phone == "13800138021"
    assert d.identifiers == (mpi.Identifier("urn:sg:mrn:ZSY", "778899", "zsy"),)


# --- registration -------------------------------------------------------------------------------


def test_any_registered_identifier_finds_the_patient(demo, zsy):
    reg = mpi.do_register(
        mpi.from_fhir({**CHEN_FHIR, "identifier": [{"system": "urn:sg:mrn:zsy", "value": "Z-1"}]}),
        source=zsy,
    )
    chen = Patient.objects.get(resident_id=CHEN)
    assert reg.outcome == "certain" and reg.patient == chen and not reg.created
    assert PatientIdentifier.objects.get(value="Z-1").assigner == zsy
    assert mpi.find_patient("Z-1") == chen
    assert mpi.find_patient("Z-1", "urn:sg:mrn:zsy") == chen
    assert mpi.find_patient(CHEN) == chen


def test_resident_id_links_even_with_another_phone(demo, zsy):
    body = {
        **CHEN_FHIR,
        "telecom": [],
        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": CHEN}],
    }
    reg = mpi.do_register(mpi.from_fhir(body), source=zsy)
    assert reg.outcome == "identifier" and not reg.created


def test_identifier_with_contradicting_birth_date_goes_to_review(demo, zsy):
    body = {
        **CHEN_FHIR,
        "birthDate": "1959-03-12",
        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": CHEN}],
    }
    reg = mpi.do_register(mpi.from_fhir(body), source=zsy)
    assert reg.outcome == "conflict" and reg.created and reg.review is not None
    assert reg.patient.resident_id is None  # the number stays with the record that holds it


def test_probable_match_is_created_and_queued(demo, zsy):
    body = {**CHEN_FHIR, "telecom": []}
    reg = mpi.do_register(mpi.from_fhir(body), source=zsy)
    assert reg.outcome == "probable" and reg.created
    review = MatchReview.objects.get()
    assert review.candidate.resident_id == CHEN and review.incoming == reg.patient
    assert review.status == MatchReview.Status.PENDING and review.score == 70


def test_no_match_creates_a_patient(demo, zsy):
    body = {
        "resourceType": "Patient",
        "name": [{"family": "欧阳", "given": ["明"]}],
        "gender": "male",
        "birthDate": "1949-10-01",
    }
    reg = mpi.do_register(mpi.from_fhir(body), source=zsy)
    assert reg.outcome == "none" and reg.created and reg.patient.city == zsy.city


# --- merge and unmerge --------------------------------------------------------------------------


def test_accepting_a_review_merges_and_unmerge_restores(demo, zsy, client):
    from django.contrib.auth import get_user_model

    from clinic.access import actor_for_user
    from fhir import search, store
    from fhir.models import Resource, VitalSign
    from tests.fhir import bundles

    admin = actor_for_user(get_user_model().objects.get(username="admin"))
    reg = mpi.do_register(
        mpi.from_fhir(
            {
                **CHEN_FHIR,
                "telecom": [],
                "identifier": [{"system": "urn:sg:mrn:zsy", "value": "Z-9"}],
            }
        ),
        source=zsy,
    )
    duplicate, chen = reg.patient, Patient.objects.get(resident_id=CHEN)
    upload = bundles.upload(CHEN, 1)
    upload["entry"][1]["resource"]["subject"] = {"reference": f"Patient/{duplicate.pk}"}
    store.process_bundle(admin, upload)
    moved = Resource.objects.get(resource_type="Observation")
    assert moved.patient == duplicate

    merge = mpi.do_accept_review(reg.review, by=None)
    moved.refresh_from_db()
    duplicate.refresh_from_db()
    assert duplicate.merged_into == chen
    assert moved.patient == chen and moved.body["subject"]["reference"] == f"Patient/{chen.pk}"
    assert set(VitalSign.objects.values_list("patient_id", flat=True)) == {chen.pk}
    assert mpi.find_patient("Z-9") == chen
    found = search.search(admin, "Observation", [("subject", f"Patient/{chen.pk}")])
    assert found.total == 1
    # The date index carries the patient too: a patient's day finds the moved reading.
    day = [("patient", f"Patient/{chen.pk}"), ("date", "ge2026-11-25"), ("date", "lt2026-11-26")]
    assert search.search(admin, "Observation", day).total == 1
    gone = [("patient", f"Patient/{duplicate.pk}"), ("date", "ge2026-11-25")]
    assert search.search(admin, "Observation", gone).total == 0
    old = search.read(admin, "Patient", str(duplicate.pk))
    assert old["link"] == [{"other": {"reference": f"Patient/{chen.pk}"}, "type": "replaced-by"}]
    assert old["active"] is False
    assert {"other": {"reference": f"Patient/{duplicate.pk}"}, "type": "replaces"} in search.read(
        admin, "Patient", str(chen.pk)
    )["link"]
    assert MatchReview.objects.get(pk=reg.review.pk).status == MatchReview.Status.ACCEPTED

    mpi.do_unmerge(merge)
    moved.refresh_from_db()
    duplicate.refresh_from_db()
    assert duplicate.merged_into is None and moved.patient == duplicate
    assert moved.body["subject"]["reference"] == f"Patient/{duplicate.pk}"
    assert set(VitalSign.objects.values_list("patient_id", flat=True)) == {duplicate.pk}
    back = [("patient", f"Patient/{duplicate.pk}"), ("date", "ge2026-11-25")]
    assert search.search(admin, "Observation", back).total == 1
    assert mpi.find_patient("Z-9") == duplicate
    with pytest.raises(mpi.MpiError):
        mpi.do_unmerge(merge)


def test_two_identity_numbers_are_never_merged(demo):
    a, b = Patient.objects.exclude(resident_id=None)[:2]
    with pytest.raises(mpi.MpiError):
        mpi.do_merge(a, b)


def test_rejecting_a_review_keeps_both(demo, zsy):
    reg = mpi.do_register(mpi.from_fhir({**CHEN_FHIR, "telecom": []}), source=zsy)
    mpi.do_reject_review(reg.review)
    assert Patient.objects.get(pk=reg.patient.pk).merged_into is None
    assert MatchReview.objects.get().status == MatchReview.Status.REJECTED


def test_admin_actions_accept_and_reject(demo, zsy, admin_client):
    reg = mpi.do_register(mpi.from_fhir({**CHEN_FHIR, "telecom": []}), source=zsy)
    response = admin_client.post(
        "/admin/clinic/matchreview/",
        {"action": "accept", "_selected_action": [reg.review.pk]},
    )
    assert response.status_code == 302
    assert Patient.objects.get(pk=reg.patient.pk).merged_into.resident_id == CHEN


# --- POST /fhir/Patient -------------------------------------------------------------------------


def test_post_patient_answers_200_when_matched_and_201_when_created(demo, client):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="clin_zsy"))
    matched = client.post(
        "/fhir/Patient",
        json.dumps({**CHEN_FHIR, "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": CHEN}]}),
        content_type=FHIR,
    )
    chen = Patient.objects.get(resident_id=CHEN)
    assert matched.status_code == 200
    assert matched["Location"].endswith(f"/Patient/{chen.pk}")
    # zsy has no referral or consent for her: the id, not the record
    assert matched.json()["resourceType"] == "OperationOutcome"
    created = client.post(
        "/fhir/Patient",
        json.dumps({**CHEN_FHIR, "name": [{"family": "黄", "given": ["飞"]}], "telecom": []}),
        content_type=FHIR,
    )
    assert created.status_code == 201
    bad = client.post(
        "/fhir/Patient",
        json.dumps({"resourceType": "Patient", "gender": "female"}),
        content_type=FHIR,
    )
    assert bad.status_code == 422


def test_patients_and_community_doctors_may_not_register(demo, client):
    from django.contrib.auth import get_user_model

    for username in ("chenmeiling", "dr_tianhe"):
        client.force_login(get_user_model().objects.get(username=username))
        response = client.post("/fhir/Patient", json.dumps(CHEN_FHIR), content_type=FHIR)
        assert response.status_code == 403


@pytest.fixture
def zsy(demo):
    from clinic.models import Hospital

    return Hospital.objects.get(code="zsy")
