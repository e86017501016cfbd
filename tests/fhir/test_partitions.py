"""Monthly partitions of the vitals table: month arithmetic, and on PostgreSQL that every row
lands somewhere, keeps its id, and moves out of the default partition when its month is created."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.core.management import call_command
from django.db import connection

from fhir import partitions
from fhir.models import VitalSign
from tests.community.helpers import patient, store_vitals


def test_month_partition_bounds_cross_the_year():
    december = partitions.month_partition(date(2026, 12, 31))
    assert december.name == "fhir_vitalsign_y2026m12"
    assert december.start == datetime(2026, 12, 1, tzinfo=UTC)
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)


def test_wanted_partitions_are_contiguous_months():
    wanted = partitions.wanted_partitions(date(2026, 11, 15), behind=2, ahead=3)
    assert [p.name[-8:] for p in wanted] == [
        "y2026m09", "y2026m10", "y2026m11", "y2026m12", "y2027m01", "y2027m02",
    ]  # fmt: skip
    for earlier, later in zip(wanted, wanted[1:], strict=False):
        assert earlier.end == later.start


def test_partitioning_follows_the_database(db):
    """PostgreSQL partitions; the embedded SQLite keeps one plain table and needs no upkeep."""
    if connection.vendor == "postgresql":
        assert partitions.is_partitioned()
    else:
        assert not partitions.is_partitioned()
        assert partitions.ensure_partitions() == []
        assert partitions.existing_partitions() == []


def _partition_of(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM fhir_vitalsign WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.services
def test_migrated_table_is_partitioned_with_its_indexes(db):
    assert connection.vendor == "postgresql"
    assert partitions.is_partitioned()
    names = partitions.existing_partitions()
    this_month = partitions.month_partition(datetime.now(UTC).date()).name
    assert this_month in names and names[-1] == partitions.DEFAULT_PARTITION
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'fhir_vitalsign'")
        indexes = {row[0] for row in cursor.fetchall()}
    assert {"fhir_vitalsign_pkey", "vitals_unevaluated"} <= indexes


@pytest.mark.services
def test_any_date_is_stored_and_moves_when_its_month_is_created(demo):
    who = patient()
    now_id = store_vitals(who, "heart_rate", [72.0])[0]
    far = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)
    future_ids = store_vitals(who, "heart_rate", [70.0, 71.0], start=far)
    ancient_id = store_vitals(who, "heart_rate", [69.0], start=datetime(1999, 1, 1, tzinfo=UTC))[0]
    assert _partition_of(now_id) != partitions.DEFAULT_PARTITION
    assert {_partition_of(pk) for pk in future_ids} == {partitions.DEFAULT_PARTITION}
    assert _partition_of(ancient_id) == partitions.DEFAULT_PARTITION
    before = VitalSign.objects.count()

    may = partitions.month_partition(far.date())
    assert partitions.create_partition(may) == 2

    assert {_partition_of(pk) for pk in future_ids} == {may.name}
    assert _partition_of(ancient_id) == partitions.DEFAULT_PARTITION
    assert VitalSign.objects.count() == before
    assert sorted(VitalSign.objects.filter(pk__in=future_ids).values_list("value", flat=True)) == [
        70.0,
        71.0,
    ]
    # New rows keep drawing unique, increasing ids from the one sequence.
    later = store_vitals(who, "heart_rate", [73.0], start=far)[0]
    assert later > max(future_ids) and _partition_of(later) == may.name


@pytest.mark.services
def test_ensure_is_idempotent_and_the_command_lists_counts(demo, capsys):
    created = partitions.ensure_partitions(ahead=6)
    assert partitions.ensure_partitions(ahead=6) == []
    assert all(name in partitions.existing_partitions() for name in created)
    call_command("vitals_partitions", ahead=6)
    out = capsys.readouterr().out
    assert f"{partitions.DEFAULT_PARTITION}: " in out
    assert partitions.month_partition(datetime.now(UTC).date()).name in out


def test_the_upkeep_job_gives_the_partitioned_table_its_own_statistics(demo):
    """Autovacuum analyzes partitions, never their parent; the job does."""
    from fhir.tasks import ensure_vitals_partitions

    store_vitals(patient("440106195803120021"), "systolic_bp", [120, 130, 140])
    if connection.vendor != "postgresql":  # one plain table: nothing to create or analyze
        assert ensure_vitals_partitions() == []
        return

    def parent_stats() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_statistic WHERE starelid = %s::regclass AND stainherit",
                [partitions.TABLE],
            )
            return cursor.fetchone()[0]

    before = parent_stats()
    ensure_vitals_partitions()
    assert before == 0 and parent_stats() > 0
