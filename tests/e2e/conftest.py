"""Fixtures of the multi-process tests."""

import os
import subprocess

import pytest


@pytest.fixture
def rabbitmq_vhost():
    """A RabbitMQ vhost of the test's own, as the Celery broker (deleted afterwards)."""
    vhost = f"sg_e2e_{os.getpid()}_{os.urandom(3).hex()}"
    try:
        for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):  # fmt: skip
            subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"RabbitMQ (rabbitmqctl) is needed for this test: {exc}")
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)
