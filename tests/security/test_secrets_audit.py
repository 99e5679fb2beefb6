"""Secrets audit: a whole session with faults, every log record captured, no secret anywhere.

Captured: every structlog event (rendered by structlog's console renderer, tracebacks
included, and as the repr of its event dict) and every standard ``logging`` record at DEBUG,
which includes httpx, httpcore, aiohttp and the CometD client (formatted with tracebacks).
Also checked: the reprs of the config, session, listener, plugin, tickets, requests and hook
payloads, and the text and traceback of every exception the host saw.

Secrets: the password, the Basic credentials, every ``JSESSIONID`` and every CSRF token the
session held or the simulator issued. Personal data: the phone number of the cancels must not
appear in the plugin's own log events.
"""

from __future__ import annotations

import base64
import io
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import anyio
import pluggy
import pytest
import structlog

from gws_outbound_plugin import (
    CancelFailed,
    CancelTicket,
    GWSAuthenticationError,
    GWSOutboundError,
    OutboundPlugin,
    hookimpl,
    make_plugin_manager,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.helpers import AGENT, Recorder, make_request

pytestmark = pytest.mark.anyio

PASSWORD = "S3cr3t-Pa55w0rd-Zq9x"
WRONG_PASSWORD = "Wr0ng-Pa55w0rd-Kx7m"
NEW_PASSWORD = "N3w-Pa55w0rd-Hj4v"
PHONE = "+15550199876"
LIBRARY_LOGGERS = ("httpx", "httpcore", "aiohttp", "aiocometd_noloop", "asyncio")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.names.add(record.name)
        self.lines.append(self.format(record))


@pytest.fixture
def stdlib_logs() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger()
    saved = [(name, logging.getLogger(name).level) for name in ("", *LIBRARY_LOGGERS)]
    root.addHandler(capture)
    for name, _ in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        for name, level in saved:
            logging.getLogger(name).setLevel(level)


class StructlogCapture:
    def __init__(self) -> None:
        self.out = io.StringIO()
        self.reprs: list[str] = []

    def keep_repr(self, logger: Any, method: str, event_dict: Any) -> Any:
        self.reprs.append(repr(event_dict))
        return event_dict


@pytest.fixture
def structlog_logs() -> Iterator[StructlogCapture]:
    capture = StructlogCapture()
    previous = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            capture.keep_repr,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.PrintLoggerFactory(capture.out),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    try:
        yield capture
    finally:
        structlog.configure(**previous)


class Raising:
    @hookimpl
    def on_record_cancel_acknowledged(self) -> None:
        raise RuntimeError("a plugin bug while handling an acknowledgement")


def exception_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error) + str(error)


