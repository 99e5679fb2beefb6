"""RetryPolicy: the one retry policy of the package (pure delays, and the async helper run
with zero delays so that no clock is involved)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gws_outbound_plugin import RetryPolicy

pytestmark = pytest.mark.anyio


def test_delays_double_from_the_first_up_to_the_cap() -> None:
    policy = RetryPolicy(retries=6, first_delay=0.5, max_delay=3.0)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert policy.attempts == 7


def test_multiplier_and_no_retry() -> None:
    assert list(RetryPolicy(retries=3, first_delay=1, max_delay=100, multiplier=3).delays()) == [
        1,
        3,
        9,
    ]
    assert list(RetryPolicy(retries=0).delays()) == []
    assert RetryPolicy(retries=0).attempts == 1


def test_retries_none_is_endless_and_stays_at_the_cap() -> None:
    policy = RetryPolicy(retries=None, first_delay=0.5, max_delay=30.0)
    assert policy.attempts is None
    delays = list(itertools.islice(policy.delays(), 2000))
    assert delays[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(delays[6:]) == {30.0}  # no overflow however far it goes
    assert policy.backoff(10**9) == 30.0


def test_zero_first_delay_means_no_wait() -> None:
    assert list(RetryPolicy(retries=3, first_delay=0, max_delay=10).delays()) == [0, 0, 0]


@given(
    first=st.floats(0.001, 10),
    cap_factor=st.floats(1, 100),
    multiplier=st.floats(1, 5),
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_jittered_delays_stay_within_their_band(
    first: float, cap_factor: float, multiplier: float, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(
        retries=12,
        first_delay=first,
        max_delay=first * cap_factor,
        multiplier=multiplier,
        jitter=jitter,
    )
    exact = list(
        RetryPolicy(
            retries=12, first_delay=first, max_delay=first * cap_factor, multiplier=multiplier
        ).delays()
    )
    drawn = list(policy.delays(random.Random(seed)))
    assert len(drawn) == 12
    for nominal, delay in zip(exact, drawn, strict=True):
        assert nominal * (1 - jitter) - 1e-9 <= delay <= nominal + 1e-9
    assert exact == sorted(exact) and exact[-1] <= policy.max_delay
    # The same seed draws the same delays: the policy has no state of its own.
    assert list(policy.delays(random.Random(seed))) == drawn


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": True}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"first_delay": -0.1}, "first_delay"),
        ({"first_delay": math.nan}, "first_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"first_delay": 2.0, "max_delay": 1.0}, "must not be below first_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_invalid_values_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match="invalid RetryPolicy") as info:
        RetryPolicy(**changes)  # type: ignore[arg-type]
    assert problem in str(info.value)


def test_the_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.retries = 5  # type: ignore[misc]


class Flaky:
    """Fails ``failures`` times with ``error``, then returns the number of calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


class Waits:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def test_retrying_waits_the_policy_delays_and_returns_once_an_attempt_succeeds() -> None:
    flaky = Flaky(3, ConnectionError("down"))
    seen: list[tuple[str, int, float]] = []
    waits = Waits()
    policy = RetryPolicy(retries=5, first_delay=0.5, max_delay=1.5)
    result = await policy.retrying(
        flaky, on_retry=lambda error, n, delay: seen.append((str(error), n, delay)), sleep=waits
    )
    assert result == 4 and flaky.calls == 4
    assert seen == [("down", 1, 0.5), ("down", 2, 1.0), ("down", 3, 1.5)]
    assert waits.delays == [0.5, 1.0, 1.5]


async def test_retrying_raises_the_last_error_when_the_retries_run_out() -> None:
    flaky = Flaky(10, ConnectionError("still down"))
    waits = Waits()
    with pytest.raises(ConnectionError, match="still down"):
        await RetryPolicy(retries=2, first_delay=0.1).retrying(flaky, sleep=waits)
    assert flaky.calls == 3
    assert waits.delays == [0.1, 0.2]


async def test_retrying_goes_on_after_the_attempts_already_made() -> None:
    """``made``: an interrupted run made two attempts and waited the delay after the second;
    going on, the next attempt is number 3, only the one retry left is made, after the
    policy's third delay (the POST's retries carried over an interrupted sender)."""
    flaky = Flaky(10, ConnectionError("still down"))
    seen: list[int] = []
    waits = Waits()
    policy = RetryPolicy(retries=3, first_delay=0.1)
    with pytest.raises(ConnectionError, match="still down"):
        await policy.retrying(
            flaky, on_retry=lambda error, n, delay: seen.append(n), sleep=waits, made=2
        )
    assert flaky.calls == 2  # attempts 3 and 4 (the last allowed)
    assert seen == [3]
    assert waits.delays == [0.4]


async def test_retrying_never_retries_what_retry_if_refuses() -> None:
    flaky = Flaky(10, ValueError("refused"))
    waits = Waits()
    with pytest.raises(ValueError, match="refused"):
        await RetryPolicy(retries=5).retrying(
            flaky, retry_if=lambda error: isinstance(error, ConnectionError), sleep=waits
        )
    assert flaky.calls == 1 and waits.delays == []


@pytest.mark.parametrize(
    ("asked", "waited"), [(None, 0.2), (0.05, 0.05), (60.0, 2.0), (-1.0, 0.0), (math.nan, 0.2)]
)
async def test_on_retry_may_ask_for_another_delay_within_the_cap(
    asked: float | None, waited: float
) -> None:
    # A server asking for 60 s (Retry-After) gets at most max_delay.
    waits = Waits()
    policy = RetryPolicy(retries=1, first_delay=0.2, max_delay=2.0)
    result = await policy.retrying(
        Flaky(1, ConnectionError("busy")), on_retry=lambda error, n, delay: asked, sleep=waits
    )
    assert result == 2 and waits.delays == [waited]


async def test_retrying_for_ever_keeps_trying() -> None:
    flaky = Flaky(50, ConnectionError("down"))
    waits = Waits()
    assert (
        await RetryPolicy(retries=None, first_delay=1, max_delay=8).retrying(flaky, sleep=waits)
        == 51
    )
    assert waits.delays[:5] == [1, 2, 4, 8, 8] and len(waits.delays) == 50
