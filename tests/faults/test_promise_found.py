"""The promise, broken in new ways and fixed (issue 10's list went on): each test here failed
before its fix. Every accepted request ends in exactly one outcome, its own, and its ticket
resolves within the documented bound, whatever plugins, log pipelines, the server, the host
task or asyncio cancellation do."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import anyio
import pluggy
import pytest
import structlog

from gws_outbound_plugin import (
    CORE_PLUGIN_NAME,
    CancelRequest,
    FailureReason,
    OutboundPlugin,
    RejectRecordRequest,
    hookimpl,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, rebuilt, request_for
from tests.helpers import AGENT, Recorder

pytestmark = pytest.mark.anyio


# -- log pipelines -----------------------------------------------------------------------------


@contextlib.contextmanager
def pipeline_raising_on(breaks: Callable[[str, str], bool]) -> Iterator[list[str]]:
    """structlog configured by a host whose processor raises on every event of the plugin's
    loggers (``gws_outbound_plugin.*``, the simulator's aside) for which ``breaks(logger
    name, event)`` is true; yields the events it broke on."""
    broken: list[str] = []

    def explode(
        logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        name = getattr(logger, "name", "")
        event = str(event_dict.get("event"))
        if (
            name.startswith("gws_outbound_plugin")
            and not name.startswith("gws_outbound_plugin.simulator")
            and breaks(name, event)
        ):
            broken.append(event)
            raise RuntimeError(f"the host's log pipeline broke on {event}")
        return event_dict

    previous = structlog.get_config()
    structlog.configure(
        processors=[explode, structlog.processors.KeyValueRenderer()],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield broken
    finally:
        structlog.configure(**previous)


@contextlib.contextmanager
def stdlib_handler_raising_on(event: str) -> Iterator[None]:
    """No structlog configuration (the plugin logs through ``logging``) and a host's handler
    on the plugin's logger that raises on ``event`` (its filter: ``Handler.handle`` lets
    that through, as it does a raising ``emit``)."""

    class Explode(logging.Handler):
        def filter(self, record: logging.LogRecord) -> bool:
            if getattr(record, "gws_event", None) == event:
                raise RuntimeError(f"the host's logging handler broke on {event}")
            return True

        def emit(self, record: logging.LogRecord) -> None:
            """Discard the record: this handler breaks in ``filter`` only."""

    previous = structlog.get_config()
    configured = structlog.is_configured()
    structlog.reset_defaults()
    library = logging.getLogger("gws_outbound_plugin")
    level, explode = library.level, Explode()
    library.setLevel(logging.DEBUG)
    library.addHandler(explode)
    try:
        yield
    finally:
        library.removeHandler(explode)
        library.setLevel(level)
        if configured:
            structlog.configure(**previous)


class ConnectionStates:
    """Records ``on_connection_state_changed``."""

    def __init__(self) -> None:
        self.states: list[str] = []

    @hookimpl
    def on_connection_state_changed(self, state: str, previous: str) -> None:
        self.states.append(state)

    async def wait_reconnected(self, since: int) -> None:
        """Until the connection was lost and came back after the first ``since`` changes."""
        with anyio.fail_after(8):
            while True:
                later = self.states[since:]
                if "reconnecting" in later and later[-1] == "connected":
                    return
                await anyio.sleep(0.01)


async def test_a_log_pipeline_raising_on_every_event_of_the_plugin_changes_nothing(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """Each log call of the plugin raises (not only those the engine makes after deciding an
    outcome): it starts, hears outcomes, loses and regains its CometD session, and closes,
    as if nothing were logged. Before, the first log call that raised stopped whatever made
    it: the login (no start), the CometD listener (deaf for good), the close."""
    states = ConnectionStates()
    pm.register(states, name="states")
    first, second = handles(sim, 2)
    with pipeline_raising_on(lambda name, event: True) as broken:
        async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
            await plugin.cancel(request_for(sim, first))
            since = len(states.states)
            assert sim.forget_cometd_clients() == 1
            await states.wait_reconnected(since)
            after = await plugin.cancel(request_for(sim, second))
            assert after.record_handle == second
    assert not plugin.running and not pm.has_plugin(CORE_PLUGIN_NAME)
    assert [ack.record_handle for ack in recorder.acks] == [first, second]
    assert {"plugin_started", "cometd_rehandshake", "plugin_stopped"} <= set(broken)


@pytest.mark.parametrize("through", ["structlog", "logging"])
async def test_a_log_pipeline_raising_on_plugin_started_leaves_no_plugin_running(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder, through: str
) -> None:
    """Before, ``plugin_started`` raising (in a structlog processor, or in a stdlib logging
    handler when structlog is not configured) made ``async with`` raise with the plugin
    started and bound to the manager: running for good, its tasks taking back every
    cancellation, so that the host's ``asyncio.run()`` never returned."""
    plugin = OutboundPlugin(pm, fast_config(sim.base_url))
    entered = False
    pipeline = (
        pipeline_raising_on(lambda name, event: event == "plugin_started")
        if through == "structlog"
        else stdlib_handler_raising_on("plugin_started")
    )
    try:
        with pipeline:
            async with plugin:
                entered = True
                await plugin.cancel(request_for(sim, handles(sim, 1)[0]))
    finally:
        if plugin.running:  # left running by the failed start: stop it so the test ends
            await plugin.aclose()
    assert entered
    assert not pm.has_plugin(CORE_PLUGIN_NAME)
    assert len(recorder.acks) == 1


