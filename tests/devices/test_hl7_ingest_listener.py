"""HL7 v2 in, end to end: python-hl7's MLLP client → our listener → PostgreSQL → ACK.

The listener runs in-process on port 0 with the real storage (`fhir.hl7_ingest`), its own
threads and database connections, so these tests use committed transactions.
"""

from __future__ import annotations

import threading
from datetime import date, datetime

import hl7
import pytest
from hl7.client import MLLPClient

from clinic.models import Hospital, Patient, PatientIdentifier
from devices.models import Hl7Message
from fhir.hl7_ingest import StoreWorkers, make_handler
from fhir.models import Resource, VitalSign
from tests.devices.hl7_listener import DATA, ThreadedServer, with_control_id

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ORU_FILES = [
    "ipf_pcd01_bp_request",
    "ipf_continua_bp_timesync",
    "hapi_pcd01_bp_withdrawn_datatype",
    "ipf_continua_glucose",
    "ipf_continua_glucose_INVALID_obx2_empty",
    "ipf_continua_oximeter",
    "ipf_continua_scale_two_obr",
    "ipf_continua_thermometer_fahrenheit",
    "ipf_pcd01_maximum_request_edgecases",
    "ipf_pcd01_multiparam_monitor_gateway",
    "pythonhl7_sample_oru_glucose_lab",
]
# vitals rows each reference message must leave (vital → canonical value)
EXPECTED_VITALS = {
    "ipf_pcd01_bp_request": {"systolic_bp": 120, "diastolic_bp": 80, "mean_bp": 100},
    "ipf_continua_glucose": {"glucose": 2.081},
    "ipf_continua_oximeter": {"spo2": 80.5},
    "ipf_continua_thermometer_fahrenheit": {"temperature": 37.0},
    "ipf_pcd01_multiparam_monitor_gateway": {"heart_rate": 60},
}
RESIDENT_ID = "440106195803120021"


def read(name: str) -> bytes:
    return (DATA / f"{name}.hl7").read_bytes()


@pytest.fixture
def patients():
    """Patients for the PID-3s of the reference messages, registered as hospital numbers."""
    imaginary = Hospital.objects.create(
        code="imaginary", name="Imaginary Hospital", city="guangzhou", is_pilot=True
    )
    gateway_hospital = Hospital.objects.create(code="a", name="A", city="shenzhen")
    lab = Hospital.objects.create(
        code="ghh", name="GHH", city="foshan", identifiers=[{"system": "urn:x", "value": "ELAB-3"}]
    )

    def patient(name: str, **kw) -> Patient:
        return Patient.objects.create(
            name=name, sex="male", birth_date=date(1958, 3, 12), city="guangzhou", **kw
        )

    doe = patient("John Doe")
    for value, hospital in (("789567", imaginary), ("1", imaginary), ("111222333444", imaginary)):
        PatientIdentifier.objects.create(
            patient=doe, system="urn:sg:mrn:imaginary", value=value, assigner=hospital
        )
    brooks = patient("Albert Brooks")
    PatientIdentifier.objects.create(
        patient=brooks, system="urn:sg:mrn:a", value="AB60001", assigner=gateway_hospital
    )
    eve = patient("Eve Everywoman")
    PatientIdentifier.objects.create(
        patient=eve, system="urn:sg:mrn:ghh", value="555-44-4444", assigner=lab
    )
    zhang = Patient.objects.create(
        name="张三",
        sex="female",
        birth_date=date(1958, 3, 12),
        city="guangzhou",
        resident_id=RESIDENT_ID,
    )
    return {"doe": doe, "brooks": brooks, "eve": eve, "zhang": zhang}


@pytest.fixture
def listener():
    workers = StoreWorkers(8)
    server = ThreadedServer(make_handler(workers))
    try:
        yield server
    finally:
        server.close()
        workers.close()


def send(port: int, *messages: bytes, encoding: str = "latin-1") -> list[hl7.Message]:
    """Send over one connection with python-hl7's blocking MLLP client; parse each ACK."""
    replies = []
    with MLLPClient("127.0.0.1", port, encoding=encoding) as client:
        for message in messages:
            framed = client.send_message(message)
            replies.append(hl7.parse(framed.strip(b"\x0b\x1c\r").decode(encoding)))
    return replies


def msa(reply: hl7.Message) -> tuple[str, str]:
    segment = reply.segment("MSA")
    return str(segment[1]), str(segment[2])


