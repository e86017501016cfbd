"""The bridge's store-and-forward outbox: SQLite in WAL mode, one row per reading.

Why: a reading must survive a power cut or SIGKILL from the moment the monitor's indication
arrives until the server acknowledges it. ``put`` commits (WAL, ``synchronous=FULL``: the
commit is on disk when ``put`` returns) before the session does anything else with it, and
rows leave only through ``ack`` (the server stored them) — or move to the quarantine, which is
visible in ``status`` and never emptied silently.

Rows are keyed by the reading's stable identifier (UNIQUE): a re-delivered notification is
stored once. Acknowledged keys stay in ``sent`` for ``sent_retention_s`` so a monitor that
re-sends an already uploaded record does not even cost an upload.

The bridge's small durable state (last upload, last error, glucose sequence numbers, monitor
states for ``status``) lives in the same file, in ``meta`` and ``monitors``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.bridge.reading import Reading, reading_to_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'quarantined')),
    reason TEXT,
    quarantined_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, id);
CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, acked_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS monitors (address TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One pending (or quarantined) reading."""

    id: int
    key: str
    created_at: float
    payload: str
    reason: str | None = None


class Outbox:
    """A durable queue of readings; one instance per process, used from one thread."""

    def __init__(self, path: str | Path, *, sent_retention_s: float = 3 * 86400) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sent_retention_s = sent_retention_s
        self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes ------------------------------------------------------------------------

    def put(self, reading: Reading) -> bool:
        """Store one reading, committed on return; ``False`` if its key is already known."""
        return self.put_raw(reading.key, reading_to_json(reading))

    def put_raw(self, key: str, payload: str, *, now: float | None = None) -> bool:
        return self.put_many_raw([(key, payload)], now=now) == 1

    def put_many(self, readings: Iterable[Reading]) -> int:
        """Store several readings in one commit (a glucose meter's stored records)."""
        return self.put_many_raw([(r.key, reading_to_json(r)) for r in readings])

    def put_many_raw(self, rows: Sequence[tuple[str, str]], *, now: float | None = None) -> int:
        ts = time.time() if now is None else now
        inserted = 0
        with self._tx():
            for key, payload in rows:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (key, created_at, payload) "
                    "SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM sent WHERE key = ?)",
                    (key, ts, payload, key),
                )
                inserted += cur.rowcount
        return inserted

    def ack(self, ids: Iterable[int], *, now: float | None = None) -> int:
        """Delete exactly these rows (the server stored them); returns how many went."""
        ids = list(ids)
        if not ids:
            return 0
        ts = time.time() if now is None else now
        gone = 0
        with self._tx():
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                self._db.execute(
                    f"INSERT OR REPLACE INTO sent (key, acked_at) SELECT key, ? FROM outbox WHERE id IN ({marks})",
                    (ts, *chunk),
                )
                gone += self._db.execute(
                    f"DELETE FROM outbox WHERE id IN ({marks})", chunk
                ).rowcount
            self._db.execute("DELETE FROM sent WHERE acked_at < ?", (ts - self.sent_retention_s,))
        return gone

    def quarantine(self, row_id: int, reason: str, *, now: float | None = None) -> None:
        """Set a reading the server refused aside, with the server's reason; kept until released."""
        ts = time.time() if now is None else now
        with self._tx():
            self._db.execute(
                "UPDATE outbox SET state = 'quarantined', reason = ?, quarantined_at = ? WHERE id = ?",
                (reason[:2000], ts, row_id),
            )

    def quarantine_key(self, key: str, reason: str, *, now: float | None = None) -> None:
        """Quarantine by stable key (a reading the bridge itself cannot attribute)."""
        row = self._db.execute("SELECT id FROM outbox WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.quarantine(row[0], reason, now=now)

    def release(self, row_id: int) -> None:
        """Put a quarantined reading back in the queue (after the household was fixed)."""
        with self._tx():
            self._db.execute(
                "UPDATE outbox SET state = 'pending', reason = NULL, quarantined_at = NULL WHERE id = ?",
                (row_id,),
            )

    # --- reads -------------------------------------------------------------------------

    def batch(
        self, max_size: int, max_age_s: float | None = None, *, now: float | None = None
    ) -> list[Row]:
        """The oldest pending rows, up to ``max_size``.

        With ``max_age_s``, a batch is only returned once it is full or its oldest row is at
        least that old (so the uploader sends fewer, larger requests); without, any rows.
        """
        rows = [
            Row(*r)
            for r in self._db.execute(
                "SELECT id, key, created_at, payload FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?",
                (max_size,),
            )
        ]
        if max_age_s is None or not rows or len(rows) >= max_size:
            return rows
        ts = time.time() if now is None else now
        return rows if ts - rows[0].created_at >= max_age_s else []

    def depth(self) -> int:
        """Pending readings."""
        return self._db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]

    def oldest_age(self, *, now: float | None = None) -> float | None:
        """Seconds since the oldest pending reading was stored, or ``None`` when empty."""
        row = self._db.execute(
            "SELECT min(created_at) FROM outbox WHERE state = 'pending'"
        ).fetchone()
        if row[0] is None:
            return None
        return max(0.0, (time.time() if now is None else now) - row[0])

    def quarantined(self) -> list[Row]:
        return [
            Row(*r)
            for r in self._db.execute(
                "SELECT id, key, created_at, payload, reason FROM outbox WHERE state = 'quarantined' ORDER BY id"
            )
        ]

    def quarantined_count(self) -> int:
        return self._db.execute(
            "SELECT count(*) FROM outbox WHERE state = 'quarantined'"
        ).fetchone()[0]

    def keys(self) -> set[str]:
        """Every key still held (pending or quarantined); for tests and ``status``."""
        return {k for (k,) in self._db.execute("SELECT key FROM outbox")}

    # --- small durable state ----------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def set_monitor_state(self, address: str, state: dict[str, Any]) -> None:
        with self._tx():
            self._db.execute(
                "INSERT OR REPLACE INTO monitors (address, state, updated_at) VALUES (?, ?, ?)",
                (address, json.dumps(state), time.time()),
            )

    def monitor_states(self) -> dict[str, dict[str, Any]]:
        return {
            a: json.loads(s)
            for a, s in self._db.execute("SELECT address, state FROM monitors ORDER BY address")
        }

    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def _tx(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): one durable commit per call."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _chunks(items: list[int], n: int) -> Iterable[list[int]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
