"""Gap-free event streams per hub and hospital, and the one publisher that pushes them.

Every action appends one `AlertEvent` per stream the alert belongs to (its hub; its hospital once
escalated), numbered from a `StreamCounter` row locked in the same transaction, so the numbers a
stream hands out are 1, 2, 3... with no gap and no repeat, and committed in that order. The push
happens after commit (`publish_on_commit`); a push is only a hint, clients that miss one replay
from the table (`community.selectors.events_since`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from community.models import Alert, AlertEvent, StreamCounter
from community.selectors import (
    alert_payload,
    event_frame,
    group_name,
    hospital_stream,
    hub_stream,
)

logger = logging.getLogger(__name__)


def streams_of(alert: Alert) -> list[str]:
    """The streams that hear of ``alert``, sorted (the order their counters are locked in)."""
    streams = []
    if alert.hub_id:
        streams.append(hub_stream(alert.hub))
    if alert.escalated_to_id:
        streams.append(hospital_stream(alert.escalated_to))
    return sorted(streams)


def next_seq(stream: str) -> int:
    """Allocate the next number of ``stream``. Call inside a transaction; it holds the lock.

    The row is created on first use with ON CONFLICT DO NOTHING, so two first events racing
    both end up locking the one row.
    """
    StreamCounter.objects.bulk_create([StreamCounter(stream=stream)], ignore_conflicts=True)
    counter = StreamCounter.objects.select_for_update().get(stream=stream)
    counter.last_seq += 1
    counter.save(update_fields=["last_seq"])
    return counter.last_seq


def append_events(alert: Alert, event: str, *, also: Sequence[str] = ()) -> list[AlertEvent]:
    """Record ``event`` with the alert's current state on each of its streams (and on ``also``:
    a stream the alert has just left, e.g. a hospital it was handed back from, must hear it).

    Call inside the transaction that changed the alert and after every other write in it: the
    counter locks are taken last and in a fixed order, so concurrent actions cannot deadlock.
    """
    if transaction.get_autocommit():
        raise RuntimeError("append_events must run inside the transaction that changed the alert")
    payload = alert_payload(alert)
    now = timezone.now()
    return [
        AlertEvent.objects.create(
            stream=stream, seq=next_seq(stream), alert=alert, event=event, payload=payload, at=now
        )
        for stream in sorted({*streams_of(alert), *also})
    ]


def publish_on_commit(events: Sequence[AlertEvent]) -> None:
    """Push ``events`` to their streams' groups once the transaction commits; never before.

    A failed push is logged, not raised: the events are stored and clients catch up by seq.
    """
    # The frame is encoded here, once, not by each of the thousand sockets of a board.
    messages = [
        (
            group_name(e.stream),
            {"type": e.event, "stream": e.stream, "seq": e.seq, "text": encode(event_frame(e))},
        )
        for e in events
    ]
    if messages:
        transaction.on_commit(lambda: send_now(messages), robust=True)


def encode(frame: dict) -> str:
    """A frame as the sockets send it (what AsyncJsonWebsocketConsumer.send_json would send)."""
    return json.dumps(frame)


def send_now(messages: Sequence[tuple[str, dict]]) -> None:
    """group_send each (group, message); one event loop for the lot (cheap from sync code)."""
    layer = get_channel_layer()
    if layer is None:
        return

    async def send_all() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:
        logger.exception("push of %d alert events failed; clients will replay them", len(messages))
