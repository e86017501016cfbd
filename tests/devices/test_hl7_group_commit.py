"""Group commit of HL7 messages: several messages in one transaction, each ACKed on its own.

`receive_many` is what the listener's store threads run on the messages that queued up while
they were busy. Each message must get the ACK it would get alone, in order, and lose nothing to
a bad neighbour; the write itself is one transaction per group (one audit append per patient).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinic.models import Hospital, PatientIdentifier
from devices.hl7 import ack
from devices.models import Hl7Message
from fhir.hl7_ingest import StoreWorkers, make_handler, receive, receive_many
from fhir.models import AuditEvent, Resource, VitalSign
from tests.devices.hl7_listener import ThreadedServer, with_control_id
from tests.devices.test_hl7_ingest_listener import RESIDENT_ID, msa, patients, read, send

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
__all__ = ["patients"]  # the fixture, shared with the listener tests

CONTROL_CHARACTER_NOTE = (
    "\r".join(
        [
            "MSH|^~\\&|BEDSIDE^0123456789ABCDEF^EUI-64|GDPH|||20260301083000+0800||"
            "ORU^R01^ORU_R01|CTRL-1|P|2.6",
            f"PID|||{RESIDENT_ID}^^^CN-RIC^NNCHN||张^三",
            "OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20260301082955+0800",
            "OBX|1||528388^MDC_DEV_SPEC_PROFILE_PULS_OXIM^MDC|1|||||||X|||||||"
            "0123456789ABCDEF^EUI-64",
            "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|95|262688^MDC_DIM_PERCENT^MDC|||||F",
            "OBX|3|ST|NOTE^note^99GDPH|1.0.0.2|a\x01b||||||F",
        ]
    )
    + "\r"
).encode("utf-8")


def codes(replies: list[bytes]) -> list[tuple[str, str]]:
    parsed = [ack.parse_ack(r) for r in replies]
    return [(p.code, p.control_id) for p in parsed]


def test_a_group_stores_each_message_with_its_own_resources(patients) -> None:
    names = ["ipf_pcd01_bp_request", "ipf_continua_oximeter", "ipf_continua_glucose"]
    messages = [with_control_id(read(n), f"G-{i}") for i, n in enumerate(names)]
    messages.append(with_control_id(CONTROL_CHARACTER_NOTE.replace(b"|a\x01b|", b"|ok|"), "G-3"))

    replies = receive_many([(m, None) for m in messages])

    assert codes(replies) == [("AA", f"G-{i}") for i in range(4)]
    for i in range(4):
        row = Hl7Message.objects.get(control_id=f"G-{i}")
        assert (row.status, row.attempts, row.ack_code) == ("stored", 1, "AA")
        assert row.resources
        for reference in row.resources:
            body = Resource.objects.get(logical_id=reference.split("/")[1]).body
            assert f"G-{i}." in body["identifier"][0]["value"]  # its own, no neighbour's
    assert VitalSign.objects.get(vital="spo2", patient=patients["zhang"]).value == 95
    assert {v.vital for v in VitalSign.objects.filter(patient=patients["doe"])} >= {
        "systolic_bp",
        "spo2",
    }
    # One Bundle per sending application: AcmeInc's three messages (Doe, and their Devices,
    # which have no patient) and BEDSIDE's one (Zhang) give three audit records, not four
    # messages' worth (alone, each message writes one per patient and one for its Devices).
    assert AuditEvent.objects.filter(channel="hl7").count() == 3


def test_a_bad_message_gets_its_ae_and_its_neighbours_are_stored(patients) -> None:
    good = with_control_id(read("ipf_continua_oximeter"), "OK-1")
    unknown = with_control_id(
        read("ipf_pcd01_bp_request").replace(b"789567^^^", b"999999^^^"), "NOBODY"
    )
    bad_value = with_control_id(read("ipf_pcd01_bp_request").replace(b"|120|", b"|12O|"), "BAD")
    also_good = with_control_id(read("ipf_continua_thermometer_fahrenheit"), "OK-2")

    replies = receive_many([(m, None) for m in (good, unknown, bad_value, also_good, b"junk")])

    assert [c for c, _ in codes(replies)] == ["AA", "AE", "AE", "AA", "AR"]
    assert [cid for _, cid in codes(replies)[:4]] == ["OK-1", "NOBODY", "BAD", "OK-2"]
    assert Hl7Message.objects.get(control_id="NOBODY").status == "error"
    assert Hl7Message.objects.get(control_id="BAD").status == "error"
    assert set(VitalSign.objects.values_list("vital", flat=True)) == {"spo2", "temperature"}


def test_a_group_whose_write_fails_is_stored_one_message_at_a_time(patients) -> None:
    """The control character passes the mapper but not FHIR validation, inside the group's
    one Bundle: the group rolls back and each message is redone alone."""
    first = with_control_id(read("ipf_continua_oximeter"), "BEFORE")
    refused = with_control_id(CONTROL_CHARACTER_NOTE, "CTRL")
    last = with_control_id(read("ipf_continua_glucose"), "AFTER")

    replies = receive_many([(first, None), (refused, None), (last, None)])

    assert codes(replies) == [("AA", "BEFORE"), ("AE", "CTRL"), ("AA", "AFTER")]
    assert "U+0001" in Hl7Message.objects.get(control_id="CTRL").ack_text
    assert VitalSign.objects.filter(patient=patients["zhang"]).count() == 0
    assert set(VitalSign.objects.values_list("vital", flat=True)) == {"spo2", "glucose"}
    assert Hl7Message.objects.filter(status="stored").count() == 2


def test_repeats_in_a_group_are_acked_and_stored_once(patients) -> None:
    stored_before = with_control_id(read("ipf_continua_oximeter"), "SEEN")
    assert codes([receive(stored_before)]) == [("AA", "SEEN")]
    twice = with_control_id(read("ipf_continua_glucose"), "TWICE")
    new = with_control_id(read("ipf_continua_thermometer_fahrenheit"), "NEW")

    replies = receive_many([(stored_before, None), (twice, None), (new, None), (twice, None)])

    assert codes(replies) == [("AA", "SEEN"), ("AA", "TWICE"), ("AA", "NEW"), ("AA", "TWICE")]
    assert Hl7Message.objects.get(control_id="SEEN").attempts == 2
    assert Hl7Message.objects.get(control_id="TWICE").attempts == 2
    assert VitalSign.objects.filter(vital="spo2").count() == 1
    assert VitalSign.objects.filter(vital="glucose").count() == 1


def test_a_message_refused_before_is_stored_in_a_group_on_its_row(patients) -> None:
    late = with_control_id(read("ipf_pcd01_bp_request").replace(b"789567", b"424242"), "LATE")
    assert codes([receive(late)])[0][0] == "AE"
    PatientIdentifier.objects.create(
        patient=patients["doe"],
        system="urn:sg:mrn:imaginary",
        value="424242",
        assigner=Hospital.objects.get(code="imaginary"),
    )
    other = with_control_id(read("ipf_continua_oximeter"), "OTHER")

    assert codes(receive_many([(late, None), (other, None)])) == [("AA", "LATE"), ("AA", "OTHER")]

    row = Hl7Message.objects.get(control_id="LATE")
    assert (row.status, row.attempts, row.ack_code, row.error) == ("stored", 2, "AA", "")
    assert Hl7Message.objects.filter(control_id="LATE").count() == 1


def test_a_group_looks_up_each_patient_and_the_hospitals_once(patients) -> None:
    def lookups(messages: list[bytes]) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert {c for c, _ in codes(receive_many([(m, None) for m in messages]))} == {"AA"}
        return sum(
            'FROM "clinic_patientidentifier"' in q["sql"] or 'FROM "clinic_hospital"' in q["sql"]
            for q in queries.captured_queries
        )

    oximeter = read("ipf_continua_oximeter")
    two = lookups([with_control_id(oximeter, f"ONCE-{i}") for i in range(2)])
    eight = lookups([with_control_id(oximeter, f"ONCE-{i}") for i in range(2, 10)])
    assert two == eight > 0


def test_the_listener_groups_messages_that_wait_for_a_busy_store(patients) -> None:
    """One store thread and 12 connections sending at once: messages queue while the thread is
    busy and go in together — fewer audit appends (one per transaction) than messages."""
    workers = StoreWorkers(1)
    server = ThreadedServer(make_handler(workers, concurrency=1))
    connections, per_connection = 12, 3
    results: dict[int, list[tuple[str, str]]] = {}

    def run(c: int) -> None:
        messages = [
            with_control_id(read("ipf_continua_oximeter"), f"W{c}-{i}")
            for i in range(per_connection)
        ]
        results[c] = [msa(r) for r in send(server.port, *messages)]

    try:
        threads = [threading.Thread(target=run, args=(c,)) for c in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        server.close()
        workers.close()
    for c in range(connections):
        assert results[c] == [("AA", f"W{c}-{i}") for i in range(per_connection)]
    total = connections * per_connection
    assert VitalSign.objects.filter(vital="spo2").count() == total
    assert Hl7Message.objects.filter(status="stored").count() == total
    assert AuditEvent.objects.filter(channel="hl7").count() < total


MESSAGE = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(
        ["ipf_continua_oximeter", "ipf_pcd01_bp_request", "ipf_continua_glucose_INVALID_obx2_empty"]
    ).map(read),
    st.just(CONTROL_CHARACTER_NOTE),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(group=st.lists(st.tuples(MESSAGE, st.sampled_from(["A", "B", "C", "D"])), max_size=6))
def test_any_group_gets_the_acks_its_messages_get_alone(patients, group) -> None:
    """Whatever the mix (garbage, refusals, repeats), one ACK per message, in order, and
    the codes a message gets alone: grouping changes the cost, never the answer."""
    messages = [
        with_control_id(raw, cid) if raw.partition(b"\r")[0].count(b"|") >= 9 else raw
        for raw, cid in group
    ]
    replies = receive_many([(m, None) for m in messages])
    assert len(replies) == len(messages)
    for message, reply in zip(messages, replies, strict=True):
        alone = ack.parse_ack(receive(message))  # a resend: stored ones answer AA again
        got = ack.parse_ack(reply)
        assert got is not None and alone is not None
        assert (got.code, got.control_id) == (alone.code, alone.control_id)
