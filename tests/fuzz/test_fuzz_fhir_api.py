"""Any JSON POSTed to /fhir/ by a bridge gets an OperationOutcome or a transaction-response.

Never a 500, never an exception out of the view: bad input is the caller's error, reported in
FHIR terms, and a good reading beside it is never lost (that part is proved in tests/fhir).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import CHEN
from tests.fhir import bundles
from tests.fuzz.budget import fuzz_settings

pytestmark = [pytest.mark.services, pytest.mark.django_db]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["", "Bundle", "transaction", "Observation", "Device", "POST", "urn:uuid:x"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def paths(doc: Any, at: tuple = ()) -> list[tuple]:
    """Every path to a value inside ``doc`` (dict keys and list indexes)."""
    out = [at]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, (*at, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, (*at, i))
    return out


def replaced(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = replaced(doc[head], rest, value, delete)
    return copy


@st.composite
def mutated_uploads(draw) -> Any:
    """A real PHD upload Bundle with a few values replaced by any JSON, or removed."""
    doc = bundles.upload(CHEN, draw(st.integers(1, 3)), start_minute=draw(st.integers(0, 600)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)))
        doc = replaced(doc, path, draw(JSON), draw(st.booleans()) and bool(path))
    return doc


BODIES = st.one_of(
    JSON.map(lambda doc: json.dumps(doc).encode()),
    mutated_uploads().map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
)


def check_reply(response) -> None:
    assert response.status_code < 500, response.content[:2000]
    doc = json.loads(response.content)
    if response.status_code >= 400:
        assert doc["resourceType"] == "OperationOutcome", doc
    else:
        assert doc["resourceType"] in ("Bundle", "OperationOutcome"), doc
        if doc["resourceType"] == "Bundle":
            assert doc["type"] == "transaction-response", doc


@fuzz_settings(150)
@given(body=BODIES, content_type=st.sampled_from(["application/fhir+json", "application/json"]))
def test_any_body_gets_an_operation_outcome_or_a_transaction_response(
    bridge_client, body: bytes, content_type: str
) -> None:
    check_reply(bridge_client.post("/fhir/", data=body, content_type=content_type))


@fuzz_settings(100)
@given(text=st.text(min_size=1, max_size=60))
def test_any_note_text_reads_back_unchanged_or_is_refused_with_400(
    bridge_client, text: str
) -> None:
    """Whatever characters a note holds, the reading is stored exactly or refused in FHIR terms
    (control characters FHIR forbids, text fhir.resources rejects): never a 500."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    upload = bundles.upload(CHEN, 1, start_minute=len(text) % 600, day="2026-08-08")
    observation = upload["entry"][1]["resource"]
    observation["identifier"][0]["value"] += f"-{abs(hash(text))}"
    observation["note"] = [{"text": text}]
    response = bridge_client.post(
        "/fhir/", data=json.dumps(upload), content_type="application/fhir+json"
    )
    check_reply(response)
    if response.status_code >= 400:
        assert response.status_code == 400
        return
    location = response.json()["entry"][1]["response"]["location"].split("/_history")[0]
    doctor = Client()
    doctor.force_login(get_user_model().objects.get(username="dr_tianhe"))
    stored = doctor.get(f"/fhir/{location}").json()
    assert stored["note"] == [{"text": text}]
