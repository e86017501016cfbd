"""fhir.bulk: COPY on PostgreSQL, bulk_create elsewhere; the same rows, ids and errors either way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from fhir import bulk
from fhir.models import Resource, ResourceIdentifier, ResourceVersion

WHEN = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
COLUMNS = ("resource_type", "logical_id", "version_id", "last_updated", "deleted", "body")


def _rows(*names: str) -> list[tuple]:
    body = {"resourceType": "Device", "note": [{"text": '引号 " 反斜杠 \\ 制表\t换行\n'}]}
    return [("Device", name, 1, WHEN, False, body) for name in names]


@pytest.mark.django_db
def test_ids_come_back_in_row_order_and_rows_read_back_unchanged():
    ids = bulk.insert_returning_ids(Resource, COLUMNS, _rows("bulk-a", "bulk-b", "bulk-c"))
    assert len(set(ids)) == 3
    stored = {r.pk: r for r in Resource.objects.filter(pk__in=ids)}
    assert [stored[pk].logical_id for pk in ids] == ["bulk-a", "bulk-b", "bulk-c"]
    assert stored[ids[0]].body == _rows("x")[0][5]
    assert stored[ids[0]].last_updated == WHEN


@pytest.mark.django_db
def test_rows_with_foreign_keys_to_the_new_ids_insert():
    ids = bulk.insert_returning_ids(Resource, COLUMNS, _rows("bulk-fk"))
    bulk.insert(
        ResourceVersion,
        ("resource_id", "version_id", "last_updated", "deleted", "method", "body"),
        [(ids[0], 1, WHEN, False, "POST", {"resourceType": "Device"})],
    )
    assert ResourceVersion.objects.get(resource_id=ids[0]).method == "POST"


@pytest.mark.django_db
def test_nothing_to_insert_is_no_statement():
    assert bulk.insert_returning_ids(Resource, COLUMNS, []) == []
    bulk.insert(Resource, COLUMNS, [])


@pytest.mark.django_db
def test_a_unique_violation_is_djangos_integrity_error_and_rolls_back_to_the_savepoint():
    (pk,) = bulk.insert_returning_ids(Resource, COLUMNS, _rows("bulk-dup"))
    row = (pk, "Device", "urn:test", "same")
    bulk.insert(ResourceIdentifier, ("resource_id", "resource_type", "system", "value"), [row])
    with pytest.raises(IntegrityError), transaction.atomic():
        bulk.insert(ResourceIdentifier, ("resource_id", "resource_type", "system", "value"), [row])
    assert ResourceIdentifier.objects.filter(value="same").count() == 1  # still usable


@pytest.mark.django_db
def test_without_returning_rows_are_saved_one_by_one(monkeypatch):
    """The path of databases that cannot return ids from a bulk insert (SQLite before 3.35),
    taken here on whichever database the run uses: the ids still come back, in order."""
    monkeypatch.setattr(connection, "vendor", "other")
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    ids = bulk.insert_returning_ids(Resource, COLUMNS, _rows("old-a", "old-b"))
    assert [Resource.objects.get(pk=pk).logical_id for pk in ids] == ["old-a", "old-b"]
