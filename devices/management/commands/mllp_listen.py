"""`python manage.py mllp_listen --host 127.0.0.1 --port 2575`: the HL7 v2 (MLLP) listener.

One asyncio process serves many connections; messages are stored by `fhir.hl7_ingest` in a
thread pool (one database connection per thread) and each is ACKed after its commit. Messages
that arrive while every store thread is busy are stored together, in one transaction (group
commit), so a busy listener pays the per-transaction cost once per group. SIGINT/SIGTERM
stop accepting, end the connections and let in-flight transactions finish: a message whose
ACK was not sent is resent by its sender and found already stored.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ProcessPoolExecutor

from django.core.management.base import BaseCommand, CommandParser

from devices.hl7 import mllp
from fhir.hl7_ingest import DEFAULT_MAX_GROUP, DEFAULT_WORKERS, StoreWorkers, make_handler


class Command(BaseCommand):
    help = "Listen for HL7 v2 ORU^R01 over MLLP and store them in the shared record."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=2575)
        parser.add_argument(
            "--workers",
            type=int,
            default=DEFAULT_WORKERS,
            help="threads (and DB connections) storing messages; each stores a group at a time",
        )
        parser.add_argument(
            "--max-group",
            type=int,
            default=DEFAULT_MAX_GROUP,
            help="most messages stored in one transaction",
        )
        parser.add_argument(
            "--parse-processes",
            type=int,
            default=0,
            help="parse in this many processes (0: in the storing threads)",
        )
        parser.add_argument(
            "--max-frame", type=int, default=mllp.DEFAULT_MAX_FRAME, help="largest message, bytes"
        )

    def handle(self, *args, **options) -> None:
        asyncio.run(self.serve(**options))

    async def serve(
        self,
        *,
        host: str,
        port: int,
        workers: int,
        parse_processes: int,
        max_frame: int,
        max_group: int,
        **_: object,
    ) -> None:

        store_workers = StoreWorkers(workers)
        parse_pool = ProcessPoolExecutor(parse_processes) if parse_processes > 0 else None
        handler = make_handler(store_workers, parse_executor=parse_pool, max_group=max_group)
        server = await mllp.serve(host, port, handler, max_frame=max_frame)
        self.stdout.write(f"MLLP listening on {', '.join(server.addresses)}")
        self.stdout.flush()

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            self.stdout.write("MLLP listener stopping")
            await server.close()
            await loop.run_in_executor(None, store_workers.close)
            if parse_pool is not None:
                parse_pool.shutdown(wait=True, cancel_futures=True)
            self.stdout.write("MLLP listener stopped")
