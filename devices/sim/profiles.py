"""Per-patient profiles: plausible vital values for the simulated monitors.

Why: the demo and the alert rules need patients that look like the pilot's — a hypertensive
patient whose cuff reads 150/95, a COPD patient around 89 % SpO2, a diabetic with high
glucose, a heart-failure patient gaining weight day by day — plus the occasional abnormal
value and the occasional NaN/NRes the real monitors send. Pure: values from an injected
``random.Random`` and the simulated day, so a seed reproduces a run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Profile:
    """Means and spreads of one kind of patient; ``abnormal_p``/``special_p`` per reading."""

    name: str
    systolic: tuple[float, float] = (122.0, 8.0)
    diastolic: tuple[float, float] = (78.0, 6.0)
    pulse: tuple[float, float] = (72.0, 6.0)
    spo2: tuple[float, float] = (97.5, 0.8)
    temperature: tuple[float, float] = (36.7, 0.2)
    glucose_mmol: tuple[float, float] = (5.4, 0.5)
    weight_kg: tuple[float, float] = (65.0, 0.3)
    weight_gain_kg_per_day: float = 0.0
    height_m: float = 1.65
    abnormal_p: float = 0.05
    special_p: float = 0.02
    extra: dict[str, float] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "healthy": Profile("healthy"),
    "hypertensive": Profile(
        "hypertensive",
        systolic=(152.0, 10.0),
        diastolic=(96.0, 7.0),
        pulse=(78.0, 7.0),
        weight_kg=(78.0, 0.4),
    ),
    "copd_low_spo2": Profile(
        "copd_low_spo2",
        spo2=(89.5, 1.5),
        pulse=(92.0, 8.0),
        temperature=(36.9, 0.3),
        weight_kg=(58.0, 0.3),
    ),
    "diabetic": Profile(
        "diabetic", glucose_mmol=(9.2, 2.2), systolic=(136.0, 9.0), weight_kg=(82.0, 0.4)
    ),
    "heart_failure_weight_gain": Profile(
        "heart_failure_weight_gain",
        weight_kg=(71.0, 0.2),
        weight_gain_kg_per_day=0.6,
        pulse=(88.0, 8.0),
        spo2=(94.0, 1.2),
        systolic=(118.0, 10.0),
        diastolic=(72.0, 7.0),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; choose from {', '.join(sorted(PROFILES))}"
        ) from None


def _draw(rng: random.Random, mean_sd: tuple[float, float], abnormal: bool, push: float) -> float:
    mean, sd = mean_sd
    value = rng.gauss(mean, sd)
    if abnormal:
        value += push * (3 + rng.random() * 2) * sd
    return value


class Vitals:
    """Draws one reading's values for a profile (one instance per simulated monitor)."""

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self.profile = profile
        self.rng = rng

    def abnormal(self) -> bool:
        return self.rng.random() < self.profile.abnormal_p

    def special(self) -> str | None:
        """ "NaN" or "NRes" now and then (a cuff that could not compute the mean, a moving finger)."""
        if self.rng.random() < self.profile.special_p:
            return self.rng.choice(("NaN", "NRes"))
        return None

    def blood_pressure(self) -> tuple[float, float, float, float]:
        ab = self.abnormal()
        sys_ = round(_draw(self.rng, self.profile.systolic, ab, 1.0))
        dia = round(min(_draw(self.rng, self.profile.diastolic, ab, 1.0), sys_ - 20))
        mean = round(dia + (sys_ - dia) / 3)
        pulse = round(_draw(self.rng, self.profile.pulse, ab and self.rng.random() < 0.5, 1.0))
        return float(sys_), float(dia), float(mean), float(max(pulse, 30))

    def spo2_pulse(self) -> tuple[float, float]:
        ab = self.abnormal()
        spo2 = min(100.0, round(_draw(self.rng, self.profile.spo2, ab, -1.0)))
        pulse = round(_draw(self.rng, self.profile.pulse, ab, 1.0))
        return float(max(spo2, 60.0)), float(max(pulse, 30))

    def heart_rate(self) -> float:
        return float(max(30, round(_draw(self.rng, self.profile.pulse, self.abnormal(), 1.0))))

    def temperature(self) -> float:
        return round(_draw(self.rng, self.profile.temperature, self.abnormal(), 1.0), 1)

    def glucose_mmol(self) -> float:
        return round(max(1.5, _draw(self.rng, self.profile.glucose_mmol, self.abnormal(), 1.0)), 1)

    def weight_kg(self, day: float) -> float:
        mean, sd = self.profile.weight_kg
        mean += self.profile.weight_gain_kg_per_day * day
        value = self.rng.gauss(mean, sd)
        # The scale's resolution is 0.005 kg.
        return round(round(value / 0.005) * 0.005, 3)

    def battery_drain(self) -> float:
        return self.rng.random() * 0.3
