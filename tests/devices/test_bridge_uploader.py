"""devices.bridge.uploader: exactly-once delivery of the outbox to POST /fhir/."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from devices.bridge.fake_server import FakeFhirServer
from devices.bridge.outbox import Outbox
from devices.bridge.phd import Gateway
from devices.bridge.reading import MonitorInfo, make_reading
from devices.bridge.uploader import RetryLater, TokenRefused, Uploader
from devices.gatt.measurement import Component, Measurement

ROOT = Path(__file__).resolve().parents[2]
CST = timezone(timedelta(hours=8))
ALICE, BOB, STRANGER = "440106195803120021", "440304196207150032", "110101199003070011"
GATEWAY = Gateway("02-4F-1A-FF-FE-33-9C-07")
CUFF = MonitorInfo(
    address="C0:26:DA:01:02:03", kind="blood_pressure", system_id="00-1C-05-FF-FE-01-02-03"
)


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """pytest-django's fixture is asked for by the root conftest; these tests run without Django."""
    return types.SimpleNamespace()


def fill(
    ob: Outbox, n: int, *, patient: str = ALICE, start: int = 0, systolic: float = 130.0
) -> list[str]:
    keys = []
    for i in range(start, start + n):
        m = Measurement(
            "blood_pressure",
            (
                Component(150021, systolic, "mm[Hg]"),
                Component(150022, 80.0, "mm[Hg]"),
                Component(150023, 97.0, "mm[Hg]"),
            ),
            datetime(2025, 3, 1, 8, 0) + timedelta(minutes=i),
        )
        r = make_reading(
            patient_id=patient,
            monitor=CUFF,
            measurement=m,
            received_at=datetime(2025, 3, 1, 9, 0, tzinfo=CST),
            clock_offset=None,
        )
        ob.put(r)
        keys.append(r.key)
    return keys


def stored_keys(server: FakeFhirServer) -> set[str]:
    return {k.split("|", 1)[1] for k in server.state.stored}


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def uploader(
    ob: Outbox,
    url: str,
    *,
    token: str = "test-token",
    client: httpx.AsyncClient | None = None,
    **kw,
) -> Uploader:
    return Uploader(
        ob,
        server_url=url,
        token=token,
        gateway=GATEWAY,
        client=client,
        rng=random.Random(1),
        sleep=_no_sleep,
        **kw,
    )


@pytest.fixture
def server():
    with FakeFhirServer() as srv:
        yield srv


async def test_batch_is_stored_and_acknowledged(tmp_path: Path, server: FakeFhirServer) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        keys = fill(ob, 25)
        up = uploader(ob, server.url, batch_size=10)
        assert await up.drain() == 25
        await up.aclose()
        assert ob.depth() == 0
        assert stored_keys(server) == set(keys)
        assert server.state.bundles == 3
        assert server.state.statuses[-1]["outbox_depth"] == 0


async def test_server_down_then_up_loses_nothing(tmp_path: Path, server: FakeFhirServer) -> None:
    server.state.down = True
    with Outbox(tmp_path / "o.db") as ob:
        keys = fill(ob, 12)
        up = uploader(ob, server.url, batch_size=5)
        with pytest.raises(RetryLater):
            await up.cycle(force=True)
        assert ob.depth() == 12 and "unreachable" in (up.state.last_error or "")
        server.state.down = False
        assert await up.drain() == 12
        await up.aclose()
        assert stored_keys(server) == set(keys)


