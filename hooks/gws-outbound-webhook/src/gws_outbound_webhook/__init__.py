"""gws_outbound_webhook: POST the acknowledgements of outbound operations to a webhook.

A ``gws_outbound`` plugin. Installed, it is found under the ``gws_outbound`` entry-point
group as ``webhook`` and configured from the environment:

``GWS_OUTBOUND_WEBHOOK_URL``
    The ``http://`` or ``https://`` URL to POST to. Unset: the plugin is installed but sends
    nothing; it says so once at INFO level (quiet by default) and ``gws-outbound plugins``
    lists it as not configured.
``GWS_OUTBOUND_WEBHOOK_TOKEN``
    Sent as ``Authorization: Bearer <token>`` (never logged).
``GWS_OUTBOUND_WEBHOOK_FAILURES``
    ``1`` to forward failures too (``on_cancel_failed``, ``on_operation_failed``).

Every operation's acknowledgement is forwarded: a cancel's as ``"event":
"record_cancel_acknowledged"``, any other's as ``"operation_acknowledged"`` with
``"operation"`` (its ``operationName``); failures as ``"cancel_failed"`` /
``"operation_failed"``. A cancel's outcome also fires the ``on_operation_*`` hooks: it is
sent once.
``GWS_OUTBOUND_WEBHOOK_PHONE_NUMBERS``
    ``1`` to include phone numbers (off by default: personal data).
``GWS_OUTBOUND_WEBHOOK_QUEUE_SIZE`` (1000), ``GWS_OUTBOUND_WEBHOOK_RETRIES`` (3),
``GWS_OUTBOUND_WEBHOOK_TIMEOUT`` (5 seconds per attempt)

The hooks put the event on a bounded queue and return at once; a sender task, started on the
plugin core's event loop with the first event, POSTs them one at a time, in order, retrying
connection errors, timeouts, HTTP 429 and 5xx with exponential backoff (honouring
``Retry-After``). Each event has a ``delivery_id``, also sent as the ``Idempotency-Key``
header, identical across retries. When the queue is full the event is dropped and logged
(``webhook_queue_full``).

Shut down with ``await forwarder.aclose()`` (sends what is queued, bounded by a timeout); the
entry-point instance is ``gws_outbound_webhook.plugin`` (or ``pm.get_plugin("webhook")``).
Runs on asyncio, like the plugin core.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import email.utils
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from gws_outbound_plugin import (
    CancelFailure,
    OperationAck,
    OperationFailure,
    RecordCancelAck,
    RetryPolicy,
    get_logger,
    hookimpl,
    to_jsonable,
)

__all__ = [
    "ENV_FAILURES",
    "ENV_PHONE_NUMBERS",
    "ENV_QUEUE_SIZE",
    "ENV_RETRIES",
    "ENV_TIMEOUT",
    "ENV_TOKEN",
    "ENV_URL",
    "WebhookForwarder",
    "plugin",
]

__version__ = "0.1.0"

# Quiet below WARNING unless the host configured logging (see gws_outbound_plugin.get_logger).
logger = get_logger(__name__)

ENV_URL: Final = "GWS_OUTBOUND_WEBHOOK_URL"
ENV_TOKEN: Final = "GWS_OUTBOUND_WEBHOOK_TOKEN"
ENV_FAILURES: Final = "GWS_OUTBOUND_WEBHOOK_FAILURES"
ENV_PHONE_NUMBERS: Final = "GWS_OUTBOUND_WEBHOOK_PHONE_NUMBERS"
ENV_QUEUE_SIZE: Final = "GWS_OUTBOUND_WEBHOOK_QUEUE_SIZE"
ENV_RETRIES: Final = "GWS_OUTBOUND_WEBHOOK_RETRIES"
ENV_TIMEOUT: Final = "GWS_OUTBOUND_WEBHOOK_TIMEOUT"


#: Every variable of this plugin: one under its prefix that is none of them is a mistake.
_SETTINGS: Final = (
    ENV_URL,
    ENV_TOKEN,
    ENV_FAILURES,
    ENV_PHONE_NUMBERS,
    ENV_QUEUE_SIZE,
    ENV_RETRIES,
    ENV_TIMEOUT,
)


def _refuse_unknown_settings(environ: Mapping[str, str]) -> None:
    """A ``GWS_OUTBOUND_WEBHOOK_*`` variable that is no setting (a misspelt one) would be
    ignored without a word: refuse it, with the setting meant."""
    problems = []
    others: tuple[str, ...] | None = None
    for name in sorted(environ):
        if not name.startswith("GWS_OUTBOUND_WEBHOOK_") or name in _SETTINGS:
            continue
        if others is None:
            others = _longer_prefixes()
        if name.startswith(others):
            continue  # another plugin's (see _longer_prefixes)
        close = difflib.get_close_matches(name, _SETTINGS, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "its settings are " + ", ".join(_SETTINGS)
        problems.append(f"{name} is not a setting of the webhook plugin ({hint})")
    if problems:
        raise ValueError("; ".join(problems))


def _longer_prefixes() -> tuple[str, ...]:
    """The variable prefixes of the other installed plugins that start with this one's: a
    plugin announced as ``webhook_teams`` (or ``webhook-teams``) reads
    ``GWS_OUTBOUND_WEBHOOK_TEAMS_*``, which are its settings, not misspelt ones of this one."""
    from importlib.metadata import entry_points

    prefixes = []
    for entry in entry_points(group="gws_outbound"):
        prefix = "GWS_OUTBOUND_" + "".join(c if c.isalnum() else "_" for c in entry.name).upper()
        if prefix.startswith("GWS_OUTBOUND_WEBHOOK_"):
            prefixes.append(prefix + "_")
    return tuple(prefixes)


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
_USER_AGENT: Final = f"gws-outbound-webhook/{__version__}"


@dataclass(frozen=True, slots=True)
class _Delivery:
    delivery_id: str
    body: dict[str, Any]


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be 1/0, true/false, yes/no or on/off")


def _number(environ: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}/..."


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


class WebhookForwarder:
    """The webhook plugin: register an instance in a ``gws_outbound`` plugin manager.

    :param url: where to POST, or ``None`` for a forwarder that sends nothing (what the entry
        point registers when ``GWS_OUTBOUND_WEBHOOK_URL`` is unset).
    :param token: bearer token for the ``Authorization`` header.
    :param forward_failures: POST failed cancels too, not only acknowledgements.
    :param include_phone_number: add ``phone_number`` to the body (off: personal data).
    :param queue_size: events waiting to be sent at most; more are dropped and logged.
    :param retries: further attempts after a retryable failure.
    :param backoff: first retry delay in seconds, doubled per attempt (with jitter).
    :param max_backoff: longest delay between two attempts, ``Retry-After`` included.
    :param timeout: timeout of one attempt, in seconds.
    :param transport: an httpx transport (a proxy, mTLS, ...); default: httpx's.
    :raises ValueError: invalid URL or numbers.
    """

    def __init__(
        self,
        url: str | None,
        *,
        token: str | None = None,
        forward_failures: bool = False,
        include_phone_number: bool = False,
        queue_size: int = 1000,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if url is not None:
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL as error:
                raise ValueError(f"invalid webhook URL: {error}") from None
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise ValueError("the webhook URL must be an http:// or https:// URL with a host")
            if parsed.userinfo:
                raise ValueError("the webhook URL must not carry credentials (use the token)")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        if not (backoff >= 0 and max_backoff >= 0 and timeout > 0):
            raise ValueError("backoff and max_backoff must be >= 0, timeout > 0")
        self.url = url
        # URLs of webhooks often carry a secret in their path: logs show only where they go.
        self._safe_url = None if url is None else _origin(url)
        self._token = token
        self.forward_failures = forward_failures
        self.include_phone_number = include_phone_number
        self.queue_size = queue_size
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retry_policy = RetryPolicy(
            retries=retries,
            first_delay=min(backoff, max_backoff),
            max_delay=max_backoff,
            jitter=0.5,
        )
        """The waits between attempts: ``backoff`` doubled per attempt, drawn from the upper
        half (jitter), at most ``max_backoff``; built from the plugin core's public policy."""
        self.timeout = timeout
        self._transport = transport
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send: MemoryObjectSendStream[_Delivery] | None = None
        self._task: asyncio.Task[None] | None = None
        self._outstanding = 0
        self._idle: list[asyncio.Future[None]] = []
        self._closed = False
        self._warned_disabled = False
        self.delivered = 0
        """Events the webhook accepted (HTTP 2xx)."""
        self.failed = 0
        """Events given up on: refused (4xx other than 429) or out of retries."""
        self.dropped = 0
        """Events never sent: queue full, forwarder closed, or still queued at shutdown."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookForwarder:
        """A forwarder configured from ``GWS_OUTBOUND_WEBHOOK_*`` (see the module docstring)."""
        env = os.environ if environ is None else environ
        _refuse_unknown_settings(env)
        options: dict[str, Any] = {
            "token": env.get(ENV_TOKEN, "").strip() or None,
            "forward_failures": _flag(env, ENV_FAILURES),
            "include_phone_number": _flag(env, ENV_PHONE_NUMBERS),
        }
        for name, key, kind in (
            ("queue_size", ENV_QUEUE_SIZE, int),
            ("retries", ENV_RETRIES, int),
            ("timeout", ENV_TIMEOUT, float),
        ):
            value = _number(env, key, kind)
            if value is not None:
                options[name] = value
        return cls(env.get(ENV_URL, "").strip() or None, **options)

    def __repr__(self) -> str:
        where = "disabled" if self._safe_url is None else self._safe_url
        return (
            f"<WebhookForwarder {where} delivered={self.delivered} failed={self.failed} "
            f"dropped={self.dropped} queued={self._outstanding}>"
        )

    @property
    def enabled(self) -> bool:
        """Whether the forwarder sends anywhere."""
        return self.url is not None

    @property
    def setup_hint(self) -> str | None:
        """What to set when the forwarder is not configured (``gws-outbound plugins``)."""
        return None if self.enabled else f"set {ENV_URL} to a URL"

    @property
    def outstanding(self) -> int:
        """Events queued or being sent."""
        return self._outstanding

    # -- hooks: called on the plugin core's event loop; they only enqueue ---------------------

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        body: dict[str, Any] = {
            "event": "record_cancel_acknowledged",
            "reference_id": ack.reference_id,
            "record_handle": ack.record_handle,
            "application_id": ack.application_id,
            "campaign_name": ack.campaign_name,
            "calling_list": ack.calling_list,
            "chain_attribute": None if ack.chain_attribute is None else ack.chain_attribute.value,
            "device_id": ack.device_id,
            "requested_here": ack.request is not None,
        }
        if self.include_phone_number:
            body["phone_number"] = ack.phone_number
        self._enqueue(body)

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        if not self.forward_failures:
            return
        request = failure.request
        body: dict[str, Any] = {
            "event": "cancel_failed",
            "reference_id": request.reference_id,
            "record_handle": request.record_handle,
            "application_id": request.application_id,
            "campaign_name": request.campaign_name,
            "calling_list": request.calling_list,
            "chain_attribute": (
                None if request.chain_attribute is None else request.chain_attribute.value
            ),
            "device_id": request.device_id,
            "reason": failure.reason.value,
            "status_code": failure.status_code,
            "error_number": failure.error_number,
            "message": failure.message,
        }
        if self.include_phone_number:
            body["phone_number"] = request.phone_number
        self._enqueue(body)

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        if ack.operation == "CancelRecord":
            return  # sent by on_record_cancel_acknowledged
        body: dict[str, Any] = {
            "event": "operation_acknowledged",
            "operation": ack.operation,
            "requested_here": ack.request is not None,
        }
        if ack.request is not None:
            body.update(self._request_fields(ack.request))
        body["reference_id"] = ack.reference_id
        body["record_handle"] = ack.record_handle
        if ack.operation == "GetPreviewRecord":
            body["empty"] = ack.empty
        self._enqueue(body)

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        if not self.forward_failures or failure.operation == "CancelRecord":
            return
        body: dict[str, Any] = {
            "event": "operation_failed",
            "operation": failure.operation,
            **self._request_fields(failure.request),
            "reason": failure.reason.value,
            "status_code": failure.status_code,
            "error_number": failure.error_number,
            "message": failure.message,
        }
        self._enqueue(body)

    def _request_fields(self, request: Any) -> dict[str, Any]:
        fields = {
            key: value
            for key, value in to_jsonable(request).items()
            if value is not None and key != "other_fields"
        }
        if not self.include_phone_number:
            fields.pop("phone_number", None)
        return fields

    # -- flushing and closing -------------------------------------------------------------------

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event is sent or given up on; False if ``timeout`` ran out.

        Call it on the event loop the hooks run on.
        """
        if self._outstanding == 0:
            return True
        self._require_own_loop("flush")
        idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.append(idle)
        try:
            with anyio.move_on_after(timeout):
                await idle
        finally:
            if idle in self._idle:
                self._idle.remove(idle)
        return self._outstanding == 0

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop. Idempotent.

        Events still queued after the timeout are dropped and logged; events arriving after
        the close are dropped and logged.
        """
        if self._closed:
            return
        self._closed = True
        task, send = self._task, self._send
        if task is None or send is None:
            return
        self._require_own_loop("aclose")
        send.close()  # the sender ends once it has taken every queued event
        with anyio.CancelScope(shield=True):
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                await asyncio.wait({task})

    def _require_own_loop(self, what: str) -> None:
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError(f"call {what}() on the event loop the hooks are called on")

    # -- the sender ---------------------------------------------------------------------------

    def _enqueue(self, body: dict[str, Any]) -> None:
        if self.url is None:
            if not self._warned_disabled:
                self._warned_disabled = True
                # Quiet by default: an installed but unconfigured plugin is not a problem.
                logger.info("webhook_disabled", hint=f"set {ENV_URL} to a URL")
            return
        if self._closed:
            self._drop("closed", body)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._drop("no_event_loop", body)
            return
        send = self._ensure_sender(loop)
        if send is None:
            self._drop("sender_on_another_loop", body)
            return
        delivery_id = uuid.uuid4().hex
        body = {
            **body,
            "delivery_id": delivery_id,
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        try:
            send.send_nowait(_Delivery(delivery_id, body))
        except anyio.WouldBlock:
            self._drop("queue_full", body)
            return
        self._outstanding += 1

    def _drop(self, why: str, body: Mapping[str, Any]) -> None:
        self.dropped += 1
        logger.warning(
            "webhook_queue_full" if why == "queue_full" else "webhook_event_dropped",
            reason=why,
            webhook_event=body.get("event"),
            reference_id=body.get("reference_id"),
            dropped=self.dropped,
        )

    def _ensure_sender(
        self, loop: asyncio.AbstractEventLoop
    ) -> MemoryObjectSendStream[_Delivery] | None:
        if self._task is not None and not self._task.done():
            if self._loop is loop:
                return self._send
            return None
        # First event, or the previous loop is gone (its sender ended with it): start anew.
        send, receive = anyio.create_memory_object_stream[_Delivery](self.queue_size)
        self._send, self._loop, self._outstanding = send, loop, 0
        self._task = loop.create_task(self._run(receive), name="gws-outbound-webhook-sender")
        return send

    async def _run(self, receive: MemoryObjectReceiveStream[_Delivery]) -> None:
        headers = {"User-Agent": _USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            async with (
                receive,
                httpx.AsyncClient(
                    headers=headers,
                    timeout=self.timeout,
                    transport=self._transport,
                    follow_redirects=False,
                ) as client,
            ):
                async for delivery in receive:
                    await self._deliver(client, delivery)
                    self._done_one()
        except Exception:
            logger.exception("webhook_sender_crashed")
        finally:
            # Cancelled (shutdown) or crashed: what is still outstanding was never sent.
            left = self._outstanding
            if left:
                self.dropped += left
                self._outstanding = 0
                logger.warning("webhook_events_dropped_at_shutdown", count=left)
            self._wake_idle()

    def _done_one(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._wake_idle()

    def _wake_idle(self) -> None:
        idle, self._idle = self._idle, []
        for future in idle:
            if not future.done():
                future.set_result(None)

    async def _deliver(self, client: httpx.AsyncClient, delivery: _Delivery) -> None:
        assert self.url is not None
        url = self.url
        log = logger.bind(
            delivery_id=delivery.delivery_id,
            reference_id=delivery.body.get("reference_id"),
            webhook_event=delivery.body.get("event"),
        )
        attempts = 0

        async def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            try:
                response = await client.post(
                    url, json=delivery.body, headers={"Idempotency-Key": delivery.delivery_id}
                )
            except httpx.HTTPError as error:
                text = str(error).replace(url, self._safe_url or "")
                raise _Retryable(f"{type(error).__name__}: {text}"[:300]) from None
            if response.is_success:
                return response
            if response.status_code != 429 and response.status_code < 500:
                raise _Refused(response.status_code)
            raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))

        def on_retry(error: Exception, number: int, delay: float) -> float | None:
            asked = error.retry_after if isinstance(error, _Retryable) else None
            wait = delay if asked is None else min(asked, self.retry_policy.max_delay)
            log.warning("webhook_retrying", attempt=number, delay=round(wait, 3), error=str(error))
            return asked

        try:
            response = await self.retry_policy.retrying(
                attempt, retry_if=lambda error: isinstance(error, _Retryable), on_retry=on_retry
            )
        except _Refused as refused:
            self.failed += 1
            log.error("webhook_rejected", status=refused.status, target=self._safe_url)
            return
        except _Retryable as error:
            self.failed += 1
            log.error(
                "webhook_delivery_failed",
                attempts=attempts,
                error=str(error),
                target=self._safe_url,
            )
            return
        self.delivered += 1
        log.debug("webhook_delivered", status=response.status_code, attempt=attempts)


class _Retryable(Exception):
    """A failed attempt worth another (connection error, timeout, HTTP 429 or 5xx)."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


class _Refused(Exception):
    """The webhook refused the event (a 4xx other than 429): not retried."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


plugin: WebhookForwarder = WebhookForwarder.from_env()
"""The instance the ``webhook`` entry point registers, configured from the environment."""
