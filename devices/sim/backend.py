"""bleak backend classes that talk to the simulated world instead of a radio.

Why: the demo and the tests drive the real bleak front-end (``BleakScanner(backend=...)``,
``BleakClient(address, backend=...)``, bleak-retry-connector's ``establish_connection``), so
the bridge code under test is exactly the code that runs against BlueZ.

- :class:`SimBleakScanner` advertises every in-range monitor of the current world every
  ``ADVERTISING_INTERVAL_S`` while scanning (health-service UUID, local name, RSSI).
- :class:`SimBleakClient` connects to a monitor by address (``BleakDeviceNotFoundError`` when
  it does not exist or is out of range), exposes its GATT table as a
  ``BleakGATTServiceCollection``, and forwards reads, writes and notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from devices.gatt.uuids import to_uuid16, to_uuid128
from devices.sim.monitors import SimMonitor
from devices.sim.world import current_world

ADVERTISING_INTERVAL_S = 0.02


class SimBleakScanner(BaseBleakScanner):
    """Scanner backend over :func:`devices.sim.world.current_world`."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._advertise_once()
        self._task = asyncio.get_running_loop().create_task(self._advertise())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _advertise(self) -> None:
        while True:
            await asyncio.sleep(ADVERTISING_INTERVAL_S)
            self._advertise_once()

    def _advertise_once(self) -> None:
        for mon in current_world().in_range():
            service_uuids = [to_uuid128(mon.spec.service)]
            if not self.is_allowed_uuid(service_uuids):
                continue
            adv = AdvertisementData(
                local_name=mon.name,
                manufacturer_data={},
                service_data={},
                service_uuids=service_uuids,
                tx_power=None,
                rssi=mon.rssi,
                platform_data=(),
            )
            device = self.create_or_update_device(
                mon.address, mon.address, mon.name, {"sim": mon.kind}, adv
            )
            self.call_detection_callbacks(device, adv)


class SimBleakClient(BaseBleakClient):
    """Client backend: one connection to one simulated monitor."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._monitor: SimMonitor | None = None
        self._connected = False

    @property
    def name(self) -> str:
        mon = current_world().get(self.address)
        return mon.name if mon else self.address

    @property
    def mtu_size(self) -> int:
        return 23

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        mon = current_world().get(self.address)
        if mon is None or not mon.in_range:
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found."
            )
        try:
            mon.attach(self)
        except ConnectionError as exc:
            raise BleakDeviceNotFoundError(self.address, str(exc)) from exc
        self._monitor = mon
        self.services = _services(mon)
        self._connected = True

    async def disconnect(self) -> None:
        if self._monitor is not None and self._connected:
            self._monitor.detach()
        self._connected = False

    def _sim_dropped(self) -> None:
        """Called by the monitor when the link drops (an unsolicited disconnect)."""
        was = self._connected
        self._connected = False
        if was and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _mon(self) -> SimMonitor:
        if not self._connected or self._monitor is None:
            raise BleakError("Not connected")
        return self._monitor

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        mon = self._mon()
        await asyncio.sleep(0)
        try:
            return bytearray(mon.read(to_uuid16(characteristic.uuid)))
        except KeyError as exc:
            raise BleakError(f"characteristic {characteristic.uuid} is not readable") from exc

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        raise BleakError("the simulated monitors have no readable descriptors")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        mon = self._mon()
        try:
            mon.write(to_uuid16(characteristic.uuid), bytes(data))
        except PermissionError as exc:
            raise BleakError(str(exc)) from exc

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("write the characteristic's notifications through start_notify")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"{characteristic.uuid} does not notify")
        self._mon().subscribe(to_uuid16(characteristic.uuid), callback)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        if self._monitor is not None:
            self._monitor.unsubscribe(to_uuid16(characteristic.uuid))


def _services(mon: SimMonitor) -> BleakGATTServiceCollection:
    coll = BleakGATTServiceCollection()
    handle = 1
    for service_uuid, chars in mon.gatt_table():
        svc = BleakGATTService(None, handle, to_uuid128(service_uuid))
        coll.add_service(svc)
        handle += 1
        for char_uuid, props in chars:
            char = BleakGATTCharacteristic(
                None, handle, to_uuid128(char_uuid), props, lambda: 20, svc
            )  # type: ignore[arg-type]
            coll.add_characteristic(char)
            handle += 2
    return coll
