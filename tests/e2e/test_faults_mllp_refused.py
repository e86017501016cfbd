"""A hospital's MLLP endpoint refuses connections for a while: the alert message queued for it
is retried by the Celery worker (backoff) and delivered exactly once when the endpoint is back.
"""

from __future__ import annotations

import time

import pytest

from devices.hl7 import ack
from tests.devices.hl7_listener import ThreadedServer
from tests.e2e import faults
from tests.e2e.stack import free_port, live_stack

OUTAGE_S = faults.seconds(8, 180)
pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

QUEUE = """
from datetime import datetime
from django.db import transaction
from clinic.models import Hospital, Patient
from devices.hl7 import outbound, pcd01
hospital = Hospital.objects.get(code="zsy")
hospital.mllp_host, hospital.mllp_port = "127.0.0.1", %d
hospital.save()
patient = Patient.objects.get(resident_id="440106195803120021")
when = datetime(2026, 3, 1, 8, 30, tzinfo=pcd01.LOCAL_ZONE)
with transaction.atomic():
    message = outbound.queue_alert_for_hospital(
        hospital_id=hospital.pk, alert_id=4242, patient_id=patient.pk,
        rule_text="收缩压 ≥ 180 mmHg", severity="high",
        values=[{"vital": "systolic_bp", "value": 186, "unit": "mm[Hg]", "observed_at": when}],
        time=when,
    )
print(message.pk, message.control_id)
"""


class HospitalEndpoint:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def __call__(self, raw: bytes) -> bytes:
        self.received.append(raw)
        return ack.build_ack(ack.read_header(raw))


def test_refused_hospital_endpoint_gets_the_message_once_it_is_back():
    port = free_port()  # nobody listens: connections are refused
    with faults.private_redis() as redis, live_stack("faults_mllp", redis_url=redis.url) as stack:
        pk, control_id = stack.manage("shell", "-c", QUEUE % port).split()[-2:]

        def status() -> tuple:
            return faults.query(
                stack, "SELECT status, attempts FROM devices_hl7message WHERE id = %s", int(pk)
            )[0]

        faults.wait_until(lambda: status()[1] >= 1, 60, what="a first (refused) attempt")
        time.sleep(OUTAGE_S)
        assert status()[0] == "queued"  # still trying, nothing lost
        endpoint = HospitalEndpoint()
        server = ThreadedServer(endpoint, port=port)
        try:
            faults.wait_until(lambda: status()[0] == "delivered", 240, what="delivery")
            time.sleep(2)
        finally:
            server.close()
        assert [m for m in endpoint.received if f"|{control_id}|".encode() in m] == [
            endpoint.received[0]
        ]
        assert len(endpoint.received) == 1
