"""Another client's acknowledgements: their two halves paired into one ``Foreign`` effect.

An acknowledgement that answers no request of ours (M3 of the matching rule) arrives, like
ours, as a notification and a user event; each half waits ``merge_window`` for the other on
the keys it names (record, phone, campaign), then the pair, or the half alone, is reported
once. Pure: no I/O, no clock (the correlator starts the ``("foreign", ...)`` timers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._effects import Foreign, StartTimer
from ._models import UserEvent
from ._spec import CorrelationKey, OperationSpec

__all__ = ["ForeignPairs"]

Slot = tuple[str, CorrelationKey]


class _Half:
    __slots__ = ("outbound", "spec", "user_event")

    def __init__(
        self,
        spec: OperationSpec,
        outbound: Mapping[str, Any] | None,
        user_event: UserEvent | None,
    ) -> None:
        self.spec = spec
        self.outbound = outbound
        self.user_event = user_event

    def effect(self) -> Foreign:
        return Foreign(self.spec, self.outbound, self.user_event)


class ForeignPairs:
    def __init__(self, merge_window: float, limit: int) -> None:
        self._merge_window = merge_window
        self._limit = limit
        self._waiting: dict[Slot, _Half] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(
        self,
        spec: OperationSpec,
        keys: tuple[CorrelationKey, ...],
        *,
        outbound: Mapping[str, Any] | None = None,
        user_event: UserEvent | None = None,
    ) -> Foreign | StartTimer:
        """One half: the ``Foreign`` effect when it completes a pair (or cannot wait), else
        the timer to start for it."""
        for key in keys:
            slot = (spec.acknowledgement, key)
            half = self._waiting.get(slot)
            if half is not None and (
                (outbound is not None and half.outbound is None)
                or (user_event is not None and half.user_event is None)
            ):
                del self._waiting[slot]
                half.outbound = half.outbound or outbound
                half.user_event = half.user_event or user_event
                return half.effect()
        half = _Half(spec, outbound, user_event)
        if not keys or self._merge_window == 0:
            return half.effect()
        slot = (spec.acknowledgement, keys[0])
        if slot in self._waiting or len(self._waiting) >= self._limit:
            return half.effect()
        self._waiting[slot] = half
        return StartTimer(("foreign", *slot), self._merge_window)

    def expire(self, slot: Slot) -> Foreign | None:
        """Its merge window ended: the half alone."""
        half = self._waiting.pop(slot, None)
        return half.effect() if half is not None else None

    def flush(self) -> list[Foreign]:
        """Every half still waiting (the plugin is closing)."""
        effects = [half.effect() for half in self._waiting.values()]
        self._waiting.clear()
        return effects
