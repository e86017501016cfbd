"""Record Access Control Point (0x2A52) codec for the Glucose Service (GLS 1.0 §3.9).

Why: a glucometer sends stored records only when asked; the bridge remembers the highest
sequence number it uploaded and asks for "all records with sequence number >= n+1", so replays
after a lost connection fetch nothing twice.

Requests (op code, operator, operand): "report stored records" 0x01, "report number of stored
records" 0x04, "abort" 0x03; operators 0x01 all records, 0x03 greater than or equal to; filter
type 0x01 = sequence number (uint16). Responses: 0x06 "response code" (operator 0x00, request
op code, response code) and 0x05 "number of stored records" (operator 0x00, uint16 count).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from devices.gatt.errors import InvalidValue
from devices.gatt.reader import Buffer, Reader
from devices.gatt.uuids import RECORD_ACCESS_CONTROL_POINT

REPORT_STORED_RECORDS = 0x01
DELETE_STORED_RECORDS = 0x02
ABORT_OPERATION = 0x03
REPORT_NUMBER_OF_STORED_RECORDS = 0x04
NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05
RESPONSE_CODE = 0x06

OPERATOR_NULL = 0x00
OPERATOR_ALL_RECORDS = 0x01
OPERATOR_GREATER_OR_EQUAL = 0x03
FILTER_SEQUENCE_NUMBER = 0x01

RESPONSE_CODES = {
    0x01: "success",
    0x02: "op_code_not_supported",
    0x03: "invalid_operator",
    0x04: "operator_not_supported",
    0x05: "invalid_operand",
    0x06: "no_records_found",
    0x07: "abort_unsuccessful",
    0x08: "procedure_not_completed",
    0x09: "operand_not_supported",
}

_FROM_SEQUENCE = struct.Struct("<BBBH")
_RESPONSE = struct.Struct("<BBBB")
_COUNT = struct.Struct("<BBH")


def encode_report_records_from(sequence: int) -> bytes:
    """ "Report stored records" with sequence number >= ``sequence``: 01 03 01 <uint16>."""
    return _FROM_SEQUENCE.pack(
        REPORT_STORED_RECORDS, OPERATOR_GREATER_OR_EQUAL, FILTER_SEQUENCE_NUMBER, sequence
    )


def encode_report_all_records() -> bytes:
    """ "Report stored records", all records: 01 01."""
    return bytes([REPORT_STORED_RECORDS, OPERATOR_ALL_RECORDS])


def encode_report_number_from(sequence: int) -> bytes:
    """ "Report number of stored records" with sequence number >= ``sequence``."""
    return _FROM_SEQUENCE.pack(
        REPORT_NUMBER_OF_STORED_RECORDS, OPERATOR_GREATER_OR_EQUAL, FILTER_SEQUENCE_NUMBER, sequence
    )


def encode_abort() -> bytes:
    """ "Abort operation": 03 00."""
    return bytes([ABORT_OPERATION, OPERATOR_NULL])


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """A decoded RACP indication: either a response code or a record count."""

    op_code: int
    request_op_code: int | None = None
    response: str | None = None
    number_of_records: int | None = None


def decode_racp_response(data: Buffer) -> RacpResponse:
    """Decode an RACP indication (0x06 response code or 0x05 number of stored records)."""
    r = Reader(data, RECORD_ACCESS_CONTROL_POINT)
    op_code = r.u8()
    if op_code == RESPONSE_CODE:
        r.pos = 0
        _, operator, request, code = r.unpack(_RESPONSE)
        r.finish()
        if operator != OPERATOR_NULL or code not in RESPONSE_CODES:
            r.fail(InvalidValue, f"bad response operator {operator} or code {code}")
        return RacpResponse(op_code, request_op_code=request, response=RESPONSE_CODES[code])
    if op_code == NUMBER_OF_STORED_RECORDS_RESPONSE:
        r.pos = 0
        _, operator, count = r.unpack(_COUNT)
        r.finish()
        if operator != OPERATOR_NULL:
            r.fail(InvalidValue, f"bad operator {operator}")
        return RacpResponse(op_code, number_of_records=count)
    r.fail(InvalidValue, f"op code 0x{op_code:02X} is not a response")
