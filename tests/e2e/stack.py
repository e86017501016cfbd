"""The product running for real, for multi-process and browser tests: a fresh PostgreSQL
database, Redis, a Celery worker (and beat), and uvicorn serving config.asgi:application.

Loopback only, bounded in time; every process is stopped when the context ends. Each stack
gets its own database, Redis database number and channel prefix, so two runs on one machine
do not see each other's data or messages.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def uvicorn_command(port: int, workers: int) -> list[str]:
    """The Procfile's web line on a loopback port of the caller's own."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]


def celery_command(
    concurrency: int, *, name: str | None = None, log_level: str = "warning"
) -> list[str]:
    """One Celery worker on every queue (the Procfile splits them over three)."""
    command = [sys.executable, "-m", "celery", "-A", "config", "worker"]
    command += ["-Q", "ingest,alerts,interfaces", "-c", str(concurrency), "-l", log_level]
    return command + (["-n", name] if name else [])


def stop_groups(procs: Iterable[subprocess.Popen], grace: float = 15) -> None:
    """SIGTERM each leader (uvicorn's supervisor and Celery's main process stop their own
    children), then SIGKILL whatever is left of each one's process group after ``grace`` s.

    Processes must have been started with ``start_new_session=True``. Terminating only
    uvicorn's supervisor left its workers running, orphaned, when they were busy with a
    thousand WebSockets; so does killing a Celery worker's main process in a fault test."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        with suppress(subprocess.TimeoutExpired):
            p.wait(max(0.1, deadline - time.monotonic()))
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)  # the group's stragglers, even if its leader left
        p.wait()


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    bridge_token: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    log_dir: Path | None = None
    name: str = ""

    def start(self, key: str) -> subprocess.Popen:
        """(Re)start one of the stack's processes ("web", "worker", "beat"), appending to its log."""
        assert self.log_dir is not None
        log = open(self.log_dir / f"{self.name}-{key}.log", "a")  # noqa: SIM115 - owned by proc
        self.processes[key] = subprocess.Popen(
            self.commands[key],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop_groups reaches its children at the end
        )
        return self.processes[key]

    def wait_for_worker(self, timeout: float = 60) -> None:
        """Wait until the Celery worker says it is ready (it logs "<name>@<host> ready.")."""
        assert self.log_dir is not None
        log = self.log_dir / f"{self.name}-worker.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"the Celery worker did not become ready in {timeout:.0f} s; see {log}")

    def stop(self, key: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop one process with ``sig`` (SIGKILL for a crash) and wait for it to be gone."""
        proc = self.processes[key]
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def manage(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")


def _admin_url(database_url: str) -> str:
    parts = urlparse(database_url)
    return parts._replace(path="/postgres").geturl()


@contextmanager
def live_stack(
    name: str,
    *,
    celery: bool = True,
    beat: bool = False,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    broker_url: str | None = None,
) -> Iterator[Stack]:
    """``database_url``/``redis_url`` point the stack at servers of its own (a private
    PostgreSQL or Redis a fault test restarts); by default the machine's shared ones.
    ``broker_url`` sets CELERY_BROKER_URL (e.g. RabbitMQ); by default the broker is REDIS_URL."""
    database_url = database_url or os.environ["DATABASE_URL"]
    redis_url = redis_url or os.environ["REDIS_URL"]
    db_name = f"e2e_{name}_{os.getpid()}"
    with psycopg.connect(
        _admin_url(database_url).replace("postgres://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    redis_db = 1 + os.getpid() % 15
    env = dict(os.environ)
    env.update(
        DATABASE_URL=urlparse(database_url)._replace(path=f"/{db_name}").geturl(),
        REDIS_URL=urlparse(redis_url)._replace(path=f"/{redis_db}").geturl(),
        CELERY_TASK_ALWAYS_EAGER="false",
        SG_CHANNEL_PREFIX=f"e2e{os.getpid()}{name}",
        SG_LOG_LEVEL="WARNING",
        DJANGO_DEBUG="true",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    env.pop("CELERY_BROKER_URL", None)
    if broker_url:
        env["CELERY_BROKER_URL"] = broker_url
    env.pop("SG_TEST_DATABASE_NAME", None)
    port = free_port()
    logs = ROOT / "test-artifacts" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}", env=env, bridge_token="", log_dir=logs, name=name
    )
    try:
        stack.manage("migrate", "--noinput", "-v0")
        stack.manage("seed_demo")
        stack.bridge_token = (
            stack.manage("create_bridge", "--patient", "440106195803120021")
            .strip()
            .splitlines()[-1]
        )
        commands = {"web": uvicorn_command(port, workers)}
        if celery:
            # "ready." is logged at INFO; wait_for_worker reads it
            commands["worker"] = celery_command(
                2, name=f"e2e{os.getpid()}{name}@%h", log_level="info"
            )
        if beat:
            commands["beat"] = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "info",
                "-s",
                str(logs / f"beat-{name}-{os.getpid()}"),
            ]
        stack.commands = commands
        for key in commands:
            (logs / f"{name}-{key}.log").write_text("")
            stack.start(key)
        wait_for_port(port)
        if celery:
            stack.wait_for_worker()
        yield stack
    finally:
        stop_groups(stack.processes.values())
        with psycopg.connect(
            _admin_url(database_url).replace("postgres://", "postgresql://"), autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
