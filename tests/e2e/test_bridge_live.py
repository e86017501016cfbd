"""Simulated monitors → the real bridge program → the running server → the FHIR API.

For every monitor kind the values, units, codes and times read back through /fhir/ are the
ones the monitors produced; replays and parallel replays of one Bundle store each reading once.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest

from devices.bridge.app import run_bridge
from devices.bridge.config import BridgeConfig, MonitorConfig
from devices.bridge.reading import format_eui64
from devices.sim.world import World, set_world
from tests.e2e.stack import live_stack
from tests.fhir import bundles

pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.timeout(300)]

CHEN = "440106195803120021"
KINDS = (
    "blood_pressure",
    "thermometer",
    "pulse_oximeter",
    "glucose_meter",
    "weight_scale",
    "heart_rate",
    "cgm",
)
MDC = "urn:iso:std:iso:11073:10101"
# Units the bridge rescales exactly before upload (devices/bridge/phd.py).
RESCALED = {"kg/L": (1e5, "mg/dL"), "mol/L": (1e3, "mmol/L"), "m": (1e2, "cm")}
# Components the bridge deliberately does not upload (see devices/bridge/phd.py).
NOT_UPLOADED = {147240, 8454263, 150448}  # RR interval, energy expended, pulse amplitude index


@pytest.fixture(scope="module")
def stack():
    with live_stack("bridge", celery=False) as running:
        yield running


def doctor_session(stack) -> httpx.Client:
    client = httpx.Client(base_url=stack.base_url, timeout=30)
    client.get("/login/")
    client.post(
        "/login/",
        data={
            "username": "dr_tianhe",
            "password": "sgdemo2026",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{stack.base_url}/login/"},
    )
    return client


def stored_observations(client: httpx.Client) -> list[dict]:
    patient = client.get(f"/fhir/Patient?identifier={CHEN}").json()["entry"][0]["resource"]["id"]
    out, url = [], f"/fhir/Observation?patient=Patient/{patient}&_count=200"
    while url:
        page = client.get(url).json()
        out += [e["resource"] for e in page.get("entry", []) if e["search"]["mode"] == "match"]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    return out


def values_by_mdc(observations: list[dict]) -> dict[int, list[tuple]]:
    """{MDC code: [(value or data-absent code, UCUM unit, effective time)]} over values and components."""
    found: dict[int, list[tuple]] = {}
    for obs in observations:
        for element in [obs, *obs.get("component", [])]:
            codes = [
                int(c["code"])
                for c in element.get("code", {}).get("coding", [])
                if c.get("system") == MDC
            ]
            if not codes:
                continue
            if "valueQuantity" in element:
                value = (element["valueQuantity"]["value"], element["valueQuantity"].get("code"))
            elif "dataAbsentReason" in element:
                value = (element["dataAbsentReason"]["coding"][0]["code"], None)
            else:
                continue
            found.setdefault(codes[0], []).append((*value, obs["effectiveDateTime"]))
    return found


def test_every_monitor_kind_round_trips_through_bridge_server_and_fhir_read(stack, tmp_path):
    world = World(seed=5, time_factor=1.0)
    monitors = [world.add_monitor(kind, patient=CHEN, profile="hypertensive") for kind in KINDS]
    # Stored kinds keep readings until a bridge connects; notify-only kinds (heart-rate strap,
    # continuous oximeter, CGM) send only while connected, so they measure once it is.
    produced = [(mon, mon.measure()) for mon in monitors if mon.spec.stored for _ in range(3)]
    live = [mon for mon in monitors if not mon.spec.stored]
    set_world(world)
    cfg = BridgeConfig(
        server_url=stack.base_url,
        token=stack.bridge_token,
        gateway_eui64=format_eui64("02AB00FFFE000001"),
        backend="sim",
        outbox=str(tmp_path / "outbox.sqlite3"),
        batch_max_age_s=0.2,
        connect_timeout_s=2,
        continuous_interval_s=0,
        monitors=[MonitorConfig(address=m.address, patient=CHEN, kind=m.kind) for m in monitors],
    )
    expected = len(produced) + 3 * len(live) + len(monitors)  # + one battery reading each

    async def scenario():
        bridge = asyncio.create_task(
            run_bridge(cfg, backend="sim", duration_s=30, until_stored=expected)
        )
        await asyncio.sleep(4)
        for _ in range(3):
            produced.extend((mon, mon.measure()) for mon in live)
            await asyncio.sleep(1.1)  # distinct device time stamps
        return await bridge

    report = asyncio.run(scenario())
    assert report.depth == 0 and report.quarantined == 0, report

    found = values_by_mdc(stored_observations(doctor_session(stack)))
    checked = 0
    for mon, m in produced:
        for c in m.components:
            if c.mdc in NOT_UPLOADED or c.modality:
                continue
            candidates = found.get(c.mdc, [])
            if c.special:
                assert any(isinstance(v, str) for v, *_ in candidates), (mon.kind, c)
                continue
            scale, unit = RESCALED.get(c.unit, (1, c.unit))
            expected = round(c.value * scale, 6)
            matches = [
                (v, u, t)
                for v, u, t in candidates
                if isinstance(v, (int, float)) and abs(v - expected) < 1e-6 and u == unit
            ]
            assert matches, (mon.kind, c, candidates[:5])
            if m.time is not None:
                # the bridge corrects the monitor clock by its offset: the true time comes back
                true_time = m.time - mon.clock_error
                effective = [datetime.fromisoformat(t).replace(tzinfo=None) for *_, t in matches]
                assert any(abs(e - true_time) <= timedelta(seconds=2) for e in effective), (
                    mon.kind,
                    true_time,
                    effective,
                )
            checked += 1
    assert checked >= len(KINDS) * 3


def test_three_parallel_posts_of_one_bundle_store_each_reading_once(stack):
    body = json.dumps(bundles.upload(CHEN, 20, eui="00FF00FF00FF00FF", start_minute=300))
    headers = {
        "Authorization": f"Bearer {stack.bridge_token}",
        "Content-Type": "application/fhir+json",
    }

    def post(_):
        return httpx.post(f"{stack.base_url}/fhir/", content=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(post, range(3)))
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text[:300] for r in responses]
    created = sum(
        e["response"]["status"].startswith("201") for r in responses for e in r.json()["entry"]
    )
    assert created == 21  # 20 Observations + 1 Device, once in all three responses together
    client = doctor_session(stack)
    identifiers = [
        o["identifier"][0]["value"]
        for o in stored_observations(client)
        if o["identifier"][0]["value"].startswith("00FF00FF00FF00FF")
    ]
    assert len(identifiers) == len(set(identifiers)) == 20
