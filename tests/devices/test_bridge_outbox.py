"""devices.bridge.outbox: durable, deduplicating store-and-forward queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from devices.bridge.outbox import Outbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """pytest-django's fixture is asked for by the root conftest; these tests run without Django."""
    return types.SimpleNamespace()


def test_redelivered_notification_is_stored_once(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        assert ob.put_raw("k1", "{}") is True
        assert ob.put_raw("k1", "{}") is False
        assert ob.depth() == 1


def test_batch_waits_for_size_or_age(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        ob.put_raw("a", "{}", now=1000.0)
        ob.put_raw("b", "{}", now=1001.0)
        assert ob.batch(10, 5.0, now=1003.0) == []
        assert [r.key for r in ob.batch(10, 5.0, now=1005.0)] == ["a", "b"]
        assert [r.key for r in ob.batch(2, 5.0, now=1000.0)] == ["a", "b"]
        assert [r.key for r in ob.batch(1)] == ["a"]
        assert ob.oldest_age(now=1010.0) == pytest.approx(10.0)


def test_ack_deletes_only_the_acknowledged_and_remembers_them(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        for k in "abc":
            ob.put_raw(k, "{}")
        rows = ob.batch(10)
        assert ob.ack([rows[0].id, rows[2].id]) == 2
        assert ob.keys() == {"b"}
        assert ob.put_raw("a", "{}") is False  # already uploaded: not queued again


def test_quarantine_is_kept_and_visible_never_batched(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        ob.put_raw("a", "{}")
        ob.put_raw("b", "{}")
        ob.quarantine(ob.batch(1)[0].id, "403: patient not in household")
        assert [r.key for r in ob.batch(10)] == ["b"]
        assert ob.depth() == 1 and ob.quarantined_count() == 1
        assert ob.quarantined()[0].reason == "403: patient not in household"
        ob.release(ob.quarantined()[0].id)
        assert ob.depth() == 2


def test_wal_mode_and_full_sync(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


class OutboxMachine(RuleBasedStateMachine):
    """Any sequence of put / ack / quarantine / crash keeps exactly the unacknowledged readings."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "o.db")
        self.ob = Outbox(self.path)
        self.pending: set[str] = set()
        self.quarantined: set[str] = set()
        self.acked: set[str] = set()

    @rule(key=st.text("abcdef", min_size=1, max_size=3))
    def put(self, key: str) -> None:
        inserted = self.ob.put_raw(key, "{}")
        known = key in self.pending or key in self.quarantined or key in self.acked
        assert inserted == (not known)
        if not known:
            self.pending.add(key)

    @rule(n=st.integers(0, 5), data=st.data())
    def ack_some(self, n: int, data: st.DataObject) -> None:
        rows = self.ob.batch(n)
        chosen = [r for r in rows if data.draw(st.booleans())]
        self.ob.ack([r.id for r in chosen])
        for r in chosen:
            self.pending.discard(r.key)
            self.acked.add(r.key)

    @rule()
    def quarantine_first(self) -> None:
        rows = self.ob.batch(1)
        if rows:
            self.ob.quarantine(rows[0].id, "invalid")
            self.pending.discard(rows[0].key)
            self.quarantined.add(rows[0].key)

    @rule()
    def crash_and_restart(self) -> None:
        self.ob.close()
        self.ob = Outbox(self.path)

    @invariant()
    def holds_exactly_the_unacknowledged(self) -> None:
        assert {r.key for r in self.ob.batch(10_000)} == self.pending
        assert {r.key for r in self.ob.quarantined()} == self.quarantined
        assert self.ob.depth() == len(self.pending)

    def teardown(self) -> None:
        self.ob.close()


TestOutboxInvariants = OutboxMachine.TestCase
TestOutboxInvariants.settings = hsettings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


WRITER = textwrap.dedent(
    """
    import sys
    from devices.bridge.outbox import Outbox
    ob = Outbox(sys.argv[1])
    i = 0
    while True:
        ob.put_raw(f"k{i:06d}", "x" * 200)
        print(f"k{i:06d}", flush=True)
        i += 1
        if i % 7 == 0:
            ob.ack([r.id for r in ob.batch(3)])
    """
)


@pytest.mark.parametrize("after", [1, 25, 200])
def test_every_committed_put_survives_sigkill(tmp_path: Path, after: int) -> None:
    db = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    committed = []
    assert proc.stdout is not None
    for line in proc.stdout:
        committed.append(line.strip())
        if len(committed) >= after:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with Outbox(db) as ob:
        assert ob.integrity_ok()
        held = ob.keys()
        # Everything printed was committed: it is either still queued or was acknowledged.
        acked = {k for k in committed if k not in held}
        assert len(acked) <= (len(committed) // 7 + 1) * 3
        assert all(k in held or k in acked for k in committed)
        sent = {k for (k,) in ob._db.execute("SELECT key FROM sent")}
        assert acked <= sent
