"""Monthly partitions of the vitals table on PostgreSQL.

`fhir_vitalsign` is range-partitioned by `effective_at`, one partition per calendar month (UTC),
plus a default partition that catches whatever falls outside them (a monitor whose clock says
1999, a bridge that comes back after months offline): a reading is never refused for its date.
A daily job keeps the months ahead created; when it creates a month that already has rows in the
default partition, it moves them in the same transaction. Old months can then be detached or
dropped as one cheap operation when retention policy allows, and a chart or rule reading one week
touches one or two partitions.

On SQLite (the embedded demo) the table is a plain table and everything here is a no-op.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction
from psycopg import sql as psycopg_sql

logger = logging.getLogger(__name__)

TABLE = "fhir_vitalsign"
DEFAULT_PARTITION = f"{TABLE}_default"


@dataclass(frozen=True)
class MonthPartition:
    name: str
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


def month_partition(day: date) -> MonthPartition:
    """The partition that holds readings of `day`'s month."""
    first = date(day.year, day.month, 1)
    following = _add_months(first, 1)
    return MonthPartition(
        name=f"{TABLE}_y{first.year:04d}m{first.month:02d}",
        start=datetime(first.year, first.month, 1, tzinfo=UTC),
        end=datetime(following.year, following.month, 1, tzinfo=UTC),
    )


def wanted_partitions(today: date, *, behind: int = 1, ahead: int = 3) -> list[MonthPartition]:
    """The months that should exist around `today`: `behind` past months, this one, `ahead` more."""
    first = date(today.year, today.month, 1)
    return [month_partition(_add_months(first, k)) for k in range(-behind, ahead + 1)]


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = %s AND c.relnamespace = to_regnamespace(current_schema())",
            [TABLE],
        )
        return cursor.fetchone() is not None


def existing_partitions() -> list[str]:
    """Names of the partitions attached to the vitals table, oldest first, default last."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY c.relname",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    return sorted(names, key=lambda n: (n == DEFAULT_PARTITION, n))


def create_partition(partition: MonthPartition) -> int:
    """Create and attach one month's partition; returns the rows moved in from the default.

    Attaching checks that the default partition holds no row of the month, so those rows move
    first, in the same transaction: nothing is lost and nothing is seen twice.
    """
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {quote(partition.name)} (LIKE {TABLE} INCLUDING DEFAULTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            "WHERE effective_at >= %s AND effective_at < %s RETURNING *) "
            f"INSERT INTO {quote(partition.name)} SELECT * FROM moved",
            [partition.start, partition.end],
        )
        moved = cursor.rowcount
        # DDL takes no bind parameters (the connection may bind server side): bounds as literals.
        start, end = (
            psycopg_sql.Literal(bound).as_string(connection.connection)
            for bound in (partition.start, partition.end)
        )
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {quote(partition.name)} "
            f"FOR VALUES FROM ({start}) TO ({end})"
        )
    return moved


def ensure_partitions(today: date | None = None, *, behind: int = 1, ahead: int = 3) -> list[str]:
    """Create the wanted months that are missing; returns the names created (empty off PostgreSQL)."""
    if not is_partitioned():
        return []
    today = today or datetime.now(UTC).date()
    have = set(existing_partitions())
    created = []
    for partition in wanted_partitions(today, behind=behind, ahead=ahead):
        if partition.name in have:
            continue
        moved = create_partition(partition)
        logger.info(
            "created vitals partition %s (%d rows moved from default)", partition.name, moved
        )
        created.append(partition.name)
    return created


def analyze_parent() -> None:
    """ANALYZE the partitioned table itself.

    Autovacuum analyzes each month's partition but never a partitioned parent (PostgreSQL
    leaves that to the operator), so the statistics PostgreSQL uses for the table as a whole, such
    as the number of distinct patients and vitals in the silence sweep's grouping, would
    otherwise never exist. It samples a fixed number of rows, so it costs the same at any size.
    """
    if is_partitioned():
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {TABLE}")


def partition_table(schema_editor) -> None:
    """Turn the plain vitals table into a partitioned one, keeping rows, ids, indexes and keys.

    Used once by a migration. A partitioned table's primary key must contain the partition key,
    so it becomes (id, effective_at); ids still come from one sequence and stay unique.
    PostgreSQL 15 has no identity columns on partitioned tables, hence an owned sequence.
    """
    if schema_editor.connection.vendor != "postgresql":
        return
    run = schema_editor.execute
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND schemaname = current_schema() AND indexname <> %s",
            [TABLE, f"{TABLE}_pkey"],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        foreign_keys = cursor.fetchall()
    run(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_plain")
    for name, _ in indexes:
        run(f"DROP INDEX {schema_editor.quote_name(name)}")
    run(
        f"CREATE TABLE {TABLE} (LIKE {TABLE}_plain INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (effective_at)"
    )
    run(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
    run(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_plain")
    run(f"DROP TABLE {TABLE}_plain")
    run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, effective_at)")
    run(f"CREATE SEQUENCE {TABLE}_id_seq AS bigint OWNED BY {TABLE}.id")
    run(f"SELECT setval('{TABLE}_id_seq', COALESCE((SELECT MAX(id) FROM {TABLE}), 0) + 1, false)")
    run(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
    for _, definition in indexes:
        run(definition)
    for name, definition in foreign_keys:
        run(f"ALTER TABLE {TABLE} ADD CONSTRAINT {schema_editor.quote_name(name)} {definition}")
