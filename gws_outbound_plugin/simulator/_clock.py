"""The simulator's clock: what "now" is for OCS (scheduled callbacks, record change times).

By default it follows real time. Tests move it: :meth:`SimulatorClock.advance` and
:meth:`SimulatorClock.set` jump it forward (or anywhere), and the simulator delivers every
callback that became due at once, before the call returns. A clock made with
``frozen=True`` stands still between those calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC
from datetime import datetime as DateTime

__all__ = ["SimulatorClock"]

# The range a datetime can show: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_FIRST = -62_135_596_800.0
_LAST = 253_402_300_799.0


def _epoch(value: DateTime | float | int, name: str) -> float:
    if isinstance(value, DateTime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a datetime or seconds since the epoch, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or not _FIRST <= seconds <= _LAST:
        raise ValueError(f"{name} must be a time between the years 1 and 9999, got {value!r}")
    return seconds


class SimulatorClock:
    """Seconds since the epoch as the simulated OCS sees them.

    :param start: where the clock starts (a timezone-aware ``datetime`` or epoch seconds);
        ``None`` starts at the real time.
    :param frozen: stand still except for :meth:`advance` / :meth:`set` (default: tick
        with real time from ``start``).
    """

    def __init__(self, start: DateTime | float | None = None, *, frozen: bool = False) -> None:
        self._frozen = bool(frozen)
        self._listeners: list[Callable[[], None]] = []
        now = time.time()
        begin = now if start is None else _epoch(start, "start")
        # Ticking: now() = time.time() + offset. Frozen: now() = offset.
        self._offset = begin if self._frozen else begin - now

    def __repr__(self) -> str:
        kind = "frozen" if self._frozen else "ticking"
        return f"SimulatorClock({self.datetime().isoformat()}, {kind})"

    @property
    def frozen(self) -> bool:
        """Whether the clock stands still between :meth:`advance` / :meth:`set` calls."""
        return self._frozen

    def now(self) -> float:
        """The simulated time in seconds since the epoch."""
        return self._offset if self._frozen else time.time() + self._offset

    def datetime(self) -> DateTime:
        """The simulated time as an aware UTC ``datetime``."""
        return DateTime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (>= 0) and deliver what became due."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        if self.now() + seconds > _LAST:
            raise ValueError("the clock cannot go beyond the year 9999")
        self._offset += float(seconds)
        self._changed()

    def set(self, when: DateTime | float) -> None:
        """Put the clock at ``when`` (an aware ``datetime`` or epoch seconds), even backwards."""
        target = _epoch(when, "when")
        self._offset = target if self._frozen else target - time.time()
        self._changed()

    # ------------------------------------------------------------ simulator internals
    def _subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _unsubscribe(self, listener: Callable[[], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()
