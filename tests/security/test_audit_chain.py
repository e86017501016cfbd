"""A scripted day of the shared record leaves a complete, verified audit chain; editing one
record with raw SQL is found by `manage.py verify_audit`, naming that record."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from fhir.models import AuditEvent
from tests.fhir import bundles
from tests.security.conftest import FHIR, register, token_for


def _scenario(client, world):
    """Bridge upload, doctor reads, hospital system search, break-the-glass, consent change,
    patient reading their own access log."""
    from clinic.access import actor_for_user
    from clinic.consent import do_break_glass, do_record_consent
    from devices.models import Bridge

    bridge = Bridge(name="陈美玲家")
    token = bridge.issue_token()
    bridge.save()
    bridge.patients.set([world.chen])
    client.post(
        "/fhir/",
        json.dumps(bundles.upload(world.chen.resident_id, 2)),
        content_type=FHIR,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    client.force_login(world.users["dr_tianhe"])
    client.get(f"/fhir/Patient/{world.chen.pk}")
    client.get(f"/patients/{world.chen.pk}/")
    client.logout()
    key = register(world.zsy, "system/*.rs")
    system = token_for(client, key, "system/*.rs")
    client.get("/fhir/Observation", HTTP_AUTHORIZATION=f"Bearer {system}")
    clinician = actor_for_user(world.users["clin_szph"])
    do_break_glass(clinician, world.li, "unconscious at the ED, no family reachable")
    client.force_login(world.users["clin_szph"])
    client.get(f"/fhir/Patient/{world.li.pk}")
    client.logout()
    do_record_consent(actor_for_user(world.users["lijianguo"]), world.li, "given")
    client.force_login(world.users["lijianguo"])
    assert client.get("/access-log/").status_code == 200
    client.logout()


def test_scripted_scenario_leaves_a_complete_verified_chain(client, world):
    before = AuditEvent.objects.count()
    _scenario(client, world)
    events = list(AuditEvent.objects.order_by("id")[before:])
    seen = {(e.agent_id, e.action, e.channel, e.patient_id) for e in events}
    assert any(a.startswith("bridge/") and c == "fhir" and x == "C" for a, x, c, _ in seen)
    assert ("dr_tianhe", "R", "fhir", world.chen.pk) in seen
    assert ("dr_tianhe", "R", "page", world.chen.pk) in seen
    assert any(a.startswith("client/") and p == world.chen.pk for a, _x, _c, p in seen)
    glass = [e for e in events if e.agent_id == "clin_szph"]
    assert [e.action for e in glass] == ["E", "R"]
    assert all(e.purpose.startswith("BTG") for e in glass)
    assert "unconscious" in glass[1].purpose  # the patient sees why
    assert any(e.entity.startswith("Consent/") and e.agent_id == "lijianguo" for e in events)
    purposes = {e.agent_id: e.purpose for e in events if e.action == "R" and e.channel == "fhir"}
    assert purposes["dr_tianhe"] == "TREAT"

    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert f"{AuditEvent.objects.count()} records verified" in out.getvalue()

    page = client
    page.force_login(world.users["lijianguo"])
    html = page.get("/access-log/").content.decode()
    assert "unconscious at the ED" in html and "郭涛" in html


@pytest.mark.parametrize("column,value", [("agent_id", "nobody"), ("purpose", "tampered")])
def test_tampering_with_one_record_is_detected(client, world, column, value):
    _scenario(client, world)
    victim = AuditEvent.objects.order_by("id")[3]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET {column} = %s WHERE id = %s",
            [value, victim.pk],
        )
    with pytest.raises(CommandError, match=f"AuditEvent {victim.pk} "):
        call_command("verify_audit")


def test_deleting_a_record_is_detected(client, world):
    _scenario(client, world)
    ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [ids[2]])
    with pytest.raises(CommandError, match=f"AuditEvent {ids[3]} "):
        call_command("verify_audit")


def test_verify_audit_exits_non_zero_from_the_shell(client, world, tmp_path):
    """The command's exit status, as an operator's cron job would see it."""
    _scenario(client, world)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET detail = 'x' WHERE id = %s",
            [AuditEvent.objects.order_by("id").values_list("id", flat=True)[1]],
        )
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["manage.py", "verify_audit"])
    with pytest.raises(SystemExit) as exc:
        utility.execute()
    assert exc.value.code == 1


def test_a_household_upload_for_two_patients_audits_each_in_one_verified_chain(client, world):
    """One transaction writing two records appends one audit record per patient, chained."""
    from devices.models import Bridge
    from fhir.audit import verify_chain

    bridge = Bridge(name="陈李两家")
    token = bridge.issue_token()
    bridge.save()
    bridge.patients.set([world.chen, world.li])
    upload = bundles.upload(world.chen.resident_id, 2, day="2026-10-01")
    other = bundles.upload(world.li.resident_id, 3, eui="8899AABBCCDDEEFF", day="2026-10-01")
    upload["entry"] += other["entry"]
    before = AuditEvent.objects.order_by("-id").first()
    response = client.post(
        "/fhir/", json.dumps(upload), content_type=FHIR, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200, response.content[:300]
    events = list(AuditEvent.objects.filter(id__gt=before.pk if before else 0).order_by("id"))
    written = {e.patient_id: e.detail for e in events if e.action == "C"}
    assert written == {
        None: "transaction wrote 2 resources",  # the two monitors' Device resources
        world.chen.pk: "transaction wrote 2 resources",
        world.li.pk: "transaction wrote 3 resources",
    }
    assert all(e.agent_id == f"bridge/{bridge.pk}" for e in events if e.action == "C")
    # Each record carries the hash of the one before it, also inside one append.
    assert all(b.previous_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert verify_chain()[1] is None
