"""Rewriting a Bundle's urn:uuid references without touching what the client sent."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from fhir.store import _rewrite_refs, _with_refs_rewritten

MAPPING = {"urn:uuid:dev": "Device/1", "urn:uuid:pat": "Patient/7"}

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.sampled_from(list(MAPPING))
)
json_tree = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["reference", "device", "subject", "entry", "x"]), children, max_size=4
        ),
    ),
    max_leaves=30,
)


def test_only_the_path_to_a_rewritten_reference_is_copied():
    body = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "device": {"reference": "urn:uuid:dev", "display": "monitor"},
        "derivedFrom": [{"reference": "Observation/9"}, {"reference": "urn:uuid:pat"}],
    }
    sent = copy.deepcopy(body)
    out = _with_refs_rewritten(body, MAPPING)
    assert body == sent  # the request's dicts are unchanged
    assert out["device"] == {"reference": "Device/1", "display": "monitor"}
    assert out["derivedFrom"] == [{"reference": "Observation/9"}, {"reference": "Patient/7"}]
    assert out["code"] is body["code"]  # untouched subtrees are shared, not copied
    assert out["derivedFrom"][0] is body["derivedFrom"][0]
    assert _with_refs_rewritten(out["code"], MAPPING) is out["code"]


@given(json_tree)
def test_same_result_as_rewriting_a_deep_copy_and_the_input_is_left_alone(tree):
    sent = copy.deepcopy(tree)
    expected = copy.deepcopy(tree)
    _rewrite_refs(expected, MAPPING)
    assert _with_refs_rewritten(tree, MAPPING) == expected
    assert tree == sent
