"""The alert sockets through WebsocketCommunicator, on the in-memory layer and on Redis."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from community import actions
from community.consumers import CLOSE_FORBIDDEN
from community.models import Alert, HubMembership
from fhir.models import AuditEvent
from tests.community.helpers import (
    CHEN,
    LI,
    connect_and_subscribe,
    finding,
    patient,
    socket,
    user,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_db_connections"),
]

HUB = "/ws/hub/hub-tianhe/"
FUTIAN = "/ws/hub/hub-futian/"
ZSY = "/ws/hospital/zsy/"


@database_sync_to_async
def raise_alert(resident_id: str = CHEN, rule: str = "threshold:systolic_bp", **kw) -> Alert:
    return actions.do_raise_or_update_alert(patient(resident_id).pk, finding(rule, **kw))


@database_sync_to_async
def get_user(username: str):
    return user(username)


async def frames_until_quiet(communicator, timeout: float = 0.5) -> list[dict]:
    frames = []
    while not await communicator.receive_nothing(timeout=timeout):
        frames.append(await communicator.receive_json_from())
    return frames


async def test_both_tianhe_doctors_see_the_alert_and_who_acknowledged_it(demo, layer):
    dr1, dr2 = await get_user("dr_tianhe"), await get_user("dr_tianhe2")
    one = await connect_and_subscribe(HUB, dr1)
    two = await connect_and_subscribe(HUB, dr2)
    alert = await raise_alert()
    for communicator in (one, two):
        frame = await communicator.receive_json_from(timeout=10)
        assert frame["type"] == "alert" and frame["event"] == "alert.created"
        assert (frame["seq"], frame["id"], frame["patient_name"], frame["severity"]) == (
            1,
            alert.pk,
            "陈美玲",
            "critical",
        )
        assert frame["rule"] == "threshold:systolic_bp" and frame["values"] == [185.0]
    await database_sync_to_async(actions.check_acknowledge_alert)(dr1, alert.pk)
    for communicator in (one, two):
        frame = await communicator.receive_json_from(timeout=10)
        assert (frame["event"], frame["seq"], frame["status"], frame["acknowledged_by"]) == (
            "alert.acknowledged",
            2,
            "acknowledged",
            "王志强",
        )
    await one.disconnect()
    await two.disconnect()


async def test_doctor_of_another_hub_is_refused_and_receives_nothing(demo, layer):
    futian = await get_user("dr_futian")
    refused = socket(HUB, futian)
    connected, _ = await refused.connect()
    assert connected  # accepted only to say why, then closed
    assert (await refused.receive_json_from())["code"] == "forbidden"
    assert (await refused.receive_output())["code"] == CLOSE_FORBIDDEN

    own_board = await connect_and_subscribe(FUTIAN, futian)
    await raise_alert()
    assert await own_board.receive_nothing(timeout=0.5)
    await own_board.disconnect()


async def test_unknown_hub_anonymous_and_patient_are_refused(demo, memory_layer):
    from django.contrib.auth.models import AnonymousUser

    for path, who in (
        ("/ws/hub/hub-nowhere/", await get_user("dr_tianhe")),
        (HUB, AnonymousUser()),
        (HUB, await get_user("chenmeiling")),
        (ZSY, await get_user("dr_tianhe")),
        (ZSY, await get_user("clin_szph")),
    ):
        communicator = socket(path, who)
        await communicator.connect()
        assert (await communicator.receive_json_from())["code"] == "forbidden"
        assert (await communicator.receive_output())["code"] == CLOSE_FORBIDDEN


async def test_membership_is_checked_again_on_subscribe(demo, memory_layer):
    dr = await get_user("dr_tianhe2")
    communicator = await connect_and_subscribe(HUB, dr)
    await database_sync_to_async(
        lambda: HubMembership.objects.filter(practitioner__user=dr).delete()
    )()
    await communicator.send_json_to({"type": "subscribe", "last_seq": 0})
    assert (await communicator.receive_json_from())["code"] == "forbidden"
    await raise_alert()
    assert await communicator.receive_nothing(timeout=0.5)  # unsubscribed from then on
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}  # still usable
    await communicator.disconnect()


async def test_reconnect_replays_missed_events_in_order_then_goes_live(demo, layer):
    dr = await get_user("dr_tianhe")
    first = await connect_and_subscribe(HUB, dr)
    await raise_alert(rule="threshold:heart_rate")
    seen = await first.receive_json_from(timeout=10)
    await first.disconnect()

    await raise_alert(rule="threshold:spo2")
    missed = await raise_alert(rule="threshold:glucose")
    await database_sync_to_async(actions.check_acknowledge_alert)(dr, missed.pk)

    again = socket(HUB, dr)
    await again.connect()
    await again.send_json_to({"type": "subscribe", "last_seq": seen["seq"]})
    subscribed = await again.receive_json_from(timeout=10)
    assert subscribed == {
        "type": "subscribed",
        "stream": "hub:hub-tianhe",
        "last_seq": 1,
        "head": 4,
    }
    replay = [await again.receive_json_from(timeout=10) for _ in range(3)]
    assert [(f["seq"], f["event"], f["rule"]) for f in replay] == [
        (2, "alert.created", "threshold:spo2"),
        (3, "alert.created", "threshold:glucose"),
        (4, "alert.acknowledged", "threshold:glucose"),
    ]
    await raise_alert(rule="threshold:temperature")
    live = await again.receive_json_from(timeout=10)
    assert (live["seq"], live["rule"]) == (5, "threshold:temperature")
    assert await again.receive_nothing(timeout=0.3)
    await again.disconnect()


async def test_subscribe_from_null_starts_at_the_head(demo, memory_layer):
    await raise_alert()
    communicator = socket(HUB, await get_user("dr_tianhe"))
    await communicator.connect()
    await communicator.send_json_to({"type": "subscribe", "last_seq": None})
    assert (await communicator.receive_json_from())["head"] == 1
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_server_fills_a_gap_from_the_event_table(demo, memory_layer):
    communicator = await connect_and_subscribe(HUB, await get_user("dr_tianhe"))
    await raise_alert(rule="threshold:heart_rate")
    assert (await communicator.receive_json_from(timeout=10))["seq"] == 1
    # seq 2 is committed but its push is lost; seq 3's push arrives
    from community import streams

    sent: list = []
    original = streams.send_now
    streams.send_now = lambda messages: sent.extend(messages)
    try:
        await raise_alert(rule="threshold:spo2")
    finally:
        streams.send_now = original
    assert [m[1]["seq"] for m in sent] == [2]
    await raise_alert(rule="threshold:glucose")
    frames = [await communicator.receive_json_from(timeout=10) for _ in range(2)]
    assert [f["seq"] for f in frames] == [2, 3]
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame, code",
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('{"last_seq": 1}', "bad_frame"),
        ('{"type": "unsubscribe_all"}', "unknown_type"),
        ('{"type": "subscribe", "last_seq": 0, "stream": "hub:hub-futian"}', "bad_field"),
        ('{"type": "subscribe", "last_seq": "3"}', "bad_field"),
        ('{"type": "subscribe", "last_seq": -1}', "bad_field"),
        ('{"type": "subscribe", "last_seq": true}', "bad_field"),
        ('{"type": "ping", "x": ' + '"a" ' * 0 + '"' + "y" * 5000 + '"}', "bad_frame"),
    ],
)
async def test_malformed_frames_get_an_error_and_the_socket_stays_usable(
    demo, memory_layer, frame, code
):
    communicator = socket(HUB, await get_user("dr_tianhe"))
    await communicator.connect()
    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from(timeout=10)
    assert (error["type"], error["code"]) == ("error", code) and error["message"]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from() == {"type": "pong"}
    await communicator.disconnect()


async def test_binary_frame_is_refused(demo, memory_layer):
    communicator = socket(HUB, await get_user("dr_tianhe"))
    await communicator.connect()
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await communicator.receive_json_from())["code"] == "bad_frame"
    await communicator.disconnect()


@pytest.mark.parametrize("last_seq", [5, 10_000])
async def test_future_seq_is_refused_with_a_resync_hint(demo, memory_layer, last_seq):
    await raise_alert()
    communicator = socket(HUB, await get_user("dr_tianhe"))
    await communicator.connect()
    await communicator.send_json_to({"type": "subscribe", "last_seq": last_seq})
    error = await communicator.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "bad_seq")
    assert await communicator.receive_json_from() == {
        "type": "resync",
        "stream": "hub:hub-tianhe",
        "head": 1,
    }
    await communicator.send_json_to({"type": "subscribe", "last_seq": 1})
    assert (await communicator.receive_json_from())["type"] == "subscribed"
    await communicator.disconnect()


async def test_far_past_seq_is_refused_with_a_resync_hint(demo, memory_layer, monkeypatch):
    from community import selectors

    monkeypatch.setattr(selectors, "REPLAY_LIMIT", 2)
    for rule in ("threshold:heart_rate", "threshold:spo2", "threshold:glucose"):
        await raise_alert(rule=rule)
    communicator = socket(HUB, await get_user("dr_tianhe"))
    await communicator.connect()
    await communicator.send_json_to({"type": "subscribe", "last_seq": 0})
    assert (await communicator.receive_json_from())["code"] == "bad_seq"
    assert (await communicator.receive_json_from())["type"] == "resync"
    await communicator.disconnect()


async def test_subscribe_is_audited(demo, memory_layer):
    communicator = await connect_and_subscribe(HUB, await get_user("dr_tianhe"))
    record = await database_sync_to_async(
        lambda: AuditEvent.objects.filter(channel="websocket").get()
    )()
    assert (record.agent_id, record.action, record.entity) == (
        "dr_tianhe",
        "R",
        "AlertStream/hub:hub-tianhe",
    )
    await communicator.disconnect()


async def test_escalation_reaches_the_hospital_socket_only(demo, layer):
    clinician = await get_user("clin_zsy")
    inbox = await connect_and_subscribe(ZSY, clinician)
    other = await connect_and_subscribe("/ws/hospital/szph/", await get_user("clin_szph"))
    alert = await raise_alert()
    assert await inbox.receive_nothing(timeout=0.3)  # the hub handles it first
    await database_sync_to_async(actions.check_escalate_alert)(
        await get_user("dr_tianhe"), alert.pk, reason="no answer at home"
    )
    frame = await inbox.receive_json_from(timeout=10)
    assert (frame["stream"], frame["seq"], frame["event"], frame["escalated_to"]) == (
        "hospital:zsy",
        1,
        "alert.escalated",
        "zsy",
    )
    assert await other.receive_nothing(timeout=0.3)
    await inbox.disconnect()
    await other.disconnect()


async def test_li_alert_goes_to_futian_not_tianhe(demo, memory_layer):
    tianhe = await connect_and_subscribe(HUB, await get_user("dr_tianhe"))
    futian = await connect_and_subscribe(FUTIAN, await get_user("dr_futian2"))
    await raise_alert(LI, rule="threshold:spo2")
    assert (await futian.receive_json_from(timeout=10))["patient_name"] == "李建国"
    assert await tianhe.receive_nothing(timeout=0.3)
    await tianhe.disconnect()
    await futian.disconnect()


async def test_session_cookie_through_the_real_asgi_stack(demo, memory_layer):
    from channels.testing import WebsocketCommunicator
    from django.test import Client

    from config.asgi import application

    client = Client()
    await database_sync_to_async(client.force_login)(await get_user("dr_tianhe"))
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        HUB,
        headers=[(b"cookie", cookie), (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "subscribe", "last_seq": 0})
    assert (await communicator.receive_json_from(timeout=10))["type"] == "subscribed"
    await raise_alert()
    assert (await communicator.receive_json_from(timeout=10))["event"] == "alert.created"
    await communicator.disconnect()
    await asyncio.sleep(0)


@pytest.mark.services
async def test_idle_socket_outlives_the_redis_read_timeout_with_the_product_settings(demo):
    from django.conf import settings

    assert "RedisChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    communicator = await connect_and_subscribe(HUB, await get_user("dr_tianhe"))
    await asyncio.sleep(7)  # longer than one BZPOPMIN round
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await raise_alert()
    assert (await communicator.receive_json_from(timeout=10))["event"] == "alert.created"
    await communicator.disconnect()


async def test_a_live_frame_goes_out_without_a_thread_hand_off(demo, layer, monkeypatch):
    """A board's fan-out stays on the event loop: channels' dispatch hopped to the one sync
    thread before every message, which queued a thousand sockets behind each other."""
    from asgiref import sync

    dr = await get_user("dr_tianhe")
    board = await connect_and_subscribe(HUB, dr)
    hand_offs = 0
    real_call = sync.SyncToAsync.__call__

    async def counting_call(self, *args, **kwargs):
        nonlocal hand_offs
        if getattr(self.func, "__name__", "") != "raise_alert":  # the test's own write
            hand_offs += 1
        return await real_call(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting_call)
    await raise_alert()
    frame = await board.receive_json_from(timeout=10)
    assert frame["event"] == "alert.created" and frame["seq"] == 1
    assert hand_offs == 0
    monkeypatch.undo()
    await board.send_json_to({"type": "ping"})  # and the socket still takes client frames
    assert await board.receive_json_from(timeout=10) == {"type": "pong"}
    await board.disconnect()
