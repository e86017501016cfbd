"""Raw baselines measured in the same run as every benchmark: PostgreSQL COPY and INSERT rates
of vitals-shaped rows, and the Redis round trip and publish→receive latency."""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
import redis

from bench.stack import PG_ADMIN_URL, REDIS_URL

ROWS = 50_000


def _rows(n: int):
    start = datetime(2026, 11, 25, tzinfo=UTC)
    for i in range(n):
        yield (
            i % 50 + 1,
            "systolic_bp",
            "8480-6",
            150021,
            start + timedelta(seconds=i),
            120.0 + i % 40,
            "mm[Hg]",
        )


def postgres_rates(rows: int = ROWS) -> dict[str, float]:
    """Rows/s for COPY and for batched INSERT of vitals rows into an unlogged-free temp table."""
    with psycopg.connect(os.environ.get("BENCH_PG_URL", PG_ADMIN_URL)) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_vitals (patient_id int, vital text, loinc text, mdc int, "
            "effective_at timestamptz, value double precision, unit text)"
        )
        conn.execute("CREATE INDEX ON bench_vitals (patient_id, vital, effective_at DESC)")
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY bench_vitals FROM STDIN") as copy:
            for row in _rows(rows):
                copy.write_row(row)
        conn.commit()
        copy_rate = rows / (time.perf_counter() - t0)
        conn.execute("TRUNCATE bench_vitals")
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            batch = list(_rows(rows))
            for i in range(0, rows, 100):
                cur.executemany(
                    "INSERT INTO bench_vitals VALUES (%s,%s,%s,%s,%s,%s,%s)", batch[i : i + 100]
                )
                conn.commit()
        insert_rate = rows / (time.perf_counter() - t0)
    return {"pg_copy_rows_per_s": copy_rate, "pg_insert_rows_per_s_batches_of_100": insert_rate}


def redis_latency(samples: int = 2000) -> dict[str, float]:
    """p50/p99 of a PING round trip and of publish → subscriber receive, in ms."""
    client = redis.Redis.from_url(REDIS_URL)
    rtts = []
    for _ in range(samples):
        t0 = time.perf_counter()
        client.ping()
        rtts.append((time.perf_counter() - t0) * 1000)
    sub = redis.Redis.from_url(REDIS_URL).pubsub()
    sub.subscribe("bench:latency")
    sub.get_message(timeout=1)
    pubsub = []
    for _ in range(min(samples, 1000)):
        t0 = time.perf_counter()
        client.publish("bench:latency", b"x")
        while sub.get_message(timeout=1) is None:
            pass
        pubsub.append((time.perf_counter() - t0) * 1000)
    sub.close()
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1]  # noqa: E731
    return {
        "redis_ping_p50_ms": q(rtts, 50),
        "redis_ping_p99_ms": q(rtts, 99),
        "redis_pubsub_p50_ms": q(pubsub, 50),
        "redis_pubsub_p99_ms": q(pubsub, 99),
    }


if __name__ == "__main__":
    for key, value in {**postgres_rates(), **redis_latency()}.items():
        print(f"{key:40s} {value:12.2f}")