async def test_same_batch_uploaded_twice_is_stored_once(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    for name in ("a.db", "b.db"):  # two bridges' outboxes holding the same readings (a replay)
        with Outbox(tmp_path / name) as ob:
            fill(ob, 6)
            up = uploader(ob, server.url)
            assert await up.drain() == 6
            await up.aclose()
            assert ob.depth() == 0
    assert len(server.state.stored) == 6
    assert server.state.bundles == 2


async def test_wrong_token_stops_with_a_clear_message(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    with Outbox(tmp_path / "o.db") as ob:
        fill(ob, 3)
        up = uploader(ob, server.url, token="wrong")
        with pytest.raises(TokenRefused, match="bridge token refused"):
            await up.cycle(force=True)
        await up.aclose()
        assert ob.depth() == 3


async def test_refused_patient_is_quarantined_with_the_server_text(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    server.state.patients = {ALICE}
    with Outbox(tmp_path / "o.db") as ob:
        good = fill(ob, 4)
        bad = fill(ob, 1, patient=STRANGER, start=10)
        good += fill(ob, 3, start=20)
        up = uploader(ob, server.url)
        await up.drain()
        await up.aclose()
        assert stored_keys(server) == set(good)
        [q] = ob.quarantined()
        assert q.key == bad[0]
        assert "403" in q.reason and "not in this bridge's household" in q.reason
        assert ob.depth() == 0


async def test_one_invalid_reading_in_ten_is_isolated(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    server.state.reject = lambda obs: (
        "systolic out of range" if obs["component"][0]["valueQuantity"]["value"] > 400 else None
    )
    with Outbox(tmp_path / "o.db") as ob:
        keys = fill(ob, 4) + fill(ob, 1, start=4, systolic=999.0) + fill(ob, 5, start=5)
        up = uploader(ob, server.url, batch_size=10)
        result = await up.cycle(force=True)
        await up.aclose()
        assert result is not None and (result.stored, result.quarantined) == (9, 1)
        assert len(server.state.stored) == 9
        [q] = ob.quarantined()
        assert q.key == keys[4] and q.reason.startswith("422: systolic out of range")


async def test_429_honours_retry_after_and_5xx_backs_off(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    server.state.status_codes = [429, 503]
    server.state.retry_after = "7"
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    with Outbox(tmp_path / "o.db") as ob:
        fill(ob, 2)
        up = Uploader(
            ob,
            server_url=server.url,
            token="test-token",
            gateway=GATEWAY,
            rng=random.Random(3),
            sleep=sleep,
        )
        assert await up.drain() == 2
        await up.aclose()
    assert slept[0] >= 7.0
    assert len(slept) == 2 and slept[1] <= up.backoff_base_s * 2


def test_backoff_is_full_jitter_capped() -> None:
    up = Uploader.__new__(Uploader)
    up.backoff_base_s, up.backoff_cap_s, up.rng = 1.0, 60.0, random.Random(0)
    delays = [up.backoff_delay(a) for a in range(12)]
    assert all(0 <= d <= min(60.0, 2**a) for a, d in enumerate(delays))
    assert up.backoff_delay(0, retry_after=30) >= 30


async def test_partial_transaction_response_acks_exactly_the_2xx(tmp_path: Path) -> None:
    """A server answering per entry (batch semantics): 2xx acked, 4xx quarantined, 5xx kept."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            return httpx.Response(404)
        bundle = json.loads(request.content)
        out = []
        for e in bundle["entry"]:
            ident = e["request"]["ifNoneExist"]
            status = "201 Created"
            if ident.endswith("T080100"):
                status = "422 Unprocessable Entity"
            elif ident.endswith("T080200"):
                status = "500 Internal Server Error"
            out.append(
                {
                    "response": {
                        "status": status,
                        "outcome": {
                            "resourceType": "OperationOutcome",
                            "issue": [
                                {"severity": "error", "code": "invalid", "diagnostics": "bad"}
                            ],
                        },
                    }
                }
            )
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": out}
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with Outbox(tmp_path / "o.db") as ob:
        keys = fill(ob, 4)
        up = uploader(ob, "http://server.test", client=client)
        result = await up.cycle(force=True)
        assert result is not None and (result.stored, result.quarantined, result.left_pending) == (
            2,
            1,
            1,
        )
        assert ob.keys() == {keys[1], keys[2]}
        assert [r.key for r in ob.batch(10)] == [keys[2]]
        assert await up.post_status() is False  # 404: older server, ignored
    await client.aclose()


async def test_mismatched_response_keeps_the_batch(tmp_path: Path) -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(
                200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": []}
            )
        )
    )
    with Outbox(tmp_path / "o.db") as ob:
        fill(ob, 2)
        up = uploader(ob, "http://server.test", client=client)
        with pytest.raises(RetryLater, match="entries"):
            await up.cycle(force=True)
        assert ob.depth() == 2
    await client.aclose()


KILLED_UPLOADER = textwrap.dedent(
    """
    import asyncio, sys
    from devices.bridge.outbox import Outbox
    from devices.bridge.phd import Gateway
    from devices.bridge.uploader import Uploader
    async def main():
        ob = Outbox(sys.argv[1])
        up = Uploader(ob, server_url=sys.argv[2], token="test-token", gateway=Gateway("02-4F-1A-FF-FE-33-9C-07"), batch_size=3)
        while ob.depth():
            await up.cycle(force=True)
            print("cycle", flush=True)
    asyncio.run(main())
    """
)


async def test_bridge_killed_mid_upload_then_restarted_stores_each_reading_once(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    db = tmp_path / "o.db"
    with Outbox(db) as ob:
        keys = fill(ob, 60)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_UPLOADER, str(db), server.url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    for _ in range(4):
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with Outbox(db) as ob:
        assert ob.integrity_ok() and 0 < ob.depth() < 60
        up = uploader(ob, server.url, batch_size=7)
        await up.drain()
        await up.aclose()
        assert ob.depth() == 0
    assert stored_keys(server) == set(keys)  # each once (the store is keyed by identifier)
