"""WebSocket push of a hub's board and a hospital's inbox.

One socket serves one stream (``ws/hub/<code>/`` → "hub:<code>", ``ws/hospital/<code>/`` →
"hospital:<code>"). The protocol, client → server:

    {"type": "subscribe", "last_seq": 41}      replay what followed seq 41, then go live
    {"type": "subscribe", "last_seq": null}    go live from the current head, no replay
    {"type": "ping"}

server → client:

    {"type": "subscribed", "stream": "hub:hub-tianhe", "last_seq": 41, "head": 44}
    {"type": "alert", "stream": ..., "seq": 42, "event": "alert.created", "at": ..., "id": ...,
     <the rest of community.selectors.alert_payload>}
    {"type": "pong"}
    {"type": "error", "code": "bad_frame" | "unknown_type" | "bad_field" | "bad_seq"
                              | "forbidden" | "not_subscribed", "message": "..."}
    {"type": "resync", "stream": ..., "head": 44}   reload the board, then subscribe from head

Frames carry the alert's whole state, so a client upserts by ``id``; the seqs of one stream have
no gaps, so a client that sees one re-subscribes with the last seq it holds. The server fills
gaps itself when it notices one (a live event ahead of what it last sent) from the event table.

Membership is checked on connect (an unauthorised socket is accepted only to be closed with code
4403 after an error frame, so browsers can tell "not yours" from "server down") and again on
every subscribe. Bad frames get an error frame and the socket stays usable.
"""

from __future__ import annotations

import json
from typing import Any, Final

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from clinic.access import actor_for_user
from clinic.models import Hospital
from community import selectors
from community.access import can_watch_hospital, can_watch_hub
from community.models import DispatchHub
from community.streams import encode
from fhir import audit

CLOSE_FORBIDDEN: Final = 4403
MAX_FRAME_BYTES: Final = 4096
FIELDS: Final[dict[str, set[str]]] = {
    "subscribe": {"type", "last_seq"},
    "ping": {"type"},
}


