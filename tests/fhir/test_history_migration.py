"""Migration fhir/0009 drops the history's copies of current versions, and puts them back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("fhir", "0008_identifier_unique_by_value")]
AFTER = [("fhir", "0009_history_holds_replaced_versions")]
WHEN = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.mark.django_db(transaction=True)
def test_current_copies_go_and_come_back():
    apps = migrate(BEFORE)
    Resource = apps.get_model("fhir", "Resource")
    Version = apps.get_model("fhir", "ResourceVersion")
    updated = Resource.objects.create(
        resource_type="Device", logical_id="d1", version_id=2, last_updated=WHEN, body={"v": 2}
    )
    deleted = Resource.objects.create(
        resource_type="Device",
        logical_id="d2",
        version_id=2,
        last_updated=WHEN,
        deleted=True,
        body={"v": 1},
    )
    for resource, method, deleted_flag in ((updated, "PUT", False), (deleted, "DELETE", True)):
        Version.objects.create(
            resource=resource, version_id=1, last_updated=WHEN, method="POST", body={"v": 1}
        )
        Version.objects.create(
            resource=resource,
            version_id=2,
            last_updated=WHEN,
            method=method,
            deleted=deleted_flag,
            body=resource.body,
        )
    try:
        apps = migrate(AFTER)
        rows = apps.get_model("fhir", "ResourceVersion").objects
        assert sorted(rows.values_list("resource__logical_id", "version_id")) == [
            ("d1", 1),
            ("d2", 1),
        ]

        apps = migrate(BEFORE)
        rows = apps.get_model("fhir", "ResourceVersion").objects
        assert sorted(
            rows.values_list("resource__logical_id", "version_id", "method", "deleted", "body")
        ) == [
            ("d1", 1, "POST", False, {"v": 1}),
            ("d1", 2, "PUT", False, {"v": 2}),
            ("d2", 1, "POST", False, {"v": 1}),
            ("d2", 2, "DELETE", True, {"v": 1}),
        ]
    finally:
        migrate(executor_leaf())


def executor_leaf():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()
