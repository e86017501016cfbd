"""The listener's handler: parse an ORU^R01, hand it to storage, ACK after it is stored.

Storage is injected so this package stays free of Django: the `mllp_listen` management command
passes a coroutine that writes the FHIR resources and returns only after the commit, which is
what makes our AA mean "stored".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

from devices.hl7 import ack, pcd01
from devices.hl7.mllp import Handler

Store = Callable[[pcd01.Oru], Awaitable[None]]


def make_handler(store: Store, *, executor: Executor | None = None) -> Handler:
    """A handler for `mllp.serve` that parses, awaits `store(oru)`, then returns the AA/CA ACK.

    `store` must return only after the data is committed, and signal problems by raising:
    `errors.UnknownPatient` (AE, 204), any other `Hl7Error`, or any exception (AE, 207; the
    sender will resend, so `store` must be idempotent on `oru.control_id`).

    Parsing costs about 1.3 ms per segment in hl7apy and holds the GIL; pass a
    `ProcessPoolExecutor` as `executor` to spread it over cores.
    """

    async def handle(raw: bytes) -> bytes:
        if executor is None:
            oru = pcd01.parse_bytes(raw)
        else:
            oru = await asyncio.get_running_loop().run_in_executor(executor, pcd01.parse_bytes, raw)
        await store(oru)
        return ack.build_ack(ack.read_header(raw))

    return handle
