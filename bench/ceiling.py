"""The ingest ceiling of this machine: what one reading costs that no implementation avoids.

A reading through `/fhir/` must, whatever the code around it, be validated with fhir.resources
R4B (issue 4 requires it of every incoming resource), be decoded from the request's JSON (and
encoded by the load generator, which shares the machine), and become the rows the store keeps
for it (resource, version, identifier, search index, typed vitals row, its share of the audit
record), written at no better than the raw COPY rate measured in the same run. Summing those
per-reading CPU costs and dividing the machine's cores by the sum gives a rate that no
implementation of the required work can pass here. `bench_fhir` prints it beside the measured
rate and the target, so "is the target reachable on this machine?" is a measured answer.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Floor:
    validate_ms: float  # fhir.resources R4B model_validate of one Observation
    json_ms: float  # server json.loads + generator json.dumps, per reading
    rows_per_reading: float  # rows the store wrote per reading in this run
    copy_row_ms: float  # one row at the raw COPY rate of the same run
    cores: int

    @property
    def per_reading_ms(self) -> float:
        return self.validate_ms + self.json_ms + self.rows_per_reading * self.copy_row_ms

    @property
    def ceiling_per_s(self) -> float:
        return self.cores * 1000 / self.per_reading_ms

    def describe(self) -> str:
        return (
            f"ceiling of this machine for the required work: {self.ceiling_per_s:,.0f} readings/s "
            f"= {self.cores} cores / {self.per_reading_ms:.3f} ms per reading "
            f"(fhir.resources R4B validation {self.validate_ms:.3f} ms, JSON {self.json_ms:.3f} ms, "
            f"{self.rows_per_reading:.1f} rows at the raw COPY rate "
            f"{self.rows_per_reading * self.copy_row_ms:.3f} ms); HTTP, index building and the "
            "transaction come on top"
        )


def _time_per_item(fn, items, repeat: int = 5) -> float:
    for item in items:  # warm caches (model classes, validators)
        fn(item)
    t0 = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return (time.perf_counter() - t0) * 1000 / (repeat * len(items))


def validation_ms(bundle: dict) -> float:
    """fhir.resources R4B validation of each Observation of `bundle`, ms per resource."""
    from fhir.resources.R4B.observation import Observation

    observations = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    ]
    return _time_per_item(Observation.model_validate, observations)


def json_ms(bundle: dict) -> float:
    """Encode (the generator) and decode (the server) the Bundle, ms per reading in it."""
    readings = sum(1 for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    encoded = json.dumps(bundle).encode()
    dump = _time_per_item(lambda b: json.dumps(b).encode(), [bundle])
    load = _time_per_item(json.loads, [encoded])
    return (dump + load) / readings


def store_row_counts(database_url: str) -> int:
    """Rows in the store's own tables (fhir_*, partitions counted through their parent)."""
    with psycopg.connect(database_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relname LIKE 'fhir\\_%' "
                "AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            )
        ]
        return sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)


def floor(bundle: dict, rows_per_reading: float, copy_rows_per_s: float) -> Floor:
    return Floor(
        validate_ms=validation_ms(bundle),
        json_ms=json_ms(bundle),
        rows_per_reading=rows_per_reading,
        copy_row_ms=1000 / copy_rows_per_s,
        cores=os.cpu_count() or 1,
    )
