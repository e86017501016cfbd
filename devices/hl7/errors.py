"""The one error family of the HL7 v2 layer.

Every problem found in an inbound message becomes an `Hl7Error` that knows what the sender must
be told: the HL7 error code (table 0357), where it is (the ERR-2 location) and the ACK code.
The listener turns any of them into an ACK; nothing in this package drops a connection silently.
"""

from __future__ import annotations

# HL7 table 0357 (message error condition codes) used by this package.
SEGMENT_SEQUENCE_ERROR = 100
REQUIRED_FIELD_MISSING = 101
DATA_TYPE_ERROR = 102
TABLE_VALUE_NOT_FOUND = 103
UNSUPPORTED_MESSAGE_TYPE = 200
UNSUPPORTED_EVENT_CODE = 201
UNSUPPORTED_PROCESSING_ID = 202
UNSUPPORTED_VERSION_ID = 203
UNKNOWN_KEY_IDENTIFIER = 204
APPLICATION_INTERNAL_ERROR = 207

ERROR_TEXT: dict[int, str] = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


class Hl7Error(Exception):
    """A problem with an inbound message, located precisely enough to fill an ERR segment.

    `segment_seq` is the occurrence of `segment` in the message (1 for the first OBX) and
    `field`/`component` are 1-based positions, as ERR-2 (ERL) wants them.
    """

    ack_code = "AE"

    def __init__(
        self,
        code: int,
        message: str,
        segment: str | None = None,
        field: int | None = None,
        *,
        segment_seq: int | None = None,
        component: int | None = None,
        ack_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.segment = segment
        self.field = field
        self.segment_seq = segment_seq
        self.component = component
        if ack_code is not None:
            self.ack_code = ack_code

    @property
    def location(self) -> str:
        """Human-readable location, e.g. ``OBX[4]-5``, for logs."""
        if self.segment is None:
            return ""
        seq = f"[{self.segment_seq}]" if self.segment_seq else ""
        field = f"-{self.field}" if self.field else ""
        comp = f".{self.component}" if self.component else ""
        return f"{self.segment}{seq}{field}{comp}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r}, at={self.location!r})"


class UnsupportedMessage(Hl7Error):
    """The message is not one we take (wrong type, no usable MSH): AR, the sender must not resend."""

    ack_code = "AR"


class ContentError(Hl7Error):
    """The message is an ORU^R01 but something in it is wrong: AE."""

    ack_code = "AE"


class UnknownPatient(ContentError):
    """Raised by the storage side when no patient matches PID-3 (HL7 error 204)."""

    def __init__(self, message: str = "Unknown patient identifier") -> None:
        super().__init__(UNKNOWN_KEY_IDENTIFIER, message, "PID", 3, segment_seq=1)


class ApplicationError(Hl7Error):
    """Our side failed (storage down, a bug).

    We answer AE rather than the AR the standard suggests, on purpose: bedside monitors resend
    on AE and disconnect on AR, and a transient failure on our side should not lose the reading.
    """

    ack_code = "AE"

    def __init__(self, message: str = "Application internal error") -> None:
        super().__init__(APPLICATION_INTERNAL_ERROR, message)
