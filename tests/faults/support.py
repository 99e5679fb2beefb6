"""Helpers of the fault tests: outcome assertions, log capture and simulator controls that the
simulator's public fault API does not offer (each reaches into the simulator instance of
one test and is undone with it)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from gws_outbound_plugin import CancelRequest
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.matrix import ACK, FAILED, Row
from tests.helpers import Recorder

OUTCOME_HOOKS = (ACK, FAILED)


def outcome_calls(recorder: Recorder) -> list[Any]:
    return [call for call in recorder.calls if call.hook in OUTCOME_HOOKS]


def assert_outcome(
    recorder: Recorder,
    request: CancelRequest,
    row: Row,
) -> Any:
    """Exactly one outcome hook call for ``request``: the row's hook, with its reason."""
    calls = recorder.outcomes_for(request.reference_id)
    assert [call.hook for call in calls] == [row.hook], (row.id, calls)
    payload = calls[0].payload
    if row.reason is not None:
        assert payload.reason.value == row.reason, (row.id, payload)
    return payload


def assert_nothing_else(
    recorder: Recorder,
    requests: list[CancelRequest],
    *,
    user_events: int,
) -> None:
    """No outcome hook call beyond one per listed request, and ``user_events`` user events."""
    ours = {request.reference_id for request in requests}
    outcomes = outcome_calls(recorder)
    strays = [
        call
        for call in outcomes
        if call.payload.request is None or call.payload.request.reference_id not in ours
    ]
    assert strays == [], strays
    per_request = [call.payload.request.reference_id for call in outcomes]
    assert sorted(per_request) == sorted(ours), outcomes
    assert len(recorder.user_events) == user_events, recorder.user_events


@contextlib.contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event emitted inside the block, as event dicts."""
    with structlog.testing.capture_logs() as events:
        yield events


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == name]


def refused_port() -> int:
    """A loopback port on which nothing listens (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def answer_cancels_with(
    monkeypatch: pytest.MonkeyPatch,
    sim: GWSSimulator,
    answer: Callable[[], web.Response],
    count: int = 1,
) -> list[int]:
    """Answer the next ``count`` cancels with ``answer()`` instead of processing them.

    The simulator's ``http_error`` fault only makes 5xx answers; this covers the 401 and the
    CSRF 403 GWS gives to a live session. Returns a list that counts the replaced answers.
    """
    replaced: list[int] = []
    original = sim._outbound_answer

    def patched(request: web.Request, http_error: int | None) -> web.Response:
        if len(replaced) < count:
            replaced.append(1)
            return answer()
        return original(request, http_error)

    monkeypatch.setattr(sim, "_outbound_answer", patched)
    return replaced


def unauthorized(sim: GWSSimulator) -> Callable[[], web.Response]:
    """The simulator's own 401 answer (``statusCode`` 20, ``WWW-Authenticate``)."""
    return lambda: sim._unauthorized(wrong=False)


def csrf_refused() -> web.Response:
    """GWS's answer to a missing or invalid CSRF token."""
    return web.Response(status=403, text="Missing or invalid Csrf token", content_type="text/plain")


def rotate_csrf_tokens(sim: GWSSimulator) -> int:
    """Give every live simulator session a new CSRF token; return how many there were."""
    sessions = list(sim._sessions._sessions.values())
    for session in sessions:
        session.csrf_token = str(uuid.uuid4())
    return len(sessions)


def change_password(sim: GWSSimulator, user: str, password: str) -> None:
    """The simulated GWS now accepts only ``password`` for ``user``."""
    sim._users[user] = dataclasses.replace(sim._users[user], password=password)


def advise_shorter_long_polls(monkeypatch: pytest.MonkeyPatch, sim: GWSSimulator, ms: int) -> None:
    """Make the Bayeux server advise a ``timeout`` of ``ms`` while it keeps holding connects
    for its full ``connect_timeout``: every long poll then outlives the client's timeout."""
    bayeux = sim._bayeux
    advice = bayeux._advice
    monkeypatch.setattr(bayeux, "_advice", lambda: {**advice(), "timeout": ms})
