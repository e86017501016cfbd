"""Messages from the care team: written on the timeline by the patient's hub doctors, read on /me/."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from clinic.models import Hospital, Patient, Referral
from community.models import CareMessage
from fhir.models import AuditEvent
from tests.conftest import CHEN, LI

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def chen(demo) -> Patient:
    return Patient.objects.get(resident_id=CHEN)


@pytest.fixture
def login(client):
    def _login(username: str):
        client.force_login(get_user_model().objects.get(username=username))
        return client

    return _login


def _send(client, patient: Patient, body: str, **extra):
    return client.post(f"/patients/{patient.pk}/messages/", {"body": body, **extra})


def test_hub_doctor_sends_and_the_patient_reads_it_once(login, chen):
    doctor = login("dr_tianhe")
    response = _send(doctor, chen, "Please measure your blood pressure twice today.\r\nThanks.")
    assert response.status_code == 302
    assert response["Location"] == f"/patients/{chen.pk}/#messages-title"
    message = CareMessage.objects.get(patient=chen)
    assert message.author.username == "dr_tianhe" and message.read_at is None
    assert message.body == "Please measure your blood pressure twice today.\nThanks."
    assert AuditEvent.objects.filter(
        action="C",
        channel="page",
        patient=chen,
        agent_id="dr_tianhe",
        entity=f"CareMessage/{message.pk}",
    ).exists()
    timeline = doctor.get(f"/patients/{chen.pk}/").content.decode()
    assert "Please measure your blood pressure twice today." in timeline
    assert "王志强" in timeline and "not read yet" in timeline

    patient = login("chenmeiling")
    first = patient.get("/me/").content.decode()
    assert "Messages from your care team" in first
    assert "Please measure your blood pressure twice today.<br>Thanks." in first
    assert "王志强" in first and 'class="unread"' in first and ">New</span>" in first
    message.refresh_from_db()
    assert message.read_at is not None
    assert AuditEvent.objects.filter(
        action="U", patient=chen, agent_id="chenmeiling", entity="CareMessage"
    ).exists()
    second = patient.get("/me/").content.decode()
    assert "Please measure your blood pressure twice today." in second
    assert 'class="unread"' not in second


def test_messages_are_newest_first_and_may_name_an_alert_of_the_patient(login, chen):
    from community.models import Alert

    alert = Alert.objects.create(
        patient=chen, rule="threshold:systolic_bp", severity="critical", message="Systolic BP 192"
    )
    doctor = login("dr_tianhe")
    assert _send(doctor, chen, "first").status_code == 302
    assert _send(doctor, chen, "second", alert=str(alert.pk)).status_code == 302
    assert CareMessage.objects.get(body="second").alert == alert
    html = login("chenmeiling").get("/me/").content.decode()
    assert html.index("second") < html.index("first")
    assert "About: Systolic BP 192" in html


def test_an_alert_of_another_patient_is_refused(login, chen):
    from community.models import Alert

    li = Patient.objects.get(resident_id=LI)
    alert = Alert.objects.create(patient=li, rule="news2", severity="warning", message="NEWS2 5")
    response = _send(login("dr_tianhe"), chen, "hello", alert=str(alert.pk))
    assert response.status_code == 400
    assert not CareMessage.objects.exists()


def test_doctor_of_another_hub_cannot_send(login, chen):
    # Like every page of a patient the user may not read: 404, "unknown" and "not yours" alike.
    assert _send(login("dr_futian"), chen, "hello").status_code == 404
    assert not CareMessage.objects.exists()


def test_patient_cannot_send_even_to_themself(login, chen):
    assert _send(login("chenmeiling"), chen, "hello").status_code == 403
    assert not CareMessage.objects.exists()


def test_referred_hospital_clinician_reads_but_may_not_send(login, chen):
    """The rule is the care plan's: a referral lets a hospital read, not write to the patient."""
    Referral.objects.create(
        patient=chen, hospital=Hospital.objects.get(code="zsy"), reason="SBP 195"
    )
    clinician = login("clin_zsy")
    assert clinician.get(f"/patients/{chen.pk}/").status_code == 200
    assert _send(clinician, chen, "hello").status_code == 403
    assert not CareMessage.objects.exists()


def test_another_patient_does_not_see_it(login, chen):
    assert _send(login("dr_tianhe"), chen, "for 陈美玲 only").status_code == 302
    html = login("lijianguo").get("/me/").content.decode()
    assert "for 陈美玲 only" not in html and "No messages from your care team yet." in html
    assert CareMessage.objects.get().read_at is None


def test_anonymous_is_sent_to_login(client, chen):
    response = _send(client, chen, "hello")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not CareMessage.objects.exists()


def test_sending_needs_post(login, chen):
    assert login("dr_tianhe").get(f"/patients/{chen.pk}/messages/").status_code == 405


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("", "Write a message before sending it."),
        ("   \r\n  ", "Write a message before sending it."),
        ("x" * 2001, "at most 2000 characters long (this one has 2001)"),
    ],
)
def test_empty_and_oversized_bodies_are_refused(login, chen, body, error):
    response = _send(login("dr_tianhe"), chen, body)
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html and 'role="alert"' in html
    assert not CareMessage.objects.exists()
    assert not AuditEvent.objects.filter(action="C", patient=chen).exists()


def test_2000_characters_with_line_breaks_fit(login, chen):
    body = ("x" * 99 + "\r\n") * 20  # 2000 characters once line breaks are one character each
    assert _send(login("dr_tianhe"), chen, body).status_code == 302
    assert len(CareMessage.objects.get().body) == 1999  # the trailing line break is stripped


def test_hostile_body_is_escaped_on_both_pages(login, chen):
    assert _send(login("dr_tianhe"), chen, HOSTILE).status_code == 302
    assert CareMessage.objects.get().body == HOSTILE
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    for username, path in (("dr_tianhe", f"/patients/{chen.pk}/"), ("chenmeiling", "/me/")):
        html = login(username).get(path).content.decode()
        assert escaped in html, username
        assert "<script>alert" not in html and "<img src=x" not in html, username


def test_an_oversized_hostile_body_is_escaped_when_the_form_is_shown_again(login, chen):
    response = _send(login("dr_tianhe"), chen, HOSTILE + "x" * 2000)
    assert response.status_code == 400
    html = response.content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)" in html and "<script>alert" not in html


def test_the_page_is_translated(login, chen):
    assert _send(login("dr_tianhe"), chen, "你好").status_code == 302
    html = login("chenmeiling").get("/me/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "来自医护团队的消息" in html


def test_the_form_states_the_models_limit_in_both_languages(login, chen):
    """The textarea's maxlength and the help text come from the model's one limit."""
    from django.utils import translation

    doctor = login("dr_tianhe")
    page = doctor.get(f"/patients/{chen.pk}/").content.decode()
    limit = CareMessage.MAX_LENGTH
    assert f'maxlength="{limit}"' in page
    assert f"At most {limit} characters." in page
    with translation.override("zh-hans"):
        zh = doctor.get(f"/patients/{chen.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f"最多 {limit} 个字符" in zh