class AlertStreamConsumer(AsyncJsonWebsocketConsumer):
    """Common protocol; subclasses name the stream and who may watch it."""

    stream: str = ""
    subscribed: bool = False
    last_sent: int = 0

    # --- subclass hooks (run in a thread through database_sync_to_async) ---

    def resolve_stream(self) -> str | None:
        """The stream of this socket's URL, or None when the place does not exist."""
        raise NotImplementedError

    def may_watch(self, user) -> bool:
        raise NotImplementedError

    async def dispatch(self, message: dict) -> None:
        """Channels' dispatch without its hop to a thread before every message.

        Channels closes stale database connections in the sync thread before each handler; for
        a board that meant one hop per socket per alert, all through the one thread-sensitive
        executor, so a thousand sockets received an alert one after another (p99 ~400 ms of
        fan-out). Every database access here goes through database_sync_to_async, which closes
        stale connections itself, so a live frame now goes out without leaving the event loop.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- connection ---

    async def connect(self) -> None:
        self.subscribed = False
        self.last_sent = 0
        user = self.scope.get("user")
        stream = await database_sync_to_async(self.resolve_stream)()
        allowed = (
            stream is not None
            and user is not None
            and user.is_authenticated
            and await database_sync_to_async(self.may_watch)(user)
        )
        await self.accept()
        if not allowed:
            await self.send_error("forbidden", "You may not watch this stream.")
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.stream = stream
        self.group = selectors.group_name(stream)
        # Joined before any replay is read, so nothing committed in between is missed; what
        # arrives twice is dropped by seq.
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.stream:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # --- client frames ---

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.stream:
            return
        if text_data is None:
            await self.send_error("bad_frame", "Frames are JSON text.")
            return
        if len(text_data.encode()) > MAX_FRAME_BYTES:
            await self.send_error("bad_frame", f"Frames are at most {MAX_FRAME_BYTES} bytes.")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_error("bad_frame", "The frame is not valid JSON.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("bad_frame", 'A frame is a JSON object with a "type".')
            return
        kind = content["type"]
        if kind not in FIELDS:
            await self.send_error("unknown_type", f"Unknown frame type {kind[:40]!r}.")
            return
        extra = sorted(set(content) - FIELDS[kind])
        if extra:
            await self.send_error("bad_field", f"Unexpected fields: {', '.join(extra)[:200]}.")
            return
        if kind == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.subscribe(content.get("last_seq"))

    async def subscribe(self, last_seq: Any) -> None:
        if last_seq is not None and (
            isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < 0
        ):
            await self.send_error("bad_field", "last_seq is a whole number ≥ 0, or null.")
            return
        user = self.scope["user"]
        if not await database_sync_to_async(self.may_watch)(user):
            self.subscribed = False
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.send_error("forbidden", "You may no longer watch this stream.")
            return
        head, events, problem = await database_sync_to_async(self.load_replay)(user, last_seq)
        if problem:
            self.subscribed = False
            await self.send_error("bad_seq", problem)
            await self.send_json({"type": "resync", "stream": self.stream, "head": head})
            return
        start = head if last_seq is None else last_seq
        await self.send_json(
            {"type": "subscribed", "stream": self.stream, "last_seq": start, "head": head}
        )
        self.last_sent = start
        self.subscribed = True
        for frame in events:
            await self.send_frame(frame)

    def load_replay(self, user, last_seq: int | None) -> tuple[int, list[dict], str | None]:
        """(head, frames after last_seq, problem); audited as a read of the stream."""
        head = selectors.stream_head(self.stream)
        audit.record(
            actor_for_user(user),
            action="R",
            channel="websocket",
            entity=f"AlertStream/{self.stream}",
            detail=f"subscribe last_seq={last_seq} head={head}",
        )
        if last_seq is None or last_seq == head:
            return head, [], None
        if last_seq > head:
            return head, [], f"last_seq {last_seq} is ahead of the stream (head {head})."
        if head - last_seq > selectors.REPLAY_LIMIT:
            return (
                head,
                [],
                (
                    f"{head - last_seq} events were missed; at most {selectors.REPLAY_LIMIT} "
                    "are replayed."
                ),
            )
        oldest = selectors.oldest_kept_seq(self.stream)
        if oldest is not None and last_seq + 1 < oldest:
            return head, [], f"Events before seq {oldest} are no longer kept."
        events = selectors.events_since(self.stream, last_seq)
        return head, [selectors.event_frame(e) for e in events], None

    # --- live events from the group ---

    async def send_frame(self, frame: dict) -> None:
        await self.send_encoded(frame["seq"], encode(frame))

    async def send_encoded(self, seq: int, text: str) -> None:
        if seq <= self.last_sent:
            return  # already sent (a replay overlapping the live feed)
        await self.send(text_data=text)
        self.last_sent = seq

    async def forward(self, message: dict) -> None:
        if not self.subscribed:
            return
        seq = message["seq"]
        if seq > self.last_sent + 1:
            # A push went missing or overtook another: the table has every committed event.
            missed = await database_sync_to_async(self.load_gap)(self.last_sent, seq)
            for frame in missed:
                await self.send_frame(frame)
        await self.send_encoded(seq, message["text"])

    # One handler per event type ("alert.created" → alert_created); each forwards the frame.
    alert_created = alert_updated = alert_acknowledged = alert_assigned = forward
    alert_dispatched = alert_escalated = alert_resolved = alert_dismissed = forward
    alert_reopened = forward

    def load_gap(self, after: int, before: int) -> list[dict]:
        events = selectors.events_since(self.stream, after, limit=before - after - 1)
        return [selectors.event_frame(e) for e in events if e.seq < before]

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})


class HubAlertConsumer(AlertStreamConsumer):
    """``ws/hub/<hub_code>/``: a hub's board, for the hub's doctors."""

    def resolve_stream(self) -> str | None:
        code = self.scope["url_route"]["kwargs"]["hub_code"]
        self.hub = DispatchHub.objects.filter(code=code).first()
        return selectors.hub_stream(self.hub) if self.hub else None

    def may_watch(self, user) -> bool:
        return self.hub is not None and can_watch_hub(user, self.hub)


class HospitalAlertConsumer(AlertStreamConsumer):
    """``ws/hospital/<hospital_code>/``: a hospital's escalation inbox, for its clinicians."""

    def resolve_stream(self) -> str | None:
        code = self.scope["url_route"]["kwargs"]["hospital_code"]
        self.hospital = Hospital.objects.filter(code=code).first()
        return selectors.hospital_stream(self.hospital) if self.hospital else None

    def may_watch(self, user) -> bool:
        return self.hospital is not None and can_watch_hospital(user, self.hospital)
