"""What the simulator records: the HTTP requests it received and the messages it published.

Secrets never enter a record: no password, no ``Authorization`` header, no cookie value,
no CSRF token value. JSON bodies are recorded as sent except that values under keys that
look secret (``password``, ``token``, ``authorization``, ``authentication``, ``secret``,
``credential``, ``cookie``) are replaced by ``"***"``; so are such query parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "HandledOperation",
    "OCSVerdict",
    "PublishedMessage",
    "RecordedRequest",
    "decode_body",
    "redact",
    "redact_query",
]

_SECRET_MARKERS = (
    "password",
    "token",
    "authorization",
    "authentication",
    "secret",
    "credential",
    "cookie",
)
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request the simulator received (REST or Bayeux), without secrets.

    :param method: HTTP method.
    :param path: URL path (no query string).
    :param query: Query parameters (the last value wins for repeated keys; secret-looking
        ones redacted).
    :param body: The body parsed as JSON; the raw text when it is not JSON; ``None`` when
        empty. Secret-looking keys are redacted.
    :param had_session_cookie: A ``JSESSIONID`` cookie naming a live GWS session was sent
        (checked when the request arrived, before an ``expire_session`` fault).
    :param had_csrf_token: The CSRF token of that session was sent in ``X-CSRF-TOKEN``.
    :param had_basic_auth: An ``Authorization: Basic`` header was sent (valid or not).
    :param username: The GWS user the request was authenticated as (by Basic credentials,
        session cookie or, for Bayeux messages, the CometD client), else ``None``.
    :param status: HTTP status answered; 0 while the request is still in progress (a held
        ``/meta/connect``) or when the connection was closed without an answer.
    :param bayeux_channels: Channels of the Bayeux messages in the POST, in order.
    :param time: ``time.monotonic()`` when the request arrived.
    :param duration_ms: Milliseconds from arrival to answer (0 while in progress).
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    had_session_cookie: bool = False
    had_csrf_token: bool = False
    had_basic_auth: bool = False
    username: str | None = None
    status: int = 0
    bayeux_channels: tuple[str, ...] = ()
    time: float = 0.0
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    """One CometD message the simulator published.

    :param channel: The channel, e.g. ``/v2/me/outbound``.
    :param data: The message's ``data`` object (a copy: changing it changes nothing).
    :param username: The GWS user it was published for.
    :param recipients: How many CometD clients of that user were subscribed and got it.
    :param time: ``time.monotonic()`` when it was published.
    """

    channel: str
    data: dict[str, Any]
    username: str
    recipients: int
    time: float


class OCSVerdict(NamedTuple):
    """What OCS did with an operation GWS passed on: ``"acted"``, ``"refused"`` (its error
    user event; ``number`` is its ``GSW_ERROR_NUMBER``) or ``"error_message"`` (the back end
    refused with a CometD ``ErrorMessage``; ``number`` is its ``errorCode``)."""

    kind: Literal["acted", "refused", "error_message"]
    number: int | None = None


@dataclass(frozen=True, slots=True)
class HandledOperation:
    """One outbound operation POST the simulator received, and what GWS and OCS did with it:
    the server's side of the story, to judge a client's outcomes against.

    Recorded once GWS's answer is decided (before a ``slow_answer`` delay), whatever the
    answer: refused before authentication, invalid, a fault's refusal, or accepted.

    :param reference_id: The body's ``referenceId`` (an integer as its decimal string;
        ``None`` when absent or of another type).
    :param operation: The body's ``operationName`` (``None`` when it names none).
    :param path: URL path of the POST.
    :param record_handle: The record the operation named (its handle in the path, also when
        GWS refused the POST; ``None`` for campaign and by-phone-number operations).
    :param username: The GWS user it was processed for (``None`` when it was not processed).
    :param received: ``time.monotonic()`` when the POST arrived.
    :param http_status: HTTP status answered (0: the connection was closed without one).
    :param status_code: GWS ``statusCode`` in the answer (0: accepted); ``None`` when the answer
        carried none (a bare 5xx, a CSRF 403, no answer).
    :param ocs: What OCS did with it (:class:`OCSVerdict`); ``None`` when GWS did not pass it
        on (refused, invalid, not answered).
    :param answer_delay: Seconds the answer was held back after that (the ``slow_answer``
        fault), else 0: a client whose read timeout is shorter never hears it.
    """

    reference_id: str | None
    operation: str | None
    path: str
    record_handle: int | None
    username: str | None
    received: float
    http_status: int
    status_code: int | None
    ocs: OCSVerdict | None
    answer_delay: float = 0.0


def _looks_secret(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def redact(value: Any) -> Any:
    """A copy of decoded JSON with the values of secret-looking keys replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and _looks_secret(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def redact_query(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters as a dict (the last value wins), secret-looking ones redacted."""
    return {key: REDACTED if _looks_secret(key) else value for key, value in query}


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A request body: ``is_json`` tells whether ``value`` came from valid JSON."""

    is_json: bool
    value: Any
    raw_text: str


def decode_body(raw: bytes) -> DecodedBody:
    """Decode a request body as JSON when possible."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return DecodedBody(is_json=False, value=None, raw_text=text)
    try:
        return DecodedBody(is_json=True, value=json.loads(text), raw_text=text)
    except (ValueError, RecursionError):
        return DecodedBody(is_json=False, value=None, raw_text=text)
