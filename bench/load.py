"""Province-scale load: many bridges uploading and many hub boards watching, at once.

Run: `python -m bench.load [--duration 60] [--bridges 16] [--clients 1000] [--rate 0]
[--alert-duration 60] [--alert-rate 1000] [--quick]`.

Starts the cluster configuration on a fresh PostgreSQL database (uvicorn with several workers,
a Celery worker on the ingest/alerts/interfaces queues, channels_redis), then:

1. throughput: ``--bridges`` bridges (each its own token and patient, made with
   `manage.py create_bridge`) post PHD-shaped transaction Bundles of ``--batch`` readings as fast
   as the server takes them (or at ``--rate`` readings/s in all);
2. alert delivery: the same bridges at ``--alert-rate`` readings/s while ``--clients`` WebSocket
   clients (doctors logged in through the login form) watch ``ws/hub/hub-tianhe/``, and a probe
   bridge uploads a critical blood pressure (systolic ≥ 180) every ``--alert-interval`` s;
   latency is from the upload's 200 to the frame on each socket.

Reports readings/s accepted, upload p50/p99, alert delivery p50/p99, errors, database growth
per million readings (pg_database_size before/after), and the memory (RSS) of each process,
beside the raw PostgreSQL COPY/INSERT and Redis baselines measured in the same run. Targets on
a 2-core machine: ≥ 5,000 readings/s sustained; alert p99 < 250 ms at 1,000 readings/s with
1,000 clients. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from websockets.asyncio.client import connect

from bench.baseline import postgres_rates, redis_latency
from bench.stack import login, manage, running_server

MDC, LOINC, UCUM = "urn:iso:std:iso:11073:10101", "http://loinc.org", "http://unitsofmeasure.org"
EUI = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
RESIDENT_SYSTEM = "urn:oid:2.16.156.10011.1.2"
PROBE_PATIENT = "440106195803120021"  # 陈美玲, Tianhe hub: her critical readings alert hub-tianhe
DOCTORS = ("dr_tianhe", "dr_tianhe2")
PASSWORD = "sgdemo2026"
VITAL_SIGNS = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
            }
        ]
    }
]


def observation(resident: str, eui: str, device: str, when: str, **kind) -> dict:
    ident = f"{eui}.{kind['mdc']}.{when}"
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:sg:phd-observation", "value": ident}],
        "category": VITAL_SIGNS,
        "code": {
            "coding": [
                {"system": MDC, "code": str(kind["mdc"])},
                {"system": LOINC, "code": kind["loinc"]},
            ]
        },
        "subject": {"identifier": {"system": RESIDENT_SYSTEM, "value": resident}},
        "effectiveDateTime": when,
        "device": {"reference": device},
    }
    if "components" in kind:
        resource["component"] = [
            {
                "code": {
                    "coding": [{"system": MDC, "code": str(m)}, {"system": LOINC, "code": code}]
                },
                "valueQuantity": {"value": v, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            }
            for m, code, v in kind["components"]
        ]
    else:
        resource["valueQuantity"] = {
            "value": kind["value"],
            "unit": kind["unit"],
            "system": UCUM,
            "code": kind["unit"],
        }
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": "Observation",
            "ifNoneExist": f"identifier=urn:sg:phd-observation|{ident}",
        },
    }


def bundle(resident: str, eui: str, first: int, size: int, systolic: float | None = None) -> dict:
    """A bridge's upload: its Device, then ``size`` readings one second apart from ``first``
    (pulse rates, or blood pressures when ``systolic`` is given)."""
    device = f"urn:uuid:{uuid.uuid4()}"
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
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(size):
        when = (base + timedelta(seconds=first + i)).isoformat()
        if systolic is None:
            kind = {
                "mdc": 149546,
                "loinc": "8867-4",
                "value": 60 + (first + i) % 30,
                "unit": "/min",
            }
        else:
            kind = {
                "mdc": 150020,
                "loinc": "85354-9",
                "components": [(150021, "8480-6", systolic), (150022, "8462-4", 95), (150023, "8478-0", 123)],
            }  # fmt: skip
        entries.append(observation(resident, eui, device, when, **kind))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def quantiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return (xs[0], xs[0]) if xs else (float("nan"), float("nan"))
    q = statistics.quantiles(xs, n=100)
    return q[49], q[98]


@dataclass
class Tally:
    readings: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


async def play_bridges(
    base: str, bridges: list[tuple[str, str]], seconds: float, batch: int, rate: float
) -> tuple[Tally, float]:
    """Every bridge posts Bundles until the time is up; ``rate`` > 0 paces them in all."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    interval = len(bridges) * batch / rate if rate > 0 else 0.0

    async def bridge(no: int, resident: str, token: str) -> None:
        eui = f"{0xB0000000 + no:08X}{os.getpid() % 0xFFFF:04X}0000"[:16]
        sent = int(time.time()) % 1_000_000 * 1000  # distinct readings in every run
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
            timeout=60,
        ) as http:
            next_at = time.monotonic() + (no * interval / len(bridges) if interval else 0)
            while time.monotonic() < deadline:
                if interval:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += interval
                body = json.dumps(bundle(resident, eui, sent, batch))
                t0 = time.perf_counter()
                try:
                    response = await http.post("/fhir/", content=body)
                    ok = response.status_code == 200
                    detail = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                tally.latencies.append((time.perf_counter() - t0) * 1000)
                if ok:
                    tally.readings += batch
                    sent += batch
                else:
                    tally.errors += 1
                    if len(tally.error_samples) < 5:
                        tally.error_samples.append(detail)

    t0 = time.perf_counter()
    await asyncio.gather(*(bridge(i, r, t) for i, (r, t) in enumerate(bridges)))
    return tally, time.perf_counter() - t0


