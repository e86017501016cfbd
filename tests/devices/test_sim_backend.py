"""devices.sim: simulated monitors driven through the real bleak API (backend=...)."""

from __future__ import annotations

import asyncio
import statistics
import types

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError

from devices import gatt
from devices.gatt import racp
from devices.gatt.uuids import to_uuid128
from devices.sim.backend import SimBleakClient, SimBleakScanner
from devices.sim.world import World, demo_world, set_world


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """pytest-django's fixture is asked for by the root conftest; these tests run without Django."""
    return types.SimpleNamespace()


@pytest.fixture
def world():
    w = World(seed=11)
    previous = set_world(w)
    yield w
    set_world(previous)


async def test_discover_finds_every_kind_with_name_service_and_rssi(world: World) -> None:
    kinds = [
        "blood_pressure",
        "thermometer",
        "pulse_oximeter",
        "glucose_meter",
        "weight_scale",
        "heart_rate",
        "cgm",
    ]
    for k in kinds:
        world.add_monitor(k, patient="440106195803120021")
    found = await BleakScanner.discover(timeout=0.1, return_adv=True, backend=SimBleakScanner)
    assert len(found) == len(kinds)
    for device, adv in found.values():
        mon = world.get(device.address)
        assert (
            adv.local_name == mon.name
            and adv.service_uuids == [to_uuid128(mon.spec.service)]
            and adv.rssi < 0
        )
    only_bp = await BleakScanner.discover(
        timeout=0.1, service_uuids=[to_uuid128(0x1810)], backend=SimBleakScanner
    )
    assert [d.address for d in only_bp] == [world.monitors[next(iter(world.monitors))].address]


async def test_out_of_range_monitor_is_not_found(world: World) -> None:
    mon = world.add_monitor("thermometer", patient="p")
    mon.set_in_range(False)
    assert (
        await BleakScanner.find_device_by_address(mon.address, timeout=0.1, backend=SimBleakScanner)
        is None
    )
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient(mon.address, backend=SimBleakClient).connect()


async def test_stored_readings_are_indicated_on_subscribe_with_device_information(
    world: World,
) -> None:
    mon = world.add_monitor(
        "blood_pressure", patient="p", profile="hypertensive", users={2: ("q", "healthy")}
    )
    taken = [mon.measure() for _ in range(3)]
    got = []
    async with BleakClient(mon.address, backend=SimBleakClient) as client:
        system_id = gatt.decode(0x2A23, await client.read_gatt_char("2a23")).get_extra("system_id")
        assert len(system_id) == 16
        assert gatt.decode(0x2A19, await client.read_gatt_char("2a19")).components[0].unit == "%"
        await client.start_notify("2a35", lambda _c, data: got.append(gatt.decode(0x2A35, data)))
        await asyncio.sleep(0.05)
    assert got == taken
    assert {m.user_id for m in taken} <= {1, 2}


async def test_glucose_meter_reports_stored_records_from_a_sequence(world: World) -> None:
    mon = world.add_monitor("glucose_meter", patient="p", profile="diabetic")
    for _ in range(5):
        mon.measure()
    records, responses = [], []
    async with BleakClient(mon.address, backend=SimBleakClient) as client:
        await client.start_notify("2a18", lambda _c, d: records.append(gatt.decode(0x2A18, d)))
        await client.start_notify(
            "2a52", lambda _c, d: responses.append(racp.decode_racp_response(d))
        )
        await client.write_gatt_char("2a52", racp.encode_report_records_from(4), response=True)
        await asyncio.sleep(0.05)
        await client.write_gatt_char("2a52", racp.encode_report_records_from(9), response=True)
        await asyncio.sleep(0.05)
    assert [m.sequence for m in records] == [4, 5]
    assert [r.response for r in responses] == ["success", "no_records_found"]


def test_same_seed_same_readings() -> None:
    def run(seed: int) -> list:
        w = World(seed=seed)
        mon = w.add_monitor(
            "pulse_oximeter", patient="p", profile="copd_low_spo2", address="5A:00:00:00:00:01"
        )
        return [m.components for m in (mon.measure() for _ in range(20))]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_profiles_are_plausible() -> None:
    w = World(seed=3)
    htn = w.add_monitor("blood_pressure", patient="a", profile="hypertensive")
    ok = w.add_monitor("blood_pressure", patient="b", profile="healthy")
    copd = w.add_monitor("pulse_oximeter", patient="c", profile="copd_low_spo2")
    hf = w.add_monitor("weight_scale", patient="d", profile="heart_failure_weight_gain")

    def mean(mon, code, n=200, **kw):
        vals = [
            c.value
            for m in (mon.measure(**kw) for _ in range(n))
            for c in m.components
            if c.mdc == code and c.value is not None
        ]
        return statistics.mean(vals)

    assert mean(htn, 150021) > mean(ok, 150021) + 15
    assert 86 < mean(copd, 150456) < 93
    assert mean(hf, 188736, n=20, day=7) > mean(hf, 188736, n=20, day=0) + 3


def test_occasional_specials_and_abnormal_values_appear() -> None:
    w = World(seed=9)
    mon = w.add_monitor("blood_pressure", patient="p", profile="hypertensive")
    ms = [mon.measure() for _ in range(400)]
    assert any(c.special in ("NaN", "NRes") for m in ms for c in m.components)
    assert any(m.components[0].value and m.components[0].value > 185 for m in ms)


async def test_demo_world_schedule_is_accelerated() -> None:
    w = demo_world(time_factor=3600 * 24)  # a day per second
    previous = set_world(w)
    try:
        w.start()
        await asyncio.sleep(1.0)
        await w.stop()
    finally:
        set_world(previous)
    assert sum(len(m.produced) for m in w.monitors.values()) >= len(w.monitors)
