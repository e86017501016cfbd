"""Redis restarts (and, keeping nothing on disk, forgets every group and queued message):
uploads keep being stored, the alert of a reading that arrived during the outage exists, and
the hub's board reconnects and holds every event of its stream.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e import faults
from tests.e2e.stack import live_stack
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

RULE = "threshold:systolic_bp"
OUTAGE_S = faults.seconds(3, 120)


async def test_redis_restart_loses_no_reading_and_no_alert(rabbitmq_vhost):
    # Redis is the channel layer and the cache here; Celery's broker is RabbitMQ, as
    # docs/scaling.md recommends: a Redis broker that restarts empty loses its queues and
    # kombu's bindings with them (readings stay stored, but their evaluation would wait).
    with (
        faults.private_redis() as redis,
        live_stack(
            "faults_redis",
            redis_url=redis.url,
            broker_url=rabbitmq_vhost,
            beat=True,  # its sweep evaluates readings whose task was lost with Redis
            extra_env={"SG_MISSED_EVALUATION_SWEEP_S": "3", "SG_MISSED_EVALUATION_AFTER_S": "5"},
        ) as stack,
    ):
        board = faults.Board(stack, faults.session_for(stack, "dr_tianhe"))
        board.start()
        minute = 0
        uploaded = 0

        async def upload(systolic: float = 128) -> int:
            nonlocal minute, uploaded
            attempts = await faults.upload_until_accepted(
                stack, bundles.upload(faults.CHEN, 2, systolic=systolic, start_minute=minute),
                OUTAGE_S + 120,
            )  # fmt: skip
            minute += 2
            uploaded += 2
            return attempts

        await upload()
        redis.kill()

        # A bridge keeps uploading during the outage (retrying what is refused); Redis comes
        # back after OUTAGE_S whatever the uploads do.
        async def outage_uploads() -> list[int]:
            return [await upload(), await upload(186), await upload()]

        uploads = asyncio.create_task(outage_uploads())
        await asyncio.sleep(OUTAGE_S)
        redis.start()
        during = await uploads

        # The database is the record: every reading is stored once, none waited for Redis.
        assert len(faults.systolic_readings(stack)) == uploaded
        assert len({r[0] for r in faults.systolic_readings(stack)}) == uploaded

        # The critical reading of the outage has its alert, and the board gets it.
        (alert,) = faults.wait_until(lambda: faults.alerts(stack, RULE), 60, what="the alert")
        await board.wait_for(lambda f: f.get("id") == alert[0], 60, "the outage's alert")

        # Pushes work again after the restart: a new critical reading reaches the open board.
        # (The normal readings after 186 cleared that alert, so 195 opens the next one.)
        await upload(195)
        (latest,) = faults.wait_until(
            lambda: [a for a in faults.alerts(stack, RULE) if a[1] == "open"], 60,
            what="the alert of the reading after the restart",
        )  # fmt: skip
        await board.wait_for(
            lambda f: f.get("id") == latest[0], 30, "a push after the restart"
        )  # fmt: skip
        await board.has_every_event(30)
        assert len(faults.systolic_readings(stack)) == uploaded
        await board.stop()
        # Last, so the checks above run either way: a bridge's upload must not need Redis.
        assert during == [1, 1, 1], f"uploads refused while Redis was down (attempts {during})"
