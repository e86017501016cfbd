"""Simulated Bluetooth health monitors: their GATT table, their readings, their quirks.

Why: the bridge must be exercised against monitors that behave like real ones — a cuff that
keeps readings until it has indicated them, a glucose meter that holds records until the
Record Access Control Point asks, a strap that only streams while connected, clocks that are
a few minutes off, links that drop mid-stream — without any radio. Payloads come from the
``devices.gatt`` encoders, so the bridge decodes exactly what a real monitor would send.

Clocks show local wall time in the world's time zone (Asia/Shanghai by default), as a monitor
set up in Guangdong would.

A monitor is driven either by a test (``measure()``, ``drop()``, ``set_in_range()``) or by
:meth:`devices.sim.world.World.start`, which measures on a schedule accelerated by the world's
time factor. Clocks are *not* accelerated: a monitor's clock is the host's wall clock plus its
``clock_error``, so the bridge's clock-offset correction is real and testable.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from devices import gatt
from devices.gatt import mdc, racp, uuids
from devices.gatt.datetime_field import encode_date_time
from devices.gatt.measurement import Component, Measurement, make_extra
from devices.sim.profiles import Profile, Vitals

Notify = Callable[[bytearray], None]

# Monitor kind → (health service, [(characteristic, properties)], stored?, default interval s)
_DIS = [
    (uuids.MANUFACTURER_NAME_STRING, ["read"]),
    (uuids.MODEL_NUMBER_STRING, ["read"]),
    (uuids.SERIAL_NUMBER_STRING, ["read"]),
    (uuids.FIRMWARE_REVISION_STRING, ["read"]),
    (uuids.SYSTEM_ID, ["read"]),
]
CURRENT_TIME_SERVICE = 0x1805
CURRENT_TIME = 0x2A2B


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What a kind of monitor looks like on the air."""

    service: int
    characteristics: tuple[tuple[int, tuple[str, ...]], ...]
    stored: bool
    interval_s: float
    name: str
    model: str


KINDS: dict[str, KindSpec] = {
    "blood_pressure": KindSpec(
        uuids.BLOOD_PRESSURE_SERVICE,
        ((uuids.BLOOD_PRESSURE_MEASUREMENT, ("indicate",)), (uuids.INTERMEDIATE_CUFF_PRESSURE, ("notify",))),
        True, 4 * 3600, "SG-BPM", "BPM-7600",
    ),
    "thermometer": KindSpec(
        uuids.HEALTH_THERMOMETER_SERVICE, ((uuids.TEMPERATURE_MEASUREMENT, ("indicate",)),),
        True, 6 * 3600, "SG-THERMO", "TH-200",
    ),
    "pulse_oximeter": KindSpec(
        uuids.PULSE_OXIMETER_SERVICE,
        ((uuids.PLX_SPOT_CHECK_MEASUREMENT, ("indicate",)), (uuids.PLX_CONTINUOUS_MEASUREMENT, ("notify",))),
        True, 3 * 3600, "SG-OXI", "PO-60",
    ),
    "glucose_meter": KindSpec(
        uuids.GLUCOSE_SERVICE,
        (
            (uuids.GLUCOSE_MEASUREMENT, ("notify",)),
            (uuids.GLUCOSE_MEASUREMENT_CONTEXT, ("notify",)),
            (uuids.RECORD_ACCESS_CONTROL_POINT, ("write", "indicate")),
        ),
        True, 5 * 3600, "SG-GLU", "GL-50",
    ),
    "weight_scale": KindSpec(
        uuids.WEIGHT_SCALE_SERVICE, ((uuids.WEIGHT_MEASUREMENT, ("indicate",)),),
        True, 24 * 3600, "SG-SCALE", "WS-10",
    ),
    "heart_rate": KindSpec(
        uuids.HEART_RATE_SERVICE, ((uuids.HEART_RATE_MEASUREMENT, ("notify",)),),
        False, 60, "SG-HRM", "HR-1",
    ),
    "cgm": KindSpec(
        uuids.CONTINUOUS_GLUCOSE_MONITORING_SERVICE, ((uuids.CGM_MEASUREMENT, ("notify",)),),
        False, 5 * 60, "SG-CGM", "CG-14",
    ),
}  # fmt: skip


