"""Rule evaluation of one upload against a growing record: does its cost grow with the table?

Run: `python -m bench.bench_evaluation [--history 500000] [--runs 50]`.
Seeds a fresh PostgreSQL database, stores one Bundle of 20 blood pressures for 陈美玲 through
`fhir.store`, then times `community.alerting.process_new_readings` over those readings (what the
Celery task runs for every upload): first on the demo record, then after ``--history`` readings
of the other demo patients over the past year are added to the partitioned vitals table, and
again after as many of her own. Beside it, the raw PostgreSQL round trip (SELECT 1) of the same
connection. An evaluation that reads only what it needs costs the same at every size.
Prints, never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stack import seeded_database  # noqa: E402

CHEN = "440106195803120021"


def timed(fn, runs: int) -> tuple[float, float]:
    """(p50, p99) in ms of ``runs`` calls of ``fn`` after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.99 * len(samples)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=int, default=500_000, help="older readings to add")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database", default="bench_evaluation")
    args = parser.parse_args()

    env = seeded_database(args.database, eager=True)
    for key in ("DATABASE_URL", "DJANGO_DEBUG", "DJANGO_SECRET_KEY", "SG_LOG_LEVEL"):
        if key in env:
            os.environ[key] = env[key]
    os.environ.pop("REDIS_URL", None)  # evaluation is timed here, not queued
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from clinic.access import actor_for_interface
    from clinic.models import Patient
    from community.alerting import process_new_readings
    from fhir import store
    from fhir.models import VitalSign
    from tests.fhir.bundles import bp_observation, device_entry

    chen = Patient.objects.get(resident_id=CHEN)
    now = datetime.now(UTC).replace(microsecond=0)
    entries = [device_entry("00AABBCCDDEEFF00", "urn:uuid:bench-device")]
    for i in range(20):
        when = (now - timedelta(minutes=20 - i)).isoformat()
        entries.append(
            bp_observation(
                CHEN, when, 128 + i % 5, 80, 95, "urn:uuid:bench-device", "00AABBCCDDEEFF00"
            )
        )
    store.process_bundle(
        actor_for_interface("bench"),
        {"resourceType": "Bundle", "type": "transaction", "entry": entries},
        source="hl7",
    )
    rows = list(
        VitalSign.objects.filter(patient=chen, effective_at__gte=now - timedelta(minutes=21))
        .order_by("pk")
        .values_list("pk", "effective_at")
    )
    ids = [pk for pk, _ in rows]
    span = (min(at for _, at in rows), max(at for _, at in rows))

    def round_trip() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def evaluate() -> None:
        process_new_readings(chen.pk, ids, span=span)

    def report(label: str) -> None:
        total = VitalSign.objects.count()
        hers = VitalSign.objects.filter(patient=chen).count()
        p50, p99 = timed(evaluate, args.runs)
        rt50, _ = timed(round_trip, args.runs)
        print(
            f"{label:<24} {total:>9,} rows, {hers:>9,} hers: evaluating her upload of 20 "
            f"panels p50 {p50:6.2f} ms, p99 {p99:6.2f} ms (PostgreSQL round trip p50 "
            f"{rt50:.3f} ms)"
        )

    observation_id = VitalSign.objects.filter(pk=ids[0]).values_list("observation_id", flat=True)[0]

    def add_history(patient_ids: list[int]) -> None:
        """``--history`` heart rates of ``patient_ids`` in turn, evenly over the year before
        yesterday: the month partitions, and the default one for months older than those."""
        started = time.perf_counter()
        step_s = 365 * 86400 / args.history
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO fhir_vitalsign (patient_id, observation_id, vital, loinc, mdc, "
                "effective_at, value, unit, data_absent, device, source, status, flags, "
                "created_at, evaluated_at) SELECT (%s::bigint[])[1 + g %% %s], %s, "
                "'heart_rate', '8867-4', 149546, %s - make_interval(secs => g * %s), "
                "60 + g %% 30, '/min', '', 'bench', 'ble', 'final', '[]'::jsonb, now(), now() "
                "FROM generate_series(1, %s) AS g",
                [
                    patient_ids,
                    len(patient_ids),
                    observation_id,
                    now - timedelta(days=1),
                    step_s,
                    args.history,
                ],
            )
            cursor.execute("ANALYZE fhir_vitalsign")
        print(f"  (added {args.history:,} readings in {time.perf_counter() - started:.0f} s)")

    report("demo record")
    others = list(Patient.objects.exclude(pk=chen.pk).values_list("pk", flat=True))
    add_history(others)
    report(f"+{args.history:,} of others")
    add_history([chen.pk])
    report(f"+{args.history:,} of hers")


if __name__ == "__main__":
    main()
