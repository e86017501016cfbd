"""The FHIR REST API through Django's test client: uploads, idempotency, search, errors, access."""

from __future__ import annotations

import json

import pytest

from clinic.models import Patient
from fhir.models import AuditEvent, Resource, ResourceVersion, VitalSign
from tests.fhir import bundles
from tests.fhir.conftest import CHEN, LI

FHIR = "application/fhir+json"


def post(client, path, body, **extra):
    return client.post(path, json.dumps(body), content_type=FHIR, **extra)


def test_bridge_upload_stores_observations_and_vitals(bridge_client):
    response = post(bridge_client, "/fhir/", bundles.upload(CHEN, 3))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 4
    chen = Patient.objects.get(resident_id=CHEN)
    rows = VitalSign.objects.filter(patient=chen).order_by("effective_at", "vital")
    assert [(r.vital, r.value, r.unit) for r in rows[:3]] == [
        ("diastolic_bp", 82.0, "mm[Hg]"),
        ("mean_bp", 97.0, "mm[Hg]"),
        ("systolic_bp", 128.0, "mm[Hg]"),
    ]
    assert rows.count() == 9


def test_replayed_bundle_stores_each_reading_once(bridge_client):
    bundle = bundles.upload(CHEN, 5)
    for _ in range(3):
        response = post(bridge_client, "/fhir/", bundle)
        assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["200 OK"] * 6
    assert Resource.objects.filter(resource_type="Observation").count() == 5
    assert Resource.objects.filter(resource_type="Device").count() == 1
    assert VitalSign.objects.filter(vital="systolic_bp").count() == 5


def test_bridge_may_not_write_for_another_household(bridge_client):
    response = post(bridge_client, "/fhir/", bundles.upload(LI, 1))
    assert response.status_code == 403
    assert "another household" in response.json()["issue"][0]["diagnostics"]
    assert not Resource.objects.exists()  # the Device of the same transaction rolled back too


def test_bridge_may_not_read(bridge_client):
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 1))
    assert bridge_client.get("/fhir/Observation").status_code == 403
    assert bridge_client.get(f"/fhir/Patient?identifier={CHEN}").status_code == 403


def test_wrong_token_is_401_with_outcome(client, demo):
    response = post(
        client, "/fhir/", bundles.upload(CHEN, 1), HTTP_AUTHORIZATION="Bearer sgb_wrong"
    )
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_one_bad_entry_rolls_back_the_whole_transaction(bridge_client):
    bundle = bundles.upload(CHEN, 3)
    bundle["entry"][2]["resource"]["component"][0]["valueQuantity"]["code"] = "furlongs"
    response = post(bridge_client, "/fhir/", bundle)
    assert response.status_code == 422
    assert "entry 2" in response.json()["issue"][0]["diagnostics"]
    assert not Resource.objects.exists() and not VitalSign.objects.exists()


@pytest.mark.parametrize(
    "raw, status, words",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"resourceType": "Patient"}).encode(), 400, "Bundle"),
        (json.dumps({"resourceType": "Bundle", "type": "document"}).encode(), 400, "Bundle.type"),
        (b"\xff\xfe", 400, "UTF-8"),
        (b"[" * 100000 + b"]" * 100000, 400, "JSON"),
    ],
)
def test_malformed_bodies_get_a_clear_operation_outcome(bridge_client, raw, status, words):
    response = bridge_client.post("/fhir/", raw, content_type=FHIR)
    assert response.status_code == status
    assert words in response.json()["issue"][0]["diagnostics"]


def test_duplicate_full_urls_are_refused(bridge_client):
    bundle = bundles.upload(CHEN, 2)
    bundle["entry"][2]["fullUrl"] = bundle["entry"][1]["fullUrl"]
    response = post(bridge_client, "/fhir/", bundle)
    assert response.status_code == 400 and "duplicate fullUrl" in response.content.decode()


def test_huge_bundle_is_413(bridge_client, settings):
    settings.FHIR_MAX_BUNDLE_ENTRIES = 10
    response = post(bridge_client, "/fhir/", bundles.upload(CHEN, 20))
    assert response.status_code == 413


def test_oversized_body_is_413(bridge_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(bridge_client, "/fhir/", bundles.upload(CHEN, 20))
    assert response.status_code == 413


def test_deeply_nested_resource_is_refused(client, demo):
    client.login(username="dr_tianhe", password="sgdemo2026")
    nested: dict = {"url": "x"}
    for _ in range(40):
        nested = {"extension": [nested], "url": "x"}
    body = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/1"},
        "extension": [nested],
    }
    response = client.post(
        "/fhir/Condition", json.dumps(body), content_type=FHIR, HTTP_X_CSRFTOKEN="x"
    )
    assert response.status_code in (400, 403)


