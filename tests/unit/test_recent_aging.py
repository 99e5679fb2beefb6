"""``Aging``, the store behind the facts kept for ``late_window``, against a plain model.

The model is a dict from key to the generation it was last added in: a key is kept while
its generation is above the sweep's cutoff. ``drop_one_oldest`` (the duplicate filter's
bound) may forget any key of the oldest generation that has one.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gws_outbound_plugin._recent import MAX_NESTING, SWEEPS, Aging, Recent

KEYS = st.integers(min_value=0, max_value=12)


class AgingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.aging = Aging()
        self.model: dict[int, int] = {}
        self.generation = 0

    @rule(key=KEYS)
    def add(self, key: int) -> None:
        self.aging.add(key, self.generation)
        self.model[key] = self.generation

    @rule(key=KEYS)
    def add_new(self, key: int) -> None:
        if key in self.aging:  # add_new is for keys just found not kept (the duplicate filter)
            return
        self.aging.add_new(key, self.generation)
        self.model[key] = self.generation

    @rule(key=KEYS)
    def discard(self, key: int) -> None:
        self.aging.discard(key)
        self.model.pop(key, None)

    @rule()
    def next_generation(self) -> None:
        self.generation += 1

    @rule(back=st.integers(min_value=0, max_value=SWEEPS + 1))
    def expire(self, back: int) -> None:
        cutoff = self.generation - back
        self.aging.expire(cutoff)
        self.model = {k: g for k, g in self.model.items() if g > cutoff}

    @precondition(lambda self: bool(self.model))
    @rule()
    def drop_one_oldest(self) -> None:
        oldest = min(self.model.values())
        before = {k for k in self.model if k in self.aging}
        self.aging.drop_one_oldest()
        gone = [k for k in before if k not in self.aging]
        assert len(gone) == 1
        assert self.model.pop(gone[0]) == oldest

    @invariant()
    def same_keys(self) -> None:
        assert len(self.aging) == len(self.model)
        assert bool(self.aging) == bool(self.model)
        for key in range(13):
            assert (key in self.aging) == (key in self.model)


TestAging = AgingMachine.TestCase


def test_a_sweep_drops_only_facts_older_than_the_window() -> None:
    recent = Recent(fingerprint_limit=1_000, parts_limit=10)
    for generation in range(SWEEPS + 3):
        recent.reserve(f"ref-{generation}")
        recent.took(bytes([generation]) * 16)
        recent.sweep()
    kept = [g for g in range(SWEEPS + 3) if f"ref-{g}" in recent.reserved]
    # after the sweep of generation G the facts stamped G - SWEEPS - 1 or before are gone
    assert kept == list(range(3, SWEEPS + 3))
    assert [g for g in range(SWEEPS + 3) if recent.was_taken(bytes([g]) * 16)] == kept
    assert recent.sizes()["reserved"] == recent.sizes()["taken"] == len(kept)


def test_a_taken_answer_taken_again_lives_from_the_second_time() -> None:
    recent = Recent(fingerprint_limit=1_000, parts_limit=10)
    recent.took(b"a" * 16)
    for _ in range(SWEEPS):
        recent.sweep()
    recent.took(b"a" * 16)  # moves to the newest generation
    for _ in range(SWEEPS):
        recent.sweep()
    assert recent.was_taken(b"a" * 16)
    recent.sweep()
    assert not recent.was_taken(b"a" * 16)
    assert recent.sizes()["taken"] == 0


def _nested(depth: int) -> dict[str, Any]:
    """A ``data`` object with objects and lists nested ``depth`` levels (itself level 1)."""
    value: Any = "bottom"
    for level in range(depth - 1):
        value = [value] if level % 2 else {"d": value}
    return {"userData": {"GSW_USER_EVENT": "x"}, "d": value} if depth > 1 else {}


@pytest.mark.parametrize("limit", [1_000, 30_000])
def test_how_deep_a_message_may_nest_does_not_depend_on_the_recursion_limit(
    limit: int,
) -> None:
    """64 levels are read, 65 and far deeper are malformed, whatever ``sys.setrecursionlimit``
    says (it decides how deep the JSON encoder can go, so it used to decide this too)."""
    recent = Recent(fingerprint_limit=1_000, parts_limit=10)
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        assert recent.fingerprint("/me/internal", _nested(MAX_NESTING), 10**7) is not None
        assert recent.fingerprint("/me/internal", _nested(MAX_NESTING + 1), 10**7) is None
        assert recent.fingerprint("/me/internal", _nested(3_000), 10**7) is None
    finally:
        sys.setrecursionlimit(before)


def test_brackets_in_text_are_not_nesting() -> None:
    recent = Recent(fingerprint_limit=1_000, parts_limit=10)
    data = {"userData": {"GSW_USER_EVENT": "x", "note": "[{" * 500}}
    assert recent.fingerprint("/me/internal", data, 10**7) is not None
