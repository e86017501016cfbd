"""The cost model of bench/bench_upload_cost.py: a wrong fit would misstate what targets need."""

import pytest

from bench.bench_upload_cost import Cost, cores_needed, fit


def _cost(readings: int, app_ms: float, postgres_ms: float) -> Cost:
    return Cost(f"Bundle of {readings}", readings, 10, 0.0, app_ms, postgres_ms)


def test_the_fit_recovers_a_fixed_and_a_per_reading_cost():
    costs = [_cost(n, 6 + 0.3 * n, 4 + 0.2 * n) for n in (1, 20, 100, 500)]
    fixed, marginal = fit(costs)
    assert fixed == pytest.approx(10.0)
    assert marginal == pytest.approx(0.5)


def test_one_size_cannot_be_split_into_fixed_and_marginal():
    with pytest.raises(ValueError, match="two different bundle sizes"):
        fit([_cost(100, 50, 30), _cost(100, 52, 31)])


def test_cores_needed_is_rate_times_cpu_time():
    assert cores_needed(5000, 0.8) == pytest.approx(4.0)
    assert _cost(100, 55.0, 33.0).per_reading_ms == pytest.approx(0.88)
