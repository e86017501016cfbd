"""Bridge throughput: outbox put + batch + bundle build (no network), and uploads to a local server.

Why: the issue's target is that the bridge is never the bottleneck of ingestion; these figures
show what one home bridge can push (readings/s) with the outbox's durable commits included.
Run: ``python bench/bench_bridge.py`` (prints figures, asserts nothing).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.bridge.fake_server import FakeFhirServer  # noqa: E402
from devices.bridge.outbox import Outbox  # noqa: E402
from devices.bridge.phd import Gateway, build_bundle  # noqa: E402
from devices.bridge.reading import MonitorInfo, make_reading, reading_from_json  # noqa: E402
from devices.bridge.uploader import Uploader  # noqa: E402
from devices.gatt.measurement import Component, Measurement  # noqa: E402

CST = timezone(timedelta(hours=8))
GATEWAY = Gateway("02-4F-1A-FF-FE-33-9C-07")
CUFF = MonitorInfo(
    address="C0:26:DA:01:02:03", kind="blood_pressure", system_id="00-1C-05-FF-FE-01-02-03"
)


def readings(n: int, start: int = 0):
    base = datetime(2025, 3, 1, 8, 0)
    for i in range(start, start + n):
        m = Measurement(
            "blood_pressure",
            (
                Component(150021, 130.0, "mm[Hg]"),
                Component(150022, 80.0, "mm[Hg]"),
                Component(150023, 97.0, "mm[Hg]"),
                Component(149546, 70.0, "/min"),
            ),
            base + timedelta(seconds=i),
        )
        yield make_reading(
            patient_id="440106195803120021",
            monitor=CUFF,
            measurement=m,
            received_at=datetime.now(CST),
            clock_offset=None,
        )


def bench_local(tmp: Path, n_single: int = 500, n_bulk: int = 20_000, batch: int = 100) -> None:
    with Outbox(tmp / "single.db") as ob:
        rs = list(readings(n_single))
        t = time.perf_counter()
        for r in rs:
            ob.put(r)
        dt = time.perf_counter() - t
        print(f"outbox put, one durable commit per reading:   {n_single / dt:10,.0f} readings/s")
    with Outbox(tmp / "bulk.db") as ob:
        rs = list(readings(n_bulk))
        t = time.perf_counter()
        for i in range(0, n_bulk, batch):
            ob.put_many(rs[i : i + batch])
        put_dt = time.perf_counter() - t
        t = time.perf_counter()
        entries = 0
        while True:
            rows = ob.batch(batch)
            if not rows:
                break
            built = build_bundle([reading_from_json(r.payload) for r in rows], GATEWAY)
            entries += len(built.bundle["entry"])
            ob.ack([r.id for r in rows])
        build_dt = time.perf_counter() - t
        print(f"outbox put_many ({batch}/commit):              {n_bulk / put_dt:10,.0f} readings/s")
        print(
            f"batch + bundle build + ack ({batch}/batch):     {n_bulk / build_dt:10,.0f} readings/s ({entries / build_dt:,.0f} entries/s)"
        )


async def bench_upload(tmp: Path, n: int = 5000, batch: int = 100) -> None:
    with FakeFhirServer() as srv, Outbox(tmp / "up.db") as ob:
        rs = list(readings(n, start=10**6))
        for i in range(0, n, batch):
            ob.put_many(rs[i : i + batch])
        up = Uploader(ob, server_url=srv.url, token="test-token", gateway=GATEWAY, batch_size=batch)
        t = time.perf_counter()
        stored = await up.drain(timeout_s=300)
        dt = time.perf_counter() - t
        await up.aclose()
        print(
            f"upload to local dummy server ({batch}/bundle):  {stored / dt:10,.0f} readings/s ({srv.state.bundles} bundles, {len(srv.state.stored)} observations)"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_local(tmp)
        asyncio.run(bench_upload(tmp))


if __name__ == "__main__":
    main()
