"""The bridge's TOML configuration: server, token, gateway EUI-64, paired monitors.

Why: a home bridge is set up once (by a technician or the family) and then runs unattended;
everything it needs to restart after a power cut lives in one small file, written atomically
so a crash while pairing cannot leave half a file.

Example (``~/.config/sg-bridge/bridge.toml``)::

    server_url = "https://rpm.example.gd.cn"
    token = "sgb_6f0c…"
    gateway_eui64 = "02-4F-1A-FF-FE-33-9C-07"   # generated once
    backend = "bleak"                            # or "sim"
    outbox = "~/.local/share/sg-bridge/outbox.sqlite3"
    timezone = "Asia/Shanghai"

    [[monitors]]
    address = "C0:26:DA:01:02:03"
    kind = "blood_pressure"
    patient = "440106195203150021"               # resident identity number
    [monitors.users]                             # multi-user cuff: user id → patient
    "1" = "440106195203150021"
    "2" = "440106195406280027"
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from devices.bridge.reading import format_eui64

DEFAULT_PATH = Path("~/.config/sg-bridge/bridge.toml")
DEFAULT_OUTBOX = "~/.local/share/sg-bridge/outbox.sqlite3"


class ConfigError(Exception):
    """The config file is missing something or holds a wrong value."""


@dataclass
class MonitorConfig:
    """One paired monitor: its address and whose readings it takes."""

    address: str
    patient: str | None = None
    users: dict[int, str] = field(default_factory=dict)
    kind: str | None = None
    name: str | None = None

    def patient_for(self, user_id: int | None) -> str | None:
        """The patient of a reading, or ``None`` when its user id is not mapped.

        A multi-user monitor with a user mapping never guesses: an unmapped user id has no
        patient (the reading is kept in quarantine, not given to someone else).
        """
        if self.users:
            if user_id is None:
                return self.patient
            return self.users.get(user_id)
        return self.patient

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"address": self.address}
        for k in ("kind", "name", "patient"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.users:
            d["users"] = {str(k): v for k, v in sorted(self.users.items())}
        return d


@dataclass
class BridgeConfig:
    """Everything ``sg-bridge run`` needs."""

    server_url: str = ""
    token: str = ""
    gateway_eui64: str = ""
    backend: str = "bleak"
    outbox: str = DEFAULT_OUTBOX
    timezone: str = "Asia/Shanghai"
    batch_size: int = 100
    batch_max_age_s: float = 2.0
    battery_interval_s: float = 3600.0
    continuous_interval_s: float = 60.0
    connect_timeout_s: float = 20.0
    monitors: list[MonitorConfig] = field(default_factory=list)
    sim: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def outbox_path(self) -> Path:
        return Path(os.path.expanduser(self.outbox))

    def monitor(self, address: str) -> MonitorConfig | None:
        for m in self.monitors:
            if m.address.upper() == address.upper():
                return m
        return None

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "server_url": self.server_url,
            "token": self.token,
            "gateway_eui64": self.gateway_eui64,
            "backend": self.backend,
            "outbox": self.outbox,
            "timezone": self.timezone,
            "batch_size": self.batch_size,
            "batch_max_age_s": self.batch_max_age_s,
            "battery_interval_s": self.battery_interval_s,
            "continuous_interval_s": self.continuous_interval_s,
            "connect_timeout_s": self.connect_timeout_s,
        }
        if self.sim:
            d["sim"] = self.sim
        d["monitors"] = [m.to_toml() for m in self.monitors]
        return d


def new_gateway_eui64() -> str:
    """A random, locally administered EUI-64 (bit 1 of the first octet set, multicast bit clear)."""
    raw = bytearray(secrets.token_bytes(8))
    raw[0] = (raw[0] | 0x02) & 0xFE
    return format_eui64(raw.hex())


def load(path: Path | str | None = None, *, create: bool = False) -> BridgeConfig:
    """Read the config; with ``create``, a missing file gives a fresh config (not yet saved).

    A config without a gateway EUI-64 gets one generated (the caller saves it once).
    """
    p = Path(os.path.expanduser(str(path or DEFAULT_PATH)))
    if not p.exists():
        if not create:
            raise ConfigError(
                f"no bridge config at {p}: run `sg-bridge pair ADDRESS --patient ID --server URL --token TOKEN` first"
            )
        cfg = BridgeConfig(gateway_eui64=new_gateway_eui64(), path=p)
        return cfg
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {p}: {exc}") from exc
    cfg = from_dict(data)
    cfg.path = p
    if not cfg.gateway_eui64:
        cfg.gateway_eui64 = new_gateway_eui64()
    return cfg


def from_dict(data: dict[str, Any]) -> BridgeConfig:
    monitors = []
    for m in data.get("monitors", []):
        try:
            users = {int(k): str(v) for k, v in (m.get("users") or {}).items()}
            monitors.append(
                MonitorConfig(
                    address=str(m["address"]).upper(),
                    patient=m.get("patient"),
                    users=users,
                    kind=m.get("kind"),
                    name=m.get("name"),
                )
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise ConfigError(f"bad [[monitors]] entry {m!r}: {exc}") from exc
    known = {f for f in BridgeConfig.__dataclass_fields__ if f not in ("monitors", "path")}
    scalars = {k: v for k, v in data.items() if k in known}
    cfg = BridgeConfig(**scalars, monitors=monitors)
    if cfg.gateway_eui64:
        try:
            cfg.gateway_eui64 = format_eui64(cfg.gateway_eui64)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return cfg


def save(cfg: BridgeConfig, path: Path | str | None = None) -> Path:
    """Write the config atomically (temp file + fsync + rename), readable by its owner only."""
    p = Path(os.path.expanduser(str(path or cfg.path or DEFAULT_PATH)))
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(cfg.to_toml(), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    cfg.path = p
    return p
