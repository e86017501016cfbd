"""How long the fuzz tests run: a few hundred examples in `make test`, many more in `make fuzz`.

`SG_FUZZ_EXAMPLES` sets the number of examples of every fuzz test (``make fuzz`` sets 20000);
without it each test uses its own small default, so the whole directory runs in under a minute.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def examples(default: int) -> int:
    """The example budget of one test: ``SG_FUZZ_EXAMPLES`` when set, else ``default``."""
    return int(os.environ.get("SG_FUZZ_EXAMPLES") or default)


def fuzz_settings(default: int) -> settings:
    """Hypothesis settings for a fuzz test: no deadline (the first call may import a lot)."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
