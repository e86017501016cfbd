"""A reading: one decoded measurement with everything the upload needs, and its stable key.

Why: the outbox must hold a measurement *before* anything else happens to it, and the bundle
is built later (maybe after a restart), so the row carries the monitor's identity, the patient
and the already clock-corrected effective time. The key is the stable identifier the server
dedupes on, so a re-delivered notification is stored once, here and there.

Key format (``urn:sg:phd-observation`` identifier value, see :func:`observation_id`):
``<monitor EUI-64 or BLE address>.<mdc>.<time>[.s<sequence>][.u<user id>]`` where ``<time>``
is the monitor's own time stamp ``yyyymmddThhmmss`` (as sent, before correction: it is what
stays the same when the monitor re-sends) or, for a monitor without a time stamp, ``r`` and
the bridge's receive time in UTC to the millisecond (``r20250101T101010123``), so two
live notifications in the same second stay distinct.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devices.gatt.measurement import Component, Measurement


def format_eui64(value: str) -> str:
    """An EUI-64 as the PHD IG writes it: "74-E8-FF-FE-FF-05-1C-00" (accepts bare hex too)."""
    hexdigits = "".join(ch for ch in value if ch not in "-: ").upper()
    if len(hexdigits) != 16 or any(ch not in "0123456789ABCDEF" for ch in hexdigits):
        raise ValueError(f"not an EUI-64: {value!r}")
    return "-".join(hexdigits[i : i + 2] for i in range(0, 16, 2))


# Primary MDC code per measurement kind (the code of the reading as a whole).
PANEL_MDC = {"blood_pressure": 150020}


@dataclass(frozen=True, slots=True)
class MonitorInfo:
    """A monitor's identity as Device Information gives it (System ID → EUI-64)."""

    address: str
    kind: str = "unknown"
    system_id: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    name: str | None = None

    @property
    def device_key(self) -> str:
        """The EUI-64 when the monitor has a System ID, else its Bluetooth address."""
        return self.system_id or self.address.upper()

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorInfo:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement as stored in the outbox and uploaded."""

    key: str
    patient_id: str
    monitor: MonitorInfo
    measurement: Measurement
    effective: datetime
    received_at: datetime
    device_time: datetime | None = field(default=None)


def primary_mdc(m: Measurement) -> int:
    """The MDC code that names the measurement (the BP panel, else the first component)."""
    panel = PANEL_MDC.get(m.kind)
    if panel is not None:
        return panel
    return m.components[0].mdc if m.components else 0


def time_part(device_time: datetime | None, received_at: datetime) -> str:
    """The time part of an identifier (see the module docstring)."""
    if device_time is not None:
        return device_time.strftime("%Y%m%dT%H%M%S")
    t = received_at.astimezone(UTC)
    return f"r{t:%Y%m%dT%H%M%S}{t.microsecond // 1000:03d}"


def observation_id(device_key: str, mdc: int, m: Measurement, received_at: datetime) -> str:
    """The stable identifier value of the Observation for ``mdc`` from measurement ``m``."""
    parts = [device_key, str(mdc), time_part(m.time, received_at)]
    if m.sequence is not None:
        parts.append(f"s{m.sequence}")
    if m.user_id is not None:
        parts.append(f"u{m.user_id}")
    return ".".join(parts)


def effective_time(
    m: Measurement, clock_offset: timedelta | None, received_at: datetime
) -> datetime:
    """The monitor's time corrected by the bridge's clock offset, in the bridge's zone.

    A monitor without a time stamp (or whose clock is unknown) gets the receive time.
    """
    if m.time is None:
        return received_at
    corrected = m.time + (clock_offset or timedelta(0))
    return corrected.replace(tzinfo=received_at.tzinfo)


def make_reading(
    *,
    patient_id: str,
    monitor: MonitorInfo,
    measurement: Measurement,
    received_at: datetime,
    clock_offset: timedelta | None,
) -> Reading:
    """Build the outbox row for a freshly received measurement (``received_at`` is aware)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return Reading(
        key=observation_id(monitor.device_key, primary_mdc(measurement), measurement, received_at),
        patient_id=patient_id,
        monitor=monitor,
        measurement=measurement,
        effective=effective_time(measurement, clock_offset, received_at),
        received_at=received_at,
        device_time=measurement.time,
    )


# --- JSON (the outbox payload) ----------------------------------------------------------


def _component_to_list(c: Component) -> list[Any]:
    return [c.mdc, c.value, c.unit, c.special, c.modality]


def measurement_to_dict(m: Measurement) -> dict[str, Any]:
    return {
        "kind": m.kind,
        "components": [_component_to_list(c) for c in m.components],
        "time": m.time.isoformat() if m.time else None,
        "flags": sorted(m.flags),
        "user_id": m.user_id,
        "sequence": m.sequence,
        "extra": [list(kv) for kv in m.extra],
    }


def measurement_from_dict(d: dict[str, Any]) -> Measurement:
    return Measurement(
        kind=d["kind"],
        components=tuple(Component(c[0], c[1], c[2], c[3], c[4]) for c in d["components"]),
        time=datetime.fromisoformat(d["time"]) if d["time"] else None,
        flags=frozenset(d["flags"]),
        user_id=d["user_id"],
        sequence=d["sequence"],
        extra=tuple((k, v) for k, v in d["extra"]),
    )


def reading_to_json(r: Reading) -> str:
    return json.dumps(
        {
            "key": r.key,
            "patient_id": r.patient_id,
            "monitor": r.monitor.to_dict(),
            "measurement": measurement_to_dict(r.measurement),
            "effective": r.effective.isoformat(),
            "received_at": r.received_at.isoformat(),
        },
        separators=(",", ":"),
    )


def reading_from_json(s: str) -> Reading:
    d = json.loads(s)
    m = measurement_from_dict(d["measurement"])
    return Reading(
        key=d["key"],
        patient_id=d["patient_id"],
        monitor=MonitorInfo.from_dict(d["monitor"]),
        measurement=m,
        effective=datetime.fromisoformat(d["effective"]),
        received_at=datetime.fromisoformat(d["received_at"]),
        device_time=m.time,
    )