def err(reply: hl7.Message) -> tuple[str, str, str]:
    """(ERR-2 location, ERR-3 code, ERR-8 text)."""
    segment = reply.segment("ERR")
    return str(segment[2]), str(segment[3][0][0]), str(segment[8])


def test_reference_messages_are_stored_before_their_aa(listener, patients) -> None:
    for n, name in enumerate(ORU_FILES):
        control_id = f"REF-{n}"
        (reply,) = send(listener.port, with_control_id(read(name), control_id))
        assert msa(reply) == ("AA", control_id), name
        # The ACK is out: the data must already be committed and visible to another connection.
        message = Hl7Message.objects.get(direction="in", control_id=control_id)
        assert message.status == "stored" and message.ack_code == "AA"
        assert message.resources, name
        stored = Resource.objects.filter(
            logical_id__in=[r.split("/")[1] for r in message.resources]
        )
        assert stored.count() == len(message.resources)
        rows = {
            v.vital: v.value for v in VitalSign.objects.filter(observation__in=stored, source="hl7")
        }
        for vital, value in EXPECTED_VITALS.get(name, {}).items():
            assert rows[vital] == pytest.approx(value, abs=0.001), (name, vital)


def test_fhir_read_back_matches_the_message(listener, patients, client, admin_user) -> None:
    assert client.login(username=admin_user.username, password="password")
    admin_client = client
    (reply,) = send(listener.port, with_control_id(read("ipf_pcd01_bp_request"), "READ-1"))
    assert msa(reply) == ("AA", "READ-1")
    doe = patients["doe"]
    bundle = admin_client.get(f"/fhir/Observation?patient=Patient/{doe.pk}").json()
    (panel,) = [e["resource"] for e in bundle["entry"]]
    assert panel["code"]["coding"][:2] == [
        {
            "system": "urn:iso:std:iso:11073:10101",
            "code": "150020",
            "display": "MDC_PRESS_BLD_NONINV",
        },
        {
            "system": "http://loinc.org",
            "code": "85354-9",
            "display": "Blood pressure panel with all children optional",
        },
    ]
    assert panel["subject"]["reference"] == f"Patient/{doe.pk}"
    assert panel["status"] == "preliminary"  # OBX-11 R
    assert datetime.fromisoformat(panel["effectiveDateTime"]) == datetime.fromisoformat(
        "2009-08-13T09:57:15+05:00"
    )
    assert panel["identifier"] == [{"system": "urn:sg:hl7-obx", "value": "AcmeInc.READ-1.2"}]
    values = {
        c["code"]["coding"][1]["code"]: (c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in panel["component"]
    }
    assert values == {
        "8480-6": (120, "mm[Hg]"),
        "8462-4": (80, "mm[Hg]"),
        "8478-0": (100, "mm[Hg]"),
    }
    device = admin_client.get(f"/fhir/{panel['device']['reference']}").json()
    assert device["identifier"][0]["value"] == "0123456789ABCDEF"
    assert device["type"]["coding"][0]["code"] == "528391"


def test_replayed_message_stores_nothing_new_and_is_acked_again(listener, patients) -> None:
    message = with_control_id(read("ipf_continua_scale_two_obr"), "REPLAY-1")
    first, second = send(listener.port, message, message)
    (third,) = send(listener.port, message)  # and again on a new connection
    assert msa(first) == msa(second) == msa(third) == ("AA", "REPLAY-1")
    assert Resource.objects.filter(resource_type="Observation").count() == 6
    assert VitalSign.objects.count() == 6
    row = Hl7Message.objects.get(control_id="REPLAY-1")
    assert row.attempts == 3


def test_unknown_patient_is_ae_naming_pid_3(listener, patients) -> None:
    message = read("ipf_pcd01_bp_request").replace(b"789567^^^", b"999999^^^")
    (reply,) = send(listener.port, with_control_id(message, "NOBODY-1"))
    assert msa(reply) == ("AE", "NOBODY-1")
    location, code, text = err(reply)
    assert (location, code) == ("PID^1^3", "204")
    assert "999999" in text
    row = Hl7Message.objects.get(control_id="NOBODY-1")
    assert (row.status, row.ack_code) == ("error", "AE")
    assert not Resource.objects.filter(resource_type="Observation").exists()


def test_patient_found_later_is_stored_on_resend(listener, patients) -> None:
    message = with_control_id(read("ipf_pcd01_bp_request").replace(b"789567", b"424242"), "LATE")
    assert msa(send(listener.port, message)[0])[0] == "AE"
    PatientIdentifier.objects.create(
        patient=patients["doe"],
        system="urn:sg:mrn:imaginary",
        value="424242",
        assigner=Hospital.objects.get(code="imaginary"),
    )
    assert msa(send(listener.port, message)[0]) == ("AA", "LATE")
    row = Hl7Message.objects.get(control_id="LATE")
    assert (row.status, row.attempts) == ("stored", 2)


@pytest.mark.parametrize(
    ("change", "location", "code"),
    [
        ((b"|120|", b"|12O|"), "OBX^3^5", "102"),  # letter O in a number
        ((b"|120|266016^MDC_DIM_MMHG^MDC|", b"|120|262688^MDC_DIM_PERCENT^MDC|"), "OBX^3^6", "103"),
        ((b"|120|266016^MDC_DIM_MMHG^MDC|", b"|120|999^MDC_DIM_FURLONG^MDC|"), "OBX^3^6", "103"),
    ],
    ids=["bad-value", "unit-not-for-bp", "unknown-unit"],
)
def test_bad_content_is_ae_and_stores_nothing(listener, patients, change, location, code) -> None:
    message = with_control_id(read("ipf_pcd01_bp_request").replace(*change), "BAD-1")
    (reply,) = send(listener.port, message)
    assert msa(reply) == ("AE", "BAD-1")
    assert err(reply)[:2] == (location, code)
    assert not Resource.objects.filter(resource_type="Observation").exists()


def test_other_message_types_are_ar(listener, patients) -> None:
    adt = b"MSH|^~\\&|HIS|GDPH|||20260301||ADT^A01|ADT-1|P|2.6\rPID|||789567\r"
    replies = send(listener.port, adt, read("hl7apy_missing_msh9_edgecase"), b"garbage")
    assert [msa(r)[0] for r in replies] == ["AR", "AR", "AR"]
    assert err(replies[0])[1] == "200"
    assert Hl7Message.objects.get(control_id="ADT-1").status == "rejected"


def test_gb18030_message_with_a_chinese_name(listener, patients) -> None:
    text = (
        "\r".join(
            [
                "MSH|^~\\&|BEDSIDE^0123456789ABCDEF^EUI-64|GDPH|||20260301083000+0800||ORU^R01^ORU_R01|"
                "GB-1|P|2.6|||NE|AL||GB 18030-2000",
                f"PID|||{RESIDENT_ID}^^^CN-RIC^NNCHN||张^三",
                "OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20260301082955+0800",
                "OBX|1||528388^MDC_DEV_SPEC_PROFILE_PULS_OXIM^MDC|1|||||||X|||||||0123456789ABCDEF^EUI-64",
                "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|95|262688^MDC_DIM_PERCENT^MDC|||||F",
                "OBX|3|ST|NOTE^护士备注^99GDPH|1.0.0.2|病人静息，测量正常||||||F",
            ]
        )
        + "\r"
    )
    (reply,) = send(listener.port, text.encode("gb18030"), encoding="gb18030")
    assert msa(reply) == ("AA", "GB-1")
    assert str(reply.segment("MSH")[18]) == "GB 18030-2000"
    row = Hl7Message.objects.get(control_id="GB-1")
    assert "张^三" in row.raw and row.patient == patients["zhang"]
    note = Resource.objects.get(resource_type="Observation", body__code__text="护士备注")
    assert note.body["valueString"] == "病人静息，测量正常"
    assert VitalSign.objects.get(patient=patients["zhang"]).value == 95


def test_many_concurrent_connections_each_get_their_own_acks(listener, patients) -> None:
    connections, per_connection = 16, 4
    results: dict[int, list[tuple[str, str]]] = {}

    def run(c: int) -> None:
        messages = [
            with_control_id(read("ipf_continua_oximeter"), f"C{c}-{i}")
            for i in range(per_connection)
        ]
        # Every connection also sends the one message all others send: stored exactly once.
        messages.append(with_control_id(read("ipf_continua_thermometer_fahrenheit"), "SHARED"))
        results[c] = [msa(r) for r in send(listener.port, *messages)]

    threads = [threading.Thread(target=run, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for c in range(connections):
        assert results[c] == [("AA", f"C{c}-{i}") for i in range(per_connection)] + [
            ("AA", "SHARED")
        ]
    assert VitalSign.objects.filter(vital="spo2").count() == connections * per_connection
    assert VitalSign.objects.filter(vital="temperature").count() == 1
    assert Hl7Message.objects.get(control_id="SHARED").attempts == connections
