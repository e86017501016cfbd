"""A bounds-checked cursor over one GATT payload, shared by every decoder.

Why: all GATT health characteristics are "flags, then optional fields"; one cursor with a length
guard turns every short read into :class:`TruncatedPayload` and every leftover byte into
:class:`TrailingBytes`, so no decoder can leak ``IndexError`` or ``struct.error``. Layouts are
module-level precompiled :class:`struct.Struct` objects (little-endian, as Bluetooth Core Spec
Vol 3 Part G says for multi-octet GATT fields).
"""

from __future__ import annotations

import struct
from typing import NoReturn

from devices.gatt.errors import DecodeError, TrailingBytes, TruncatedPayload

U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
S16 = struct.Struct("<h")
U32 = struct.Struct("<I")

Buffer = bytes | bytearray | memoryview


class Reader:
    """Cursor over ``data``; every read checks the remaining length first."""

    __slots__ = ("data", "pos", "end", "characteristic")

    def __init__(self, data: Buffer, characteristic: int) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.characteristic = characteristic

    def fail(self, cls: type[DecodeError], message: str) -> NoReturn:
        """Raise ``cls`` carrying this payload and characteristic."""
        raise cls(message, characteristic=self.characteristic, data=bytes(self.data))

    def _advance(self, n: int) -> int:
        pos = self.pos
        if pos + n > self.end:
            self.fail(
                TruncatedPayload, f"needs {n} more byte(s) at offset {pos}, has {self.end - pos}"
            )
        self.pos = pos + n
        return pos

    def unpack(self, layout: struct.Struct) -> tuple:
        """Read one fixed layout."""
        pos = self.pos
        if pos + layout.size > self.end:
            self.fail(
                TruncatedPayload,
                f"needs {layout.size} byte(s) at offset {pos}, has {self.end - pos}",
            )
        self.pos = pos + layout.size
        return layout.unpack_from(self.data, pos)

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.end:
            self.fail(TruncatedPayload, f"needs 1 byte at offset {pos}")
        self.pos = pos + 1
        return self.data[pos]

    def u16(self) -> int:
        pos = self.pos
        if pos + 2 > self.end:
            self.fail(TruncatedPayload, f"needs 2 bytes at offset {pos}, has {self.end - pos}")
        self.pos = pos + 2
        return U16.unpack_from(self.data, pos)[0]

    def take(self, n: int) -> bytes:
        """Read ``n`` raw bytes."""
        pos = self._advance(n)
        return bytes(self.data[pos : pos + n])

    def remaining(self) -> int:
        return self.end - self.pos

    def finish(self) -> None:
        """Refuse an over-long payload: every byte must have been claimed by a field."""
        if self.pos != self.end:
            self.fail(TrailingBytes, f"{self.end - self.pos} unexpected trailing byte(s)")
