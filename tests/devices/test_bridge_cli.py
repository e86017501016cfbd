"""sg-bridge command line and the in-process bridge (sim backend → local HTTP server)."""

from __future__ import annotations

import asyncio
import json
import tomllib
import types
from pathlib import Path

import pytest

from devices.bridge import config as config_mod
from devices.bridge.app import run_bridge, sim_world_for
from devices.bridge.cli import main, valid_resident_id
from devices.bridge.fake_server import FakeFhirServer
from devices.bridge.phd import OBSERVATION_ID_SYSTEM
from devices.bridge.reading import primary_mdc
from devices.sim.world import set_world

ALICE, BOB = "440106195803120021", "440304196207150032"


@pytest.fixture
def settings() -> types.SimpleNamespace:
    """pytest-django's fixture is asked for by the root conftest; these tests run without Django."""
    return types.SimpleNamespace()


@pytest.fixture(autouse=True)
def _fresh_world():
    previous = set_world(None)
    yield
    set_world(previous)


@pytest.fixture
def server():
    with FakeFhirServer() as srv:
        yield srv


def _cfg_path(tmp_path: Path) -> Path:
    return tmp_path / "bridge.toml"


def pair(tmp_path: Path, *args: str) -> int:
    return main(["--config", str(_cfg_path(tmp_path)), "--backend", "sim", "pair", *args])


def test_resident_id_check_digit() -> None:
    assert valid_resident_id(ALICE) and valid_resident_id(BOB)
    assert not valid_resident_id("440106195803120022")


def test_pair_writes_the_config_with_a_gateway_eui64(tmp_path: Path) -> None:
    assert (
        pair(
            tmp_path,
            "c0:26:da:01:02:03",
            "--patient",
            ALICE,
            "--kind",
            "blood_pressure",
            "--server",
            "http://srv",
            "--token",
            "t0k",
        )
        == 0
    )
    assert pair(tmp_path, "C0:26:DA:01:02:03", "--patient", BOB, "--user-id", "2") == 0
    data = tomllib.loads(_cfg_path(tmp_path).read_text())
    assert data["server_url"] == "http://srv" and data["token"] == "t0k"
    assert len(data["gateway_eui64"].split("-")) == 8
    assert data["monitors"] == [
        {
            "address": "C0:26:DA:01:02:03",
            "kind": "blood_pressure",
            "patient": ALICE,
            "users": {"2": BOB},
        }
    ]
    eui = data["gateway_eui64"]
    assert pair(tmp_path, "AA:BB:CC:DD:EE:FF", "--patient", BOB, "--kind", "thermometer") == 0
    assert tomllib.loads(_cfg_path(tmp_path).read_text())["gateway_eui64"] == eui  # generated once


def test_bad_resident_id_and_missing_config_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pair(tmp_path, "C0:26:DA:01:02:03", "--patient", "123") == 3
    assert main(["--config", str(tmp_path / "none.toml"), "run"]) == 3
    assert "no bridge config" in capsys.readouterr().err


def test_scan_lists_simulated_monitors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--config",
                str(tmp_path / "none.toml"),
                "--backend",
                "sim",
                "scan",
                "--timeout",
                "0.1",
                "--json",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert {d["kind"] for d in found} >= {
        "blood_pressure",
        "pulse_oximeter",
        "thermometer",
        "weight_scale",
    }


def _config(tmp_path: Path, url: str, token: str = "test-token") -> config_mod.BridgeConfig:
    for addr, kind, patient in (
        ("5A:00:01:00:00:01", "blood_pressure", ALICE),
        ("5A:00:03:00:00:02", "pulse_oximeter", BOB),
        ("5A:00:04:00:00:03", "glucose_meter", BOB),
        ("5A:00:05:00:00:04", "weight_scale", ALICE),
    ):
        assert (
            pair(
                tmp_path,
                addr,
                "--patient",
                patient,
                "--kind",
                kind,
                "--server",
                url,
                "--token",
                token,
            )
            == 0
        )
    cfg = config_mod.load(_cfg_path(tmp_path))
    cfg.outbox = str(tmp_path / "outbox.sqlite3")
    cfg.batch_max_age_s = 0.1
    cfg.connect_timeout_s = 0.5
    cfg.sim = {"seed": 4, "time_factor": 1.0}
    config_mod.save(cfg)
    return cfg


async def test_in_process_bridge_uploads_every_reading_exactly_once(
    tmp_path: Path, server: FakeFhirServer
) -> None:
    cfg = _config(tmp_path, server.url)
    world = sim_world_for(cfg)
    produced = []
    for mon in world.monitors.values():
        produced += [(mon, mon.measure()) for _ in range(3)]
    world.monitors["5A:00:01:00:00:01"].drop_after(1)  # the cuff drops mid-stream
    server.state.down = True  # and the server is down at first

    async def bring_server_up() -> None:
        await asyncio.sleep(1.0)
        server.state.down = False

    up = asyncio.create_task(bring_server_up())
    report = await run_bridge(cfg, backend="sim", duration_s=8, until_stored=len(produced) + 4)
    await up
    assert report.depth == 0 and report.quarantined == 0
    stored = {
        k.split("|", 1)[1] for k in server.state.stored if k.startswith(OBSERVATION_ID_SYSTEM)
    }
    for mon, m in produced:
        assert any(k.startswith(f"{mon_key(mon)}.{primary_mdc(m)}.") for k in stored), (mon.kind, m)
    vital = [
        k
        for k in stored
        if ".67996." not in k
        and ".8410608." not in k
        and ".149546." not in k
        and ".149530." not in k
        and ".188752." not in k
        and ".188740." not in k
    ]
    assert len(vital) == len(produced)
    assert server.state.statuses and {m["kind"] for m in server.state.statuses[-1]["monitors"]} >= {
        "blood_pressure"
    }


def mon_key(mon) -> str:
    h = mon.system_id[::-1].hex().upper() if mon.system_id else mon.address
    return "-".join(h[i : i + 2] for i in range(0, 16, 2)) if mon.system_id else mon.address


def test_run_with_a_refused_token_exits_4_and_status_explains(
    tmp_path: Path, server: FakeFhirServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, server.url, token="revoked")
    cfg.sim = {"seed": 4, "time_factor": 360000.0}
    config_mod.save(cfg)
    code = main(
        ["--config", str(_cfg_path(tmp_path)), "--backend", "sim", "run", "--duration", "20"]
    )
    assert code == 4
    assert "bridge token refused" in capsys.readouterr().err
    assert main(["--config", str(_cfg_path(tmp_path)), "status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "token refused" in doc["last_error"] and doc["outbox_depth"] > 0
    assert main(["--config", str(_cfg_path(tmp_path)), "status", "--check"]) == 4


def test_status_check_reports_an_unreachable_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(tmp_path, "http://127.0.0.1:9")
    assert main(["--config", str(_cfg_path(tmp_path)), "status", "--check"]) == 5
    assert "unreachable" in capsys.readouterr().out
