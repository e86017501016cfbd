"""The simulated radio neighbourhood: which monitors exist, for whom, and their schedule.

Why: a test or the demo creates monitors for given patients here; the sim backend
(:mod:`devices.sim.backend`) discovers and connects to them by address, so the bridge code
receives only ``backend=`` and never knows it is simulated.

One world is current per process (:func:`current_world` / :func:`set_world`); the backend
looks monitors up in it. Everything random comes from ``random.Random(f"{seed}:{address}")``,
so one seed reproduces a run; ``time_factor`` compresses the measuring schedule (a cuff that
measures every 4 h measures every 4 h / factor), never the monitors' clocks.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from devices.sim.monitors import KINDS, SimMonitor
from devices.sim.profiles import get_profile


@dataclass(frozen=True, slots=True)
class Placement:
    """Which patient (and user id on a multi-user monitor) a simulated monitor serves."""

    address: str
    kind: str
    patient: str
    profile: str
    user_id: int | None = None


class World:
    """A set of simulated monitors and, once started, their measuring schedule."""

    def __init__(
        self, *, seed: int = 0, time_factor: float = 1.0, timezone: str = "Asia/Shanghai"
    ) -> None:
        self.seed = seed
        self.tz = ZoneInfo(timezone)
        self.time_factor = time_factor
        self.monitors: dict[str, SimMonitor] = {}
        self.placements: list[Placement] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_start: float | None = None

    def add_monitor(
        self,
        kind: str,
        *,
        patient: str,
        profile: str = "healthy",
        address: str | None = None,
        users: dict[int, tuple[str, str]] | None = None,
        clock_error_s: float | None = None,
        has_system_id: bool = True,
        has_current_time: bool = True,
        drop_p: float = 0.0,
    ) -> SimMonitor:
        """Create a monitor for ``patient``; ``users`` maps extra user ids → (patient, profile)."""
        address = (address or self._address(kind)).upper()
        rng = random.Random(f"{self.seed}:{address}")
        error = timedelta(
            seconds=clock_error_s if clock_error_s is not None else rng.uniform(-300, 300)
        )
        user_ids = (1, *sorted(users)) if users else ()
        mon = SimMonitor(
            kind=kind,
            address=address,
            profile=get_profile(profile),
            rng=rng,
            users=user_ids,
            clock_error=error,
            has_system_id=has_system_id,
            has_current_time=has_current_time,
            drop_p=drop_p,
            tz=self.tz,
        )
        self.monitors[address] = mon
        self.placements.append(Placement(address, kind, patient, profile, 1 if users else None))
        for uid, (p, prof) in sorted((users or {}).items()):
            self.placements.append(Placement(address, kind, p, prof, uid))
        return mon

    def _address(self, kind: str) -> str:
        n = len(self.monitors) + 1
        k = list(KINDS).index(kind) + 1
        return f"5A:{self.seed % 256:02X}:{k:02X}:00:{n // 256:02X}:{n % 256:02X}"

    def get(self, address: str) -> SimMonitor | None:
        return self.monitors.get(address.upper())

    def in_range(self) -> Iterable[SimMonitor]:
        return [m for m in self.monitors.values() if m.in_range]

    def pairing(self) -> list[dict[str, Any]]:
        """The bridge config's ``[[monitors]]`` entries for these monitors."""
        out: dict[str, dict[str, Any]] = {}
        for p in self.placements:
            entry = out.setdefault(p.address, {"address": p.address, "kind": p.kind})
            if p.user_id is None or p.user_id == 1:
                entry["patient"] = p.patient
            if p.user_id is not None:
                entry.setdefault("users", {})[str(p.user_id)] = p.patient
        return list(out.values())

    # --- schedule --------------------------------------------------------------------------

    def start(self) -> None:
        """Measure on each monitor's schedule (interval / time_factor), until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        self._loop_start = loop.time()
        for mon in self.monitors.values():
            self._tasks.append(loop.create_task(self._run(mon), name=f"sim-{mon.address}"))

    async def _run(self, mon: SimMonitor) -> None:
        loop = asyncio.get_running_loop()
        interval = mon.spec.interval_s / self.time_factor
        await asyncio.sleep(mon.rng.uniform(0, interval))
        while True:
            day = (loop.time() - (self._loop_start or 0)) * self.time_factor / 86400
            mon.measure(day=day)
            await asyncio.sleep(interval * mon.rng.uniform(0.8, 1.2))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


_current: World | None = None


def current_world() -> World:
    """The world the sim backend serves (an empty one is created on first use)."""
    global _current
    if _current is None:
        _current = World()
    return _current


def set_world(world: World | None) -> World | None:
    """Make ``world`` current (``None`` resets); returns the previous one."""
    global _current
    previous, _current = _current, world
    return previous


# The two named demo patients of ``community/demo_data.py`` (resident id, profile, monitors).
DEMO_PATIENTS = (
    ("440106195803120021", "hypertensive", ("blood_pressure",)),
    ("440304196207150032", "copd_low_spo2", ("pulse_oximeter", "thermometer")),
    ("440304196207150032", "heart_failure_weight_gain", ("weight_scale",)),
)


def demo_world(
    patients: Iterable[tuple[str, str, Iterable[str]]] = DEMO_PATIENTS,
    *,
    seed: int = 7,
    time_factor: float = 720.0,
) -> World:
    """A world with monitors for the demo patients (resident id, profile, monitor kinds)."""
    world = World(seed=seed, time_factor=time_factor)
    for patient, profile, kinds in patients:
        for kind in kinds:
            world.add_monitor(kind, patient=patient, profile=profile)
    return world
