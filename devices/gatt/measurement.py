"""The value every decoder returns: a device-neutral measurement with IEEE 11073 codes.

Why: the bridge, the outbox and the FHIR mapper (PHD IG) all speak in MDC codes, UCUM units and
device time; keeping GATT specifics out of this shape means one mapper serves every monitor.

Design (contract for callers):

- ``kind`` names the characteristic family ("blood_pressure", "heart_rate", ...).
- ``time`` is the naive device time exactly as sent (or base time + offset for glucose). The
  bridge converts it with its recorded clock offset. A time stamp whose year, month or day is
  0 ("unknown" in the Bluetooth Date Time format) gives ``time=None`` and the flag
  ``"time_unknown"``.
- ``components`` carries numeric values. ``value`` is ``None`` exactly when ``special`` is set
  (one of ``SPECIALS``); a NaN/NRes is never turned into a number. ``modality`` distinguishes
  the fast/slow pulse-oximetry averages, which IEEE 11073-10404 models as the same MDC code with
  a modality (MDC_MODALITY_FAST/SLOW) rather than as separate codes.
- ``flags`` are named status bits; names are listed in each module.
- ``user_id`` is ``None`` when absent or "unknown user" (0xFF; then ``"user_unknown"`` is set).
- ``extra`` holds non-numeric context as a sorted tuple of ``(key, value)`` pairs (hashable and
  immutable, so a Measurement can be a dict key or compared whole in tests); read it with
  :meth:`Measurement.extra_dict` or :meth:`Measurement.get_extra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ExtraValue = str | int | float | bool | None

#: Allowed values of ``Component.special`` (IEEE 11073-20601 special FLOAT/SFLOAT values).
SPECIALS = frozenset({"NaN", "NRes", "+INF", "-INF", "reserved"})

NO_FLAGS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Component:
    """One numeric observation: MDC code, value (or special) and UCUM unit."""

    mdc: int
    value: float | None
    unit: str
    special: str | None = None
    modality: str | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """A decoded GATT measurement (see the module docstring for the field contract)."""

    kind: str
    components: tuple[Component, ...] = ()
    time: datetime | None = None
    flags: frozenset[str] = NO_FLAGS
    user_id: int | None = None
    sequence: int | None = None
    extra: tuple[tuple[str, ExtraValue], ...] = ()

    def component(self, mdc: int, modality: str | None = None) -> Component | None:
        """The first component with this MDC code (and modality), or ``None``."""
        for c in self.components:
            if c.mdc == mdc and c.modality == modality:
                return c
        return None

    def extra_dict(self) -> dict[str, ExtraValue]:
        """``extra`` as a plain dict (a fresh copy; the measurement stays immutable)."""
        return dict(self.extra)

    def get_extra(self, key: str, default: ExtraValue = None) -> ExtraValue:
        """One ``extra`` value by key."""
        for k, v in self.extra:
            if k == key:
                return v
        return default


def make_extra(**items: ExtraValue) -> tuple[tuple[str, ExtraValue], ...]:
    """Build a canonical ``extra`` tuple (sorted by key) so equal content compares equal."""
    return tuple(sorted(items.items()))


class FlagNames:
    """Bit position → flag name, with a small cache from bit word to frozenset.

    Why: status words are decoded millions of times a day and repeat the same few values, so
    the frozenset for each word is built once. Bit ``i`` is named by ``names[i]`` (``None`` for
    reserved bits, which are dropped).
    """

    __slots__ = ("names", "mask", "_cache")

    def __init__(self, *names: str | None) -> None:
        self.names = names
        self.mask = sum(1 << i for i, n in enumerate(names) if n)
        self._cache: dict[int, frozenset[str]] = {}

    def decode(self, bits: int) -> frozenset[str]:
        bits &= self.mask
        fs = self._cache.get(bits)
        if fs is None:
            fs = frozenset(n for i, n in enumerate(self.names) if n and bits >> i & 1)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[bits] = fs
        return fs

    def encode(self, flags: frozenset[str] | set[str]) -> int:
        bits = 0
        for i, n in enumerate(self.names):
            if n and n in flags:
                bits |= 1 << i
        return bits