async def test_a_whole_session_with_faults_leaks_no_secret(
    stdlib_logs: Capture, structlog_logs: StructlogCapture
) -> None:
    secrets: set[str] = {PASSWORD, WRONG_PASSWORD, NEW_PASSWORD}
    for password in (PASSWORD, WRONG_PASSWORD, NEW_PASSWORD):
        secrets.add(base64.b64encode(f"{AGENT}:{password}".encode()).decode())
    texts: list[str] = []
    recorder = Recorder()
    pm: pluggy.PluginManager = make_plugin_manager(load_entrypoints=False)
    pm.register(recorder, name="recorder")
    pm.register(Raising(), name="raising")

    async with GWSSimulator(users={AGENT: PASSWORD}, connect_timeout=2.0) as sim:

        def remember(plugin: OutboundPlugin) -> None:
            jar = plugin._session.client.cookies.jar
            secrets.update(c.value for c in jar if c.name == "JSESSIONID" and c.value)
            csrf = plugin._session.csrf_header()
            if csrf is not None:
                secrets.add(csrf[1])
            for session in sim._sessions._sessions.values():
                secrets.update((session.session_id, session.csrf_token))

        async def cancel(plugin: OutboundPlugin, handle: int) -> None:
            request = make_request(sim.device_path(AGENT), handle=handle, phone_number=PHONE)
            ticket = plugin.submit(request)
            texts.append(repr(ticket))
            try:
                await ticket
            except CancelFailed as error:
                texts.append(exception_text(error))
            texts.append(repr(ticket))
            remember(plugin)

        # A wrong password: refused at the start, clearly, without echoing it.
        wrong = fast_config(sim.base_url, password=WRONG_PASSWORD)
        with pytest.raises(GWSAuthenticationError) as refused:
            async with OutboundPlugin(make_plugin_manager(load_entrypoints=False), wrong):
                raise AssertionError("logged in with a wrong password")
        texts.append(exception_text(refused.value))

        # request_timeout also bounds the start's handshake and subscriptions: 0.5 s failed the
        # start once on a loaded machine (everything logged at DEBUG here).
        config = fast_config(sim.base_url, password=PASSWORD, request_timeout=2.0)
        async with OutboundPlugin(pm, config) as plugin:
            remember(plugin)
            texts += [repr(plugin), repr(plugin.config), repr(plugin._session)]
            texts.append(repr(plugin._listener))
            await cancel(plugin, 11)
            sim.expire_sessions()  # session lost between two cancels
            await cancel(plugin, 12)
            sim.rotate_csrf_tokens()
            remember(plugin)
            await cancel(plugin, 13)
            sim.faults.http_error(500)
            await cancel(plugin, 14)
            sim.faults.status_code(3)
            await cancel(plugin, 15)
            sim.faults.reset_connection()
            await cancel(plugin, 16)
            sim.faults.slow_answer(2.3)  # past request_timeout: the read timeout's path
            await cancel(plugin, 17)  # acknowledged over CometD before GWS answers its POST
            await anyio.sleep(2.1)  # until that POST's read timeout
            sim.faults.ocs_error()
            await cancel(plugin, 18)
            sim.faults.drop_notifications("both")
            await cancel(plugin, 19)
            sim.forget_cometd_clients()  # 402, re-handshake (the handshake may set a cookie)
            await plugin.wait_connected(timeout=5)
            await anyio.sleep(0.3)
            remember(plugin)
            await cancel(plugin, 20)
            sim.set_password(AGENT, NEW_PASSWORD)  # every request and re-login get 401
            await cancel(plugin, 21)
            remember(plugin)
            texts += [repr(plugin), repr(plugin._session), str(plugin.stats)]
        texts += [repr(plugin), repr(plugin._session)]

    texts += [repr(call.payload) for call in recorder.calls]
    texts += [str(call.payload) for call in recorder.calls]
    hooks = {call.hook for call in recorder.calls}
    assert hooks == {"on_record_cancel_acknowledged", "on_cancel_failed", "on_user_event"}
    reasons = {failure.reason.value for failure in recorder.failures}
    assert {"rejected", "ocs_error", "timed_out", "authentication_failed"} <= reasons

    structlog_text = structlog_logs.out.getvalue()
    everything = {
        "structlog output": structlog_text,
        "structlog event dicts": "\n".join(structlog_logs.reprs),
        "standard logging": "\n".join(stdlib_logs.lines),
        "reprs and exceptions": "\n".join(texts),
    }
    # The capture really saw the libraries' DEBUG logs and the plugin's tracebacks.
    assert {"httpx", "httpcore.http11", "aiocometd_noloop.transports.base"} <= stdlib_logs.names
    assert "plugin_hook_failed" in structlog_text and "Traceback" in structlog_text
    assert "receive_response_headers.complete" in everything["standard logging"]
    assert len(secrets) > 8
    leaks = [
        (where, secret[:4] + "...")
        for where, text in everything.items()
        for secret in secrets
        if secret in text
    ]
    assert leaks == []
    assert PHONE not in structlog_text and PHONE not in everything["structlog event dicts"]
    # The phone number did travel (in the request bodies): the check is not vacuous. (The
    # user events carry OCS's own number for the record, from its record store.)
    assert any(
        isinstance(r.body, dict) and r.body.get("phoneNumber") == PHONE for r in sim.cancels
    )


async def test_exceptions_and_reprs_never_carry_the_password(
    sim: GWSSimulator, pm: pluggy.PluginManager
) -> None:
    config = fast_config(sim.base_url, password=WRONG_PASSWORD)
    assert WRONG_PASSWORD not in repr(config)
    plugin = OutboundPlugin(pm, config)
    with pytest.raises(GWSOutboundError) as info:
        async with plugin:
            raise AssertionError("logged in with a wrong password")
    token = base64.b64encode(f"{AGENT}:{WRONG_PASSWORD}".encode()).decode()
    for text in (exception_text(info.value), repr(plugin), repr(plugin._session)):
        assert WRONG_PASSWORD not in text and token not in text
    ticket_text = repr(CancelTicket(make_request(sim.device_path(AGENT))))
    assert WRONG_PASSWORD not in ticket_text
