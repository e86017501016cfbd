"""The running bridge: one session per paired monitor plus the uploader, in one event loop.

Why: the CLI's ``run`` and an in-process end-to-end test need the same assembly; this module is
that assembly, with stop conditions a test can use (a duration, or "until N readings are
stored on the server").

For a test or the demo::

    world = sim_world_for(cfg)            # or devices.sim.world.World(...) + add_monitor(...)
    report = await run_bridge(cfg, backend="sim", duration_s=10, until_stored=20)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner

from devices.bridge.config import BridgeConfig
from devices.bridge.logs import event, get_logger
from devices.bridge.outbox import Outbox
from devices.bridge.phd import Gateway
from devices.bridge.session import MonitorSession
from devices.bridge.uploader import TokenRefused, Uploader

log = get_logger("app")
VERSION = "0.1.0"


def backends(name: str) -> tuple[type[BaseBleakClient] | None, type[BaseBleakScanner] | None]:
    """(client, scanner) backend classes for "bleak" (the platform's) or "sim"."""
    if name == "sim":
        from devices.sim.backend import SimBleakClient, SimBleakScanner

        return SimBleakClient, SimBleakScanner
    if name in ("bleak", "", None):
        return None, None
    raise ValueError(f"unknown backend {name!r} (use 'bleak' or 'sim')")


@dataclass
class BridgeReport:
    """What a bounded run did (for tests and the demo)."""

    stored: int = 0
    depth: int = 0
    quarantined: int = 0
    monitors: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None
    token_refused: bool = False


class Bridge:
    """All sessions and the uploader of one bridge."""

    def __init__(
        self,
        cfg: BridgeConfig,
        *,
        backend: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        outbox: Outbox | None = None,
        session_options: dict[str, Any] | None = None,
        uploader_options: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox or Outbox(cfg.outbox_path)
        self._own_outbox = outbox is None
        client_backend, scanner_backend = backends(backend or cfg.backend)
        tz = ZoneInfo(cfg.timezone)
        self.uploader = Uploader(
            self.outbox,
            server_url=cfg.server_url,
            token=cfg.token,
            gateway=Gateway(cfg.gateway_eui64, version=VERSION),
            client=http_client,
            batch_size=cfg.batch_size,
            max_age_s=cfg.batch_max_age_s,
            monitors=self.monitor_status,
            **(uploader_options or {}),
        )
        self.sessions = [
            MonitorSession(
                m,
                outbox=self.outbox,
                tz=tz,
                client_backend=client_backend,
                scanner_backend=scanner_backend,
                on_reading=self.uploader.wake.set,
                battery_interval_s=cfg.battery_interval_s,
                continuous_interval_s=cfg.continuous_interval_s,
                scan_timeout_s=cfg.connect_timeout_s,
                **(session_options or {}),
            )
            for m in cfg.monitors
        ]

    def monitor_status(self) -> list[dict[str, Any]]:
        return [s.state.as_status() for s in self.sessions]

    async def run(
        self,
        stop: asyncio.Event | None = None,
        *,
        duration_s: float | None = None,
        until_stored: int | None = None,
    ) -> BridgeReport:
        """Run until ``stop``, ``duration_s`` elapsed, or ``until_stored`` readings were acknowledged.

        Raises :class:`TokenRefused` (after stopping everything) when the server refuses the token.
        """
        stop = stop or asyncio.Event()
        tasks = [
            asyncio.create_task(s.run(stop), name=f"session-{s.address}") for s in self.sessions
        ]
        upload = asyncio.create_task(self.uploader.run(stop), name="uploader")
        deadline = None if duration_s is None else time.monotonic() + duration_s
        refused: TokenRefused | None = None
        try:
            while not stop.is_set():
                if upload.done():
                    exc = upload.exception()
                    if isinstance(exc, TokenRefused):
                        refused = exc
                        break
                    if exc is not None:
                        raise exc
                    break
                if until_stored is not None and self.uploader.total_stored >= until_stored:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not upload.done():
                await asyncio.gather(upload, return_exceptions=True)
            if refused is None and upload.done() and isinstance(upload.exception(), TokenRefused):
                refused = upload.exception()  # type: ignore[assignment]
        report = BridgeReport(
            stored=self.uploader.total_stored,
            depth=self.outbox.depth(),
            quarantined=self.outbox.quarantined_count(),
            monitors=self.monitor_status(),
            last_error=self.uploader.state.last_error,
            token_refused=refused is not None,
        )
        event(log, logging.INFO, "bridge.stopped", stored=report.stored, depth=report.depth)
        if refused is not None:
            raise refused
        return report

    async def aclose(self) -> None:
        await self.uploader.aclose()
        if self._own_outbox:
            self.outbox.close()


async def run_bridge(
    cfg: BridgeConfig,
    *,
    backend: str | None = None,
    duration_s: float | None = None,
    until_stored: int | None = None,
    stop: asyncio.Event | None = None,
    http_client: httpx.AsyncClient | None = None,
    drain: bool = True,
    session_options: dict[str, Any] | None = None,
    uploader_options: dict[str, Any] | None = None,
) -> BridgeReport:
    """Run a bridge in-process (the end-to-end tests' entry point); drains the outbox at the end."""
    bridge = Bridge(
        cfg,
        backend=backend,
        http_client=http_client,
        session_options=session_options,
        uploader_options=uploader_options,
    )
    try:
        report = await bridge.run(stop, duration_s=duration_s, until_stored=until_stored)
        if drain and bridge.outbox.depth():
            await bridge.uploader.drain(timeout_s=10.0)
            report.stored = bridge.uploader.total_stored
            report.depth = bridge.outbox.depth()
        return report
    finally:
        await bridge.aclose()


def sim_world_for(
    cfg: BridgeConfig, *, seed: int | None = None, time_factor: float | None = None
) -> Any:
    """Make the current sim world match the config's paired monitors (or the demo world).

    Profiles come from ``[sim.profiles]`` (patient → profile), default "healthy".
    """
    from devices.sim.world import World, demo_world, set_world

    sim = cfg.sim or {}
    seed = seed if seed is not None else int(sim.get("seed", 7))
    factor = time_factor if time_factor is not None else float(sim.get("time_factor", 720.0))
    if not cfg.monitors:
        world = demo_world(seed=seed, time_factor=factor)
    else:
        world = World(seed=seed, time_factor=factor)
        profiles = sim.get("profiles", {})
        for m in cfg.monitors:
            patient = m.patient or next(iter(m.users.values()), "")
            others = {
                uid: (p, profiles.get(p, "healthy")) for uid, p in m.users.items() if uid != 1
            }
            world.add_monitor(
                m.kind or "blood_pressure",
                patient=patient,
                profile=profiles.get(patient, "healthy"),
                address=m.address,
                users=others or None,
            )
    set_world(world)
    return world
