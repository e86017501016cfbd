"""The Django admin shows patient data, so its pages are audited like every other page: an
administrator's look at a care message or a patient is on that patient's record; a user who is
not staff gets the admin login and leaves no trace of data seen."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from clinic.models import Patient
from community.models import CareMessage
from fhir.audit import verify_chain
from fhir.models import AuditEvent
from tests.conftest import CHEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def message(demo) -> CareMessage:
    doctor = get_user_model().objects.get(username="dr_tianhe")
    return CareMessage.objects.create(
        patient=Patient.objects.get(resident_id=CHEN), author=doctor, body="请明早复测血压"
    )


def _admin(client):
    client.force_login(get_user_model().objects.get(username="admin"))
    return client


def test_opening_a_care_message_in_the_admin_is_audited_on_the_patient(client, message):
    before = AuditEvent.objects.count()
    response = _admin(client).get(f"/admin/community/caremessage/{message.pk}/change/")
    assert response.status_code == 200
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.agent_id, event.patient_id, event.entity) == (
        "R",
        "admin",
        message.patient_id,
        f"admin:community.caremessage/{message.pk}",
    )
    assert verify_chain()[1] is None


def test_lists_saves_and_patients_are_audited(client, message):
    admin = _admin(client)
    assert admin.get("/admin/community/caremessage/").status_code == 200
    listed = AuditEvent.objects.order_by("-id").first()
    assert (listed.action, listed.patient_id, listed.entity) == (
        "R",
        None,
        "admin:community.caremessage",
    )
    chen = message.patient
    assert admin.get(f"/admin/clinic/patient/{chen.pk}/change/").status_code == 200
    assert AuditEvent.objects.order_by("-id").first().patient_id == chen.pk
    response = admin.post(
        f"/admin/community/caremessage/{message.pk}/change/",
        {"patient": chen.pk, "author": message.author_id, "body": "改为今晚复测", "alert": ""},
    )
    assert response.status_code == 302, response.content[:500]
    saved = AuditEvent.objects.order_by("-id").first()
    assert (saved.action, saved.patient_id) == ("U", chen.pk)


def test_a_doctor_in_the_admin_sees_nothing_and_leaves_no_data_access(client, message):
    client.force_login(get_user_model().objects.get(username="dr_tianhe"))
    before = AuditEvent.objects.count()
    response = client.get(f"/admin/community/caremessage/{message.pk}/change/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert "请明早复测血压" not in response.content.decode()
    assert AuditEvent.objects.count() == before


def test_an_unknown_object_id_is_not_an_audit_record(client, message):
    admin = _admin(client)
    before = AuditEvent.objects.count()
    response = admin.get("/admin/community/caremessage/999999/change/")
    assert response.status_code in (302, 404)
    assert AuditEvent.objects.count() == before


def test_a_stored_hl7_message_is_audited_on_its_patient(client, message):
    """Raw HL7 carries PID: reading it in the message store is a look at the patient."""
    from devices.models import Hl7Message

    row = Hl7Message.objects.create(
        direction="in", control_id="MSG-1", raw="MSH|^~\\&|X\rPID|||440106195803120021",
        status="stored", patient=message.patient,
    )  # fmt: skip
    assert _admin(client).get(f"/admin/devices/hl7message/{row.pk}/change/").status_code == 200
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.patient_id, event.entity) == (
        message.patient_id,
        f"admin:devices.hl7message/{row.pk}",
    )


def test_a_monitor_binding_in_the_admin_is_audited_on_its_patient(client, demo):
    from devices.models import Bridge, Monitor, MonitorBinding

    chen = Patient.objects.get(resident_id=CHEN)
    binding = MonitorBinding.objects.filter(patient=chen).first()
    if binding is None:
        bridge = Bridge.objects.create(name="陈美玲家")
        monitor = Monitor.objects.create(
            identifier="00AABBCCDDEEFF11", kind="blood_pressure", bridge=bridge
        )
        binding = MonitorBinding.objects.create(monitor=monitor, patient=chen)
    response = _admin(client).get(f"/admin/devices/monitorbinding/{binding.pk}/change/")
    assert response.status_code == 200
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.action, event.patient_id, event.entity) == (
        "R",
        chen.pk,
        f"admin:devices.monitorbinding/{binding.pk}",
    )


def test_the_delete_selected_action_leaves_a_record_per_row_on_its_patient(client, message):
    """The list's bulk action deletes without passing through the delete page."""
    doctor = get_user_model().objects.get(username="dr_tianhe")
    second = CareMessage.objects.create(patient=message.patient, author=doctor, body="按时服药")
    before = AuditEvent.objects.count()
    response = _admin(client).post(
        "/admin/community/caremessage/",
        {"action": "delete_selected", "_selected_action": [message.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not CareMessage.objects.filter(pk__in=[message.pk, second.pk]).exists()
    deletes = AuditEvent.objects.filter(action="D").order_by("id")
    assert sorted((e.patient_id, e.entity) for e in deletes) == sorted(
        (message.patient_id, f"admin:community.caremessage/{pk}") for pk in (message.pk, second.pk)
    )
    assert AuditEvent.objects.count() > before + 1
    assert verify_chain()[1] is None
