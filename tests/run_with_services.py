"""Run pytest against PostgreSQL and Redis when they answer; with CI=true, fail when they don't.

Defaults are this machine's services (127.0.0.1). On a laptop without them the suite runs on the
embedded default and the tests marked `services` are skipped with a reason; in CI (CI=true) a
missing service stops the run with a message naming it, never a skip.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/smartgd"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(url: str, default_port: int) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def main() -> int:
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    missing = []
    if not reachable(database_url, 5432):
        missing.append(
            f"PostgreSQL is not reachable at {urlparse(database_url).netloc} (DATABASE_URL)"
        )
    if not reachable(redis_url, 6379):
        missing.append(f"Redis is not reachable at {urlparse(redis_url).netloc} (REDIS_URL)")
    if missing and ci:
        for line in missing:
            print(f"ERROR: {line}; CI=true requires it.", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if missing:
        for line in missing:
            print(f"warning: {line}; running embedded, tests marked 'services' are skipped.")
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env["SG_SERVICES"] = "0"
    else:
        env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, SG_SERVICES="1")
        # A test database of its own, so parallel runs on one server do not collide.
        env.setdefault("SG_TEST_DATABASE_NAME", f"test_smartgd_{os.getpid()}")
        env.setdefault("SG_CHANNEL_PREFIX", f"test{os.getpid()}")
        print(
            f"testing against PostgreSQL {urlparse(database_url).netloc} and Redis {urlparse(redis_url).netloc}"
        )
    # Unit tests run Celery eagerly; the multi-process tests start real workers themselves.
    env.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    args = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    os.execve(sys.executable, args, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
