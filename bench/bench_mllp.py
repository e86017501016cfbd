"""MLLP listener throughput: typical 10-OBX ORU^R01 messages, parsed and ACKed over loopback.

Run: ``python bench/bench_mllp.py [--seconds 5] [--connections 4] [--processes 0]``

Target: >= 1,000 messages/s with ACK. Prints, never asserts. Three runs are printed:
the listener without storage (pcd01.parse, then ACK), the same with parsing spread over a
process pool when ``--processes`` is given, and framing + ACK alone, which shows what the
listener costs without the parser. The product ACKs AA only after commit; that rate, with
storage, is bench_mllp_store's. The senders run in a separate process so they do not share the
listener's CPU time slice.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.hl7 import ack, ingest, mllp, pcd01  # noqa: E402

TARGET_PER_SECOND = 1000

# A bedside BP + SpO2 + temperature report: MDS, BP compound with 3 metrics, pulse rate,
# SpO2, temperature, weight, respiration rate and the device clock: 10 OBX.
TYPICAL_MESSAGE = "\r".join(
    [
        "MSH|^~\\&|MONITOR^0123456789ABCDEF^EUI-64|WARD3||SG-RPM|20260301083000+0800||"
        "ORU^R01^ORU_R01|{control_id}|P|2.6|||NE|AL||UNICODE UTF-8|||"
        "IHE PCD ORU-R01 2006^HL7^1.3.6.1.4.1.19376.1.6.1.1.1^ISO",
        "PID|||44010619900101001X^^^CN-RIC&1.2.156&ISO^NNCHN||张^三^^^^^L",
        "OBR|1|AB1^MONITOR^0123456789ABCDEF^EUI-64|CD1^MONITOR^0123456789ABCDEF^EUI-64|"
        "182777000^monitoring of patient^SNOMED-CT|||20260301082955+0800",
        "OBX|1||528391^MDC_DEV_SPEC_PROFILE_BP^MDC|1|||||||X|||||||0123456789ABCDEF^EUI-64",
        "OBX|2||150020^MDC_PRESS_BLD_NONINV^MDC|1.0.1|||||||X|||20260301082955+0800",
        "OBX|3|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.0.1.1|128|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|4|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1.0.1.2|84|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|5|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC|1.0.1.3|99|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|6|NM|149530^MDC_PULS_RATE^MDC|1.0.2.1|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
        "OBX|7|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.3.1|97|262688^MDC_DIM_PERCENT^MDC|||||R",
        "OBX|8|NM|150364^MDC_TEMP_BODY^MDC|1.0.4.1|36.8|268192^MDC_DIM_DEGC^MDC|||||R",
        "OBX|9|NM|151562^MDC_RESP_RATE^MDC|1.0.5.1|16|264928^MDC_DIM_RESP_PER_MIN^MDC|||||R",
        "OBX|10|DTM|67975^MDC_ATTR_TIME_ABS^MDC|1.0.0.1|20260301083000||||||R",
    ]
)


async def _sender(port: int, deadline: float, prefix: str) -> tuple[int, int]:
    sent = accepted = 0
    async with mllp.MllpClient("127.0.0.1", port, timeout=30) as client:
        while time.monotonic() < deadline:
            reply = await client.send(TYPICAL_MESSAGE.format(control_id=f"{prefix}-{sent}"))
            sent += 1
            parsed = ack.parse_ack(reply)
            accepted += parsed is not None and parsed.code == "AA"
    return sent, accepted


def _senders_process(
    port: int, seconds: float, connections: int, out: multiprocessing.Queue
) -> None:
    async def run() -> None:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        results = await asyncio.gather(
            *(_sender(port, deadline, f"C{i}") for i in range(connections))
        )
        elapsed = time.monotonic() - started
        out.put((sum(s for s, _ in results), sum(a for _, a in results), elapsed))

    asyncio.run(run())


async def _store(oru: pcd01.Oru) -> None:
    """No storage: this measures the listener and the parser, not the database."""


async def _ack_only(raw: bytes) -> bytes:
    return ack.build_ack(ack.read_header(raw))


async def _measure(
    handler: mllp.Handler, seconds: float, connections: int
) -> tuple[int, int, float]:
    server = await mllp.serve("127.0.0.1", 0, handler)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    senders = multiprocessing.Process(
        target=_senders_process, args=(server.port, seconds, connections, queue)
    )
    senders.start()
    try:
        while senders.is_alive() and queue.empty():
            await asyncio.sleep(0.05)
        return queue.get(timeout=30)
    finally:
        senders.join(timeout=30)
        await server.close()


def _report(label: str, sent: int, accepted: int, elapsed: float) -> None:
    rate = accepted / elapsed if elapsed else 0.0
    verdict = "meets" if rate >= TARGET_PER_SECOND else "BELOW"
    print(
        f"{label:<44} {rate:8.0f} msg/s with AA  ({accepted}/{sent} in {elapsed:.1f} s)  "
        f"{verdict} target {TARGET_PER_SECOND}/s"
    )


async def main(seconds: float, connections: int, processes: int) -> None:
    text = TYPICAL_MESSAGE.format(control_id="CHECK")
    oru = pcd01.parse(text)
    assert len(oru.observations) == 10
    started = time.perf_counter()
    for _ in range(20):
        pcd01.parse(text)
    per_parse = (time.perf_counter() - started) / 20
    print(
        f"cpu cores: {os.cpu_count()}; pcd01.parse of one 10-OBX message: {per_parse * 1e3:.1f} ms"
    )
    print(f"{connections} connections, {seconds:.0f} s per run, loopback")

    _report(
        "parse (pcd01) + ACK, no storage",
        *await _measure(ingest.make_handler(_store), seconds, connections),
    )
    if processes:
        executor: Executor = ProcessPoolExecutor(processes)
        try:
            _report(
                f"parse in {processes} worker processes + ACK",
                *await _measure(
                    ingest.make_handler(_store, executor=executor), seconds, connections
                ),
            )
        finally:
            executor.shutdown()
    _report("framing + ACK only (no parse)", *await _measure(_ack_only, seconds, connections))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--processes", type=int, default=0, help="parse in N worker processes")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.connections, args.processes))
