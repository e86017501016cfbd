"""The Bluetooth "Date Time" field (7 octets) used as a time stamp by the health services.

Why: BLS/HTS/PLXS/GLS/WSS all embed org.bluetooth.characteristic.date_time (GATT Specification
Supplement §3.70 "Date Time"): year uint16 (1582..9999, 0 = not known), month uint8 (1..12,
0 = not known), day uint8 (1..31, 0 = not known), hours 0..23, minutes 0..59, seconds 0..59.

Policy: a time stamp with an unknown year, month or day is not an error (cheap monitors ship with
year 0 until paired with a clock): it decodes to ``None`` and the measurement gets the flag
``"time_unknown"``. A value that no calendar allows (month 13, 31 April, hour 24) is an
:class:`InvalidValue`, because it means the payload is corrupt or misparsed.
"""

from __future__ import annotations

import calendar
import struct
from datetime import datetime

from devices.gatt.errors import EncodeError, InvalidValue
from devices.gatt.reader import Reader

DATE_TIME = struct.Struct("<HBBBBB")
SIZE = DATE_TIME.size  # 7
UNKNOWN_TIME = b"\x00" * SIZE
TIME_UNKNOWN_FLAG = "time_unknown"

# Decoding the same stamp twice (a cuff re-sending stored readings) should not rebuild datetimes.
_CACHE: dict[tuple[int, ...], datetime | None] = {}


def _days_in(year: int, month: int) -> int:
    if year == 0:
        return 29 if month == 2 else calendar.monthrange(2001, month)[1]
    return calendar.monthrange(year, month)[1]


def from_fields(fields: tuple[int, ...], reader: Reader) -> datetime | None:
    """Validate the six Date Time fields; ``None`` when the device does not know the date."""
    cached = _CACHE.get(fields)
    if cached is not None or fields in _CACHE:
        return cached
    year, month, day, hours, minutes, seconds = fields
    if year != 0 and not 1582 <= year <= 9999:
        reader.fail(InvalidValue, f"year {year} outside 1582..9999")
    if month > 12:
        reader.fail(InvalidValue, f"month {month} outside 1..12")
    if hours > 23 or minutes > 59 or seconds > 59:
        reader.fail(InvalidValue, f"time {hours}:{minutes}:{seconds} is not a time of day")
    if month != 0 and day > _days_in(year, month):
        reader.fail(InvalidValue, f"day {day} does not exist in month {month}")
    if day > 31:
        reader.fail(InvalidValue, f"day {day} outside 1..31")
    result = None
    if year and month and day:
        result = datetime(year, month, day, hours, minutes, seconds)
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[fields] = result
    return result


def read_date_time(reader: Reader) -> datetime | None:
    """Read a Date Time field at the reader's cursor."""
    return from_fields(reader.unpack(DATE_TIME), reader)


def encode_date_time(value: datetime | None) -> bytes:
    """Encode a naive device time; ``None`` encodes as "not known" (all zero)."""
    if value is None:
        return UNKNOWN_TIME
    if not 1582 <= value.year <= 9999:
        raise EncodeError(f"year {value.year} cannot be sent in a Date Time field")
    return DATE_TIME.pack(
        value.year, value.month, value.day, value.hour, value.minute, value.second
    )
