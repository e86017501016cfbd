"""MLLP (minimal lower layer protocol) framing, an asyncio listener and a client.

A frame is ``0x0B <message> 0x1C 0x0D``. The decoder is pure and incremental so that framing,
the part that sees hostile bytes, is tested without sockets. The listener answers every frame
it can delimit, in order, with exactly one ACK: the handler's, or one built from the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from devices.hl7 import ack as acks
from devices.hl7.errors import APPLICATION_INTERNAL_ERROR, Hl7Error, UnsupportedMessage

logger = logging.getLogger(__name__)

START_BLOCK = 0x0B
END_BLOCK = 0x1C
CARRIAGE_RETURN = 0x0D
DEFAULT_MAX_FRAME = 1024 * 1024
_HEAD_KEPT = 4096  # bytes of an oversized frame kept to read its MSH for the reply

Handler = Callable[[bytes], Awaitable[bytes]]


def frame(message: bytes) -> bytes:
    """Wrap one message in MLLP start and end blocks."""
    return b"\x0b" + message + b"\x1c\x0d"


@dataclass(frozen=True, slots=True)
class FrameTooLarge:
    """An oversized frame that was dropped; `head` is its beginning, enough to read MSH."""

    head: bytes
    size: int


class FrameDecoder:
    """Incremental MLLP decoder: feed it whatever the socket gives, get whole frames back.

    Bytes outside frames are discarded and counted in `garbage_bytes`. A start block inside a
    frame means the previous frame was cut short (its sender died or lost sync): the partial
    frame is discarded as garbage and decoding restarts at the new start block. An end block not
    followed by CR is not an end: the frame is discarded and the decoder waits for a start block.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self.garbage_bytes = 0
        self.oversized_frames = 0
        self._in_frame = False
        self._buffer = bytearray()
        self._size = 0  # bytes of the current frame so far, kept or not
        self._dropping = False  # the current frame is over max_frame
        self._pending_end = False  # the last byte fed was an END_BLOCK inside a frame

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (a disconnect now loses it)."""
        return self._in_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Frames completed by `data`; oversized frames are dropped and only counted."""
        return [e for e in self.feed_events(data) if isinstance(e, bytes)]

    def feed_events(self, data: bytes) -> list[bytes | FrameTooLarge]:
        """Frames and dropped oversized frames completed by `data`, in stream order."""
        out: list[bytes | FrameTooLarge] = []
        i, n = 0, len(data)
        while i < n:
            if self._pending_end:
                self._pending_end = False
                if data[i] == CARRIAGE_RETURN:
                    self._finish(out)
                    i += 1
                    continue
                self._abandon(extra=1)
                continue
            if not self._in_frame:
                start = data.find(START_BLOCK, i)
                if start < 0:
                    self.garbage_bytes += n - i
                    break
                self.garbage_bytes += start - i
                self._begin()
                i = start + 1
                continue
            end = data.find(END_BLOCK, i)
            restart = data.find(START_BLOCK, i, end if end >= 0 else n)
            if restart >= 0:
                self._append(data[i:restart])
                self._abandon()
                self._begin()
                i = restart + 1
                continue
            if end < 0:
                self._append(data[i:])
                break
            self._append(data[i:end])
            self._pending_end = True
            i = end + 1
        return out

    def _begin(self) -> None:
        self._in_frame = True
        self._buffer.clear()
        self._size = 0
        self._dropping = False

    def _append(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if not self._dropping and self._size > self.max_frame:
            self._dropping = True
            del self._buffer[_HEAD_KEPT:]  # keep only the head, for the error report
        if self._dropping:
            # The head kept is the same however the stream was cut into reads.
            keep = _HEAD_KEPT - len(self._buffer)
            if keep > 0:
                self._buffer += chunk[:keep]
            return
        self._buffer += chunk

    def _finish(self, out: list[bytes | FrameTooLarge]) -> None:
        if self._dropping:
            self.oversized_frames += 1
            out.append(FrameTooLarge(bytes(self._buffer[:_HEAD_KEPT]), self._size))
        else:
            out.append(bytes(self._buffer))
        self._in_frame = False
        self._buffer.clear()

    def _abandon(self, extra: int = 0) -> None:
        """Discard the current partial frame (counted as garbage, start block included).

        `extra` counts an end block already consumed that turned out not to end the frame.
        """
        self.garbage_bytes += 1 + self._size + extra
        self._in_frame = False
        self._pending_end = False
        self._buffer.clear()
        self._size = 0
        self._dropping = False


class MllpServer:
    """An asyncio MLLP listener: many connections, messages on each answered in order.

    `handler` receives the message bytes (without framing) and returns the ACK bytes. It is
    awaited once per message, one message at a time per connection, so a sender's messages are
    stored in the order it sent them. If it raises, the sender still gets an ACK (see
    `devices.hl7.ack.error_ack`). One connection's garbage or sudden close affects only itself.
    """

    def __init__(self, handler: Handler, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.handler = handler
        self.max_frame = max_frame
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve_connection, host, port)
        logger.info("MLLP listening on %s", ", ".join(self.addresses))

    @property
    def addresses(self) -> list[str]:
        if self._server is None:
            return []
        return [f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in self._server.sockets]

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        assert self._server is not None and self._server.sockets, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        assert self._server is not None, "server not started"
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting, then end open connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> MllpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        decoder = FrameDecoder(self.max_frame)
        logger.debug("MLLP connection from %s", peer)
        try:
            while data := await reader.read(65536):
                for event in decoder.feed_events(data):
                    reply = await self._reply(event, peer)
                    writer.write(frame(reply))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            logger.info("MLLP connection from %s lost: %s", peer, exc)
        except asyncio.CancelledError:
            pass
        finally:
            if decoder.in_frame:
                logger.warning("MLLP peer %s disconnected in the middle of a frame", peer)
            if decoder.garbage_bytes:
                logger.warning(
                    "MLLP peer %s sent %d bytes outside frames", peer, decoder.garbage_bytes
                )
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    async def _reply(self, event: bytes | FrameTooLarge, peer: object) -> bytes:
        if isinstance(event, FrameTooLarge):
            logger.warning("MLLP peer %s sent a %d-byte frame; dropped", peer, event.size)
            error = UnsupportedMessage(
                APPLICATION_INTERNAL_ERROR,
                f"Message of {event.size} bytes exceeds the {self.max_frame}-byte limit",
            )
            return acks.error_ack(event.head, error)
        try:
            return await self.handler(event)
        except Exception as exc:
            if isinstance(exc, Hl7Error):
                logger.warning("HL7 message from %s refused: %r", peer, exc)
            else:
                logger.exception("HL7 handler failed on a message from %s", peer)
            return acks.error_ack(event, exc)


async def serve(
    host: str, port: int, handler: Handler, *, max_frame: int = DEFAULT_MAX_FRAME
) -> MllpServer:
    """Start an `MllpServer` and return it (listening; call `serve_forever()` or `close()`)."""
    server = MllpServer(handler, max_frame=max_frame)
    await server.start(host, port)
    return server


class MllpClient:
    """A persistent MLLP connection that sends one message at a time and waits for its ACK."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder()
        self._ready: list[bytes] = []

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = self._reader = None

    async def __aenter__(self) -> MllpClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, message: bytes | str) -> bytes:
        """Send one message (str is UTF-8 encoded) and return the ACK bytes."""
        if self._reader is None or self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        payload = message.encode("utf-8") if isinstance(message, str) else message
        self._writer.write(frame(payload))
        await self._writer.drain()
        return await asyncio.wait_for(self._next_frame(), self.timeout)

    async def _next_frame(self) -> bytes:
        assert self._reader is not None
        while not self._ready:
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionError("MLLP peer closed the connection before acknowledging")
            self._ready.extend(self._decoder.feed(data))
        return self._ready.pop(0)


async def send(host: str, port: int, message: bytes | str, *, timeout: float = 10.0) -> bytes:
    """Open a connection, send one message, return the ACK bytes, close."""
    async with MllpClient(host, port, timeout=timeout) as client:
        return await client.send(message)
