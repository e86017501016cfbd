"""Decode throughput of devices.gatt on a realistic mix of payloads.

Run: ``python bench/bench_gatt.py``. Decodes for about 3 s and compares payloads/s with the
target (>= 300,000 payloads/s on the 2-core bridge-class machine). Prints PASS or BELOW TARGET;
never asserts, so it can run anywhere. The mix weights heart rate highest (1 Hz notifications),
then continuous SpO2 and CGM, with the occasional BP, temperature, weight, glucose and battery.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.gatt import characteristic_for, decode, encode, mdc  # noqa: E402
from devices.gatt.measurement import Component, Measurement  # noqa: E402

TARGET = 300_000
DURATION_S = 3.0


def _mix() -> list[tuple[int | str, bytes]]:
    """Payloads built by the encoders (the same bytes the simulated monitors send)."""
    hr = mdc.MDC_ECG_HEART_RATE
    rr = mdc.MDC_ECG_TIME_PD_RR_GL
    contact = frozenset({"sensor_contact_supported", "sensor_contact_detected"})
    spo2, pr = mdc.MDC_PULS_OXIM_SAT_O2, mdc.MDC_PULS_OXIM_PULS_RATE
    stamp = datetime(2024, 3, 1, 8, 30, 0)
    measurements = [
        Measurement(kind="heart_rate", components=(Component(hr, 72.0, "/min"),), flags=contact),
        Measurement(kind="heart_rate", components=(Component(hr, 74.0, "/min"),), flags=contact),
        Measurement(
            kind="heart_rate",
            components=(
                Component(hr, 71.0, "/min"),
                Component(rr, 0.8125, "s"),
                Component(rr, 0.84375, "s"),
            ),
            flags=contact,
        ),
        Measurement(
            kind="plx_continuous",
            components=(Component(spo2, 98.0, "%"), Component(pr, 72.0, "/min")),
            flags=frozenset({"validated_data"}),
        ),
        Measurement(
            kind="plx_continuous",
            components=(Component(spo2, 97.0, "%"), Component(pr, 73.0, "/min")),
        ),
        Measurement(
            kind="cgm",
            components=(Component(mdc.MDC_CONC_GLU_ISF, 112.0, "mg/dL"),),
            flags=frozenset({"e2e_crc"}),
            extra=(("time_offset_minutes", 1440), ("trend", -0.5)),
        ),
        Measurement(
            kind="blood_pressure",
            components=(
                Component(mdc.MDC_PRESS_BLD_NONINV_SYS, 128.0, "mm[Hg]"),
                Component(mdc.MDC_PRESS_BLD_NONINV_DIA, 84.0, "mm[Hg]"),
                Component(mdc.MDC_PRESS_BLD_NONINV_MEAN, 98.7, "mm[Hg]"),
                Component(mdc.MDC_PULS_RATE_NON_INV, 70.0, "/min"),
            ),
            time=stamp,
            user_id=1,
            flags=frozenset({"irregular_pulse"}),
        ),
        Measurement(
            kind="temperature",
            components=(Component(mdc.MDC_TEMP_ORAL, 36.6, "Cel"),),
            time=stamp,
            extra=(("temperature_type", "mouth"),),
        ),
        Measurement(
            kind="weight",
            components=(
                Component(mdc.MDC_MASS_BODY_ACTUAL, 72.35, "kg"),
                Component(mdc.MDC_RATIO_MASS_BODY_LEN_SQ, 24.1, "kg/m2"),
                Component(mdc.MDC_LEN_BODY_ACTUAL, 1.733, "m"),
            ),
            time=stamp,
            user_id=2,
        ),
        Measurement(
            kind="glucose",
            components=(Component(mdc.MDC_CONC_GLU_CAPILLARY_PLASMA, 0.00055, "kg/L"),),
            time=stamp,
            sequence=42,
            extra=(("glucose_type", "capillary_plasma"), ("sample_location", "finger")),
        ),
        Measurement(
            kind="battery", components=(Component(mdc.MDC_ATTR_VAL_BATT_CHARGE, 87.0, "%"),)
        ),
    ]
    # Weights: heart rate and continuous streams dominate a household's traffic.
    weights = [6, 6, 4, 5, 5, 3, 1, 1, 1, 1, 1]
    mix: list[tuple[int | str, bytes]] = []
    for m, w in zip(measurements, weights, strict=True):
        mix += [(characteristic_for(m), encode(m))] * w
    # bleak hands the bridge 128-bit UUID strings: exercise that path too.
    mix.append(("00002a37-0000-1000-8000-00805f9b34fb", encode(measurements[0])))
    return mix


def main() -> None:
    mix = _mix()
    for uuid, payload in mix:  # fail fast if the mix itself is broken
        decode(uuid, payload)
    batch = mix * 20
    n = 0
    start = time.perf_counter()
    deadline = start + DURATION_S
    while True:
        for uuid, payload in batch:
            decode(uuid, payload)
        n += len(batch)
        now = time.perf_counter()
        if now >= deadline:
            break
    rate = n / (now - start)
    verdict = "PASS" if rate >= TARGET else "BELOW TARGET"
    print(
        f"decoded {n} payloads in {now - start:.2f} s: {rate:,.0f} payloads/s (target {TARGET:,}) {verdict}"
    )


if __name__ == "__main__":
    main()
