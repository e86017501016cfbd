"""Any bytes through the ingest path give an ACK (AA/AE/AR or CA/CE/CR), never an exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.hl7 import ack
from fhir.hl7_ingest import receive
from tests.devices.hl7_listener import DATA

pytestmark = [pytest.mark.services, pytest.mark.django_db]

ACK_CODES = {"AA", "AE", "AR", "CA", "CE", "CR"}
BP = (DATA / "ipf_pcd01_bp_request.hl7").read_bytes()
HEADERS = [
    b"MSH|^~\\&|X|Y|||20260101||ORU^R01|",
    b"MSH|^~\\&|X||||20260101||ADT^A01|1|P|2.6\r",
    b"MSH|^~\\&|X||||20260101||ORU^R01|1|P|2.6|||NE|AL||GB 18030-2000\r",
    b"",
]
FIELD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


def segment(name: str) -> st.SearchStrategy[str]:
    return st.lists(FIELD, max_size=20).map(lambda fields: "|".join([name, *fields]))


MESSAGES = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(HEADERS), st.binary(max_size=200)).map(b"".join),
    st.tuples(
        st.sampled_from(HEADERS[:3]),
        st.lists(st.one_of(*(segment(n) for n in ("PID", "OBR", "OBX", "NTE", "ZZZ"))), max_size=8),
    ).map(lambda t: t[0] + "\r".join(t[1]).encode("utf-8")),
    # One field of a real message replaced by anything.
    st.tuples(st.integers(0, BP.count(b"|") - 1), FIELD).map(
        lambda t: b"|".join(
            p if i != t[0] else t[1].encode("utf-8") for i, p in enumerate(BP.split(b"|"))
        )
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=MESSAGES)
def test_any_message_gets_an_ack_and_never_an_exception(raw: bytes) -> None:
    reply = receive(raw)
    parsed = ack.parse_ack(reply)
    assert parsed is not None and parsed.code in ACK_CODES
