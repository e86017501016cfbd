"""Helpers of the fault-injection tests (tests/e2e/test_faults_*.py).

Every fault stack runs on a redis-server of its own: the machine's shared Redis is used by
other runs whose Celery workers would otherwise take (and lose) this stack's tasks when their
database numbers collide. Servers a test may kill are its own (a private redis-server, a private PostgreSQL cluster in a
temporary directory), never the machine's shared ones. Durations are short in `make test` and
full length with ``SG_SOAK=1`` (`make soak`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from glob import glob
from pathlib import Path

import httpx
import psycopg
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.stack import Stack, free_port, wait_for_port

SOAK = os.environ.get("SG_SOAK", "").lower() in ("1", "true", "yes")
CHEN = "440106195803120021"


def seconds(short: float, soak: float) -> float:
    """A fault's duration: ``short`` in `make test`, ``soak`` in `make soak`."""
    return soak if SOAK else short


# --- servers of the test's own ----------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a free loopback port that keeps nothing on disk (a restart loses all)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 20)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else (shutil.which(name) or name)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temp dir, trust auth on loopback)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        # initdb and postgres refuse to run as root: run them as the postgres user when we are root.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(
            _pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
            str(self.root / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="sg-pg-"))
    server = PrivatePostgres(root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


# --- the record, read straight from the database -----------------------------------------------


def query(stack: Stack, sql: str, *args) -> list[tuple]:
    """Rows of ``sql`` on the stack's database (None when the database does not answer)."""
    url = stack.env["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


def systolic_readings(stack: Stack) -> list[tuple]:
    """(effective_at, value) of every stored systolic reading of 陈美玲, in time order."""
    return query(
        stack,
        "SELECT v.effective_at, v.value FROM fhir_vitalsign v JOIN clinic_patient p "
        "ON p.id = v.patient_id WHERE p.resident_id = %s AND v.vital = 'systolic_bp' "
        "ORDER BY v.effective_at",
        CHEN,
    )


def alerts(stack: Stack, rule: str) -> list[tuple]:
    """(id, status, trigger_count) of 陈美玲's alerts for ``rule``."""
    return query(
        stack,
        "SELECT a.id, a.status, a.trigger_count FROM community_alert a JOIN clinic_patient p "
        "ON p.id = a.patient_id WHERE p.resident_id = %s AND a.rule = %s ORDER BY a.id",
        CHEN,
        rule,
    )


def wait_until(check, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Poll ``check()`` until it returns something truthy (errors count as "not yet")."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the service under test may be down; keep polling
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached after {timeout:.0f} s (last: {last!r})")


# --- a bridge that retries and a board that reconnects ----------------------------------------


async def upload_until_accepted(
    stack: Stack, bundle: dict, timeout: float, client: httpx.AsyncClient | None = None
) -> int:
    """POST ``bundle`` like a bridge: retry (1 s apart) until a 200, return the attempts."""
    own = client is None
    client = client or httpx.AsyncClient(timeout=15)
    deadline = time.monotonic() + timeout
    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                response = await client.post(
                    stack.base_url + "/fhir/",
                    content=json.dumps(bundle),
                    headers={
                        "Content-Type": "application/fhir+json",
                        "Authorization": f"Bearer {stack.bridge_token}",
                    },
                )
                if response.status_code == 200:
                    return attempts
                assert response.status_code >= 500 or response.status_code == 429, response.text
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"upload not accepted after {attempts} attempts")
            await asyncio.sleep(1.0)
    finally:
        if own:
            await client.aclose()


def session_for(stack: Stack, username: str, password: str = "sgdemo2026") -> str:
    """A session cookie for a demo login, through the login form as a browser gets one."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        page = http.get("/login/")
        http.post(
            "/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": page.cookies.get("csrftoken", ""),
            },
            headers={"Referer": stack.base_url + "/login/"},
        )
        session = http.cookies.get("sessionid")
    assert session, f"login of {username} failed"
    return session


class Board:
    """A hub's live board as the browser keeps it: subscribe with the last seq it holds,
    reconnect (and so replay) whenever the socket drops, upsert frames by seq."""

    def __init__(self, stack: Stack, session_key: str, path: str = "/ws/hub/hub-tianhe/") -> None:
        self.stack, self.session_key, self.path = stack, session_key, path
        self.frames: dict[int, dict] = {}
        self.connects = 0
        self.head = 0
        self._task: asyncio.Task | None = None

    @property
    def last_seq(self) -> int:
        return max(self.frames, default=0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async with connect(
                    self.stack.ws_url + self.path,
                    additional_headers={
                        "Cookie": f"sessionid={self.session_key}",
                        "Origin": self.stack.base_url,
                    },
                    open_timeout=5,
                    ping_interval=2,
                    ping_timeout=4,
                ) as ws:
                    self.connects += 1
                    await ws.send(json.dumps({"type": "subscribe", "last_seq": self.last_seq}))
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame.get("type") == "subscribed":
                            self.head = frame["head"]
                        elif frame.get("type") == "alert":
                            self.frames[frame["seq"]] = frame
                        elif frame.get("type") == "resync":
                            self.frames.clear()
            except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
                pass
            await asyncio.sleep(0.5)

    def alert_frames(self, rule: str) -> list[dict]:
        return [f for _, f in sorted(self.frames.items()) if f.get("rule") == rule]

    async def wait_for(self, match, timeout: float, what: str = "frame") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, frame in sorted(self.frames.items()):
                if match(frame):
                    return frame
            await asyncio.sleep(0.1)
        raise AssertionError(f"{what} never reached the board ({self.connects} connects)")

    async def has_every_event(self, timeout: float) -> None:
        """Wait until the board holds every event of its stream, seq 1 … head (no gaps)."""
        deadline = time.monotonic() + timeout
        head = 0
        while time.monotonic() < deadline:
            head = _stream_head(self.stack, self.path)
            if head and sorted(self.frames) == list(range(1, head + 1)):
                return
            await asyncio.sleep(0.2)
        missing = sorted(set(range(1, head + 1)) - set(self.frames))
        raise AssertionError(f"board misses seqs {missing} of head {head}")


def _stream_head(stack: Stack, path: str) -> int:
    code = path.rstrip("/").rsplit("/", 1)[-1]
    rows = query(
        stack, "SELECT coalesce(max(seq), 0) FROM community_alertevent WHERE stream = %s",
        f"hub:{code}",
    )  # fmt: skip
    return rows[0][0]
