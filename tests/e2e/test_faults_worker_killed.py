"""kill -9 of the Celery worker in the middle of rule evaluation, then a restart: the alert
exists exactly once and reaches the hub's board once (acks_late redelivery; tasks idempotent).

Runs on RabbitMQ (a vhost of its own), where an unacknowledged task goes back to the queue the
moment its worker's connection dies. On the Redis broker the same redelivery waits for the
broker's visibility_timeout (SG_CELERY_VISIBILITY_TIMEOUT_S, one hour by default).
"""

from __future__ import annotations

import signal
import subprocess

import psutil
import psycopg
import pytest

from tests.e2e import faults
from tests.e2e.stack import live_stack
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

RULE = "threshold:systolic_bp"


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool children at once, as a crash of its machine would."""
    parent = psutil.Process(proc.pid)
    for p in [*parent.children(recursive=True), parent]:
        p.send_signal(signal.SIGKILL)
    proc.wait(10)


async def test_worker_killed_mid_evaluation_raises_the_alert_exactly_once(rabbitmq_vhost):
    with (
        faults.private_redis() as redis,
        live_stack("faults_worker", broker_url=rabbitmq_vhost, redis_url=redis.url) as stack,
    ):
        board = faults.Board(stack, faults.session_for(stack, "dr_tianhe"))
        board.start()
        url = stack.env["DATABASE_URL"].replace("postgres://", "postgresql://")
        db = url.rsplit("/", 1)[1]
        # Rule evaluation blocks on this lock in the middle of its transaction.
        with psycopg.connect(url) as lock:
            lock.execute("LOCK TABLE community_alert IN EXCLUSIVE MODE")
            await faults.upload_until_accepted(
                stack, bundles.upload(faults.CHEN, 1, systolic=186), 30
            )
            faults.wait_until(
                lambda: faults.query(
                    stack,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND wait_event_type = 'Lock'",
                    db,
                )[0][0],
                60,
                what="rule evaluation waiting on the lock",
            )
            kill_tree(stack.processes["worker"])
            lock.rollback()
        assert faults.alerts(stack, RULE) == []  # the killed evaluation committed nothing

        stack.start("worker")
        (alert,) = faults.wait_until(lambda: faults.alerts(stack, RULE), 60, what="the alert")
        created = await board.wait_for(
            lambda f: f.get("rule") == RULE and f["event"] == "alert.created", 30
        )
        assert created["id"] == alert[0]

        # A redelivery after the commit (the worker dies before its ack) changes nothing.
        vital_ids = [
            r[0] for r in faults.query(stack, "SELECT id FROM fhir_vitalsign WHERE value = 186")
        ]
        patient_id = faults.query(
            stack, "SELECT id FROM clinic_patient WHERE resident_id = %s", faults.CHEN
        )[0][0]
        stack.manage(
            "shell",
            "-c",
            "from community.tasks import evaluate_readings; "
            f"evaluate_readings.apply(args=[{patient_id}, {vital_ids}])",
        )
        assert [a[0] for a in faults.alerts(stack, RULE)] == [alert[0]]
        await board.has_every_event(30)
        assert [f["event"] for f in board.alert_frames(RULE)].count("alert.created") == 1
        assert len(faults.systolic_readings(stack)) == 1
        await board.stop()
