"""Start the product the way it runs in cluster mode, for benchmarks: a fresh PostgreSQL
database, migrations, demo seed, and uvicorn workers (and optionally a Celery worker)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from tests.e2e.stack import (  # the live stack's process handling, shared with the benches
    celery_command,
    free_port,
    stop_groups,
    uvicorn_command,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


async def login(base: str, username: str, password: str) -> str:
    """A session id, through the login form as a browser gets one."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        page = await http.get("/login/")
        csrf = page.cookies.get("csrftoken", "")
        response = await http.post(
            "/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": base + "/login/"},
        )
        session = response.cookies.get("sessionid")
        if not session:
            raise RuntimeError(f"login of {username} failed: {response.status_code}")
        return session


def fresh_database(name: str) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def env_for(database_url: str, *, eager: bool) -> dict[str, str]:
    """The production settings (DEBUG off: no per-query debug record) over plain HTTP on
    loopback, as `make up` runs them: no redirect to HTTPS, no Secure-only cookies (a browser
    would not send them back to http://127.0.0.1), a secret of this run."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        CELERY_TASK_ALWAYS_EAGER="true" if eager else "false",
        DJANGO_DEBUG="false",
        DJANGO_SECURE_COOKIES="false",
        DJANGO_SECRET_KEY=f"bench-{secrets.token_urlsafe(32)}",
        DJANGO_SECURE_SSL_REDIRECT="false",
        SG_LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a server process in a process group of its own, so `stop_groups` reaches its
    children (uvicorn's workers, Celery's pool) too."""
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def seeded_database(database: str, *, eager: bool, static: bool = False) -> dict[str, str]:
    """A fresh database, migrated and seeded with the demo data; the environment that uses it.
    `static` also collects the static files, which WhiteNoise serves with DEBUG off."""
    env = env_for(fresh_database(database), eager=eager)
    manage(env, "migrate", "--noinput", "-v0")
    if static:
        manage(env, "collectstatic", "--noinput", "-v0")
    manage(env, "seed_demo")
    return env


def create_bridge(env: dict[str, str], resident_id: str = "440106195803120021") -> str:
    """A new home bridge for a demo patient; its bearer token."""
    return manage(env, "create_bridge", "--patient", resident_id).strip().splitlines()[-1]


@contextmanager
def running_server(
    database: str,
    *,
    workers: int = 2,
    eager: bool = True,
    celery: bool = False,
):
    """Yield (base_url, env, bridge_token) with uvicorn (and Celery) running; stop them after."""
    env = seeded_database(database, eager=eager, static=True)
    token = create_bridge(env)
    port = free_port()
    procs = [start(uvicorn_command(port, workers), env)]
    if celery:
        procs.append(start(celery_command(2), env))
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", env, token
    finally:
        stop_groups(procs)
