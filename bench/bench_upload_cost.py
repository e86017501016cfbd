"""What one upload costs in CPU, split between the application and PostgreSQL.

Run: `python -m bench.bench_upload_cost [--sizes 1 20 100 500] [--seconds 3]`.

The throughput benchmarks (bench_fhir, bench_alerts, bench_mllp_store, load) say how fast the
whole node goes; this one says why, and what the targets would need. It posts bridge transaction
Bundles of each size through the Django stack in this process (routing, middleware, token
authentication, validation, storage, audit, device health, and the rule evaluation that Celery
runs eagerly here), on a fresh PostgreSQL database with the production settings, and stores
typical 10-OBX HL7 messages in groups of 50 as the MLLP listener does. For each case it reads
the CPU time of this process and of its PostgreSQL backend (/proc/PID/stat, so PostgreSQL must
run on this machine) and fits upload cost = fixed + n × per reading.

The CPU a target needs is then rate × cost per reading. No HTTP server, network or load
generator is counted, so a real node needs more than this, never less. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import dataclass

import psutil

from bench.baseline import postgres_rates
from bench.stack import create_bridge, seeded_database

DATABASE = "smartgd_bench_upload_cost"


@dataclass(frozen=True)
class Cost:
    """CPU milliseconds per upload (or message), measured over `count` of them."""

    label: str
    readings: int  # per upload
    count: int
    wall_ms: float
    app_ms: float
    postgres_ms: float

    @property
    def cpu_ms(self) -> float:
        return self.app_ms + self.postgres_ms

    @property
    def per_reading_ms(self) -> float:
        return self.cpu_ms / self.readings

    def row(self) -> str:
        return (
            f"{self.label:<28} {self.count:>6} {self.wall_ms:>9.1f} {self.app_ms:>9.1f} "
            f"{self.postgres_ms:>9.1f} {self.per_reading_ms:>9.3f}"
        )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (psutil reads them from /proc here)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def fit(costs: list[Cost]) -> tuple[float, float]:
    """Least squares of cpu_ms = fixed + readings × marginal; returns (fixed, marginal)."""
    xs, ys = [c.readings for c in costs], [c.cpu_ms for c in costs]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if not spread:
        raise ValueError("the fit needs at least two different bundle sizes")
    marginal = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return mean_y - marginal * mean_x, marginal


def cores_needed(rate_per_s: float, cpu_ms_per_unit: float) -> float:
    return rate_per_s * cpu_ms_per_unit / 1000


def _setup() -> str:
    """A fresh database with the demo data and a bridge, Django configured on it in this
    process; the bridge's token."""
    env = seeded_database(DATABASE, eager=True)
    token = create_bridge(env)
    os.environ.update(
        env, DJANGO_ALLOWED_HOSTS="testserver", DJANGO_SETTINGS_MODULE="config.settings"
    )
    # No collectstatic here: nothing is served from it, and WhiteNoise would say so per request.
    warnings.filterwarnings("ignore", message="No directory at")
    import django

    django.setup()
    return token


def _measure(label: str, readings: int, seconds: float, make, send, backend_pid: int) -> Cost:
    """Time `send(make())` (one upload) for `seconds`, after three to warm up. Only `send` is
    counted: `make` builds what a bridge or a monitor would have sent, which is not the node's
    work."""
    for _ in range(3):
        send(make())
    count, wall, app = 0, 0.0, 0.0
    pg0, started = process_cpu_s(backend_pid), time.perf_counter()
    while time.perf_counter() - started < seconds or count < 5:
        payload = make()
        wall0, app0 = time.perf_counter(), time.process_time()
        send(payload)
        wall += time.perf_counter() - wall0
        app += time.process_time() - app0
        count += 1
    pg = process_cpu_s(backend_pid) - pg0
    return Cost(label, readings, count, wall * 1e3 / count, app * 1e3 / count, pg * 1e3 / count)


def _bundle_steps(token: str, size: int, client_no: int):
    """(make, send) for bridge transaction Bundles of `size` readings."""
    from django.test import Client

    from bench.bench_fhir import bundle

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    batch = iter(range(10**9))

    def make() -> str:
        return json.dumps(bundle(client_no, next(batch), size))

    def send(body: str) -> None:
        response = client.post("/fhir/", body, content_type="application/fhir+json")
        if response.status_code != 200:
            raise SystemExit(f"upload refused: {response.status_code} {response.content[:300]!r}")

    return make, send


def _hl7_steps(group: int):
    """(make, send) for groups of typical 10-OBX ORU^R01 messages, parsed and stored."""
    import uuid

    from bench.bench_mllp import TYPICAL_MESSAGE
    from bench.bench_mllp_store import ensure_hl7_patient
    from devices.hl7 import pcd01
    from fhir.hl7_ingest import receive_many

    ensure_hl7_patient()
    prefix, sent = uuid.uuid4().hex[:8], iter(range(10**9))

    def make() -> list[bytes]:
        return [
            TYPICAL_MESSAGE.format(control_id=f"C{prefix}-{next(sent)}").encode()
            for _ in range(group)
        ]

    def send(raws: list[bytes]) -> None:
        replies = receive_many([(raw, pcd01.parse_bytes(raw)) for raw in raws])
        if not all(b"MSA|AA" in reply for reply in replies):
            raise SystemExit(f"HL7 message refused: {replies[0][:300]!r}")

    return make, send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 20, 100, 500])
    parser.add_argument("--seconds", type=float, default=3.0, help="per case")
    parser.add_argument("--hl7-group", type=int, default=50)
    args = parser.parse_args()
    baseline = postgres_rates()
    print(f"baseline: PostgreSQL COPY {baseline['pg_copy_rows_per_s']:,.0f} vitals rows/s")
    token = _setup()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()

    print(
        f"{'case':<28} {'count':>6} {'wall ms':>9} {'app ms':>9} {'pg ms':>9} {'ms/reading':>9}",
        flush=True,
    )
    costs = []
    for no, size in enumerate(args.sizes):
        make, send = _bundle_steps(token, size, client_no=1000 + no)
        costs.append(_measure(f"Bundle of {size}", size, args.seconds, make, send, backend))
        print(costs[-1].row(), flush=True)
    hl7 = _measure(
        f"HL7 10-OBX, group of {args.hl7_group}",
        10 * args.hl7_group,
        args.seconds,
        *_hl7_steps(args.hl7_group),
        backend,
    )
    print(hl7.row())

    fixed, marginal = fit(costs)
    print(
        f"fit over the Bundles: {fixed:.1f} ms of CPU per upload + {marginal:.3f} ms per reading"
        " (application and PostgreSQL together, rule evaluation included)"
    )

    def bundle_ms(size: int) -> float:
        return (fixed + size * marginal) / size

    per_message = hl7.cpu_ms / args.hl7_group
    cores = os.cpu_count() or 1
    print(f"CPU the targets need with this code, before HTTP and load generation (here: {cores}):")
    for what, need in (
        ("5,000 readings/s in Bundles of 100 (issues 4, 9)", cores_needed(5000, bundle_ms(100))),
        (
            "1,000 readings/s in Bundles of 20, beside the push (issues 5, 9)",
            cores_needed(1000, bundle_ms(20)),
        ),
        ("1,000 HL7 10-OBX messages/s (issue 7)", cores_needed(1000, per_message)),
    ):
        print(f"  {what:<66} {need:5.2f} cores")


if __name__ == "__main__":
    main()
