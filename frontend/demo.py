"""The live demo: home bridges for the demo households, a week of history, and live traffic.

History goes through the same write path as a bridge upload (PHD Bundles built by the bridge's
own builder, stored by `fhir.store.process_bundle` as the household's bridge), so charts, rules
and alerts see exactly what real uploads produce. Live traffic is the real bridge program on
the simulated bleak backend, uploading over HTTP to the running server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction

from clinic.access import actor_for_bridge
from clinic.lookup import find_patient
from devices.bridge.phd import Gateway, build_bundle
from devices.bridge.reading import MonitorInfo, format_eui64, make_reading
from devices.models import Bridge
from devices.sim.world import DEMO_PATIENTS, World
from fhir import store
from fhir.models import VitalSign

log = logging.getLogger(__name__)
TZ = ZoneInfo("Asia/Shanghai")
HISTORY_DAYS = 7


def _households() -> dict[str, list[tuple[str, str, tuple[str, ...]]]]:
    """Demo monitors grouped by household (one bridge per resident here)."""
    homes: dict[str, list] = {}
    for resident_id, profile, kinds in DEMO_PATIENTS:
        homes.setdefault(resident_id, []).append((resident_id, profile, tuple(kinds)))
    return homes


def _token_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-bridges.json"


def ensure_bridges() -> dict[str, str]:
    """{resident id: bearer token}; tokens are kept in var/ because the server keeps only hashes."""
    path = _token_file()
    tokens: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for resident_id in _households():
        patient = find_patient(resident_id)
        if patient is None:
            raise RuntimeError(f"demo patient {resident_id} is missing: run seed_demo first")
        token = tokens.get(resident_id)
        if token and Bridge.authenticate(token):
            continue
        bridge = Bridge(name=f"{patient.name} 家庭网关 (demo)")
        tokens[resident_id] = bridge.issue_token()
        bridge.save()
        bridge.patients.set([patient])
    path.write_text(json.dumps(tokens, indent=2))
    path.chmod(0o600)
    return tokens


def _world(resident_id: str, seed: int) -> World:
    world = World(seed=seed, time_factor=1.0)
    for patient, profile, kinds in _households()[resident_id]:
        for kind in kinds:
            world.add_monitor(kind, patient=patient, profile=profile)
    return world


def _gateway(resident_id: str) -> Gateway:
    return Gateway(eui64=format_eui64(f"02DE{int(resident_id[-8:]) % 0xFFFFFFFFFFFF:012X}"))


def backfill_history(
    tokens: dict[str, str], *, days: int = HISTORY_DAYS, now: datetime | None = None
) -> int:
    """A week of readings per demo monitor, once (skipped when the patient already has data)."""
    now = now or datetime.now(TZ)
    stored = 0
    for seed, (resident_id, token) in enumerate(sorted(tokens.items())):
        patient = find_patient(resident_id)
        if VitalSign.objects.filter(patient=patient).exists():
            continue
        bridge = Bridge.authenticate(token)
        actor = actor_for_bridge(bridge)
        readings = []
        for monitor in _world(resident_id, seed + 11).monitors.values():
            info = MonitorInfo(
                address=monitor.address,
                kind=monitor.kind,
                system_id=format_eui64(monitor.system_id.hex()) if monitor.system_id else None,
                model=monitor.spec.model,
                serial=monitor.serial,
            )
            step = timedelta(seconds=max(monitor.spec.interval_s, 3600))
            at = now - timedelta(days=days)
            while at < now:
                day = (at - (now - timedelta(days=days))).total_seconds() / 86400
                m = dataclasses.replace(
                    monitor.measure(day=day), time=at.replace(tzinfo=None, microsecond=0)
                )
                readings.append(
                    make_reading(
                        patient_id=resident_id,
                        monitor=info,
                        measurement=m,
                        received_at=at,
                        clock_offset=timedelta(0),
                    )
                )
                at += step
        for i in range(0, len(readings), 100):
            built = build_bundle(readings[i : i + 100], _gateway(resident_id))
            with transaction.atomic():
                store.process_bundle(actor, built.bundle, source="ble")
        stored += len(readings)
    return stored


def bridge_config(resident_id: str, token: str, server_url: str):
    from devices.bridge.config import BridgeConfig, MonitorConfig

    world = _world(resident_id, seed=hash(resident_id) % 1000)
    return world, BridgeConfig(
        server_url=server_url,
        token=token,
        gateway_eui64=_gateway(resident_id).eui64,
        backend="sim",
        outbox=str(Path(settings.VAR_DIR) / f"demo-outbox-{resident_id}.sqlite3"),
        batch_max_age_s=1.0,
        connect_timeout_s=5.0,
        continuous_interval_s=30.0,
        monitors=[
            MonitorConfig(address=m.address, patient=resident_id, kind=m.kind)
            for m in world.monitors.values()
        ],
    )


def start_live_bridges(
    tokens: dict[str, str], server_url: str, *, time_factor: float = 240.0
) -> threading.Thread:
    """Run the real bridge program on the sim backend for every demo household, in a thread."""

    async def main() -> None:
        from devices.bridge.app import run_bridge
        from devices.sim.world import set_world

        world = World(seed=99, time_factor=time_factor)
        configs = []
        for resident_id, token in sorted(tokens.items()):
            home_world, cfg = bridge_config(resident_id, token, server_url)
            for address, monitor in home_world.monitors.items():
                world.monitors[address] = monitor
            configs.append(cfg)
        set_world(world)
        await asyncio.sleep(3)  # let the server bind first
        world.start()
        await asyncio.gather(
            *(run_bridge(cfg, backend="sim") for cfg in configs), return_exceptions=True
        )

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="demo-bridges", daemon=True)
    thread.start()
    return thread
