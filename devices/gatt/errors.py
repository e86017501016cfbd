"""One exception tree for everything that can go wrong while decoding GATT payloads.

Why: the bridge must tell a hostile or broken payload apart from its own bugs. Every decoder
in this package raises a subclass of :class:`DecodeError` (itself a ``ValueError``) and never
``IndexError``, ``struct.error`` or ``UnicodeDecodeError``, so a caller needs exactly one
``except DecodeError`` to log the bad notification and keep the good ones beside it.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """A payload that cannot be turned into a measurement.

    ``characteristic`` is the 16-bit UUID being decoded (``None`` when unknown) and ``data``
    the offending payload, kept so that the bridge can log it verbatim.
    """

    def __init__(
        self, message: str, *, characteristic: int | None = None, data: bytes = b""
    ) -> None:
        super().__init__(message)
        self.characteristic = characteristic
        self.data = bytes(data)

    def __str__(self) -> str:
        where = f"0x{self.characteristic:04X}" if self.characteristic is not None else "?"
        return f"{self.args[0]} (characteristic {where}, data {self.data.hex()})"


class TruncatedPayload(DecodeError):
    """The payload ends before a field that the flags announce."""


class TrailingBytes(DecodeError):
    """The payload is longer than its flags allow (over-long)."""


class InvalidFlags(DecodeError):
    """Reserved flag bits are set, or flags contradict each other or the payload."""


class UnknownCharacteristic(DecodeError):
    """No decoder is registered for this characteristic UUID."""


class InvalidValue(DecodeError):
    """A field is out of its specified range (battery 101 %, month 13, bad UTF-8, ...)."""


class CrcMismatch(DecodeError):
    """A CGM E2E-CRC does not match the record it protects."""


class EncodeError(ValueError):
    """A measurement that cannot be represented on the wire (used by the encoders)."""
