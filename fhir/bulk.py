"""Bulk inserts for the ingest path: COPY on PostgreSQL, `bulk_create` elsewhere.

A reading becomes about thirteen rows (resource, identifier, search-index rows, the
vitals row). Through `bulk_create` each row is first a model instance and then, on PostgreSQL,
an element of an UNNEST array that psycopg escapes in Python: that cost more than validating the
reading. COPY takes plain tuples and psycopg's C writer, so rows here are tuples in the order of
`columns` (attribute names such as ``resource_id``), and ids are drawn from the table's sequence
beforehand when the caller needs them for foreign keys.

Inside a transaction this behaves like any other statement: an error (a unique violation that
makes uploads idempotent) surfaces as Django's `IntegrityError` and rolls back with the atomic
block around it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache

from django.db import connection, models


def insert(model: type[models.Model], columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert rows (tuples in `columns` order) into the model's table."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(columns, row, strict=True))) for row in rows])
        return
    fields = _fields(model)
    json_positions = [
        i for i, name in enumerate(columns) if isinstance(fields[name], models.JSONField)
    ]
    names = ", ".join(connection.ops.quote_name(fields[name].column) for name in columns)
    table = connection.ops.quote_name(model._meta.db_table)
    statement = f"COPY {table} ({names}) FROM STDIN"
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for row in rows:
            if json_positions:
                row = list(row)
                for i in json_positions:
                    row[i] = json.dumps(row[i], ensure_ascii=False)
            copy.write_row(row)


def insert_returning_ids(
    model: type[models.Model], columns: Sequence[str], rows: list[tuple]
) -> list[int]:
    """Insert rows and return their new primary keys, in order."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        objs = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        if connection.features.can_return_rows_from_bulk_insert:
            model.objects.bulk_create(objs)
        else:  # SQLite before 3.35 has no RETURNING: the ids are needed for the foreign keys
            for obj in objs:
                obj.save(force_insert=True)
        return [obj.pk for obj in objs]
    ids = allocate_ids(model, len(rows))
    insert(model, ["id", *columns], [(pk, *row) for pk, row in zip(ids, rows, strict=True)])
    return ids


def allow_generic_plans() -> None:
    """Let PostgreSQL reuse generic plans of prepared statements until this transaction ends.

    The ingest and evaluation transactions run the same handful of statements for every upload,
    each a key look-up or an insert whose best plan does not depend on the values; planning them
    for each upload was a fifth to a third of PostgreSQL's CPU for a small one. Connections
    otherwise plan every run for its values (settings: `plan_cache_mode=force_custom_plan`),
    as searches need. A no-op where nothing is prepared, and on SQLite.
    """
    if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get(
        "prepare_threshold"
    ):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = auto")


def allocate_ids(model: type[models.Model], count: int) -> list[int]:
    """`count` fresh ids from the table's sequence (PostgreSQL only)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
            [_sequence(connection.alias, model._meta.db_table), count],
        )
        return [row[0] for row in cursor.fetchall()]


@cache
def _sequence(alias: str, table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        (name,) = cursor.fetchone()
    if name is None:
        raise LookupError(f"{table}.id has no sequence")
    return name


@cache
def _fields(model: type[models.Model]) -> dict[str, models.Field]:
    return {f.attname: f for f in model._meta.concrete_fields}
