"""MLLP with storage: typical 10-OBX ORU^R01 messages parsed, stored, committed, then ACKed.

Run: ``python bench/bench_mllp_store.py [--db sqlite|postgres] [--seconds 5]
[--connections 1 8 32] [--workers 2] [--processes 0]``

Prints, never asserts: the parse-only rate (`devices.hl7.pcd01`), the store-only
rate (mapping + FHIR writes + commit, one thread), and the full path over loopback MLLP
(`fhir.hl7_ingest.make_handler`), optionally with parsing in a process pool. The senders run in
a separate process. Rule evaluation is left to the (absent) Celery worker, so the figures are
those of the listener node. ``--db sqlite`` uses a fresh file under var/; ``--db postgres``
uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/smartgd_bench, created and
migrated when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/smartgd_bench"


def _configure(db: str) -> None:
    """Pick the database before Django reads its settings; queue tasks instead of running them.

    The production settings: DEBUG would keep a record of every SQL statement.
    """
    import secrets

    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["DJANGO_SECRET_KEY"] = f"bench-{secrets.token_urlsafe(32)}"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "false"
    os.environ.setdefault("SG_LOG_LEVEL", "WARNING")
    os.environ.pop("REDIS_URL", None)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ["CELERY_BROKER_URL"] = "memory://"
    if db == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="bench-mllp-", dir=ROOT / "var")) / "db.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    else:
        url = os.environ.get("DATABASE_URL") or PG_DEFAULT
        os.environ["DATABASE_URL"] = url
        _create_pg_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _create_pg_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    name = urlparse(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_hl7_patient() -> None:
    """The patient whose resident id the typical message carries in PID-3."""
    from datetime import date

    from clinic.models import Patient

    Patient.objects.get_or_create(
        resident_id="44010619900101001X",
        defaults={
            "name": "张三",
            "sex": "male",
            "birth_date": date(1990, 1, 1),
            "city": "guangzhou",
        },
    )


def _analyze() -> None:
    """Fresh planner statistics, as autovacuum keeps them in production.

    Each run adds to the same database, and this machine runs PostgreSQL with autovacuum off:
    without this, the plans of the first run on an empty database would be measured forever.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _senders_process(port: int, seconds: float, connections: int, prefix: str, out) -> None:
    from bench_mllp import TYPICAL_MESSAGE

    from devices.hl7 import ack, mllp

    async def sender(c: int, deadline: float) -> tuple[int, int]:
        sent = accepted = 0
        async with mllp.MllpClient("127.0.0.1", port, timeout=60) as client:
            while time.monotonic() < deadline:
                text = TYPICAL_MESSAGE.format(control_id=f"{prefix}-{c}-{sent}")
                reply = await client.send(text)
                sent += 1
                parsed = ack.parse_ack(reply)
                accepted += parsed is not None and parsed.code == "AA"
        return sent, accepted

    async def run() -> None:
        started = time.monotonic()
        results = await asyncio.gather(*(sender(c, started + seconds) for c in range(connections)))
        out.put(
            (sum(s for s, _ in results), sum(a for _, a in results), time.monotonic() - started)
        )

    asyncio.run(run())


async def _measure(handler, seconds: float, connections: int) -> tuple[int, int, float]:
    import multiprocessing

    from devices.hl7 import mllp

    server = await mllp.serve("127.0.0.1", 0, handler)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, no Django connections
    queue = ctx.Queue()
    senders = ctx.Process(
        target=_senders_process,
        args=(server.port, seconds, connections, uuid.uuid4().hex[:8], queue),
    )
    senders.start()
    try:
        while senders.is_alive() and queue.empty():
            await asyncio.sleep(0.05)
        return queue.get(timeout=60)
    finally:
        senders.join(timeout=60)
        await server.close()


def _report(label: str, sent: int, accepted: int, elapsed: float) -> None:
    rate = accepted / elapsed if elapsed else 0.0
    print(f"{label:<52} {rate:8.0f} msg/s with AA  ({accepted}/{sent} in {elapsed:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[1, 8, 32],
        help="sending connections (one full-path run for each count)",
    )
    parser.add_argument("--workers", type=int, default=2, help="store threads / DB connections")
    parser.add_argument("--processes", type=int, default=0, help="parse in N worker processes")
    args = parser.parse_args()
    _configure(args.db)
    ensure_hl7_patient()
    _analyze()

    from bench_mllp import TYPICAL_MESSAGE
    from django.db import connection

    from devices.hl7 import pcd01
    from fhir.hl7_ingest import StoreWorkers, make_handler, receive

    raw = TYPICAL_MESSAGE.format(control_id="CHECK").encode("utf-8")
    n = 30
    started = time.perf_counter()
    for _ in range(n):
        oru = pcd01.parse_bytes(raw)
    per_parse = (time.perf_counter() - started) / n
    assert len(oru.observations) == 10

    prefix = uuid.uuid4().hex[:8]
    messages = [TYPICAL_MESSAGE.format(control_id=f"S{prefix}-{i}").encode() for i in range(n)]
    parsed = [pcd01.parse_bytes(m) for m in messages]
    started = time.perf_counter()
    for message, oru in zip(messages, parsed, strict=True):
        assert b"MSA|AA" in receive(message, parsed=oru)
    per_store = (time.perf_counter() - started) / n

    print(f"database: {connection.vendor}; cpu cores: {os.cpu_count()}")
    print(
        f"{'parse only (pcd01.parse_bytes), one thread':<52} {1 / per_parse:8.0f} msg/s  ({per_parse * 1e3:.1f} ms each)"
    )
    print(
        f"{'store only (map + FHIR writes + commit), one thread':<52} {1 / per_store:8.0f} msg/s  ({per_store * 1e3:.1f} ms each)"
    )
    print(f"{args.workers} store threads, {args.seconds:.0f} s per run")

    async def runs() -> None:
        workers = StoreWorkers(args.workers)
        try:
            for connections in args.connections:
                _report(
                    f"full path, {connections} connections (parse+store+commit+ACK)",
                    *await _measure(make_handler(workers), args.seconds, connections),
                )
            if args.processes:
                with ProcessPoolExecutor(args.processes) as pool:
                    _report(
                        f"full path, {args.connections[-1]} connections, parse in "
                        f"{args.processes} processes",
                        *await _measure(
                            make_handler(workers, parse_executor=pool),
                            args.seconds,
                            args.connections[-1],
                        ),
                    )
        finally:
            workers.close()

    asyncio.run(runs())


if __name__ == "__main__":
    main()
