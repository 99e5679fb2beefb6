"""One retry policy for the whole package: requests to GWS, the CometD reconnection backoff
and the reference webhook plugin all wait by :class:`RetryPolicy`.

Its delays are exponential (``first_delay``, then times ``multiplier`` per retry) and capped at
``max_delay``; ``jitter`` spreads each delay downwards so that many clients restarted together
do not retry in step. :meth:`RetryPolicy.delays` is pure (tested without a clock);
:meth:`RetryPolicy.retrying` runs an awaitable with those delays between attempts. *What* is
worth retrying is the caller's decision (``retry_if``): a policy only says how often and how
long to wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import anyio

__all__ = ["RetryPolicy"]

_T = TypeVar("_T")


def _always(error: Exception) -> bool:
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many times to try again and how long to wait before each retry.

    :param retries: further attempts after the first (``0``: try once); ``None``: retry for
        ever (a reconnection loop).
    :param first_delay: the delay before the first retry, in seconds.
    :param max_delay: no delay is longer than this (a delay asked for by the server, such as
        ``Retry-After``, included).
    :param multiplier: each further delay is the previous one times this (``>= 1``).
    :param jitter: ``0`` to ``1``: each delay is drawn uniformly from
        ``[delay * (1 - jitter), delay]``; ``0`` keeps the delays exact.
    :raises ValueError: a value out of range.

    >>> list(RetryPolicy(retries=4, first_delay=0.5, max_delay=3.0).delays())
    [0.5, 1.0, 2.0, 3.0]
    """

    retries: int | None = 2
    first_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.retries is not None and (
            isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0
        ):
            problems.append(f"retries must be an integer >= 0 or None, got {self.retries!r}")
        for name, low in (("first_delay", 0.0), ("max_delay", 0.0), ("multiplier", 1.0)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < low
            ):
                problems.append(f"{name} must be a finite number >= {low:g}, got {value!r}")
        if not problems and self.max_delay < self.first_delay:
            problems.append(
                f"max_delay ({self.max_delay!r}) must not be below first_delay "
                f"({self.first_delay!r})"
            )
        jitter = self.jitter
        if (
            isinstance(jitter, bool)
            or not isinstance(jitter, int | float)
            or not 0.0 <= jitter <= 1.0
        ):
            problems.append(f"jitter must be a number from 0 to 1, got {jitter!r}")
        if problems:
            raise ValueError("invalid RetryPolicy: " + "; ".join(problems))

    @property
    def attempts(self) -> int | None:
        """Attempts in all (``retries + 1``), or ``None`` for ever."""
        return None if self.retries is None else self.retries + 1

    def backoff(self, retry: int) -> float:
        """The delay before retry number ``retry`` (1 for the first retry), without jitter."""
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 1:
            raise ValueError(f"retry must be an integer >= 1, got {retry!r}")
        if self.first_delay == 0 or self.multiplier == 1:
            return min(float(self.first_delay), self.max_delay)
        # Past the cap the exact power does not matter (and may overflow a float).
        if (retry - 1) * math.log(self.multiplier) >= math.log(self.max_delay / self.first_delay):
            return float(self.max_delay)
        return min(self.first_delay * self.multiplier ** (retry - 1), self.max_delay)

    def longest_total_delay(self) -> float:
        """The longest :meth:`retrying` can wait between attempts in all: the sum of the
        delays without jitter (jitter only shortens them), when ``on_retry`` asks for no
        other delay. Used for the documented bound on a request (``outcome_bound``).

        :raises ValueError: the policy retries for ever (``retries=None``).

        >>> RetryPolicy(retries=3, first_delay=0.5, max_delay=1.5).longest_total_delay()
        3.0
        """
        if self.retries is None:
            raise ValueError("a policy that retries for ever has no longest total delay")
        return math.fsum(self.backoff(retry) for retry in range(1, self.retries + 1))

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The delay before each retry, in order: ``retries`` of them, or endless for
        ``retries=None``. ``rng`` draws the jitter (default: the ``random`` module)."""
        draw = (rng or random).random
        retry = 0
        while self.retries is None or retry < self.retries:
            retry += 1
            yield self._jittered(self.backoff(retry), draw)

    def _jittered(self, delay: float, draw: Callable[[], float]) -> float:
        if not self.jitter or not delay:
            return delay
        return delay * (1.0 - self.jitter * draw())

    async def retrying(
        self,
        attempt: Callable[[], Awaitable[_T]],
        *,
        retry_if: Callable[[Exception], bool] = _always,
        on_retry: Callable[[Exception, int, float], float | None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        made: int = 0,
    ) -> _T:
        """Await ``attempt()`` until it returns, retrying per this policy.

        :param retry_if: whether an exception raised by ``attempt`` is worth another attempt;
            one that is not, or the last one, is raised as it is.
        :param on_retry: called as ``on_retry(error, attempt_number, delay)`` after a failed
            attempt (1 for the first), before waiting ``delay`` seconds. It may return another
            delay (a server's ``Retry-After``, say), capped at ``max_delay``; ``None`` keeps
            the policy's. Typically it logs.
        :param sleep: how to wait (default :func:`anyio.sleep`; tests pass a recorder).
        :param made: attempts already made, and the delay after the last of them waited
            (going on with retries cut short): the first attempt here is number
            ``made + 1``, and only the retries left after those are made.
        :returns: what ``attempt()`` returned.

        Cancellation is never retried: only :class:`Exception` subclasses reach ``retry_if``.
        """
        delays: Iterator[float] | None = None  # made on the first failure only
        number = made
        while True:
            number += 1
            try:
                return await attempt()
            except Exception as error:
                if not retry_if(error):
                    raise
                if delays is None:
                    delays = self.delays()
                    for _ in range(made):  # the delays after the attempts already made
                        next(delays, None)
                delay = next(delays, None)
                if delay is None:
                    raise
                if on_retry is not None:
                    asked = on_retry(error, number, delay)
                    if asked is not None and math.isfinite(asked):
                        delay = min(max(float(asked), 0.0), self.max_delay)
            await sleep(delay)