def test_every_page_carries_the_total_including_pages_past_the_end(bridge_client, client):
    """The total comes with the page (one query) and stays exact on every page."""
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 5))
    chen = Patient.objects.get(resident_id=CHEN)
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_tianhe", password="sgdemo2026")
    base = f"/fhir/Observation?patient=Patient/{chen.pk}&code=http://loinc.org|85354-9"
    seen = []
    for offset, expected in ((0, 2), (2, 2), (4, 1), (5, 0), (50, 0)):
        body = client.get(f"{base}&_count=2&_offset={offset}").json()
        assert body["total"] == 5, offset
        matches = [e for e in body.get("entry", []) if e["search"]["mode"] == "match"]
        assert len(matches) == expected, offset
        seen += [e["resource"]["id"] for e in matches]
    assert len(set(seen)) == 5
    assert client.get(f"{base}&_count=0").json()["total"] == 5
    assert client.get(f"{base}&date=lt2000-01-01").json()["total"] == 0


@pytest.mark.parametrize("sort, first_minute", [("date", 0), ("-date", 4)])
def test_sorted_pages_carry_the_total_from_the_same_query(
    bridge_client, client, sort, first_minute
):
    """`_sort=date` groups by the vitals' time; the total riding on the page must still count
    resources, not groups, and the page costs one query on the resource table."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    post(bridge_client, "/fhir/", bundles.upload(CHEN, 5))
    chen = Patient.objects.get(resident_id=CHEN)
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_tianhe", password="sgdemo2026")
    url = f"/fhir/Observation?patient=Patient/{chen.pk}&code=http://loinc.org|85354-9"
    with CaptureQueriesContext(connection) as queries:
        body = client.get(f"{url}&_sort={sort}&_count=2").json()
    assert body["total"] == 5
    first = body["entry"][0]["resource"]["effectiveDateTime"]
    assert first == f"2026-11-25T08:{first_minute:02d}:00+08:00"
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "fhir_resource"' in q["sql"]]
    assert len(reads) == 1, reads


def test_doctor_searches_observations_by_patient_code_and_date(bridge_client, client):
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 5))
    chen = Patient.objects.get(resident_id=CHEN)
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_tianhe", password="sgdemo2026")
    r = client.get(
        f"/fhir/Observation?patient=Patient/{chen.pk}&code=http://loinc.org|85354-9&date=ge2026-11-25T08:02:00+08:00&_count=2"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["total"] == 3
    assert len([e for e in body["entry"] if e["search"]["mode"] == "match"]) == 2
    assert any(link["relation"] == "next" for link in body["link"])
    assert client.get("/fhir/Observation?date=lt2026-11-25&_summary=count").json()["total"] == 0
    assert client.get("/fhir/Observation?value-quantity=gt130&_summary=count").json()["total"] == 2
    # A patient's range given as two bounds (readings at 08:00 … 08:04, +08:00).
    ranged = f"/fhir/Observation?patient=Patient/{chen.pk}&_summary=count&date="
    for bounds, expected in (
        ("ge2026-11-25T08:01:00%2B08:00&date=lt2026-11-25T08:03:00%2B08:00", 2),
        ("gt2026-11-25T08:03:00%2B08:00&date=le2026-11-25T09:00:00%2B08:00", 1),
        ("ge2026-11-25T09:00:00%2B08:00&date=lt2026-11-26", 0),
        ("2026-11-25&date=ne2026-11-24", 5),
    ):
        assert client.get(ranged + bounds).json()["total"] == expected, bounds
    # The same with a typed reference, and malformed bounds are a 400, not a server error.
    typed = f"/fhir/Observation?patient:Patient={chen.pk}&date=ge2026-11-25&_summary=count"
    assert client.get(typed).json()["total"] == 5
    for bad in ("ge2026-13-45", "gefoo", "", "ge2026-11-25&date=lt%00"):
        r = client.get(f"/fhir/Observation?patient=Patient/{chen.pk}&date={bad}")
        assert r.status_code == 400, (bad, r.status_code)
        assert r.json()["resourceType"] == "OperationOutcome"


def test_doctor_of_another_hub_sees_nothing_and_ids_are_not_an_oracle(bridge_client, client):
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 2))
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_futian", password="sgdemo2026")
    chen = Patient.objects.get(resident_id=CHEN)
    assert client.get("/fhir/Observation?_summary=count").json()["total"] == 0
    assert client.get(f"/fhir/Patient/{chen.pk}").status_code == 404
    assert client.get("/fhir/Patient/999999").status_code == 404
    obs = Resource.objects.filter(resource_type="Observation").first()
    assert client.get(f"/fhir/Observation/{obs.logical_id}").status_code == 404


def test_every_read_is_audited(bridge_client, client):
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 1))
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_tianhe", password="sgdemo2026")
    chen = Patient.objects.get(resident_id=CHEN)
    before = AuditEvent.objects.filter(action="R").count()
    client.get(f"/fhir/Patient/{chen.pk}")
    event = AuditEvent.objects.filter(action="R").last()
    assert AuditEvent.objects.filter(action="R").count() == before + 1
    assert (event.agent_id, event.patient_id, event.channel) == ("dr_tianhe", chen.pk, "fhir")
    writes = AuditEvent.objects.filter(action="C", agent_type="bridge")
    assert writes.count() == 2  # one per patient compartment (Devices have none) per transaction


def test_patient_search_by_identifier_and_name(client, demo):
    client.login(username="dr_tianhe", password="sgdemo2026")
    body = client.get(f"/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.2|{CHEN}").json()
    assert body["total"] == 1
    patient = body["entry"][0]["resource"]
    assert patient["name"][0]["text"] == "陈美玲" and patient["birthDate"] == "1958-03-12"
    assert client.get("/fhir/Patient?name=美玲").json()["total"] == 1
    assert client.get("/fhir/Patient?birthdate=1958-03-12&gender=female").json()["total"] == 1
    # 李建国 belongs to Futian: invisible to a Tianhe doctor
    assert client.get(f"/fhir/Patient?identifier={LI}").json()["total"] == 0


def test_unknown_search_parameter_ignored_or_refused_per_prefer(client, demo):
    client.login(username="dr_tianhe", password="sgdemo2026")
    lenient = client.get("/fhir/Observation?bogus=1")
    assert lenient.status_code == 200
    assert lenient.json()["entry"][-1]["search"]["mode"] == "outcome"
    strict = client.get("/fhir/Observation?bogus=1", HTTP_PREFER="handling=strict")
    assert strict.status_code == 400


def test_read_vread_history_update_and_delete(bridge_client, client):
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 1))
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_tianhe", password="sgdemo2026")
    client.get("/hub/")  # sets the CSRF cookie
    obs = Resource.objects.filter(resource_type="Observation").get()
    body = client.get(f"/fhir/Observation/{obs.logical_id}").json()
    body["status"] = "amended"
    token = client.cookies["csrftoken"].value if "csrftoken" in client.cookies else ""
    r = client.put(
        f"/fhir/Observation/{obs.logical_id}",
        json.dumps(body),
        content_type=FHIR,
        HTTP_X_CSRFTOKEN=token,
        HTTP_IF_MATCH='W/"1"',
    )
    assert r.status_code == 200, r.content
    assert r.json()["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Observation/{obs.logical_id}/_history/1").json()["status"] == "final"
    assert client.get(f"/fhir/Observation/{obs.logical_id}/_history/2").json()["status"] == (
        "amended"
    )
    assert client.get(f"/fhir/Observation/{obs.logical_id}/_history/3").status_code == 404
    history = client.get(f"/fhir/Observation/{obs.logical_id}/_history").json()
    assert history["total"] == 2
    assert [
        (e["response"]["etag"], e["request"]["method"], e["resource"]["status"])
        for e in history["entry"]
    ] == [('W/"2"', "PUT", "amended"), ('W/"1"', "POST", "final")]
    # The current version is stored once, in the resource; the history holds what it replaced.
    assert list(obs.versions.values_list("version_id", flat=True)) == [1]
    stale = client.put(
        f"/fhir/Observation/{obs.logical_id}",
        json.dumps(body),
        content_type=FHIR,
        HTTP_X_CSRFTOKEN=token,
        HTTP_IF_MATCH='W/"1"',
    )
    assert stale.status_code == 412
    assert (
        client.delete(f"/fhir/Observation/{obs.logical_id}", HTTP_X_CSRFTOKEN=token).status_code
        == 204
    )
    assert client.get(f"/fhir/Observation/{obs.logical_id}").status_code == 410
    assert sorted(obs.versions.values_list("version_id", "method", "deleted")) == [
        (1, "POST", False),
        (2, "PUT", False),
    ]
    obs.refresh_from_db()
    assert (obs.version_id, obs.deleted, obs.method) == (3, True, "DELETE")


def test_an_upload_writes_no_history_rows(bridge_client):
    """Readings are created once and hardly ever changed: their only version is the current
    one, kept in the resource row, not a second copy of the same JSON."""
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 3))
    assert Resource.objects.filter(resource_type="Observation").count() == 3
    assert not ResourceVersion.objects.exists()


def test_session_write_without_csrf_is_refused(client, demo):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.login(username="dr_tianhe", password="sgdemo2026")
    body = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/1"},
        "code": {"text": "x"},
    }
    assert strict.post("/fhir/Condition", json.dumps(body), content_type=FHIR).status_code == 403


def test_metadata_lists_the_supported_types(client, db):
    body = client.get("/fhir/metadata").json()
    types = {r["type"] for r in body["rest"][0]["resource"]}
    assert {"Observation", "Patient", "Device", "Condition", "DocumentReference"} <= types
    assert body["fhirVersion"] == "4.3.0"


def test_everything_returns_the_patient_and_their_record(bridge_client, client):
    post(bridge_client, "/fhir/", bundles.upload(CHEN, 3))
    client.defaults.pop("HTTP_AUTHORIZATION", None)
    client.login(username="dr_tianhe", password="sgdemo2026")
    chen = Patient.objects.get(resident_id=CHEN)
    body = client.get(f"/fhir/Patient/{chen.pk}/$everything").json()
    types = [e["resource"]["resourceType"] for e in body["entry"]]
    assert types == ["Patient", "Observation", "Observation", "Observation"]
