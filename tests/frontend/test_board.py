"""The hub board, the hospital inbox and the alert actions they post (Django test client)."""

from __future__ import annotations

import json

import pytest

from clinic.models import Patient
from community.models import Alert
from fhir.models import AuditEvent
from tests.conftest import CHEN
from tests.fhir import bundles

PASSWORD = "sgdemo2026"


@pytest.fixture
def alert(client, bridge_token, django_capture_on_commit_callbacks) -> Alert:
    """A critical systolic alert for 陈美玲 raised by a real upload (eager Celery)."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/fhir/",
            json.dumps(bundles.upload(CHEN, 1, systolic=195)),
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {bridge_token}",
        )
    assert response.status_code == 200
    return Alert.objects.get(patient__resident_id=CHEN, rule="threshold:systolic_bp")


def initial(response) -> list[dict]:
    html = response.content.decode()
    return json.loads(
        html.split('<script id="initial-alerts" type="application/json">')[1].split("</script>")[0]
    )


def test_board_lists_the_hubs_alerts_and_audits_each_patient(client, alert):
    client.login(username="dr_tianhe", password=PASSWORD)
    response = client.get("/hub/")
    assert response.status_code == 200
    assert [a["id"] for a in initial(response)] == [alert.pk]
    assert 'data-socket="/ws/hub/hub-tianhe/"' in response.content.decode()
    assert AuditEvent.objects.filter(
        channel="page", patient_id=alert.patient_id, purpose="triage board"
    ).exists()


def test_board_filters(client, alert):
    client.login(username="dr_tianhe", password=PASSWORD)
    assert initial(client.get("/hub/?severity=warning")) == []
    assert len(initial(client.get("/hub/?severity=critical&rule=threshold:"))) == 1


def test_another_hubs_doctor_sees_nothing_and_cannot_act(client, alert):
    client.login(username="dr_futian", password=PASSWORD)
    assert initial(client.get("/hub/")) == []
    response = client.post(f"/alerts/{alert.pk}/acknowledge")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    alert.refresh_from_db()
    assert alert.status == "open"


@pytest.mark.parametrize("username", ["chenmeiling", "clin_zsy"])
def test_board_is_for_community_doctors(client, alert, username):
    client.login(username=username, password=PASSWORD)
    assert client.get("/hub/").status_code == 403


def test_acknowledge_then_escalate_reaches_the_hospital_inbox(client, alert):
    client.login(username="dr_tianhe", password=PASSWORD)
    ack = client.post(f"/alerts/{alert.pk}/acknowledge").json()
    assert (ack["alert"]["status"], ack["alert"]["acknowledged_by"]) == ("acknowledged", "王志强")
    assert (
        client.post(f"/alerts/{alert.pk}/escalate", {"reason": ""}).status_code == 400
    )  # a reason is required
    escalated = client.post(f"/alerts/{alert.pk}/escalate", {"reason": "SBP 195"}).json()
    assert (
        escalated["alert"]["status"] == "escalated" and escalated["alert"]["escalated_to"] == "zsy"
    )
    client.logout()
    client.login(username="clin_zsy", password=PASSWORD)
    assert [a["id"] for a in initial(client.get("/hospital/"))] == [alert.pk]
    chen = Patient.objects.get(resident_id=CHEN)
    assert client.get(f"/patients/{chen.pk}/").status_code == 200  # the referral opens the record
    client.logout()
    client.login(username="clin_szph", password=PASSWORD)
    assert initial(client.get("/hospital/")) == []
    assert client.get(f"/patients/{chen.pk}/").status_code == 404


@pytest.mark.parametrize(
    "action, data, status",
    [
        ("resolve", {}, 400),
        ("dismiss", {"note": ""}, 400),
        ("snooze", {"hours": "500", "reason": "x"}, 400),
        ("assign", {"assignee": "999999"}, 400),
        ("explode", {}, 404),
    ],
)
def test_bad_actions_get_clear_errors_and_change_nothing(client, alert, action, data, status):
    client.login(username="dr_tianhe", password=PASSWORD)
    response = client.post(f"/alerts/{alert.pk}/{action}", data)
    assert response.status_code == status
    alert.refresh_from_db()
    assert alert.status == "open"


def test_resolve_with_note_closes_the_alert(client, alert):
    client.login(username="dr_tianhe", password=PASSWORD)
    body = client.post(f"/alerts/{alert.pk}/resolve", {"note": "rechecked 138/86"}).json()
    assert body["alert"]["status"] == "resolved"
    assert initial(client.get("/hub/")) == []


@pytest.fixture
def escalated(client, alert) -> Alert:
    client.login(username="dr_tianhe", password=PASSWORD)
    client.post(f"/alerts/{alert.pk}/acknowledge")
    assert client.post(f"/alerts/{alert.pk}/escalate", {"reason": "SBP 195"}).status_code == 200
    client.logout()
    client.login(username="clin_zsy", password=PASSWORD)
    return alert


def test_hospital_accepts_asks_and_hands_back(client, escalated):
    from clinic.models import Referral

    accepted = client.post(f"/alerts/{escalated.pk}/accept").json()["alert"]
    assert accepted["assigned_to"] == "林国栋"
    assert Referral.objects.get(alert_id=escalated.pk).status == "accepted"
    asked = client.post(
        f"/alerts/{escalated.pk}/request_info", {"note": "请提供近三天血压记录"}
    ).json()["alert"]
    assert asked["last_action"]["note"] == "请提供近三天血压记录"
    assert client.post(f"/alerts/{escalated.pk}/hand_back", {"note": ""}).status_code == 400
    back = client.post(
        f"/alerts/{escalated.pk}/hand_back", {"note": "stable, manage at home"}
    ).json()["alert"]
    assert (back["status"], back["escalated_to"]) == ("acknowledged", None)
    assert Referral.objects.get(alert_id=escalated.pk).status == "handed_back"
    assert initial(client.get("/hospital/")) == []
    assert (
        client.get(f"/patients/{escalated.patient_id}/").status_code == 404
    )  # access ended with the referral
    assert client.post(f"/alerts/{escalated.pk}/accept").status_code == 404  # no longer theirs


def test_hub_doctor_cannot_use_hospital_actions(client, escalated):
    client.logout()
    client.login(username="dr_tianhe", password=PASSWORD)
    assert client.post(f"/alerts/{escalated.pk}/accept").status_code == 400
    assert client.post(f"/alerts/{escalated.pk}/hand_back", {"note": "x"}).status_code == 400
