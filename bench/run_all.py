"""`make bench`: every benchmark in turn, each bounded, each printing its figures beside the
raw PostgreSQL and Redis baselines it measures in the same run.

Run: `python bench/run_all.py [--quick] [--only NAME ...]`. The default run takes about
20 minutes on a 2-core machine; `--quick` about 4. A benchmark that fails or overruns its
bound is reported and the next one runs; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (module, arguments of the default run, arguments of --quick, bound in seconds)
BENCHMARKS: list[tuple[str, list[str], list[str], int]] = [
    ("bench_gatt", [], [], 120),
    ("bench_mllp", ["--seconds", "10"], ["--seconds", "3"], 120),
    (
        "bench_mllp_store",
        ["--db", "postgres", "--seconds", "10"],
        ["--db", "postgres", "--seconds", "3"],
        180,
    ),  # fmt: skip
    ("bench_bridge", [], [], 180),
    (
        "bench_fhir",
        ["--seconds", "30", "--observations", "1000000"],
        ["--seconds", "10", "--observations", "100000"],
        420,
    ),  # fmt: skip
    ("bench_alerts", ["--seconds", "30"], ["--seconds", "10", "--clients", "200"], 300),
    # The same push at a background rate one 2-core node sustains beside 1,000 sockets: the
    # first run shows the node overloaded, this one the alert path itself (docs/scaling.md).
    (
        "bench_alerts",
        ["--seconds", "20", "--ingest-rate", "100"],
        ["--seconds", "10", "--clients", "200", "--ingest-rate", "100"],
        300,
    ),  # fmt: skip
    (
        "bench_alerts",
        ["--seconds", "20", "--ingest-rate", "100", "--layer", "pubsub"],
        ["--seconds", "10", "--clients", "200", "--ingest-rate", "100", "--layer", "pubsub"],
        300,
    ),  # fmt: skip
    ("bench_evaluation", [], ["--history", "100000", "--runs", "20"], 300),
    # Why the rates above are what they are: CPU per upload and per reading, and what the
    # targets would need in cores with this code.
    ("bench_upload_cost", [], ["--seconds", "1.5"], 300),
    ("bench_board", ["--rounds", "20"], ["--rounds", "5"], 300),
    ("load", ["--duration", "120", "--alert-duration", "60"], ["--quick"], 600),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about 4 minutes)")
    parser.add_argument("--only", nargs="*", help="run only these (e.g. load bench_fhir)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    failed = []
    started = time.monotonic()
    for name, full, quick, bound in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        if not (ROOT / "bench" / f"{name}.py").exists():
            print(f"\n=== {name}: not present, skipped")
            continue
        command = [sys.executable, "-m", f"bench.{name}", *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(command[2:])} (at most {bound} s)", flush=True)
        t0 = time.monotonic()
        try:
            code = subprocess.run(command, cwd=ROOT, env=env, timeout=bound).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        print(
            f"=== {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.monotonic() - t0:.0f} s"
        )
        if code != 0:
            failed.append(name)
    print(
        f"\nall benchmarks in {time.monotonic() - started:.0f} s; failed: {', '.join(failed) or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
