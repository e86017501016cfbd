"""Crashes the fuzz tests found, kept as plain tests named for what they guard.

Each one failed when it was written (a 500 or a wrong result from another team's module); the
fix belongs in that module, never here.
"""

from __future__ import annotations

import json

import pytest

from devices.hl7.mllp import FrameDecoder, FrameTooLarge, frame
from tests.conftest import CHEN
from tests.fhir import bundles
from tests.fuzz.test_fuzz_fhir_api import check_reply


def post(client, doc) -> None:
    check_reply(client.post("/fhir/", data=json.dumps(doc), content_type="application/fhir+json"))


@pytest.mark.services
@pytest.mark.django_db
def test_if_none_exist_that_is_not_a_string_is_a_bad_request_not_a_500(bridge_client) -> None:
    # fhir/store.py parse_if_none_exist: AttributeError: 'bool' object has no attribute 'lstrip'
    doc = bundles.upload(CHEN, 1)
    doc["entry"][0]["request"]["ifNoneExist"] = True
    post(bridge_client, doc)


@pytest.mark.services
@pytest.mark.django_db
def test_quantity_with_a_null_code_is_answered_not_a_500(bridge_client) -> None:
    # fhir/store.py _index_rows: TypeError: 'NoneType' object is not subscriptable
    doc = bundles.upload(CHEN, 1)
    doc["entry"][1]["resource"]["component"][2]["valueQuantity"]["code"] = None
    post(bridge_client, doc)


@pytest.mark.services
@pytest.mark.django_db
def test_bundle_with_a_null_entry_list_is_answered_not_a_500(bridge_client) -> None:
    # devices/health.py record_upload: TypeError: 'NoneType' object is not iterable
    post(bridge_client, {"resourceType": "Bundle", "type": "transaction", "entry": None})


def test_oversized_frame_keeps_its_head_however_the_stream_is_cut() -> None:
    # devices/hl7/mllp.py FrameDecoder._append keeps only the first chunk of an oversized frame,
    # so a frame that arrives in small TCP segments loses the MSH its NAK must echo.
    message = b"MSH|^~\\&|MONITOR||||20260101||ORU^R01|CTRL42|P|2.6\rPID|||1\r"
    stream = frame(message)
    whole = FrameDecoder(max_frame=8).feed_events(stream)
    decoder = FrameDecoder(max_frame=8)
    cut = [e for i in range(len(stream)) for e in decoder.feed_events(stream[i : i + 1])]
    assert isinstance(whole[0], FrameTooLarge) and whole[0].head == message
    assert cut == whole


@pytest.mark.services
@pytest.mark.django_db
def test_full_url_that_is_not_a_string_is_a_bad_request_not_a_500(bridge_client) -> None:
    # fhir/store.py _check_bundle: TypeError: unhashable type: 'list' (`full_url in seen`)
    doc = bundles.upload(CHEN, 1)
    doc["entry"][1]["fullUrl"] = [None]
    post(bridge_client, doc)