class SimMonitor:
    """One simulated monitor. Not thread-safe; lives on the event loop of its clients."""

    def __init__(
        self,
        *,
        kind: str,
        address: str,
        profile: Profile,
        rng: random.Random,
        users: tuple[int, ...] = (),
        clock_error: timedelta = timedelta(0),
        has_system_id: bool = True,
        has_current_time: bool = True,
        drop_p: float = 0.0,
        battery: float = 95.0,
        tz: tzinfo | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown monitor kind {kind!r}; choose from {', '.join(KINDS)}")
        self.kind = kind
        self.spec = KINDS[kind]
        self.address = address.upper()
        self.profile = profile
        self.rng = rng
        self.vitals = Vitals(profile, rng)
        self.users = users
        self.clock_error = clock_error
        self.has_system_id = has_system_id
        self.has_current_time = has_current_time
        self.drop_p = drop_p
        self.battery = battery
        self.tz = tz
        self.in_range = True
        self.rssi = -50 - rng.randrange(30)
        self.name = f"{self.spec.name}-{self.address[-5:].replace(':', '')}"
        self.serial = f"{rng.randrange(10**8):08d}"
        self.system_id = bytes(rng.randrange(256) for _ in range(8)) if has_system_id else None
        self.pending: deque[tuple[int, bytes, Measurement]] = deque()
        self.records: list[tuple[Measurement, bytes]] = []  # glucose stored records
        self.produced: list[Measurement] = []
        self.delivered: int = 0
        self.resend_on_reconnect = 0  # simulate lost indication confirmations
        self._last_sent: list[tuple[int, bytes, Measurement]] = []
        self._subs: dict[int, Notify] = {}
        self._client: object | None = None
        self._drop_after: int | None = None
        self._last_stamp: datetime | None = None
        self._sequence = 0
        self._started = datetime.now()

    # --- clock ---------------------------------------------------------------------------

    def clock(self) -> datetime:
        """The monitor's own (naive, possibly wrong) clock."""
        return (datetime.now(self.tz).replace(tzinfo=None) + self.clock_error).replace(
            microsecond=0
        )

    def _stamp(self) -> datetime:
        # A real monitor cannot take two readings in the same second; keep stamps distinct
        # so the stable identifier (device + type + time) stays unique under acceleration.
        now = self.clock()
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(seconds=1)
        self._last_stamp = now
        return now

    # --- readings ------------------------------------------------------------------------

    def measure(self, *, day: float = 0.0, user_id: int | None = None) -> Measurement:
        """Take one reading now; stored kinds keep it until delivered."""
        m = self._make(day, user_id)
        self.produced.append(m)
        payload = gatt.encode(m)
        uuid = gatt.characteristic_for(m)
        self.battery = max(5.0, self.battery - self.vitals.battery_drain())
        if self.kind == "glucose_meter":
            self.records.append((m, payload))
        elif self.spec.stored:
            self.pending.append((uuid, payload, m))
            self._schedule_flush()
        elif self.connected and uuid in self._subs:
            self._send(uuid, payload)
        return m

    def _special(self, c: Component) -> Component:
        special = self.vitals.special()
        if special is None:
            return c
        return Component(c.mdc, None, c.unit, special, c.modality)

    def _make(self, day: float, user_id: int | None) -> Measurement:
        v = self.vitals
        if user_id is None and self.users:
            user_id = self.rng.choice(self.users)
        if self.kind == "blood_pressure":
            s, d, mean, pulse = v.blood_pressure()
            comps = (
                Component(mdc.MDC_PRESS_BLD_NONINV_SYS, s, "mm[Hg]"),
                Component(mdc.MDC_PRESS_BLD_NONINV_DIA, d, "mm[Hg]"),
                self._special(Component(mdc.MDC_PRESS_BLD_NONINV_MEAN, mean, "mm[Hg]")),
                Component(mdc.MDC_PULS_RATE_NON_INV, pulse, "/min"),
            )
            flags = frozenset({"irregular_pulse"}) if self.rng.random() < 0.05 else frozenset()
            return Measurement("blood_pressure", comps, self._stamp(), flags, user_id)
        if self.kind == "thermometer":
            c = Component(mdc.MDC_TEMP_BODY, v.temperature(), "Cel")
            return Measurement(
                "temperature",
                (self._special(c),),
                self._stamp(),
                extra=make_extra(temperature_type="body"),
            )
        if self.kind == "pulse_oximeter":
            spo2, pr = v.spo2_pulse()
            comps = (
                self._special(Component(mdc.MDC_PULS_OXIM_SAT_O2, spo2, "%")),
                Component(mdc.MDC_PULS_OXIM_PULS_RATE, pr, "/min"),
            )
            return Measurement("plx_spot_check", comps, self._stamp())
        if self.kind == "glucose_meter":
            self._sequence += 1
            mol = round(v.glucose_mmol() / 1000, 5)
            c = Component(mdc.MDC_CONC_GLU_CAPILLARY_PLASMA, mol, "mol/L")
            return Measurement(
                "glucose", (self._special(c),), self._stamp(), sequence=self._sequence,
                extra=make_extra(glucose_type="capillary_plasma", sample_location="finger"),
            )  # fmt: skip
        if self.kind == "weight_scale":
            w = v.weight_kg(day)
            h = round(self.profile.height_m, 3)
            bmi = round(w / (h * h), 1)
            comps = (
                Component(mdc.MDC_MASS_BODY_ACTUAL, w, "kg"),
                Component(mdc.MDC_RATIO_MASS_BODY_LEN_SQ, bmi, "kg/m2"),
                Component(mdc.MDC_LEN_BODY_ACTUAL, h, "m"),
            )
            return Measurement("weight", comps, self._stamp(), user_id=user_id)
        if self.kind == "heart_rate":
            flags = frozenset({"sensor_contact_supported", "sensor_contact_detected"})
            return Measurement(
                "heart_rate",
                (Component(mdc.MDC_ECG_HEART_RATE, v.heart_rate(), "/min"),),
                flags=flags,
            )
        # cgm
        minutes = int((datetime.now() - self._started).total_seconds() // 60) + len(self.produced)
        mgdl = float(round(v.glucose_mmol() * 18.0))
        return Measurement(
            "cgm",
            (Component(mdc.MDC_CONC_GLU_ISF, mgdl, "mg/dL"),),
            extra=make_extra(time_offset_minutes=minutes % 0xFFFF),
        )

    # --- GATT server side ------------------------------------------------------------------

    def gatt_table(self) -> list[tuple[int, list[tuple[int, list[str]]]]]:
        """Services and their (characteristic, properties), in handle order."""
        table: list[tuple[int, list[tuple[int, list[str]]]]] = [
            (self.spec.service, [(u, list(p)) for u, p in self.spec.characteristics]),
            (uuids.BATTERY_SERVICE, [(uuids.BATTERY_LEVEL, ["read", "notify"])]),
        ]
        dis = [(u, p) for u, p in _DIS if u != uuids.SYSTEM_ID or self.has_system_id]
        table.append((uuids.DEVICE_INFORMATION_SERVICE, dis))
        if self.has_current_time:
            table.append((CURRENT_TIME_SERVICE, [(CURRENT_TIME, ["read", "notify"])]))
        return table

    @property
    def connected(self) -> bool:
        return self._client is not None

    def attach(self, client: object) -> None:
        if not self.in_range:
            raise ConnectionError(f"{self.address} is out of range")
        self._client = client
        self._subs.clear()
        # Indications whose confirmation was lost go out again after reconnecting.
        if self.resend_on_reconnect and self._last_sent:
            for item in reversed(self._last_sent[-self.resend_on_reconnect :]):
                self.pending.appendleft(item)
            self.resend_on_reconnect = 0

    def detach(self) -> None:
        self._client = None
        self._subs.clear()

    def read(self, uuid: int) -> bytes:
        if uuid == uuids.BATTERY_LEVEL:
            return bytes([int(self.battery)])
        if uuid == CURRENT_TIME:
            now = self.clock()
            return encode_date_time(now) + bytes([now.isoweekday(), 0, 0])
        dis = {
            uuids.MANUFACTURER_NAME_STRING: "Smart Guangdong Sim",
            uuids.MODEL_NUMBER_STRING: self.spec.model,
            uuids.SERIAL_NUMBER_STRING: self.serial,
            uuids.FIRMWARE_REVISION_STRING: "1.4.2",
        }
        if uuid in dis:
            return dis[uuid].encode()
        if uuid == uuids.SYSTEM_ID and self.system_id is not None:
            return self.system_id
        raise KeyError(uuid)

    def subscribe(self, uuid: int, callback: Notify) -> None:
        self._subs[uuid] = callback
        self._schedule_flush()

    def unsubscribe(self, uuid: int) -> None:
        self._subs.pop(uuid, None)

    def write(self, uuid: int, data: bytes) -> None:
        if uuid != uuids.RECORD_ACCESS_CONTROL_POINT:
            raise PermissionError(f"0x{uuid:04X} is not writable")
        asyncio.get_running_loop().call_soon(self._racp, bytes(data))

    def _racp(self, data: bytes) -> None:
        if not self.connected:
            return
        op = data[0] if data else 0
        if op != racp.REPORT_STORED_RECORDS or len(data) < 2:
            self._racp_response(op, 0x02)
            return
        if data[1] == racp.OPERATOR_ALL_RECORDS:
            start = 0
        elif (
            data[1] == racp.OPERATOR_GREATER_OR_EQUAL
            and len(data) == 5
            and data[2] == racp.FILTER_SEQUENCE_NUMBER
        ):
            start = int.from_bytes(data[3:5], "little")
        else:
            self._racp_response(op, 0x04)
            return
        wanted = [p for m, p in self.records if (m.sequence or 0) >= start]
        if not wanted:
            self._racp_response(op, 0x06)
            return
        for payload in wanted:
            if not self.connected:
                return
            self._send(uuids.GLUCOSE_MEASUREMENT, payload)
        self._racp_response(op, 0x01)

    def _racp_response(self, request: int, code: int) -> None:
        self._send(uuids.RECORD_ACCESS_CONTROL_POINT, bytes([racp.RESPONSE_CODE, 0, request, code]))

    def _schedule_flush(self) -> None:
        if self.connected and self.pending:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        while self.connected and self.pending:
            uuid, payload, m = self.pending[0]
            if uuid not in self._subs:
                return
            if self._drop_after is not None:
                if self._drop_after <= 0:
                    self._drop_after = None
                    self.drop()
                    return
                self._drop_after -= 1
            elif self.drop_p and self.rng.random() < self.drop_p:
                self.drop()
                return
            self.pending.popleft()
            self._last_sent = (self._last_sent + [(uuid, payload, m)])[-8:]
            self._send(uuid, payload)

    def _send(self, uuid: int, payload: bytes) -> None:
        cb = self._subs.get(uuid)
        if cb is not None:
            self.delivered += 1
            cb(bytearray(payload))

    # --- faults --------------------------------------------------------------------------

    def drop_after(self, n: int) -> None:
        """Drop the link after ``n`` more stored readings have been indicated."""
        self._drop_after = n

    def drop(self) -> None:
        """The link drops now (the client sees an unsolicited disconnect)."""
        client = self._client
        self.detach()
        if client is not None:
            client._sim_dropped()  # type: ignore[attr-defined]

    def set_in_range(self, in_range: bool) -> None:
        self.in_range = in_range
        if not in_range:
            self.drop()
