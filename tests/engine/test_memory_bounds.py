"""Memory over a long run (docs/reliability.md, "Memory bounds"): 20,000 requests on FakeGWS
and the virtual clock, a fifth of them with answers lost or held back, over many late windows.
Every structure the plugin keeps per request stays under its cap, counted in requests (never
in seconds of wall time), and everything empties once the run is over and a late window has
passed."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from gws_outbound_plugin import (
    CancelRequest,
    OperationAck,
    OperationFailed,
    OperationFailure,
    OutboundPlugin,
    RejectRecordRequest,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin._recent import SWEEPS
from gws_outbound_plugin._ticket import HOOK_TASKS
from gws_outbound_plugin.simulator import SeedRecord
from gws_outbound_plugin.testing import FakeGWS
from tests.engine.conftest import fake_config

pytestmark = pytest.mark.anyio

REQUESTS = 20_000
HOSTS = 100  # host tasks, each submitting one request at a time
SEED = 20261207
FIRST_HANDLE = 100_000
#: A DeadlineQueue drops discarded entries at its head at once, the rest when they are most
#: of it and it holds more than this (``DeadlineQueue._COMPACT_AT``).
COMPACT_AT = 256


class AsyncHooks:
    """An ``async def`` implementation of each outcome hook: every outcome runs a hook task."""

    def __init__(self) -> None:
        self.outcomes = 0

    @hookimpl
    async def on_operation_acknowledged(self, ack: OperationAck) -> None:
        self.outcomes += 1
        await anyio.lowlevel.checkpoint()

    @hookimpl
    async def on_operation_failed(self, failure: OperationFailure) -> None:
        self.outcomes += 1
        await anyio.lowlevel.checkpoint()


def arm_a_fault(fake: FakeGWS, rng: random.Random, injected: Counter[str]) -> None:
    """About one request in five loses or holds back its answer."""
    draw = rng.random()
    if draw < 0.06:
        fake.faults.drop_notifications("both")  # timed_out, owed its answer (M4)
        injected["drop both"] += 1
    elif draw < 0.10:
        fake.faults.drop_notifications("user_event")  # acknowledged, owed its user event
        injected["drop user_event"] += 1
    elif draw < 0.13:
        # OCS refuses it while GWS's answer to the POST is slow: the refusal, matched by key,
        # is held until GWS answers (M10).
        fake.faults.slow_answer(0.4)
        fake.faults.ocs_error(number=217, message="Record locked")
        injected["refusal held"] += 1
    elif draw < 0.16:
        fake.faults.reset_connection()  # no answer to the POST: outcome_unknown
        injected["no answer"] += 1
    elif draw < 0.19:
        fake.faults.delay_notifications(2.5)  # past ack_timeout: late, on a finished request
        injected["late"] += 1
    elif draw < 0.20:
        fake.faults.duplicate_notifications(times=3)
        injected["duplicates"] += 1


async def test_memory_stays_bounded_over_20000_requests_with_answers_lost() -> None:
    records = [
        SeedRecord(
            record_handle=FIRST_HANDLE + i,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            phone_number=str(5_550_000 + i),
            chain_id=FIRST_HANDLE + i,
        )
        for i in range(REQUESTS)
    ]
    fake = FakeGWS(records=records)
    device = fake.device_path()
    pm = make_plugin_manager(load_entrypoints=False)
    hooks = AsyncHooks()
    pm.register(hooks, name="async-hooks")
    config = fake_config()
    rng = random.Random(SEED)
    injected: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    released_at: list[float] = []  # loop time each ticket was handed back, in order
    peaks: Counter[str] = Counter()
    samples = 0
    loop_time = anyio.current_time
    next_index = 0
    finished = anyio.Event()

    async with OutboundPlugin(pm, config, transport=fake) as plugin:
        engine = plugin._engine
        correlator = engine._correlator
        late_window = correlator.late_window
        # A fact lives at most SWEEPS + 1 sweep intervals (1.25 late windows); one interval
        # more for the sweep timer's own start.
        lifetime = late_window * (SWEEPS + 2) / SWEEPS
        timer_queue_cap = max(COMPACT_AT, 2 * HOSTS) + HOSTS + 1

        def check() -> None:
            nonlocal samples
            samples += 1
            sizes: dict[str, int] = dict(correlator.state_sizes())
            sizes["pairing"] = len(correlator._pending.pairing)
            sizes["part_entries"] = len(correlator._pending.part_entries)
            sizes["held_refusals"] = sum(
                1 for e in correlator._pending.entries.values() if e.after_post is not None
            )
            sizes["tickets"] = len(engine._tickets)
            sizes["unreleased"] = len(engine._unreleased)
            sizes["release_queue"] = len(engine._release_queue)
            for kind, queue in engine._timer_queues.items():
                sizes[f"{kind}_queue"] = len(queue)
            sizes["loop_timers"] = len(engine._timers)
            sizes["hook_tasks"] = len(HOOK_TASKS)
            sizes["sender_queue"] = len(engine._sender._queue)
            for name, size in sizes.items():
                peaks[name] = max(peaks[name], size)
            now = loop_time()
            # Requests decided within a fact's lifetime: released since, or not yet.
            recent = sum(1 for t in released_at[-4 * HOSTS * 64 :] if t > now - lifetime)
            recent += sizes["unreleased"]
            caps = {
                # pending: one request per host task at most
                "entries": HOSTS,
                "by_reference": HOSTS,
                "queued": HOSTS,
                "pairing": HOSTS,
                "part_entries": HOSTS,
                "held_refusals": HOSTS,
                "tickets": HOSTS,
                "sender_queue": HOSTS,
                "unreleased": HOSTS,
                # what finished requests leave behind, for one late window
                "reserved": recent,
                "owed": recent,
                "unconfirmed": recent,
                "owed_unposted": recent,
                "taken": recent,
                # every request's messages (at most 3 copies of 2): one late window
                "fingerprints": 6 * recent,
                "foreign": config.max_pending,
                "parts": 0,
                "previews": 0,
                # one entry per live timer (a pending request's), discarded ones until
                # compacted at a discard, and those added since
                "release_queue": timer_queue_cap,
                "deadline_queue": timer_queue_cap,
                "ack_queue": timer_queue_cap,
                "merge_queue": timer_queue_cap,
                "refusal_queue": timer_queue_cap,
                # a finished request's claim window (M4), merge_window long: within a late
                # window of its outcome
                "claim_queue": recent,
                # the sweep, and the settle timer after a session loss
                "loop_timers": 2,
                # one async hook call at a time per dispatcher (outcomes, transport events)
                "hook_tasks": 2,
            }
            assert set(sizes) == set(caps), set(sizes) ^ set(caps)
            over = {name: (sizes[name], caps[name]) for name in sizes if sizes[name] > caps[name]}
            assert not over, f"over the cap after {len(released_at)} outcomes: {over}"

        async def host() -> None:
            nonlocal next_index
            while next_index < REQUESTS:
                index = next_index
                next_index += 1
                arm_a_fault(fake, rng, injected)
                values: dict[str, Any] = {
                    "record_handle": FIRST_HANDLE + index,
                    "application_id": 134,
                    "campaign_name": "Campaign1",
                    "calling_list": "CallingList1",
                    "device_path": device,
                }
                request = CancelRequest(**values) if index % 2 else RejectRecordRequest(**values)
                try:
                    await plugin.perform(request)
                    outcomes["acknowledged"] += 1
                except OperationFailed as error:
                    outcomes[error.failure.reason.value] += 1
                released_at.append(loop_time())
                await anyio.sleep(rng.uniform(0.0, 0.4))  # virtual time: spread the run

        async def lose_the_session_now_and_then() -> None:
            lost_at = REQUESTS // 10
            while not finished.is_set():
                if next_index >= lost_at:
                    lost_at += REQUESTS // 10
                    fake.lose_session("a test")  # what was sent meanwhile: outcome_unknown
                    injected["session lost"] += 1
                    await anyio.sleep(0.3)
                    fake.restore_session()
                await anyio.sleep(0.05)

        async def sampler() -> None:
            while not finished.is_set():
                check()
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler)
            tg.start_soon(lose_the_session_now_and_then)
            async with anyio.create_task_group() as hosts:
                for _ in range(HOSTS):
                    hosts.start_soon(host)
            finished.set()
        run_time = loop_time() - (released_at[0] if released_at else 0.0)
        check()
        # Quiet for longer than a fact lives: everything a request left behind is gone.
        await anyio.sleep(lifetime + late_window)
        assert await plugin.wait_hooks_idle(10)
        sizes = dict(correlator.state_sizes())
        assert all(size == 0 for size in sizes.values()), sizes
        assert len(engine._tickets) == len(engine._unreleased) == 0
        assert len(engine._release_queue) == 0
        assert all(len(queue) == 0 for queue in engine._timer_queues.values())
        assert engine._timers == {}
        assert HOOK_TASKS == {}

    assert sum(outcomes.values()) == REQUESTS
    assert hooks.outcomes == REQUESTS
    # The run spanned many late windows, with every kind of loss, and the caps were checked
    # throughout it.
    assert run_time > 10 * late_window, (run_time, late_window)
    assert samples > 100
    assert injected["session lost"] >= 9
    assert min(n for kind, n in injected.items() if kind != "session lost") > 100, injected
    assert peaks["reserved"] > 100 and peaks["owed"] > 100 and peaks["held_refusals"] > 0, peaks
    print(f"\n{REQUESTS} requests over {run_time:.0f} virtual s: {dict(outcomes)}")
    print(f"injected: {dict(injected)}")
    print(f"peaks: {dict(peaks)}")
