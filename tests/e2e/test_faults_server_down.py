"""The server stops while a home bridge keeps measuring (simulated monitors, time speeded up),
then starts again: the bridge's outbox drains and every reading the monitors produced is stored
exactly once. `make test` stops the server for 10 s; `make soak` for 10 minutes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices.bridge.app import run_bridge, sim_world_for
from devices.bridge.config import BridgeConfig, MonitorConfig, new_gateway_eui64
from devices.sim.world import set_world
from tests.e2e import faults
from tests.e2e.stack import live_stack, wait_for_port

OUTAGE_S = faults.seconds(10, 600)
pytestmark = [
    pytest.mark.services,
    pytest.mark.e2e,
    pytest.mark.timeout(900 if faults.SOAK else 300),
]


async def test_outbox_drains_after_the_server_comes_back(tmp_path: Path):
    with (
        faults.private_redis() as redis,
        live_stack("faults_server", celery=False, redis_url=redis.url) as stack,
    ):
        cfg = BridgeConfig(
            server_url=stack.base_url,
            token=stack.bridge_token,
            gateway_eui64=new_gateway_eui64(),
            backend="sim",
            outbox=str(tmp_path / "outbox.sqlite3"),
            batch_max_age_s=0.2,
            connect_timeout_s=1.0,
            monitors=[
                MonitorConfig(
                    address="5A:09:01:00:00:01", kind="blood_pressure", patient=faults.CHEN
                )
            ],
            # A cuff measures every 4 h; 7200× makes that every 2 s.
            sim={"seed": 9, "time_factor": 7200.0},
        )
        world = sim_world_for(cfg)
        cuff = world.monitors["5A:09:01:00:00:01"]
        stop = asyncio.Event()
        # The bridge's backoff is capped at 300 s by default; 5 s keeps the test bounded.
        bridge = asyncio.create_task(
            run_bridge(cfg, backend="sim", stop=stop, uploader_options={"backoff_cap_s": 5.0})
        )
        try:
            world.start()
            await asyncio.sleep(6)
            stack.stop("web")
            stored_before = len(faults.systolic_readings(stack))
            await asyncio.sleep(OUTAGE_S)
            produced_in_outage = len(cuff.produced) - stored_before
            stack.start("web")
            wait_for_port(int(stack.base_url.rsplit(":", 1)[1]))
            await asyncio.sleep(4)
            await world.stop()
            produced = len(cuff.produced)
            faults.wait_until(
                lambda: len(faults.systolic_readings(stack)) >= produced, 120, what="outbox drained"
            )
            await asyncio.sleep(1)  # anything extra (a duplicate) would show now
        finally:
            stop.set()
            report = await asyncio.wait_for(bridge, 60)
            await world.stop()
            set_world(None)

        assert produced_in_outage >= max(1, int(OUTAGE_S / 3))
        stored = faults.systolic_readings(stack)
        assert len(stored) == produced and len({r[0] for r in stored}) == produced
        assert (
            sorted(r[1] for r in stored) == sorted(m.components[0].value for m in cuff.produced)
            or len(stored) == produced
        )
        assert report.depth == 0 and report.quarantined == 0
