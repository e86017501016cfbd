"""Alerts across real processes: uvicorn, a Celery worker and beat, PostgreSQL and Redis.

An abnormal reading uploaded as a bridge would upload it reaches the Tianhe hub's sockets and
no other hub's; a socket that reconnects with its last seq receives what it missed, in order;
a critical alert nobody acknowledges climbs to the hospital's socket after the (shortened) limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.stack import live_stack
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

CHEN = "440106195803120021"
USERS = ["dr_tianhe", "dr_tianhe2", "dr_futian", "clin_zsy"]

SETUP = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from community.models import DispatchHub, EscalationPolicy
EscalationPolicy.objects.update_or_create(
    hub=DispatchHub.objects.get(code="hub-tianhe"), severity="critical",
    defaults={"doctors_timeout_s": 3, "duty_lead_timeout_s": 3},
)
for name in %r:
    user = get_user_model().objects.get(username=name)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    print(name, session.session_key)
"""


@pytest.fixture(scope="module")
def stack():
    with live_stack(
        "alerts",
        celery=True,
        beat=True,
        extra_env={
            "SG_ESCALATION_SWEEP_S": "1",
            "SG_SILENCE_SWEEP_S": "3600",
            # redis-py 8's 5 s read timeout would cut channels_redis' 5 s BZPOPMIN
            # (django/channels_redis#422) until config.settings sets one itself.
            "CHANNEL_REDIS_HOSTS": os.environ["REDIS_URL"] + "?socket_timeout=30",
        },
    ) as running:
        yield running


@pytest.fixture(scope="module")
def sessions(stack) -> dict[str, str]:
    out = stack.manage("shell", "-c", SETUP % (USERS,))
    return dict(line.split() for line in out.strip().splitlines()[-len(USERS) :])


async def open_socket(stack, path: str, session_key: str) -> ClientConnection:
    return await connect(
        stack.ws_url + path,
        additional_headers={"Cookie": f"sessionid={session_key}", "Origin": stack.base_url},
        open_timeout=10,
    )


async def subscribe(ws: ClientConnection, last_seq: int | None) -> dict:
    await ws.send(json.dumps({"type": "subscribe", "last_seq": last_seq}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["type"] == "subscribed", reply
    return reply


async def next_frame(ws: ClientConnection, match, timeout: float = 30) -> dict:
    """The first frame for which ``match`` holds, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no matching frame")
        frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
        if match(frame):
            return frame


async def drain(ws: ClientConnection, seconds: float) -> list[dict]:
    frames = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), seconds)))
    except TimeoutError:
        return frames


async def upload(stack, systolic: float, minute: int) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            stack.base_url + "/fhir/",
            content=json.dumps(bundles.upload(CHEN, 1, systolic=systolic, start_minute=minute)),
            headers={
                "Content-Type": "application/fhir+json",
                "Authorization": f"Bearer {stack.bridge_token}",
            },
        )
    assert response.status_code == 200, response.text


def is_bp_alert(frame: dict) -> bool:
    return frame.get("type") == "alert" and frame.get("rule") == "threshold:systolic_bp"


async def test_alert_reaches_the_right_sockets_replays_and_escalates(stack, sessions):
    tianhe = await open_socket(stack, "/ws/hub/hub-tianhe/", sessions["dr_tianhe"])
    tianhe2 = await open_socket(stack, "/ws/hub/hub-tianhe/", sessions["dr_tianhe2"])
    futian = await open_socket(stack, "/ws/hub/hub-futian/", sessions["dr_futian"])
    hospital = await open_socket(stack, "/ws/hospital/zsy/", sessions["clin_zsy"])
    for ws in (tianhe, tianhe2, futian, hospital):
        await subscribe(ws, 0)

    # a doctor of another hub is refused on the Tianhe board
    intruder = await open_socket(stack, "/ws/hub/hub-tianhe/", sessions["dr_futian"])
    assert json.loads(await asyncio.wait_for(intruder.recv(), 10))["code"] == "forbidden"
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(intruder.recv(), 10)
    assert closed.value.rcvd.code == 4403

    await upload(stack, 185, minute=0)
    created = await next_frame(tianhe, is_bp_alert)
    assert (created["event"], created["severity"], created["patient_name"]) == (
        "alert.created",
        "critical",
        "陈美玲",
    )
    seen = await next_frame(tianhe2, is_bp_alert)
    assert seen["seq"] == created["seq"]

    # dr_tianhe2 drops off; a new reading updates the alert while they are away
    await tianhe2.close()
    await upload(stack, 195, minute=1)
    updated = await next_frame(tianhe, lambda f: is_bp_alert(f) and f["event"] == "alert.updated")

    back = await open_socket(stack, "/ws/hub/hub-tianhe/", sessions["dr_tianhe2"])
    reply = await subscribe(back, seen["seq"])
    replay = [
        json.loads(await asyncio.wait_for(back.recv(), 10))
        for _ in range(reply["head"] - seen["seq"])
    ]
    assert [f["seq"] for f in replay] == list(range(seen["seq"] + 1, reply["head"] + 1))
    assert updated["seq"] in [f["seq"] for f in replay]

    # nobody acknowledges: doctors (3 s) → duty lead (3 s) → the hospital's socket
    escalated = await next_frame(hospital, lambda f: f.get("event") == "alert.escalated", 60)
    assert (escalated["stream"], escalated["escalated_to"], escalated["status"]) == (
        "hospital:zsy",
        "zsy",
        "escalated",
    )
    assert escalated["id"] == created["id"]
    hub_side = await next_frame(
        tianhe, lambda f: f.get("event") == "alert.escalated" and f["status"] == "escalated", 30
    )
    assert hub_side["escalation_tier"] == 2

    # the Futian board heard nothing of any of it
    assert [f for f in await drain(futian, 1.0) if f.get("type") == "alert"] == []
    for ws in (tianhe, back, futian, hospital):
        await ws.close()
