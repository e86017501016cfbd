"""`python manage.py mllp_listen --host 127.0.0.1 --port N`, the command as the Procfile runs it:
many connections at once through python-hl7's client, every message AA after its commit and
stored once, an unknown patient AE, and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
import time

import hl7
import pytest
from hl7.client import MLLPClient

from tests.e2e import faults
from tests.e2e.stack import free_port, live_stack, wait_for_port

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

RESIDENT_ID = "440106195803120021"  # the demo patient seed_demo creates
MESSAGE = "\r".join(
    [
        "MSH|^~\\&|BEDSIDE^0123456789ABCDEF^EUI-64|GDPH|||20260301083000+0800||ORU^R01^ORU_R01|"
        "{control_id}|P|2.6",
        "PID|||{resident_id}^^^CN-RIC^NNCHN",
        "OBR|1|||182777000^monitoring of patient^SNOMED-CT|||20260301082955+0800",
        "OBX|1||528388^MDC_DEV_SPEC_PROFILE_PULS_OXIM^MDC|1|||||||X|||||||0123456789ABCDEF^EUI-64",
        "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.0.1|{spo2}|262688^MDC_DIM_PERCENT^MDC|||||F"
        "|||20260301082955+0800",
    ]
)


def start_listener(stack, port: int):
    """The command as the Procfile runs it, among the stack's processes (stopped with it)."""
    stack.commands["mllp"] = [
        sys.executable, "manage.py", "mllp_listen", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    listener = stack.start("mllp")
    wait_for_port(port)
    return listener


def send(port: int, messages: list[str]) -> list[tuple[str, str]]:
    replies = []
    with MLLPClient("127.0.0.1", port) as client:
        for message in messages:
            reply = hl7.parse(client.send_message(message).strip(b"\x0b\x1c\r").decode())
            msa = reply.segment("MSA")
            replies.append((str(msa[1]), str(msa[2])))
    return replies


def test_the_command_stores_what_many_connections_send_and_stops_cleanly() -> None:
    port = free_port()
    with live_stack("mllp_listen", celery=False) as stack:
        listener = start_listener(stack, port)
        connections, per_connection = 10, 5
        results: dict[int, list[tuple[str, str]]] = {}

        def run(c: int) -> None:
            results[c] = send(
                port,
                [
                    MESSAGE.format(control_id=f"L{c}-{i}", resident_id=RESIDENT_ID, spo2=90 + i)
                    for i in range(per_connection)
                ]
                # a resend of the first: AA again, stored once
                + [MESSAGE.format(control_id=f"L{c}-0", resident_id=RESIDENT_ID, spo2=90)],
            )

        threads = [threading.Thread(target=run, args=(c,)) for c in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        unknown = send(
            port, [MESSAGE.format(control_id="NOBODY", resident_id="110101199003070019", spo2=95)]
        )

        for c in range(connections):
            assert results[c] == [("AA", f"L{c}-{i}") for i in range(per_connection)] + [
                ("AA", f"L{c}-0")
            ]
        assert unknown == [("AE", "NOBODY")]
        ((stored,),) = faults.query(
            stack, "SELECT count(*) FROM fhir_vitalsign WHERE source = 'hl7' AND vital = 'spo2'"
        )
        assert stored == connections * per_connection
        assert faults.query(
            stack,
            "SELECT status, count(*), sum(attempts) FROM devices_hl7message "
            "WHERE direction = 'in' GROUP BY status ORDER BY status",
        ) == [
            ("error", 1, 1),
            ("stored", connections * per_connection, connections * (per_connection + 1)),
        ]

        listener.send_signal(signal.SIGTERM)
        assert listener.wait(30) == 0
        log = (stack.log_dir / f"{stack.name}-mllp.log").read_text()
        assert f"MLLP listening on 127.0.0.1:{port}" in log
        assert "MLLP listener stopped" in log


def test_a_listener_killed_mid_group_loses_nothing_and_stores_nothing_twice() -> None:
    """kill -9 while ten connections send: whatever was committed was ACKed or is found stored
    on resend; whatever was not is stored on resend. Each reading ends up stored once."""
    port = free_port()
    with live_stack("mllp_kill", celery=False) as stack:
        start_listener(stack, port)
        connections, per_connection = 10, 30
        acked: dict[int, list[str]] = {c: [] for c in range(connections)}
        resends = [0]

        def run(c: int) -> None:
            pending = [
                (
                    f"K{c}-{i}",
                    MESSAGE.format(
                        control_id=f"K{c}-{i}", resident_id=RESIDENT_ID, spo2=80 + i % 20
                    ),
                )
                for i in range(per_connection)
            ]
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                try:
                    with MLLPClient("127.0.0.1", port) as client:
                        while pending:
                            control_id, message = pending[0]
                            reply = client.send_message(message).strip(b"\x0b\x1c\r")
                            if not reply:  # closed by the kill before an answer
                                raise ConnectionError("no ACK")
                            msa = hl7.parse(reply.decode()).segment("MSA")
                            assert (str(msa[1]), str(msa[2])) == ("AA", control_id)
                            acked[c].append(control_id)
                            pending.pop(0)
                except (OSError, IndexError, ValueError):  # the listener died mid-answer
                    resends[0] += 1
                    time.sleep(0.2)

        threads = [threading.Thread(target=run, args=(c,)) for c in range(connections)]
        for t in threads:
            t.start()
        faults.wait_until(
            lambda: sum(map(len, acked.values())) >= connections * 3, 60, what="first ACKs"
        )
        stack.stop("mllp", signal.SIGKILL)
        stack.start("mllp")
        wait_for_port(port)
        for t in threads:
            t.join(150)

        assert resends[0] > 0, "the kill should have cut some connections"
        for c in range(connections):
            assert acked[c] == [f"K{c}-{i}" for i in range(per_connection)]
        total = connections * per_connection
        ((stored, distinct),) = faults.query(
            stack,
            "SELECT count(*), count(DISTINCT observation_id) FROM fhir_vitalsign "
            "WHERE source = 'hl7' AND vital = 'spo2'",
        )
        assert stored == distinct == total
        assert faults.query(
            stack, "SELECT count(*) FROM devices_hl7message WHERE status = 'stored'"
        ) == [(total,)]