@dataclass
class Boards:
    """``n`` sockets on hub-tianhe; ``arrivals[trigger_count]`` holds each socket's receive time."""

    base: str
    sessions: list[str]
    n: int
    arrivals: dict[int, list[float]] = field(default_factory=dict)
    connected: int = 0
    failures: int = 0

    async def run(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        url = self.base.replace("http://", "ws://") + "/ws/hub/hub-tianhe/"

        async def one(i: int) -> None:
            try:
                async with connect(
                    url,
                    additional_headers={
                        "Cookie": f"sessionid={self.sessions[i % len(self.sessions)]}",
                        "Origin": self.base,
                    },
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                ) as ws:
                    await ws.send(json.dumps({"type": "subscribe", "last_seq": None}))
                    json.loads(await asyncio.wait_for(ws.recv(), 60))
                    self.connected += 1
                    if self.connected == self.n:
                        ready.set()
                    while not stop.is_set():
                        try:
                            raw = await asyncio.wait_for(ws.recv(), 0.5)
                        except TimeoutError:
                            continue
                        at = time.perf_counter()
                        frame = json.loads(raw)
                        if (
                            frame.get("type") == "alert"
                            and frame.get("rule") == "threshold:systolic_bp"
                        ):
                            self.arrivals.setdefault(frame["trigger_count"], []).append(at)
            except Exception:
                self.failures += 1
                if self.connected + self.failures >= self.n:
                    ready.set()

        # Open the sockets 50 at a time, as a hub's morning shift does over a few seconds.
        tasks = []
        for i in range(self.n):
            tasks.append(asyncio.create_task(one(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.2)
        await asyncio.gather(*tasks)


async def alert_phase(base: str, probe_token: str, bridges, args, sessions) -> dict:
    ready, stop = asyncio.Event(), asyncio.Event()
    boards = Boards(base, sessions, args.clients)
    watching = asyncio.create_task(boards.run(ready, stop))
    await asyncio.wait_for(ready.wait(), 300)
    accepted: dict[int, float] = {}

    async def probe() -> None:
        async with httpx.AsyncClient(
            base_url=base,
            headers={
                "Authorization": f"Bearer {probe_token}",
                "Content-Type": "application/fhir+json",
            },
            timeout=60,
        ) as http:
            deadline = time.monotonic() + args.alert_duration
            k = 0
            first = int(time.time()) % 1_000_000 * 1000
            while time.monotonic() < deadline:
                body = json.dumps(
                    bundle(PROBE_PATIENT, "B0B0B0B0B0B0B0B0", first + k, 1, 181 + k % 50)
                )
                response = await http.post("/fhir/", content=body)
                if response.status_code == 200:
                    k += 1
                    accepted[k] = time.perf_counter()  # the alert's trigger_count is k
                await asyncio.sleep(args.alert_interval)

    load = asyncio.create_task(
        play_bridges(base, bridges, args.alert_duration, args.batch, args.alert_rate)
    )
    await probe()
    tally, elapsed = await load
    await asyncio.sleep(3)
    stop.set()
    await watching
    delays = [
        (at - accepted[k]) * 1000
        for k, times in boards.arrivals.items()
        if k in accepted
        for at in times
    ]
    expected = len(accepted) * boards.connected
    p50, p99 = quantiles(delays)
    return {
        "clients": boards.connected,
        "client_failures": boards.failures,
        "probes": len(accepted),
        "frames": len(delays),
        "missing_frames": max(0, expected - len(delays)),
        "alert_p50_ms": p50,
        "alert_p99_ms": p99,
        "readings_per_s": tally.readings / elapsed,
        "errors": tally.errors,
    }


def processes() -> dict[str, int]:
    """RSS in MiB of the server's processes (uvicorn workers, Celery worker and pool)."""
    try:
        import psutil
    except ImportError:  # /proc by hand
        return _proc_rss()
    out: dict[str, int] = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            rss = child.memory_info().rss
        except psutil.Error:
            continue
        out[f"{_role(cmd)} pid {child.pid}"] = rss // 2**20
    return out


def _proc_rss() -> dict[str, int]:
    out: dict[str, int] = {}
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if status.get("PPid", "").strip() == me or "config.asgi" in cmd or "celery" in cmd:
            out[f"{_role(cmd)} pid {pid}"] = int(status.get("VmRSS", "0 kB").split()[0]) // 1024
    return out


def _role(cmd: str) -> str:
    if "uvicorn" in cmd or "multiprocessing" in cmd and "spawn" in cmd:
        return "uvicorn"
    if "celery" in cmd:
        return "celery"
    return cmd.split(" ")[0].rsplit("/", 1)[-1]


def database_bytes(url: str) -> int:
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def make_bridges(env: dict[str, str], count: int) -> list[tuple[str, str]]:
    """``count`` bridges, each for one seeded patient (round robin), not the probe's patient."""
    with psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        residents = [
            r[0]
            for r in conn.execute(
                "SELECT resident_id FROM clinic_patient WHERE resident_id <> %s ORDER BY id",
                [PROBE_PATIENT],
            )
        ]
    out = []
    for i in range(count):
        resident = residents[i % len(residents)]
        token = manage(env, "create_bridge", "--patient", resident).strip().splitlines()[-1]
        out.append((resident, token))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120, help="throughput phase, s")
    parser.add_argument("--bridges", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100, help="readings per Bundle (≤ 100)")
    parser.add_argument("--rate", type=float, default=0, help="readings/s in all; 0 = flat out")
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients")
    parser.add_argument("--alert-duration", type=float, default=60)
    parser.add_argument("--alert-rate", type=float, default=1000)
    parser.add_argument("--alert-interval", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--quick", action="store_true", help="20 s phases, 200 clients")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.alert_duration = min(args.duration, 20), min(args.alert_duration, 20)
        args.clients = min(args.clients, 200)

    base_pg = postgres_rates()
    base_redis = redis_latency()
    print(
        f"baselines: PostgreSQL COPY {base_pg['pg_copy_rows_per_s']:,.0f} rows/s, INSERT (batches "
        f"of 100) {base_pg['pg_insert_rows_per_s_batches_of_100']:,.0f} rows/s; Redis PING p50 "
        f"{base_redis['redis_ping_p50_ms']:.2f} ms p99 {base_redis['redis_ping_p99_ms']:.2f} ms, "
        f"pub/sub p50 {base_redis['redis_pubsub_p50_ms']:.2f} ms p99 "
        f"{base_redis['redis_pubsub_p99_ms']:.2f} ms"
    )
    with running_server("smartgd_bench_load", workers=args.workers, eager=False, celery=True) as (
        base,
        env,
        probe_token,
    ):
        bridges = make_bridges(env, args.bridges)
        sessions = [asyncio.run(login(base, name, PASSWORD)) for name in DOCTORS]
        size0 = database_bytes(env["DATABASE_URL"])
        tally, elapsed = asyncio.run(
            play_bridges(base, bridges, args.duration, args.batch, args.rate)
        )
        size1 = database_bytes(env["DATABASE_URL"])
        rss = processes()
        up50, up99 = quantiles(tally.latencies)
        rate = tally.readings / elapsed
        growth = (size1 - size0) / max(tally.readings, 1) * 1_000_000 / 2**30
        print(
            f"throughput: {args.bridges} bridges × Bundles of {args.batch} for {elapsed:.0f} s: "
            f"{rate:,.0f} readings/s accepted ({rate / base_pg['pg_copy_rows_per_s']:.1%} of raw "
            f"COPY, {rate / base_pg['pg_insert_rows_per_s_batches_of_100']:.1%} of raw INSERT); "
            f"upload p50 {up50:.0f} ms p99 {up99:.0f} ms; {tally.errors} errors "
            f"{tally.error_samples[:2] if tally.errors else ''}; target ≥ 5,000 readings/s: "
            + ("PASS" if rate >= 5000 and not tally.errors else "BELOW TARGET")
        )
        print(
            f"database growth: {(size1 - size0) / 2**20:,.0f} MiB for {tally.readings:,} readings"
            f" = {growth:.2f} GiB per million readings"
        )
        alerts = asyncio.run(alert_phase(base, probe_token, bridges, args, sessions))
        print(
            f"alert delivery: {alerts['clients']} WebSocket clients ({alerts['client_failures']} "
            f"failed to connect), {alerts['probes']} critical readings under "
            f"{alerts['readings_per_s']:,.0f} readings/s of load ({alerts['errors']} errors): "
            f"p50 {alerts['alert_p50_ms']:.0f} ms, p99 {alerts['alert_p99_ms']:.0f} ms over "
            f"{alerts['frames']:,} frames ({alerts['missing_frames']} missing); Redis pub/sub p99 "
            f"{base_redis['redis_pubsub_p99_ms']:.2f} ms; target p99 < 250 ms: "
            + (
                "PASS"
                if alerts["alert_p99_ms"] < 250 and not alerts["missing_frames"]
                else "BELOW TARGET"
            )
        )
        rss_after = processes()
        print("memory (RSS, MiB) after throughput / after alerts:")
        for name in sorted(rss_after):
            print(f"  {name:32s} {rss.get(name, 0):6d} / {rss_after[name]:6d}")
    return {
        "readings_per_s": rate,
        "upload_p50_ms": up50,
        "upload_p99_ms": up99,
        "errors": tally.errors,
        "gib_per_million": growth,
        **{f"alerts_{k}": v for k, v in alerts.items()},
        "rss_mib": rss_after,
    }


if __name__ == "__main__":
    main()
