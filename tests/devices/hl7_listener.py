"""A real MLLP listener (or a hospital's MLLP endpoint) on port 0 in a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

from devices.hl7 import mllp

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"


class ThreadedServer:
    """`mllp.serve(handler)` running on its own event loop, so tests stay synchronous."""

    def __init__(self, handler: Callable[[bytes], Awaitable[bytes]], port: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            mllp.serve("127.0.0.1", port, handler), self.loop
        ).result(10)

    @property
    def port(self) -> int:
        return self.server.port

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def with_control_id(raw: bytes, control_id: str) -> bytes:
    first, sep, rest = raw.partition(b"\r")
    fields = first.split(b"|")
    fields[9] = control_id.encode()
    return b"|".join(fields) + sep + rest