async def test_a_log_pipeline_raising_while_cometd_reconnects_does_not_deafen_the_plugin(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """The CometD listener's own log calls (made from the CometD client's callbacks) raise
    while the server forgets the client. Before, the raising call stopped the reconnection
    (``cometd_rehandshake``: reconnecting for good, every later request failed unsent) or
    left the session half lost (``cometd_connect_refused``: the next request sent after the
    reconnection failed as ``outcome_unknown``)."""
    states = ConnectionStates()
    pm.register(states, name="states")
    first, second = handles(sim, 2)
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        await plugin.cancel(request_for(sim, first))
        since = len(states.states)
        with pipeline_raising_on(lambda name, event: event.startswith("cometd_")) as broken:
            assert sim.forget_cometd_clients() == 1
            await states.wait_reconnected(since)
        ack = await plugin.cancel(request_for(sim, second))
    assert ack.record_handle == second
    assert {"cometd_connect_refused", "cometd_rehandshake"} <= set(broken)
    assert [ack.record_handle for ack in recorder.acks] == [first, second]


# -- the server ----------------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", [[], {}, ["OutboundRecordMessage"]])
async def test_a_message_type_that_is_not_a_string_does_not_deafen_the_plugin(
    sim: GWSSimulator, plugin: OutboundPlugin, recorder: Recorder, message_type: object
) -> None:
    """A notification whose ``messageType`` is a list or an object (JSON allows it). Before,
    reading it raised ``TypeError`` (unhashable) out of the correlator into the CometD
    listener, which ended for good: every later outcome went unheard (``timed_out``)."""
    for channel in ("/v2/me/outbound", "/me/internal"):  # published before the answer below
        sim._bayeux.publish(AGENT, channel, {"messageType": message_type, "referenceId": "x"})
    request = request_for(sim, handles(sim, 1)[0])
    ack = await plugin.cancel(request)
    assert ack.request == request
    assert [ack.record_handle for ack in recorder.acks] == [request.record_handle]


# -- request objects that misbehave ------------------------------------------------------------

_REFERENCE_SLOT: Any = CancelRequest.__dict__["reference_id"]


class ReferenceGoesAway(CancelRequest):
    """A host's subclass whose ``reference_id`` is readable while it is built and validated,
    then raises (a property that changes between reads)."""

    @property
    def reference_id(self) -> str:
        if self.__dict__.get("built"):
            raise RuntimeError("reference_id went away")
        value: str = _REFERENCE_SLOT.__get__(self)
        return value

    @reference_id.setter
    def reference_id(self, value: str) -> None:
        _REFERENCE_SLOT.__set__(self, value)

    def __post_init__(self) -> None:
        CancelRequest.__post_init__(self)
        self.__dict__["built"] = True

    def to_gws_body(self) -> dict[str, Any]:
        # Its body can be made (else it is refused before it is accepted,
        # tests/faults/test_sending.py): what raises is registering it and its outcome.
        return {"operationName": "CancelRecord", "referenceId": _REFERENCE_SLOT.__get__(self)}


class NoSpec(RejectRecordRequest):
    """A host's subclass whose ``spec`` raises."""

    @property
    def spec(self) -> Any:
        raise RuntimeError("no spec")


@pytest.mark.parametrize("kind", [ReferenceGoesAway, NoSpec])
async def test_a_request_whose_attributes_raise_still_gets_one_outcome_and_its_hook(
    sim: GWSSimulator, pm: pluggy.PluginManager, kind: type[Any]
) -> None:
    """The engine refuses a request it cannot register (``rejected``, nothing sent); making
    that outcome read the request again. Before, the read raised half-way through: the
    outcome hook was never called (``reference_id``), or the ticket of an operation was never
    decided, not even by closing the plugin (``spec``)."""
    seen: list[tuple[str, Any]] = []

    class Outcomes:
        @hookimpl
        def on_cancel_failed(self, failure: Any) -> None:
            seen.append(("on_cancel_failed", failure))

        @hookimpl
        def on_operation_failed(self, failure: Any) -> None:
            seen.append(("on_operation_failed", failure))

    pm.register(Outcomes(), name="outcomes")
    request = rebuilt(kind, request_for(sim, handles(sim, 1)[0]))
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        ticket = plugin.submit(request)
        with anyio.fail_after(5):
            while not ticket.done():
                await anyio.sleep(0.01)
        assert await plugin.wait_hooks_idle(5)
    outcome = ticket.outcome
    assert outcome is not None and outcome.reason is FailureReason.REJECTED
    assert outcome.request is request
    hook = "on_cancel_failed" if isinstance(request, CancelRequest) else "on_operation_failed"
    assert [name for name, _ in seen if name == hook] == [hook]
    assert [payload for name, payload in seen if name == hook] == [outcome]
    assert sim.operations == []  # nothing was sent


# -- the host's own tooling ----------------------------------------------------------------------


async def test_a_hook_call_monitor_that_raises_after_the_core_accepted_does_not_hide_the_ticket(
    sim: GWSSimulator, pm: pluggy.PluginManager, recorder: Recorder
) -> None:
    """``pm.add_hookcall_monitoring(before, after)`` whose ``after`` raises for the host-fired
    hook: by then the core accepted the request and it is sent. Before, ``submit()`` (and so
    ``cancel()``) raised the monitor's error: no ticket, while the cancel went on, and a host
    told it failed might send it again."""

    def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
        if hook_name == "on_cancel_requested":
            raise RuntimeError("the host's monitor broke")

    pm.add_hookcall_monitoring(lambda *_: None, after)
    request = request_for(sim, handles(sim, 1)[0])
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        ack = await plugin.cancel(request)
    assert ack.request == request
    assert [ack.request for ack in recorder.acks] == [request]
    assert len(sim.cancels) == 1
