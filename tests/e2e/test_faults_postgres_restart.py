"""PostgreSQL restarts (a private cluster of the test's own, never the machine's): a bridge that
keeps uploading through the outage has every reading stored exactly once, and the alert of a
critical reading taken during the outage exists, with no manual step after the restart.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.e2e import faults
from tests.e2e.stack import live_stack
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

RULE = "threshold:systolic_bp"
OUTAGE_S = faults.seconds(5, 120)


async def test_postgres_restart_stores_every_reading_exactly_once():
    with (
        faults.private_postgres() as pg,
        faults.private_redis() as redis,
        live_stack("faults_pg", database_url=pg.url, redis_url=redis.url) as stack,
    ):
        uploaded = 0
        stop = asyncio.Event()
        down = asyncio.Event()
        critical_sent = False

        async def bridge() -> None:
            """One Bundle of 2 readings every 0.3 s, each retried until accepted."""
            nonlocal uploaded, critical_sent
            minute = 0
            async with httpx.AsyncClient(timeout=10) as client:
                while not stop.is_set():
                    # The first reading taken during the outage is critical.
                    systolic = 188 if down.is_set() and not critical_sent else 128
                    critical_sent = critical_sent or systolic == 188
                    body = bundles.upload(faults.CHEN, 2, systolic=systolic, start_minute=minute)
                    await faults.upload_until_accepted(stack, body, OUTAGE_S + 120, client)
                    uploaded += 2
                    minute += 2
                    await asyncio.sleep(0.3)

        task = asyncio.create_task(bridge())
        await asyncio.sleep(3)
        pg.stop("fast")
        down.set()
        before_restart = uploaded
        await asyncio.sleep(OUTAGE_S)
        pg.start()
        restarted = time.monotonic()
        await asyncio.sleep(5)
        stop.set()
        await asyncio.wait_for(task, OUTAGE_S + 150)
        assert critical_sent

        stored = faults.systolic_readings(stack)
        assert len(stored) == uploaded and len({r[0] for r in stored}) == uploaded
        assert uploaded > before_restart
        faults.wait_until(lambda: faults.alerts(stack, RULE), 60, what="the alert")
        assert len(faults.alerts(stack, RULE)) == 1
        assert time.monotonic() - restarted < 120
