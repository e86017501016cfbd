"""Ingestion through `/fhir/` transaction Bundles and Observation search latency.

Run: `python -m bench.bench_fhir [--seconds 30] [--clients 8] [--batch 100] [--observations 1000000]`.
Starts uvicorn workers on a fresh PostgreSQL database, plays bridges posting PHD-shaped Bundles,
and prints readings/s beside the raw PostgreSQL COPY rate of the same vitals rows measured in the
same run (the ratio is the figure). Then loads N observations straight into the store's tables
and measures typical searches over HTTP: p50/p99. Targets on a 2-core machine: ≥ 5,000
readings/s; search p50 < 20 ms, p99 < 100 ms. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from bench import ceiling
from bench.baseline import postgres_rates
from bench.stack import login, running_server

MDC, LOINC = "urn:iso:std:iso:11073:10101", "http://loinc.org"
EUI = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
RESIDENT = "440106195803120021"


def bundle(client_no: int, batch_no: int, size: int) -> dict:
    device = f"urn:uuid:{uuid.uuid4()}"
    eui = f"BE{client_no:06X}00000000"[:16]
    entries = [
        {
            "fullUrl": device,
            "resource": {"resourceType": "Device", "identifier": [{"system": EUI, "value": eui}]},
            "request": {
                "method": "POST",
                "url": "Device",
                "ifNoneExist": f"identifier={EUI}|{eui}",
            },
        }
    ]
    base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=client_no)
    for i in range(size):
        when = (base + timedelta(seconds=batch_no * size + i)).isoformat()
        ident = f"{eui}.149546.{when}"
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "identifier": [{"system": "urn:sg:phd-observation", "value": ident}],
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "vital-signs",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [
                            {"system": MDC, "code": "149546"},
                            {"system": LOINC, "code": "8867-4"},
                        ]
                    },
                    "subject": {
                        "identifier": {"system": "urn:oid:2.16.156.10011.1.2", "value": RESIDENT}
                    },
                    "effectiveDateTime": when,
                    "device": {"reference": device},
                    "valueQuantity": {
                        "value": 60 + i % 40,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    "ifNoneExist": f"identifier=urn:sg:phd-observation|{ident}",
                },
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def ingest(base: str, token: str, seconds: float, clients: int, size: int) -> dict:
    stored = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def play(no: int) -> None:
        nonlocal stored, errors
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            timeout=60,
        ) as http:
            batch = 0
            while time.monotonic() < deadline:
                body = bundle(no, batch, size)
                t0 = time.perf_counter()
                response = await http.post("/fhir/", json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                if response.status_code == 200:
                    stored += size
                else:
                    errors += 1
                batch += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(play(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0] * 99
    return {
        "readings_per_s": stored / elapsed,
        "elapsed_s": elapsed,
        "uploads": len(latencies),
        "errors": errors,
        "upload_p50_ms": q[49],
        "upload_p99_ms": q[98],
    }


def load_observations(database_url: str, count: int, patients: int = 50) -> None:
    """Bulk-load Observations with their index rows (the shape fhir.store writes) via COPY."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with psycopg.connect(database_url) as conn:
        patient_ids = [
            r[0]
            for r in conn.execute("SELECT id FROM clinic_patient ORDER BY id LIMIT %s", [patients])
        ]
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM fhir_resource").fetchone()[0]
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(
                "COPY fhir_resource (id, resource_type, logical_id, version_id, last_updated, deleted, body, patient_id) FROM STDIN"
            ) as copy:
                for i in range(count):
                    pid = patient_ids[i % len(patient_ids)]
                    at = start + timedelta(minutes=30 * (i // len(patient_ids)))
                    body = json.dumps(
                        {
                            "resourceType": "Observation",
                            "id": f"b{i}",
                            "status": "final",
                            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                            "subject": {"reference": f"Patient/{pid}"},
                            "effectiveDateTime": at.isoformat(),
                            "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "code": "/min"},
                        }
                    )
                    copy.write_row((first + i, "Observation", f"b{i}", 1, at, False, body, pid))
            for table, columns, row in (
                (
                    "fhir_searchtoken",
                    "(resource_id, resource_type, param, system, code)",
                    lambda i, pid, at: (
                        first + i,
                        "Observation",
                        "code",
                        "http://loinc.org",
                        "8867-4",
                    ),
                ),
                (
                    "fhir_searchreference",
                    "(resource_id, resource_type, param, target_type, target_id)",
                    lambda i, pid, at: (first + i, "Observation", "patient", "Patient", str(pid)),
                ),
                (
                    "fhir_searchdate",
                    '(resource_id, resource_type, param, start, "end", patient_id)',
                    lambda i, pid, at: (
                        first + i,
                        "Observation",
                        "date",
                        at,
                        at + timedelta(seconds=1),
                        pid,
                    ),
                ),
            ):
                with cur.copy(f"COPY {table} {columns} FROM STDIN") as copy:
                    for i in range(count):
                        pid = patient_ids[i % len(patient_ids)]
                        at = start + timedelta(minutes=30 * (i // len(patient_ids)))
                        copy.write_row(row(i, pid, at))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('fhir_resource', 'id'), (SELECT max(id) FROM fhir_resource))"
        )
        conn.commit()
        print(f"loaded {count:,} observations in {time.perf_counter() - t0:.0f} s")
    # As an operator would after a bulk load: otherwise autovacuum's insert-triggered pass over
    # a million new rows runs during the searches and its I/O lands in their p99.
    with psycopg.connect(database_url, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        print(f"VACUUM (ANALYZE) after the load: {time.perf_counter() - t0:.0f} s")


async def search_latency(base: str, patient_ids: list[int], samples: int = 300) -> dict:
    session = await login(base, "admin", "sgdemo2026")
    async with httpx.AsyncClient(
        base_url=base, timeout=60, headers={"Cookie": f"sessionid={session}"}
    ) as http:
        times = []
        for i in range(samples):
            pid = patient_ids[i % len(patient_ids)]
            day = 1 + i % 28
            t0 = time.perf_counter()
            r = await http.get(
                f"/fhir/Observation?patient=Patient/{pid}&code=http://loinc.org|8867-4&date=ge2025-02-{day:02d}&date=lt2025-02-{day:02d}T12:00:00%2B08:00&_count=20"
            )
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(r.text[:300])
    q = statistics.quantiles(times, n=100)
    return {"search_p50_ms": q[49], "search_p99_ms": q[98]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--observations", type=int, default=1_000_000)
    args = parser.parse_args()
    baseline = postgres_rates()
    print(
        f"baseline: PostgreSQL COPY {baseline['pg_copy_rows_per_s']:,.0f} vitals rows/s, batched INSERT {baseline['pg_insert_rows_per_s_batches_of_100']:,.0f} rows/s"
    )
    with running_server("smartgd_bench_fhir", workers=args.workers) as (base, env, token):
        rows_before = ceiling.store_row_counts(env["DATABASE_URL"])
        result = asyncio.run(ingest(base, token, args.seconds, args.clients, args.batch))
        stored = result["readings_per_s"] * result["elapsed_s"]
        rows = ceiling.store_row_counts(env["DATABASE_URL"]) - rows_before
        print(
            f"ingest via /fhir/ transactions: {result['readings_per_s']:,.0f} readings/s "
            f"({result['readings_per_s'] / baseline['pg_copy_rows_per_s']:.1%} of raw COPY), "
            f"upload p50 {result['upload_p50_ms']:.0f} ms p99 {result['upload_p99_ms']:.0f} ms, "
            f"{result['errors']} errors; target ≥ 5,000 readings/s: "
            + ("PASS" if result["readings_per_s"] >= 5000 else "BELOW TARGET")
        )
        if stored:
            floor = ceiling.floor(
                bundle(0, 0, args.batch), rows / stored, baseline["pg_copy_rows_per_s"]
            )
            print(
                floor.describe()
                + f"; target 5,000 readings/s is {'within' if floor.ceiling_per_s >= 5000 else 'above'} it"
            )
        load_observations(env["DATABASE_URL"], args.observations)
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM clinic_patient ORDER BY id LIMIT 50")]
        s = asyncio.run(search_latency(base, ids))
        print(
            f"Observation search with {args.observations:,} stored: p50 {s['search_p50_ms']:.1f} ms, p99 {s['search_p99_ms']:.1f} ms; "
            "target p50 < 20 ms, p99 < 100 ms: "
            + ("PASS" if s["search_p50_ms"] < 20 and s["search_p99_ms"] < 100 else "BELOW TARGET")
        )


if __name__ == "__main__":
    main()
