"""``sg-bridge`` / ``python -m devices.bridge``: scan, pair, run, status.

Why: the bridge is installed by a technician and then runs unattended; every failure a person
can fix (wrong token, wrong server URL, monitor out of range, unmapped user id) gets a
sentence saying what to do, and a distinct exit code for scripts:

====  =========================================================================
code  meaning
====  =========================================================================
0     success
1     unexpected error (a bug: see the log)
2     usage error (bad arguments)
3     configuration error (missing/invalid config, bad resident id, no monitors)
4     bridge token refused by the server (401)
5     server unreachable or not a Smart Guangdong server (``status --check``)
6     monitor not seen (``pair --verify``)
130   interrupted (Ctrl-C)
====  =========================================================================

Global options: ``--config PATH`` (default ``~/.config/sg-bridge/bridge.toml``), ``--backend
{bleak,sim}`` (also ``SG_BRIDGE_BACKEND``), ``--log-json`` (one JSON object per log line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import httpx

from devices.bridge import config as config_mod
from devices.bridge.config import BridgeConfig, ConfigError
from devices.bridge.logs import configure
from devices.bridge.outbox import Outbox
from devices.bridge.uploader import TokenRefused

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONFIG, EXIT_TOKEN, EXIT_SERVER, EXIT_NOT_SEEN = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
)
EXIT_INTERRUPTED = 130

HEALTH_SERVICES = {
    0x1810: "blood_pressure",
    0x1809: "thermometer",
    0x1822: "pulse_oximeter",
    0x1808: "glucose_meter",
    0x181D: "weight_scale",
    0x180D: "heart_rate",
    0x181F: "cgm",
}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def valid_resident_id(value: str) -> bool:
    """GB 11643 18-character resident identity number with its check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17].upper()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sg-bridge", description="Smart Guangdong home bridge for Bluetooth health monitors."
    )
    p.add_argument("--config", help=f"config file (default {config_mod.DEFAULT_PATH})")
    p.add_argument(
        "--backend",
        choices=("bleak", "sim"),
        help="Bluetooth backend (default: config, or SG_BRIDGE_BACKEND)",
    )
    p.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("scan", help="list nearby health monitors")
    s.add_argument("--timeout", type=float, default=5.0)
    s.add_argument("--all", action="store_true", help="also devices without a health service")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("pair", help="remember a monitor for a patient")
    s.add_argument("address")
    s.add_argument("--patient", required=True, help="the patient's resident identity number")
    s.add_argument("--user-id", type=int, help="user id on a multi-user monitor (cuff, scale)")
    s.add_argument("--kind", choices=sorted(set(HEALTH_SERVICES.values())))
    s.add_argument("--name")
    s.add_argument("--server", help="server URL (saved in the config)")
    s.add_argument(
        "--token", help="bridge token from `manage.py create_bridge` (saved in the config)"
    )
    s.add_argument(
        "--verify", action="store_true", help="fail (exit 6) if the monitor is not advertising"
    )

    s = sub.add_parser("unpair", help="forget a monitor")
    s.add_argument("address")

    s = sub.add_parser("run", help="connect to all paired monitors and upload")
    s.add_argument("--duration", type=float, help="stop after this many seconds")

    s = sub.add_parser("status", help="monitors, outbox and uploads")
    s.add_argument("--json", action="store_true")
    s.add_argument("--check", action="store_true", help="also check the server and token")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    configure(json_lines=args.log_json, level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        return {
            "scan": cmd_scan,
            "pair": cmd_pair,
            "unpair": cmd_unpair,
            "run": cmd_run,
            "status": cmd_status,
        }[args.command](args)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    except TokenRefused as exc:
        _err(str(exc))
        return EXIT_TOKEN
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _err(msg: str) -> None:
    print(f"sg-bridge: {msg}", file=sys.stderr)


def _backend_name(args: argparse.Namespace, cfg: BridgeConfig | None) -> str:
    return args.backend or os.environ.get("SG_BRIDGE_BACKEND") or (cfg.backend if cfg else "bleak")


def _load(args: argparse.Namespace, *, create: bool = False) -> BridgeConfig:
    return config_mod.load(args.config, create=create)


# --- scan ---------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    try:
        cfg: BridgeConfig | None = _load(args)
    except ConfigError:
        cfg = None
    backend = _backend_name(args, cfg)
    if backend == "sim":
        from devices.bridge.app import sim_world_for

        sim_world_for(cfg or BridgeConfig())
    found = asyncio.run(_scan(backend, args.timeout, args.all))
    if args.json:
        print(json.dumps(found, indent=2))
    elif not found:
        print("no health monitors seen: wake the monitor (take a measurement) and scan again")
    else:
        print(f"{'ADDRESS':<18} {'RSSI':>5}  {'KIND':<15} NAME")
        for d in found:
            print(f"{d['address']:<18} {d['rssi']:>5}  {d['kind'] or '-':<15} {d['name'] or ''}")
    return EXIT_OK


async def _scan(backend: str, timeout: float, all_devices: bool) -> list[dict[str, Any]]:
    from bleak import BleakScanner

    from devices.bridge.app import backends
    from devices.gatt.uuids import to_uuid16, to_uuid128

    _, scanner = backends(backend)
    kw: dict[str, Any] = {"backend": scanner} if scanner else {}
    if not all_devices:
        kw["service_uuids"] = [to_uuid128(u) for u in HEALTH_SERVICES]
    seen = await BleakScanner.discover(timeout=timeout, return_adv=True, **kw)
    out = []
    for device, adv in seen.values():
        kinds = [HEALTH_SERVICES.get(_u16(to_uuid16, u)) for u in adv.service_uuids]
        out.append(
            {
                "address": device.address,
                "name": adv.local_name or device.name,
                "rssi": adv.rssi,
                "kind": next((k for k in kinds if k), None),
                "services": adv.service_uuids,
            }
        )
    return sorted(out, key=lambda d: -d["rssi"])


def _u16(fn: Any, u: str) -> int | None:
    try:
        return fn(u)
    except ValueError:
        return None


# --- pair / unpair ------------------------------------------------------------------------


def cmd_pair(args: argparse.Namespace) -> int:
    if not valid_resident_id(args.patient):
        raise ConfigError(
            f"{args.patient!r} is not a valid 18-digit resident identity number (check digit)"
        )
    cfg = _load(args, create=True)
    if args.server:
        cfg.server_url = args.server.rstrip("/")
    if args.token:
        cfg.token = args.token
    address = args.address.upper()
    mon = cfg.monitor(address)
    if mon is None:
        mon = config_mod.MonitorConfig(address=address)
        cfg.monitors.append(mon)
    if args.user_id is not None:
        if not 0 <= args.user_id <= 254:
            raise ConfigError("--user-id must be 0..254 (255 means 'unknown user' on the monitor)")
        mon.users[args.user_id] = args.patient
        mon.patient = mon.patient or (args.patient if args.user_id == 1 else None)
    else:
        mon.patient = args.patient
    mon.kind = args.kind or mon.kind
    mon.name = args.name or mon.name
    backend = _backend_name(args, cfg)
    seen = None
    if args.verify or not mon.kind:
        if backend == "sim":
            from devices.bridge.app import sim_world_for

            sim_world_for(cfg)
        found = {d["address"].upper(): d for d in asyncio.run(_scan(backend, 5.0, True))}
        seen = found.get(address)
        if seen and not mon.kind:
            mon.kind = seen["kind"]
    path = config_mod.save(cfg)
    who = f"user {args.user_id} → {args.patient}" if args.user_id is not None else args.patient
    print(f"paired {address} ({mon.kind or 'kind unknown'}) for {who}; config saved to {path}")
    if not cfg.server_url or not cfg.token:
        print(
            "note: set the server and token with `sg-bridge pair ... --server URL --token TOKEN` before `run`"
        )
    if seen is None and (args.verify or not args.kind):
        msg = f"monitor {address} is not advertising now (out of range or asleep): take a measurement near the bridge"
        if args.verify:
            _err(msg)
            return EXIT_NOT_SEEN
        print(f"note: {msg}")
    return EXIT_OK


def cmd_unpair(args: argparse.Namespace) -> int:
    cfg = _load(args)
    before = len(cfg.monitors)
    cfg.monitors = [m for m in cfg.monitors if m.address.upper() != args.address.upper()]
    if len(cfg.monitors) == before:
        raise ConfigError(f"{args.address} is not paired")
    config_mod.save(cfg)
    print(f"unpaired {args.address.upper()}")
    return EXIT_OK


# --- run ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if not cfg.server_url or not cfg.token:
        raise ConfigError(
            "the config has no server_url/token: `sg-bridge pair ADDRESS --patient ID --server URL --token TOKEN`"
        )
    if not cfg.monitors:
        raise ConfigError(
            "no paired monitors: `sg-bridge scan`, then `sg-bridge pair ADDRESS --patient ID`"
        )
    if cfg.path is not None and not config_mod.Path(cfg.path).exists():
        config_mod.save(cfg)
    backend = _backend_name(args, cfg)
    return asyncio.run(_run(cfg, backend, args.duration))


async def _run(cfg: BridgeConfig, backend: str, duration: float | None) -> int:
    from devices.bridge.app import Bridge, sim_world_for

    world = None
    if backend == "sim":
        world = sim_world_for(cfg)
        world.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bridge = Bridge(cfg, backend=backend)
    try:
        report = await bridge.run(stop, duration_s=duration)
    finally:
        await bridge.aclose()
        if world is not None:
            await world.stop()
    print(
        f"stopped: {report.stored} readings uploaded, {report.depth} pending, {report.quarantined} quarantined"
    )
    return EXIT_OK


# --- status -------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    with Outbox(cfg.outbox_path) as ob:
        age = ob.oldest_age()
        doc: dict[str, Any] = {
            "server_url": cfg.server_url,
            "gateway_eui64": cfg.gateway_eui64,
            "outbox_depth": ob.depth(),
            "oldest_pending_age_s": None if age is None else round(age, 1),
            "last_upload_at": ob.get_meta("last_upload_at"),
            "last_error": ob.get_meta("last_error"),
            "quarantined": [{"key": r.key, "reason": r.reason} for r in ob.quarantined()],
            "monitors": [],
        }
        states = ob.monitor_states()
        for m in cfg.monitors:
            st = states.get(m.address.upper(), {})
            doc["monitors"].append(
                {
                    "address": m.address,
                    "kind": m.kind or st.get("kind"),
                    "patient": m.patient,
                    "users": {str(k): v for k, v in m.users.items()},
                    "state": st.get("state", "never connected"),
                    "connected": st.get("connected", False),
                    "battery": st.get("battery"),
                    "last_reading_at": st.get("last_reading_at"),
                    "last_error": st.get("last_error"),
                }
            )
    code = EXIT_OK
    if args.check:
        doc["server_check"], code = asyncio.run(_check_server(cfg))
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print_status(doc)
    return code


def _print_status(doc: dict[str, Any]) -> None:
    print(f"server        {doc['server_url'] or '(not set)'}")
    print(f"gateway       {doc['gateway_eui64']}")
    age = doc["oldest_pending_age_s"]
    print(
        f"outbox        {doc['outbox_depth']} pending"
        + (f", oldest {age:.0f} s" if age is not None else "")
    )
    print(f"last upload   {doc['last_upload_at'] or 'never'}")
    print(f"last error    {doc['last_error'] or '-'}")
    print(f"quarantined   {len(doc['quarantined'])}")
    for q in doc["quarantined"][:10]:
        print(f"  {q['key']}: {q['reason']}")
    if "server_check" in doc:
        print(f"server check  {doc['server_check']}")
    print("monitors:")
    for m in doc["monitors"]:
        battery = f"{m['battery']:.0f} %" if m["battery"] is not None else "?"
        print(
            f"  {m['address']:<18} {m['kind'] or '-':<15} {m['state']:<16} battery {battery:<6} "
            f"last reading {m['last_reading_at'] or 'never'}"
            + (f"  ({m['last_error']})" if m["last_error"] and not m["connected"] else "")
        )


async def _check_server(cfg: BridgeConfig) -> tuple[str, int]:
    url = f"{cfg.server_url.rstrip('/')}/api/bridge/status"
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            r = await client.post(
                url, json={"check": True}, headers={"Authorization": f"Bearer {cfg.token}"}
            )
    except httpx.HTTPError as exc:
        return f"server {cfg.server_url} unreachable: {exc or type(exc).__name__}", EXIT_SERVER
    ms = (time.monotonic() - started) * 1000
    if r.status_code == 401:
        return "bridge token refused (401): ask the admin for a new token", EXIT_TOKEN
    if r.status_code == 404:
        return (
            f"{cfg.server_url} answered 404 for /api/bridge/status: wrong server URL, or an older server",
            EXIT_SERVER,
        )
    if r.status_code >= 400:
        return f"server answered {r.status_code}", EXIT_SERVER
    return f"ok ({r.status_code}, {ms:.0f} ms)", EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
