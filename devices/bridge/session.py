"""One monitor's connection state machine: scan → connect → discover → subscribe → receive.

Why: every monitor drops its link (out of range, asleep, battery swap); the session reconnects
with backoff forever, and nothing it receives is lost or stored twice: each notification is
decoded and committed to the outbox inside the bleak callback, before anything else.

Per connection:

1. find the monitor by address (``BleakScanner.find_device_by_address``) — not seen means
   "out of range", retried with backoff;
2. ``bleak_retry_connector.establish_connection`` (its own short retries), then once per
   session read Device Information (manufacturer, model, serial, firmware, System ID → EUI-64);
3. clock offset (bridge time − monitor time): from Current Time (0x2A2B) when the monitor has
   it; otherwise estimated as the smallest (receive time − time stamp) among recent readings —
   a reading indicated right after it was taken bounds the offset best, stored ones only add
   their storage delay — and persisted per monitor;
4. subscribe to every measurement characteristic present (indications and notifications),
   and to Battery Level; read the battery now and every ``battery_interval_s``;
5. glucose meters: write the Record Access Control Point "report stored records with sequence
   number ≥ last seen + 1" (or all records the first time) and wait for its response; the last
   sequence seen is kept in the outbox's meta table;
6. wait for the disconnect (or stop), then back off (full jitter) and go to 1.

A payload that does not decode is logged with its hex bytes (event ``decode.error``) and
skipped; the session never crashes on data. A reading whose multi-user id maps to no patient
is stored and quarantined at once (visible in ``status``), never attributed to someone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from devices import gatt
from devices.bridge.config import MonitorConfig
from devices.bridge.logs import event, get_logger
from devices.bridge.outbox import Outbox
from devices.bridge.phd import SKIPPED_KINDS
from devices.bridge.reading import MonitorInfo, format_eui64, make_reading
from devices.gatt import racp, uuids

log = get_logger("session")

CURRENT_TIME = 0x2A2B
KIND_OF_SERVICE = {
    uuids.BLOOD_PRESSURE_SERVICE: "blood_pressure",
    uuids.HEALTH_THERMOMETER_SERVICE: "thermometer",
    uuids.PULSE_OXIMETER_SERVICE: "pulse_oximeter",
    uuids.GLUCOSE_SERVICE: "glucose_meter",
    uuids.WEIGHT_SCALE_SERVICE: "weight_scale",
    uuids.HEART_RATE_SERVICE: "heart_rate",
    uuids.CONTINUOUS_GLUCOSE_MONITORING_SERVICE: "cgm",
}
MEASUREMENT_CHARACTERISTICS = (
    uuids.BLOOD_PRESSURE_MEASUREMENT,
    uuids.TEMPERATURE_MEASUREMENT,
    uuids.PLX_SPOT_CHECK_MEASUREMENT,
    uuids.PLX_CONTINUOUS_MEASUREMENT,
    uuids.GLUCOSE_MEASUREMENT,
    uuids.GLUCOSE_MEASUREMENT_CONTEXT,
    uuids.WEIGHT_MEASUREMENT,
    uuids.HEART_RATE_MEASUREMENT,
    uuids.CGM_MEASUREMENT,
)
# Streams sampled every second or so: kept at most once per ``continuous_interval_s``.
CONTINUOUS_KINDS = frozenset({"heart_rate", "plx_continuous"})
_DATE_TIME = struct.Struct("<HBBBBB")
_DIS_FIELDS = {
    uuids.MANUFACTURER_NAME_STRING: "manufacturer",
    uuids.MODEL_NUMBER_STRING: "model",
    uuids.SERIAL_NUMBER_STRING: "serial",
    uuids.FIRMWARE_REVISION_STRING: "firmware",
    uuids.SYSTEM_ID: "system_id",
}


@dataclass
class MonitorState:
    """What ``status`` shows about one monitor (and what the status upload sends)."""

    address: str
    kind: str | None = None
    patient: str | None = None
    connected: bool = False
    state: str = "idle"
    battery: float | None = None
    last_reading_at: str | None = None
    last_error: str | None = None
    clock_offset_s: float | None = None
    readings: int = 0
    decode_errors: int = 0
    connections: int = 0

    def as_status(self) -> dict[str, Any]:
        return {
            "id": self.address,
            "address": self.address,
            "kind": self.kind,
            "battery": self.battery,
            "connected": self.connected,
            "last_reading_at": self.last_reading_at,
            "state": self.state,
            "last_error": self.last_error,
        }


class MonitorSession:
    """Keeps one paired monitor connected and its readings flowing into the outbox."""

    def __init__(
        self,
        monitor: MonitorConfig,
        *,
        outbox: Outbox,
        tz: tzinfo,
        client_backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        on_reading: Callable[[], None] | None = None,
        battery_interval_s: float = 3600.0,
        continuous_interval_s: float = 60.0,
        scan_timeout_s: float = 10.0,
        reconnect_base_s: float = 1.0,
        reconnect_cap_s: float = 60.0,
        racp_timeout_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.config = monitor
        self.address = monitor.address.upper()
        self.outbox = outbox
        self.tz = tz
        self.client_backend = client_backend
        self.scanner_backend = scanner_backend
        self.on_reading = on_reading or (lambda: None)
        self.battery_interval_s = battery_interval_s
        self.continuous_interval_s = continuous_interval_s
        self.scan_timeout_s = scan_timeout_s
        self.reconnect_base_s = reconnect_base_s
        self.reconnect_cap_s = reconnect_cap_s
        self.racp_timeout_s = racp_timeout_s
        self.rng = rng or random.Random()
        self.info: MonitorInfo | None = None
        self.state = MonitorState(address=self.address, kind=monitor.kind, patient=monitor.patient)
        self.clock_offset: timedelta | None = None
        self._offset_from_current_time = False
        self._offset_samples: deque[timedelta] = deque(maxlen=20)
        saved = outbox.get_meta(f"clock_offset_s:{self.address}")
        if saved is not None:
            self.clock_offset = timedelta(seconds=saved)
        self._last_kept: dict[str, float] = {}
        self._disconnected = asyncio.Event()
        self._racp_done: asyncio.Future[racp.RacpResponse] | None = None

    # --- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect with backoff until ``stop`` is set."""
        attempt = 0
        while not stop.is_set():
            client: BleakClient | None = None
            try:
                self._set_state("scanning")
                kw: dict[str, Any] = (
                    {"backend": self.scanner_backend} if self.scanner_backend else {}
                )
                device = await BleakScanner.find_device_by_address(
                    self.address, timeout=self.scan_timeout_s, **kw
                )
                if device is None:
                    self._set_state(
                        "out_of_range",
                        error=f"monitor {self.address} not seen for {self.scan_timeout_s:g} s (out of range or asleep)",
                    )
                else:
                    self._set_state("connecting")
                    self._disconnected = asyncio.Event()
                    ckw: dict[str, Any] = (
                        {"backend": self.client_backend} if self.client_backend else {}
                    )
                    client = await establish_connection(
                        BleakClient,
                        device,
                        self.address,
                        disconnected_callback=self._on_disconnect,
                        max_attempts=2,
                        **ckw,
                    )
                    attempt = 0
                    await self._serve(client, stop)
            except asyncio.CancelledError:
                raise
            except (BleakError, TimeoutError, OSError, EOFError) as exc:
                self._set_state("error", error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug must not stop the other monitors
                log.exception("session.crash address=%s", self.address)
                self._set_state("error", error=f"{type(exc).__name__}: {exc}")
            finally:
                if client is not None and client.is_connected:
                    with contextlib.suppress(BleakError, OSError, TimeoutError):
                        await client.disconnect()
                self.state.connected = False
            if stop.is_set():
                break
            delay = self.rng.uniform(
                0, min(self.reconnect_cap_s, self.reconnect_base_s * 2**attempt)
            )
            attempt = min(attempt + 1, 20)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        self._set_state("stopped")

    def _on_disconnect(self, _client: BleakClient) -> None:
        self.state.connected = False
        self._disconnected.set()
        event(log, logging.INFO, "monitor.disconnected", address=self.address)

    async def _serve(self, client: BleakClient, stop: asyncio.Event) -> None:
        services = client.services
        present = {gatt.uuids.to_uuid16(c.uuid): c for c in services.characteristics.values()}
        if self.state.kind is None:
            for svc in services:
                kind = KIND_OF_SERVICE.get(gatt.uuids.to_uuid16(svc.uuid))
                if kind:
                    self.state.kind = kind
                    break
        if self.info is None:
            self.info = await self._read_device_information(client, present)
        if CURRENT_TIME in present:
            await self._read_current_time(client, present[CURRENT_TIME])
        self.state.connected = True
        self.state.connections += 1
        self._set_state("connected")
        event(log, logging.INFO, "monitor.connected", address=self.address, kind=self.state.kind)
        for uuid in MEASUREMENT_CHARACTERISTICS:
            char = present.get(uuid)
            if char is not None and {"notify", "indicate"} & set(char.properties):
                await client.start_notify(char, self._on_notify)
        battery = present.get(uuids.BATTERY_LEVEL)
        if battery is not None and "notify" in battery.properties:
            await client.start_notify(battery, self._on_notify)
        if uuids.RECORD_ACCESS_CONTROL_POINT in present:
            await self._fetch_stored_records(client, present[uuids.RECORD_ACCESS_CONTROL_POINT])
        while client.is_connected and not stop.is_set():
            if battery is not None:
                await self._read_battery(client, battery)
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self._disconnected.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters, timeout=self.battery_interval_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for w in waiters:
                    w.cancel()
            if self._disconnected.is_set():
                break

    # --- reads ----------------------------------------------------------------------------

    async def _read_device_information(
        self, client: BleakClient, present: dict[int, BleakGATTCharacteristic]
    ) -> MonitorInfo:
        fields: dict[str, str] = {}
        for uuid, name in _DIS_FIELDS.items():
            char = present.get(uuid)
            if char is None:
                continue
            try:
                m = gatt.decode(uuid, await client.read_gatt_char(char))
            except gatt.DecodeError as exc:
                self._decode_error(uuid, exc)
                continue
            except BleakError as exc:
                event(
                    log,
                    logging.WARNING,
                    "dis.unreadable",
                    address=self.address,
                    characteristic=f"0x{uuid:04X}",
                    error=str(exc),
                )
                continue
            for _, value in m.extra:
                fields[name] = format_eui64(str(value)) if name == "system_id" else str(value)
        return MonitorInfo(
            address=self.address, kind=self.state.kind or "unknown", name=self.config.name, **fields
        )

    async def _read_current_time(self, client: BleakClient, char: BleakGATTCharacteristic) -> None:
        try:
            data = await client.read_gatt_char(char)
        except BleakError:
            return
        monitor_time = parse_current_time(bytes(data))
        if monitor_time is None:
            return
        bridge_now = datetime.now(self.tz).replace(tzinfo=None)
        offset = timedelta(seconds=round((bridge_now - monitor_time).total_seconds()))
        self._offset_from_current_time = True
        self._store_offset(offset)

    def _store_offset(self, offset: timedelta) -> None:
        if self.clock_offset != offset:
            self.clock_offset = offset
            self.state.clock_offset_s = offset.total_seconds()
            self.outbox.set_meta(f"clock_offset_s:{self.address}", offset.total_seconds())

    async def _read_battery(self, client: BleakClient, char: BleakGATTCharacteristic) -> None:
        try:
            data = await client.read_gatt_char(char)
        except BleakError:
            return
        self._handle(uuids.BATTERY_LEVEL, bytes(data))

    async def _fetch_stored_records(
        self, client: BleakClient, char: BleakGATTCharacteristic
    ) -> None:
        last = self.outbox.get_meta(f"glucose_seq:{self.address}")
        request = (
            racp.encode_report_all_records()
            if last is None
            else racp.encode_report_records_from((last + 1) & 0xFFFF)
        )
        self._racp_done = asyncio.get_running_loop().create_future()
        await client.start_notify(char, self._on_notify)
        await client.write_gatt_char(char, request, response=True)
        try:
            resp = await asyncio.wait_for(
                asyncio.shield(self._racp_done), timeout=self.racp_timeout_s
            )
        except TimeoutError:
            event(log, logging.WARNING, "racp.timeout", address=self.address)
            return
        finally:
            self._racp_done = None
        event(
            log,
            logging.INFO,
            "racp.done",
            address=self.address,
            response=resp.response,
            from_sequence=None if last is None else last + 1,
        )

    # --- notifications --------------------------------------------------------------------

    def _on_notify(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        """bleak callback: decode and commit, never raise."""
        try:
            self._handle(gatt.uuids.to_uuid16(char.uuid), bytes(data))
        except Exception:  # never let one payload break the stream
            log.exception("notify.crash address=%s data=%s", self.address, bytes(data).hex())

    def _handle(self, uuid: int, data: bytes) -> None:
        received_at = datetime.now(self.tz)
        if uuid == uuids.RECORD_ACCESS_CONTROL_POINT:
            try:
                resp = racp.decode_racp_response(data)
            except gatt.DecodeError as exc:
                self._decode_error(uuid, exc)
                return
            if (
                self._racp_done is not None
                and not self._racp_done.done()
                and resp.op_code == racp.RESPONSE_CODE
            ):
                self._racp_done.set_result(resp)
            return
        try:
            measurements = gatt.decode_all(uuid, data)
        except gatt.DecodeError as exc:
            self._decode_error(uuid, exc)
            return
        for m in measurements:
            self._keep(m, received_at)

    def _keep(self, m: gatt.Measurement, received_at: datetime) -> None:
        if m.kind in SKIPPED_KINDS or self.info is None:
            return
        now = time.monotonic()
        if m.kind == "battery":
            level = m.components[0].value if m.components else None
            last = self._last_kept.get("battery")
            changed = (
                level is not None
                and self.state.battery is not None
                and abs(level - self.state.battery) >= 5
            )
            self.state.battery = level
            if last is not None and now - last < self.battery_interval_s * 0.9 and not changed:
                self._persist_state()
                return
        elif m.kind in CONTINUOUS_KINDS:
            last = self._last_kept.get(m.kind)
            if last is not None and now - last < self.continuous_interval_s:
                return
        if m.time is not None and not self._offset_from_current_time:
            self._offset_samples.append(received_at.replace(tzinfo=None) - m.time)
            self._store_offset(timedelta(seconds=round(min(self._offset_samples).total_seconds())))
        patient = self.config.patient_for(m.user_id)
        reading = make_reading(
            patient_id=patient or "",
            monitor=self.info,
            measurement=m,
            received_at=received_at,
            clock_offset=self.clock_offset,
        )
        stored = self.outbox.put(reading)
        self._last_kept[m.kind] = now
        if stored and patient is None:
            why = f"no patient for user id {m.user_id} on monitor {self.address}: map it with `sg-bridge pair {self.address} --user-id {m.user_id} --patient ID`"
            self.outbox.quarantine_key(reading.key, why)
            event(
                log,
                logging.WARNING,
                "reading.unattributed",
                address=self.address,
                key=reading.key,
                user_id=m.user_id,
            )
        if m.sequence is not None and m.kind == "glucose":
            last_seq = self.outbox.get_meta(f"glucose_seq:{self.address}")
            if last_seq is None or m.sequence > last_seq:
                self.outbox.set_meta(f"glucose_seq:{self.address}", m.sequence)
        if m.kind != "battery":
            self.state.readings += 1
            self.state.last_reading_at = received_at.isoformat(timespec="seconds")
        event(
            log,
            logging.DEBUG,
            "reading.stored" if stored else "reading.duplicate",
            address=self.address,
            key=reading.key,
        )
        self._persist_state()
        if stored:
            self.on_reading()

    def _decode_error(self, uuid: int, exc: gatt.DecodeError) -> None:
        self.state.decode_errors += 1
        event(
            log, logging.WARNING, "decode.error",
            address=self.address, characteristic=f"0x{uuid:04X}", error=exc.args[0] if exc.args else str(exc),
            error_type=type(exc).__name__, data=exc.data.hex(),
        )  # fmt: skip

    def _set_state(self, state: str, *, error: str | None = None) -> None:
        self.state.state = state
        if error is not None:
            self.state.last_error = error
            event(log, logging.WARNING, f"monitor.{state}", address=self.address, error=error)
        self._persist_state()

    def _persist_state(self) -> None:
        try:
            self.outbox.set_monitor_state(self.address, asdict(self.state))
        except Exception:  # status is best effort; readings are not
            log.debug("state.unsaved", exc_info=True)


def parse_current_time(data: bytes) -> datetime | None:
    """The Date Time part of a Current Time (0x2A2B) value; ``None`` if absent or unknown."""
    if len(data) < _DATE_TIME.size:
        return None
    year, month, day, hour, minute, second = _DATE_TIME.unpack_from(data)
    try:
        return datetime(year, month, day, hour, minute, second) if year and month and day else None
    except ValueError:
        return None
