"""The idempotency look-up stays a few index probes whatever PostgreSQL's statistics say.

Every upload (and every HL7 message) looks up its conditional identifiers by (type, system,
value). With the unique index led by (type, system), a system the planner believed rare was read
whole and filtered on the value: on a never-analyzed table that was every system, and the cost
of an upload grew with all earlier uploads of its kind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from fhir import bulk
from fhir.models import Resource, ResourceIdentifier

SYSTEM = "urn:sg:hl7-obx"


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.django_db
def test_identifier_look_up_reads_the_index_by_value_without_statistics():
    (owner,) = bulk.insert_returning_ids(
        Resource,
        ("resource_type", "logical_id", "version_id", "last_updated", "deleted", "body"),
        [("Observation", "owner", 1, datetime(2026, 12, 1, tzinfo=UTC), False, {})],
    )
    bulk.insert(
        ResourceIdentifier,
        ("resource_id", "resource_type", "system", "value"),
        [(owner, "Observation", SYSTEM, f"WARD3.MSG-{i}.{i % 10}") for i in range(20_000)],
    )
    wanted = ["WARD3.MSG-7.7", "WARD3.MSG-19999.9", "WARD3.NEVER.1"]
    query = ResourceIdentifier.objects.filter(
        resource_type="Observation", system=SYSTEM, value__in=wanted
    )
    assert sorted(query.values_list("value", flat=True)) == sorted(wanted[:2])

    if connection.vendor != "postgresql":  # SQLite (the demo) never analyzes by itself
        assert "(value=? AND system=? AND resource_type=?)" in query.explain()
        return
    with connection.cursor() as cursor:  # as if never analyzed (this machine: autovacuum off)
        cursor.execute(
            "DELETE FROM pg_statistic WHERE starelid = %s::regclass",
            [ResourceIdentifier._meta.db_table],
        )
    plan = json.loads(query.explain(format="json", analyze=True))[0]["Plan"]
    nodes = list(_nodes(plan))
    assert not any(n["Node Type"] == "Seq Scan" for n in nodes)
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) == 0
    assert any("value" in n.get("Index Cond", "") for n in nodes)
