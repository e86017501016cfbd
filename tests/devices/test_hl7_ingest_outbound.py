"""HL7 v2 out: an alert for a hospital goes through Celery to a real MLLP endpoint, ACK kept."""

from __future__ import annotations

import socket
from datetime import date, datetime

import pytest

from clinic.models import Hospital, Patient, PatientIdentifier
from devices.hl7 import ack, outbound, pcd01
from devices.models import Hl7Message
from devices.tasks import MAX_DELIVERY_RETRIES, send_hl7_message
from tests.devices.hl7_listener import ThreadedServer

pytestmark = [pytest.mark.services, pytest.mark.django_db]

WHEN = datetime(2026, 3, 1, 8, 30, tzinfo=pcd01.LOCAL_ZONE)


class Hospital_:
    """The hospital's MLLP endpoint: keeps what it receives and answers with `code`."""

    def __init__(self, code: str = "AA") -> None:
        self.code = code
        self.received: list[bytes] = []

    async def __call__(self, raw: bytes) -> bytes:
        self.received.append(raw)
        header = ack.read_header(raw)
        if self.code == "AA":
            return ack.build_ack(header)
        from devices.hl7.errors import UnknownPatient

        return ack.build_ack(header, UnknownPatient("not ours"))


def free_port() -> int:
    """A port nobody listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hospital():
    return Hospital.objects.create(
        code="gdph",
        name="广东省人民医院",
        city="guangzhou",
        mllp_host="127.0.0.1",
        mllp_port=free_port(),
    )


@pytest.fixture
def patient(hospital):
    p = Patient.objects.create(
        name="陈美玲",
        family_name="陈",
        given_name="美玲",
        sex="female",
        birth_date=date(1958, 3, 12),
        city="guangzhou",
        resident_id="440106195803120021",
    )
    PatientIdentifier.objects.create(
        patient=p, system="urn:gdph:mrn", value="MRN-77", assigner=hospital
    )
    return p


def queue(hospital, patient) -> Hl7Message:
    return outbound.queue_alert_for_hospital(
        hospital_id=hospital.pk,
        alert_id=4242,
        patient_id=patient.pk,
        rule_text="收缩压 ≥ 180 mmHg",
        severity="high",
        values=[
            {"vital": "systolic_bp", "value": 186, "unit": "mm[Hg]", "observed_at": WHEN},
            {"mdc": 149546, "value": 112, "observed_at": WHEN.isoformat()},
        ],
        time=WHEN,
    )


def test_refused_then_accepted_delivery_keeps_the_ack(
    hospital, patient, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        message = queue(hospital, patient)
    assert len(queued) == 1 and message.status == "queued"

    with pytest.raises(outbound.DeliveryError):  # nobody listens yet: connection refused
        outbound.deliver(message.pk, timeout=2)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 1)
    assert "127.0.0.1" in message.error

    endpoint = Hospital_()
    server = ThreadedServer(endpoint, port=hospital.mllp_port)
    try:
        result = send_hl7_message.apply(args=[message.pk])
    finally:
        server.close()
    assert result.get() == "delivered"
    message.refresh_from_db()
    assert (message.status, message.ack_code, message.attempts) == ("delivered", "AA", 2)
    assert f"MSA|AA|{message.control_id}" in message.ack_raw

    (sent,) = endpoint.received
    text = sent.decode("utf-8")
    assert f"|{message.control_id}|" in text and "ORU^R01" in text
    assert "PID|||MRN-77^^^gdph^MR~440106195803120021^^^CN-RIC^NNCHN||陈^美玲" in text
    assert "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC^8480-6^^LN||186|mm[Hg]" in text
    assert "OBX|4|NM|149546^MDC_PULS_RATE_NON_INV^MDC^8867-4^^LN||112|/min" in text
    assert "收缩压 ≥ 180 mmHg" in text


@pytest.fixture
def eager_retries():
    """Let eager `apply` chain its retries as a worker would, instead of raising `Retry`."""
    conf = send_hl7_message.app.conf
    before = conf.task_eager_propagates
    conf.task_eager_propagates = False
    yield
    conf.task_eager_propagates = before


def test_unreachable_hospital_is_retried_then_failed(
    hospital, patient, eager_retries, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        message = queue(hospital, patient)
    # Eager apply runs the retries at once (no countdown): every attempt is refused.
    assert send_hl7_message.apply(args=[message.pk]).get() == "failed"
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", MAX_DELIVERY_RETRIES + 1)


def test_send_task_retry_policy() -> None:
    assert send_hl7_message.acks_late is True
    assert outbound.DeliveryError in send_hl7_message.autoretry_for
    assert send_hl7_message.retry_backoff and send_hl7_message.max_retries == MAX_DELIVERY_RETRIES


def test_hospital_ae_is_final_and_kept(hospital, patient, django_capture_on_commit_callbacks):
    endpoint = Hospital_("AE")
    server = ThreadedServer(endpoint, port=hospital.mllp_port)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            message = queue(hospital, patient)
    finally:
        server.close()
    message.refresh_from_db()
    assert (message.status, message.ack_code, message.attempts) == ("refused", "AE", 1)
    assert message.ack_text == "not ours"


def test_hospital_without_endpoint_is_held(patient, django_capture_on_commit_callbacks):
    plain = Hospital.objects.create(code="nomllp", name="No MLLP", city="foshan")
    with django_capture_on_commit_callbacks(execute=True) as queued:
        message = queue(plain, patient)
    assert message.status == "held" and not queued


def test_message_store_lists_and_admin_resend_delivers(
    hospital, patient, client, admin_user, django_capture_on_commit_callbacks
):
    # A password login: this project's session setup does not honour force_login here.
    assert client.login(username=admin_user.username, password="password")
    admin_client = client
    with django_capture_on_commit_callbacks(execute=False):
        message = queue(hospital, patient)
    outbound.mark_failed(message.pk)

    page = admin_client.get("/admin/devices/hl7message/?direction__exact=out")
    assert page.status_code == 200 and message.control_id in page.content.decode()
    detail = admin_client.get(f"/admin/devices/hl7message/{message.pk}/change/")
    assert detail.status_code == 200

    endpoint = Hospital_()
    server = ThreadedServer(endpoint, port=hospital.mllp_port)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/devices/hl7message/",
                {"action": "resend", "_selected_action": [message.pk]},
                follow=True,
            )
    finally:
        server.close()
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.ack_code) == ("delivered", "AA")
    assert len(endpoint.received) == 1
