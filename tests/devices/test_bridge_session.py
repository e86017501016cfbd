"""devices.bridge.session against the simulated backend: reconnects, RACP, clock offset, bad bytes."""

from __future__ import annotations

import asyncio
import logging
import types
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devices.bridge.config import MonitorConfig
from devices.bridge.outbox import Outbox
from devices.bridge.reading import reading_from_json
from devices.bridge.session import MonitorSession
from devices.sim.backend import SimBleakClient, SimBleakScanner
from devices.sim.world import World, set_world

TZ = ZoneInfo("Asia/Shanghai")
ALICE, BOB = "440106195803120021", "440304196207150032"


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """pytest-django's fixture is asked for by the root conftest; these tests run without Django."""
    return types.SimpleNamespace()


@pytest.fixture
def world():
    w = World(seed=21)
    previous = set_world(w)
    yield w
    set_world(previous)


@pytest.fixture
def outbox(tmp_path: Path):
    with Outbox(tmp_path / "o.db") as ob:
        yield ob


def session(mon_cfg: MonitorConfig, outbox: Outbox, **kw) -> MonitorSession:
    return MonitorSession(
        mon_cfg, outbox=outbox, tz=TZ, client_backend=SimBleakClient, scanner_backend=SimBleakScanner,
        scan_timeout_s=0.3, reconnect_base_s=0.02, reconnect_cap_s=0.1, **kw,
    )  # fmt: skip


async def until(pred, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def readings(ob: Outbox) -> list:
    """The vital readings held (battery levels, also stored, left out)."""
    rs = [reading_from_json(r.payload) for r in ob.batch(10_000)]
    return [r for r in rs if r.measurement.kind != "battery"]


def depth(ob: Outbox) -> int:
    return len(readings(ob))


async def _run(sess: MonitorSession, body) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sess.run(stop))
    try:
        await body()
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_disconnect_mid_stream_reconnects_without_loss_or_duplicates(
    world: World, outbox: Outbox
) -> None:
    mon = world.add_monitor("blood_pressure", patient=ALICE, profile="hypertensive")
    sess = session(MonitorConfig(mon.address, patient=ALICE), outbox)
    taken = [mon.measure() for _ in range(6)]
    mon.drop_after(2)  # the link drops after two indications...
    mon.resend_on_reconnect = (
        2  # ...and the cuff never got their confirmations: it sends them again
    )

    async def body() -> None:
        await until(lambda: depth(outbox) == 6 and not mon.pending)
        taken.extend(mon.measure() for _ in range(2))  # live readings after the reconnection
        await until(lambda: depth(outbox) == 8)
        await asyncio.sleep(0.1)

    await _run(sess, body)
    got = readings(outbox)
    assert [r.measurement for r in got] == taken
    assert sess.state.connections >= 2
    assert mon.delivered == 10  # 8 readings + 2 re-sent duplicates, stored once


async def test_glucose_meter_fetches_only_records_after_the_last_sequence(
    world: World, outbox: Outbox
) -> None:
    mon = world.add_monitor("glucose_meter", patient=BOB, profile="diabetic")
    for _ in range(5):
        mon.measure()
    outbox.set_meta(f"glucose_seq:{mon.address}", 3)
    sess = session(MonitorConfig(mon.address, patient=BOB), outbox)

    async def body() -> None:
        await until(lambda: depth(outbox) == 2)
        await asyncio.sleep(0.05)

    await _run(sess, body)
    assert sorted(r.measurement.sequence for r in readings(outbox)) == [4, 5]
    assert outbox.get_meta(f"glucose_seq:{mon.address}") == 5


async def test_first_glucose_connection_fetches_all_records(world: World, outbox: Outbox) -> None:
    mon = world.add_monitor("glucose_meter", patient=BOB, profile="diabetic")
    for _ in range(3):
        mon.measure()
    sess = session(MonitorConfig(mon.address, patient=BOB), outbox)
    await _run(sess, lambda: until(lambda: depth(outbox) == 3))
    assert sorted(r.measurement.sequence for r in readings(outbox)) == [1, 2, 3]


async def test_clock_offset_from_current_time_corrects_effective_time(
    world: World, outbox: Outbox
) -> None:
    mon = world.add_monitor("thermometer", patient=ALICE, clock_error_s=-600)  # 10 minutes slow
    sess = session(MonitorConfig(mon.address, patient=ALICE), outbox)

    async def body() -> None:
        await until(lambda: sess.state.connected)
        mon.measure()
        await until(lambda: depth(outbox) == 1)

    await _run(sess, body)
    [r] = readings(outbox)
    assert abs((r.effective - datetime.now(TZ)).total_seconds()) < 5
    assert (
        r.device_time is not None
        and abs((r.received_at.replace(tzinfo=None) - r.device_time).total_seconds() - 600) < 5
    )
    assert r.effective.utcoffset().total_seconds() == 8 * 3600


async def test_clock_offset_estimated_without_current_time(world: World, outbox: Outbox) -> None:
    mon = world.add_monitor(
        "weight_scale", patient=ALICE, clock_error_s=3600, has_current_time=False
    )
    sess = session(MonitorConfig(mon.address, patient=ALICE), outbox)

    async def body() -> None:
        await until(lambda: sess.state.connected)
        mon.measure()
        await until(lambda: depth(outbox) == 1)

    await _run(sess, body)
    [r] = readings(outbox)
    assert abs((r.effective - r.received_at).total_seconds()) < 3


async def test_undecodable_payload_is_logged_and_the_stream_goes_on(
    world: World, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    mon = world.add_monitor("pulse_oximeter", patient=BOB, profile="copd_low_spo2")
    sess = session(MonitorConfig(mon.address, patient=BOB), outbox)

    async def body() -> None:
        await until(lambda: sess.state.connected)
        mon.measure()
        mon._send(0x2A5E, b"\xff\x01")  # reserved flags, truncated
        mon.measure()
        await until(lambda: depth(outbox) == 2)

    with caplog.at_level(logging.WARNING, logger="sg_bridge"):
        await _run(sess, body)
    assert sess.state.decode_errors == 1
    [rec] = [r for r in caplog.records if getattr(r, "sg_event", None) == "decode.error"]
    assert rec.sg_fields["data"] == "ff01" and rec.sg_fields["characteristic"] == "0x2A5E"


async def test_unmapped_user_id_is_quarantined_not_given_to_someone_else(
    world: World, outbox: Outbox
) -> None:
    mon = world.add_monitor("blood_pressure", patient=ALICE, users={2: (BOB, "healthy")})
    mon.measure(user_id=1)
    mon.measure(user_id=2)
    sess = session(MonitorConfig(mon.address, patient=ALICE, users={1: ALICE}), outbox)
    await _run(sess, lambda: until(lambda: depth(outbox) == 1 and outbox.quarantined_count() == 1))
    [r] = readings(outbox)
    assert r.patient_id == ALICE and r.measurement.user_id == 1
    assert "no patient for user id 2" in outbox.quarantined()[0].reason


async def test_monitor_out_of_range_is_reported(world: World, outbox: Outbox) -> None:
    mon = world.add_monitor("heart_rate", patient=ALICE)
    mon.set_in_range(False)
    sess = session(MonitorConfig(mon.address, patient=ALICE), outbox)

    async def body() -> None:
        await until(lambda: sess.state.state == "out_of_range")
        mon.set_in_range(True)
        await until(lambda: sess.state.connected)

    await _run(sess, body)
    assert "out of range" in (sess.state.last_error or "")
    assert outbox.monitor_states()[mon.address]["state"] == "stopped"
