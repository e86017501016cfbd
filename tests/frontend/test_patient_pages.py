"""Patient timeline, the patient's own page, chart data and care-plan editing."""

from __future__ import annotations

import json

import pytest

from clinic.models import CareThreshold, Patient
from fhir.models import AuditEvent
from tests.fhir import bundles
from tests.fhir.conftest import CHEN, LI

PASSWORD = "sgdemo2026"


@pytest.fixture
def chen(bridge_client):
    response = bridge_client.post(
        "/fhir/", json.dumps(bundles.upload(CHEN, 4)), content_type="application/fhir+json"
    )
    assert response.status_code == 200
    bridge_client.defaults.pop("HTTP_AUTHORIZATION", None)
    return Patient.objects.get(resident_id=CHEN)


def test_doctor_sees_timeline_with_latest_values_and_monitor(client, chen):
    client.login(username="dr_tianhe", password=PASSWORD)
    page = client.get(f"/patients/{chen.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "陈美玲" in html and "0011223344556677" in html
    assert "<strong>131</strong> mm[Hg]" in html  # the newest systolic of the upload (128 + 3)
    assert AuditEvent.objects.filter(channel="page", patient=chen, agent_id="dr_tianhe").exists()


def test_vitals_json_gives_series_in_order(client, chen):
    client.login(username="dr_tianhe", password=PASSWORD)
    data = client.get(f"/patients/{chen.pk}/vitals.json?from=2026-11-24&to=2026-11-26").json()
    assert [v for _, v in data["series"]["systolic_bp"]] == [128, 129, 130, 131]
    assert data["series"]["diastolic_bp"][0][1] == 82
    times = [t for t, _ in data["series"]["systolic_bp"]]
    assert times == sorted(times)


@pytest.mark.parametrize(
    "query", ["range=1y", "from=2026-11-26&to=2026-11-24", "from=nonsense&to=x"]
)
def test_vitals_json_refuses_bad_ranges(client, chen, query):
    client.login(username="dr_tianhe", password=PASSWORD)
    assert client.get(f"/patients/{chen.pk}/vitals.json?{query}").status_code == 400


@pytest.mark.parametrize("username", ["dr_futian", "clin_zsy", "lijianguo"])
def test_others_get_404_for_the_timeline_and_its_data(client, chen, username):
    client.login(username=username, password=PASSWORD)
    assert client.get(f"/patients/{chen.pk}/").status_code in (404, 302)
    assert client.get(f"/patients/{chen.pk}/vitals.json").status_code == 404


def test_anonymous_is_sent_to_login(client, chen):
    assert client.get(f"/patients/{chen.pk}/vitals.json").status_code == 302


def test_patient_sees_own_readings_only(client, chen):
    client.login(username="chenmeiling", password=PASSWORD)
    page = client.get("/me/")
    assert page.status_code == 200 and "<strong>131</strong>" in page.content.decode()
    assert client.get(f"/patients/{chen.pk}/vitals.json?range=30d").status_code == 200
    li = Patient.objects.get(resident_id=LI)
    assert client.get(f"/patients/{li.pk}/vitals.json").status_code == 404


def test_doctor_edits_thresholds_and_the_change_is_audited(client, chen):
    client.login(username="dr_tianhe", password=PASSWORD)
    response = client.post(
        f"/patients/{chen.pk}/thresholds",
        {"systolic_bp-low": "90", "systolic_bp-high": "140", "systolic_bp-critical_high": "180"},
    )
    assert response.status_code == 302
    row = CareThreshold.objects.get(care_plan__patient=chen, vital="systolic_bp")
    assert (row.low, row.high, row.critical_high) == (90, 140, 180)
    assert AuditEvent.objects.filter(
        action="U", patient=chen, detail__contains="thresholds"
    ).exists()


def test_inconsistent_thresholds_are_refused_and_nothing_changes(client, chen):
    client.login(username="dr_tianhe", password=PASSWORD)
    response = client.post(
        f"/patients/{chen.pk}/thresholds",
        {"systolic_bp-low": "150", "systolic_bp-high": "140", "spo2-low": "abc"},
    )
    assert response.status_code == 400
    assert "critical low ≤ low ≤ high ≤ critical high" in response.content.decode()
    assert not CareThreshold.objects.filter(
        care_plan__patient=chen, vital="systolic_bp", low=150
    ).exists()


def test_patient_cannot_edit_thresholds(client, chen):
    client.login(username="chenmeiling", password=PASSWORD)
    assert (
        client.post(f"/patients/{chen.pk}/thresholds", {"systolic_bp-high": "200"}).status_code
        == 403
    )


def test_timeline_shows_the_ecg_traces_and_upload_form(client, chen):
    from django.core.management import call_command
    from pydicom.data import get_testdata_file

    call_command(
        "import_dicom", get_testdata_file("waveform_ecg.dcm", download=False), "--patient", CHEN
    )
    client.login(username="dr_tianhe", password=PASSWORD)
    html = client.get(f"/patients/{chen.pk}/").content.decode()
    data = json.loads(
        html.split('<script id="ecg-data" type="application/json">')[1].split("</script>")[0]
    )
    assert len(data) == 1 and len(data[0]["leads"]) == 12
    assert 58 <= data[0]["heartRateBpm"] <= 64
    assert 'id="ecg-upload"' in html and "/fhir/ecg/" in html


def test_alert_history_and_chart_markers_show_the_patients_alerts(
    client, chen, bridge_token, django_capture_on_commit_callbacks
):
    body = bundles.upload(CHEN, 1, systolic=192, start_minute=90)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/fhir/",
            json.dumps(body),
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {bridge_token}",
        )
    assert response.status_code == 200
    client.login(username="dr_tianhe", password=PASSWORD)
    html = client.get(f"/patients/{chen.pk}/").content.decode()
    assert "Systolic BP 192" in html and "badge critical" in html
    markers = client.get(f"/patients/{chen.pk}/vitals.json?from=2026-11-24&to=2026-11-26").json()[
        "alerts"
    ]
    assert any(m["vital"] == "systolic_bp" and m["severity"] == "critical" for m in markers)
