"""The 18-digit resident identity number of GB 11643-1999, validated without I/O.

Layout: 6-digit address code, 8-digit birth date (YYYYMMDD), 3-digit sequence (odd for men, even
for women), 1 check character computed by ISO 7064 MOD 11-2 (digits, or `X` for ten).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")
_EARLIEST_BIRTH = date(1890, 1, 1)


class InvalidResidentId(ValueError):
    """The number is not a valid GB 11643 resident identity number; the message says why."""


@dataclass(frozen=True)
class ResidentId:
    number: str
    region_code: str
    birth_date: date
    sex: str  # "male" | "female"


def check_character(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def parse_resident_id(value: str, *, today: date | None = None) -> ResidentId:
    """Validate and parse; raise InvalidResidentId naming the first problem found."""
    number = (value or "").strip().upper()
    if len(number) != 18:
        raise InvalidResidentId(f"must be 18 characters, got {len(number)}")
    if not _SHAPE.match(number):
        raise InvalidResidentId("must be 17 digits followed by a digit or X")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidResidentId(f"embedded birth date {number[6:14]} is not a real date") from None
    if not (_EARLIEST_BIRTH <= birth <= (today or date.today())):
        raise InvalidResidentId(f"embedded birth date {birth.isoformat()} is out of range")
    expected = check_character(number[:17])
    if number[17] != expected:
        raise InvalidResidentId(f"check digit is {number[17]}, expected {expected}")
    sex = "male" if int(number[16]) % 2 else "female"
    return ResidentId(number=number, region_code=number[:6], birth_date=birth, sex=sex)
