"""Fault injection controls of the simulator (``sim.faults``).

Every control arms a rule that applies to the next ``count`` matching events
(``count=None``: until :meth:`Faults.clear`). Rules of the same kind queue up first in,
first out: ``delay_notifications(1); delay_notifications(2)`` delays the next operation's
outcome by one second and the one after by two.

There are three stages, checked in this order for each ``POST`` to an outbound resource
(``/api/v2/me/outbound-records[/<handle>]``, ``/api/v2/me/outbound-campaigns/<name>``):

1. request stage (any such POST, before authentication): ``reset_connection``,
   ``slow_answer``, ``expire_session``, then one refusal: ``http_error``, ``unauthorized``
   or ``csrf_reject`` (whichever of them was armed first);
2. answer stage (an operation that passed authentication and validation): ``status_code``;
3. outcome stage (an accepted operation): ``cometd_error`` or else ``ocs_error``,
   ``delay_notifications``, ``drop_notifications``, ``duplicate_notifications``,
   ``reverse_notifications``, ``echo_reference_ids``, ``mislabel_notifications``;
   ``hold_notifications`` parks every outcome until
   ``release_notifications``.

Every rule of these three stages may be limited to one operation (``operation=
"RejectRecord"``): it then applies only to POSTs whose body names that ``operationName``
and leaves the others alone. Without ``operation`` it applies to every operation.

Five controls act on CometD instead: ``hold_connects`` lengthens the next ``/meta/connect``
holds beyond the advice the server sends; ``refuse_connects`` and ``refuse_handshakes``
answer the next connects or handshakes with ``successful: false``; ``forget_on_subscribe``
forgets the client that sends the next ``/meta/subscribe`` (``402::Unknown client``), as a
GWS node that drops a client between its handshake and its subscriptions;
``advise_connects`` changes the advice of the next successful ``/meta/connect`` replies
(``interval``, ``reconnect``, ``timeout``).

Armed rules, and holding, are state of this object: they survive the simulator's
``stop()`` / ``restart()``; only outcomes parked by ``hold_notifications`` are lost there.

The controls are plain methods meant to be called on the event loop thread that runs the
simulator (from a test, a fixture or the admin endpoint); they are not locked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Literal, TypeVar, cast

from ._outbound import OPERATIONS, OUTBOUND_CHANNEL

__all__ = ["ADMIN_FAULTS", "ARMABLE_FAULTS", "Faults"]

DropWhich = Literal["both", "outbound", "user_event"]
_DROP_CHOICES: tuple[str, ...] = ("both", "outbound", "user_event")


class _Control:
    """A fault's arguments; :meth:`describe` shows them as the call of the control that armed
    them, e.g. ``slow_answer(seconds=2)`` (seconds with ``:g``, the rest with ``repr``)."""

    __slots__ = ()
    control: ClassVar[str]

    def _shown(self, name: str, value: object, default: object) -> bool:
        """Whether :meth:`describe` shows a field (not when it has its default)."""
        return default is MISSING or value != default

    def describe(self) -> str:
        shown = ", ".join(
            f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value!r}"
            for f in fields(cast(Any, self))
            if self._shown(f.name, value := getattr(self, f.name), f.default)
        )
        return f"{self.control}({shown})"


@dataclass(frozen=True, slots=True)
class ResetConnection(_Control):
    control: ClassVar[str] = "reset_connection"


@dataclass(frozen=True, slots=True)
class SlowAnswer(_Control):
    control: ClassVar[str] = "slow_answer"
    seconds: float


@dataclass(frozen=True, slots=True)
class ExpireSession(_Control):
    control: ClassVar[str] = "expire_session"


#: The GWS answer of an HTTP 503: a back end (here: voice) is down (GWS "Error Handling").
SERVICE_UNAVAILABLE_BODY = {
    "statusCode": 4,
    "statusMessage": "Voice service is not available at this time",
}


def _default_gws_body(status: int) -> bool:
    return status in (500, 503)


@dataclass(frozen=True, slots=True)
class HTTPError(_Control):
    control: ClassVar[str] = "http_error"
    status: int
    gws_body: bool

    def _shown(self, name: str, value: object, default: object) -> bool:
        return name != "gws_body" or value != _default_gws_body(self.status)


@dataclass(frozen=True, slots=True)
class Unauthorized(_Control):
    control: ClassVar[str] = "unauthorized"


@dataclass(frozen=True, slots=True)
class CSRFReject(_Control):
    control: ClassVar[str] = "csrf_reject"


@dataclass(frozen=True, slots=True)
class HoldConnects(_Control):
    control: ClassVar[str] = "hold_connects"
    seconds: float


@dataclass(frozen=True, slots=True)
class AdviseConnects(_Control):
    control: ClassVar[str] = "advise_connects"
    interval: float | None = None
    reconnect: str | None = None
    timeout: float | None = None


_RECONNECT_ADVICE: tuple[str, ...] = ("retry", "handshake", "none")


@dataclass(frozen=True, slots=True)
class RefuseConnects(_Control):
    control: ClassVar[str] = "refuse_connects"
    error: str = "500::Internal error"
    reconnect: str | None = "retry"


@dataclass(frozen=True, slots=True)
class RefuseHandshakes(_Control):
    control: ClassVar[str] = "refuse_handshakes"
    error: str = "403::Handshake denied"
    reconnect: str | None = "handshake"


@dataclass(frozen=True, slots=True)
class ForgetOnSubscribe(_Control):
    control: ClassVar[str] = "forget_on_subscribe"
    channel: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class StatusCode(_Control):
    control: ClassVar[str] = "status_code"
    code: int
    message: str | None


@dataclass(frozen=True, slots=True)
class OCSErrorFault(_Control):
    control: ClassVar[str] = "ocs_error"
    number: int
    message: str


@dataclass(frozen=True, slots=True)
class CometDError(_Control):
    control: ClassVar[str] = "cometd_error"
    code: int
    message: str
    channel: str


@dataclass(frozen=True, slots=True)
class DelayNotifications(_Control):
    control: ClassVar[str] = "delay_notifications"
    seconds: float


@dataclass(frozen=True, slots=True)
class DropNotifications(_Control):
    control: ClassVar[str] = "drop_notifications"
    which: str


@dataclass(frozen=True, slots=True)
class DuplicateNotifications(_Control):
    control: ClassVar[str] = "duplicate_notifications"
    times: int
    regenerate: bool = False


@dataclass(frozen=True, slots=True)
class ReverseNotifications(_Control):
    control: ClassVar[str] = "reverse_notifications"


@dataclass(frozen=True, slots=True)
class EchoReferenceIds(_Control):
    control: ClassVar[str] = "echo_reference_ids"


@dataclass(frozen=True, slots=True)
class MislabelNotifications(_Control):
    control: ClassVar[str] = "mislabel_notifications"
    record_handle: int | None = None
    notification_type: str | None = None


FaultSpec = (
    ResetConnection
    | SlowAnswer
    | ExpireSession
    | HTTPError
    | Unauthorized
    | CSRFReject
    | HoldConnects
    | AdviseConnects
    | RefuseConnects
    | RefuseHandshakes
    | ForgetOnSubscribe
    | StatusCode
    | OCSErrorFault
    | CometDError
    | DelayNotifications
    | DropNotifications
    | DuplicateNotifications
    | ReverseNotifications
    | EchoReferenceIds
    | MislabelNotifications
)
_F = TypeVar("_F", bound=FaultSpec)

#: A request-stage fault that answers the POST in place of the simulator.
Refusal = HTTPError | Unauthorized | CSRFReject
_REFUSALS: tuple[type[Refusal], ...] = (HTTPError, Unauthorized, CSRFReject)


@dataclass(slots=True)
class _Rule:
    spec: FaultSpec
    remaining: int | None
    operation: str | None = None

    def describe(self) -> str:
        text = self.spec.describe()
        if self.operation is None:
            return text
        separator = "" if text.endswith("()") else ", "
        return f"{text[:-1]}{separator}operation={self.operation!r})"


@dataclass(frozen=True, slots=True)
class RequestPlan:
    """Request-stage faults taken for one outbound POST."""

    reset: bool = False
    slow_seconds: float = 0.0
    expire_session: bool = False
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class OutcomePlan:
    """Outcome-stage faults taken for one accepted operation."""

    cometd_error: CometDError | None = None
    ocs_error: OCSErrorFault | None = None
    delay: float = 0.0
    drop: str | None = None
    times: int = 1
    regenerate: bool = False
    reverse: bool = False
    echo_reference: bool = False
    mislabel: MislabelNotifications | None = None


class Faults:
    """Fault controls. See the module docstring and ``docs/simulator.md``."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []
        self._holding = False
        self._held: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Faults(active={list(self.active)!r})"

    # ----------------------------------------------------------------- outcome stage
    def delay_notifications(
        self, seconds: float, count: int | None = 1, operation: str | None = None
    ) -> None:
        """Publish the CometD outcome of the next ``count`` accepted operations ``seconds`` late."""
        self._arm(DelayNotifications(_seconds("seconds", seconds)), count, operation)

    def drop_notifications(
        self, which: DropWhich = "both", count: int | None = 1, operation: str | None = None
    ) -> None:
        r"""Never publish the outcome message(s) of the next ``count`` accepted operations.

        :param which: ``"both"`` (every message of the outcome), ``"outbound"`` (those on
            ``/v2/me/outbound``) or ``"user_event"`` (the ``/me/internal``
            ``DeviceUserEventMessage``\ s).
        """
        if which not in _DROP_CHOICES:
            raise ValueError(f"which must be one of {', '.join(_DROP_CHOICES)}, got {which!r}")
        self._arm(DropNotifications(which), count, operation)

    def duplicate_notifications(
        self,
        count: int | None = 1,
        times: int = 2,
        operation: str | None = None,
        *,
        regenerate: bool = False,
    ) -> None:
        """Publish the outcome of the next ``count`` accepted operations ``times`` times over.

        :param regenerate: the copies' user events are built anew, as GWS does when it relays
            an OCS event again: the same ``userData`` with new ``metrics`` (so they are not
            byte-identical to the first).
        """
        if isinstance(times, bool) or not isinstance(times, int) or times < 2:
            raise ValueError(f"times must be an integer >= 2, got {times!r}")
        if not isinstance(regenerate, bool):
            raise ValueError(f"regenerate must be a bool, got {regenerate!r}")
        self._arm(DuplicateNotifications(times, regenerate), count, operation)

    def reverse_notifications(self, count: int | None = 1, operation: str | None = None) -> None:
        """Publish the messages of the next ``count`` outcomes in reverse order.

        For a cancel: the user event before the acknowledgement; for GetChainedRecord the
        end marker comes first.
        """
        self._arm(ReverseNotifications(), count, operation)

    def echo_reference_ids(self, count: int | None = 1, operation: str | None = None) -> None:
        """The user events of the next ``count`` outcomes carry ``GSW_REFERENCE_ID``, the
        request's ``referenceId`` (when one was sent), as an OCS that echoes it in every
        answer (refusals included) would send them."""
        self._arm(EchoReferenceIds(), count, operation)

    def mislabel_notifications(
        self,
        record_handle: int | None = None,
        notification_type: str | None = None,
        count: int | None = 1,
        operation: str | None = None,
    ) -> None:
        """The ``/v2/me/outbound`` messages of the next ``count`` outcomes keep the request's
        ``referenceId`` but name record ``record_handle`` (``record.recordHandle``) and/or
        carry ``notificationType`` ``notification_type`` instead of their own: a GWS that
        puts a referenceId on the wrong message. OCS does what it does; the user events are
        left as they are."""
        if record_handle is None and notification_type is None:
            raise ValueError("give record_handle, notification_type or both")
        if record_handle is not None and (
            isinstance(record_handle, bool) or not isinstance(record_handle, int)
        ):
            raise ValueError(f"record_handle must be an integer, got {record_handle!r}")
        if notification_type is not None and (
            not isinstance(notification_type, str) or not notification_type
        ):
            raise ValueError("notification_type must be a non-empty string")
        self._arm(MislabelNotifications(record_handle, notification_type), count, operation)

    def ocs_error(
        self,
        number: int = 100,
        message: str = "Simulated OCS error",
        count: int | None = 1,
        operation: str | None = None,
    ) -> None:
        """Make OCS refuse the next ``count`` accepted operations with this error.

        The records are left as they were and only the ``/me/internal`` user event is
        published, carrying ``GSW_ERROR`` = ``message`` and ``GSW_ERROR_NUMBER`` = ``number``
        and ``GSW_USER_EVENT`` = the operation's acknowledgement name.
        """
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"number must be an integer, got {number!r}")
        if not isinstance(message, str) or not message:
            raise ValueError("message must be a non-empty string")
        self._arm(OCSErrorFault(number, message), count, operation)

    def cometd_error(
        self,
        code: int = 1,
        message: str = "Simulated back-end error",
        channel: str = OUTBOUND_CHANNEL,
        count: int | None = 1,
        operation: str | None = None,
    ) -> None:
        """Answer the next ``count`` accepted operations with a CometD ``ErrorMessage``.

        Instead of the operation's messages, one message is published on ``channel``:
        ``{"messageType": "ErrorMessage", "referenceId": <the request's>, "errorCode":
        code, "errorMessage": message}`` (``referenceId`` absent when none was sent). The
        records are left as they were. The shape is the GWS Voice API's; that GWS uses it
        for outbound operations is UNCONFIRMED. Takes precedence over :meth:`ocs_error`.
        """
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"code must be an integer, got {code!r}")
        if not isinstance(message, str) or not message:
            raise ValueError("message must be a non-empty string")
        if (
            not isinstance(channel, str)
            or not channel.startswith("/")
            or channel.startswith("/meta/")
            or "*" in channel
        ):
            raise ValueError(
                f"channel must be a non-meta channel without wildcards, got {channel!r}"
            )
        self._arm(CometDError(code, message, channel), count, operation)

    def hold_notifications(self) -> None:
        """Park the outcome of every accepted operation until :meth:`release_notifications`.

        Holding is armed state like the rules: it lasts across the simulator's ``stop()`` /
        ``restart()`` (the outcomes parked so far are lost there, later ones are parked
        again) until :meth:`release_notifications` or :meth:`clear`.
        """
        self._holding = True

    def release_notifications(self) -> None:
        """Stop holding and publish every parked outcome (each after its own delay, if any)."""
        self._holding = False
        held, self._held = self._held, []
        for deliver in held:
            deliver()

    # ------------------------------------------------------------------ answer stage
    def status_code(
        self,
        code: int,
        message: str | None = None,
        count: int | None = 1,
        operation: str | None = None,
    ) -> None:
        """Answer the next ``count`` valid operations with this GWS ``statusCode`` instead of 0.

        The answer is HTTP 200 with ``{"statusCode": code, "statusMessage": message}``
        (GWS's text for the code when ``message`` is ``None``); the records are not touched
        and nothing is published.
        """
        if isinstance(code, bool) or not isinstance(code, int) or code <= 0:
            raise ValueError(f"code must be a positive integer, got {code!r}")
        if message is not None and (not isinstance(message, str) or not message):
            raise ValueError("message must be a non-empty string or None")
        self._arm(StatusCode(code, message), count, operation)

    # ----------------------------------------------------------------- request stage
    def http_error(
        self,
        status: int = 500,
        count: int | None = 1,
        gws_body: bool | None = None,
        operation: str | None = None,
    ) -> None:
        """Answer the next ``count`` outbound POSTs with an HTTP 5xx, unprocessed.

        :param gws_body: answer with a GWS JSON body (``True``) or a bare ``text/plain``
            one (``False``). By default 500 and 503 carry a GWS body, as GWS does: 503
            ``{"statusCode": 4, "statusMessage": "Voice service is not available at this
            time"}``, 500 ``{"statusCode": 4, "statusMessage": "Simulated internal error"}``;
            other codes are bare. A bare 5xx is what a proxy or a crashed node answers.
        """
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise ValueError(f"status must be an HTTP 5xx code, got {status!r}")
        if gws_body is not None and not isinstance(gws_body, bool):
            raise ValueError(f"gws_body must be true, false or None, got {gws_body!r}")
        body = _default_gws_body(status) if gws_body is None else gws_body
        self._arm(HTTPError(status, body), count, operation)

    def unauthorized(self, count: int | None = 1, operation: str | None = None) -> None:
        """Answer the next ``count`` outbound POSTs with HTTP 401, unprocessed.

        The answer is GWS's refusal of credentials: ``WWW-Authenticate: Basic ...`` and
        ``{"statusCode": 20, "statusMessage": "Access denied"}``. The caller's session is
        left alive.
        """
        self._arm(Unauthorized(), count, operation)

    def csrf_reject(self, count: int | None = 1, operation: str | None = None) -> None:
        """Answer the next ``count`` outbound POSTs with the CSRF 403, unprocessed.

        HTTP 403, ``text/plain`` ``Missing or invalid Csrf token`` (also with CSRF off). Unlike
        :meth:`expire_session`, the session and its token stay valid.
        """
        self._arm(CSRFReject(), count, operation)

    def slow_answer(
        self, seconds: float, count: int | None = 1, operation: str | None = None
    ) -> None:
        """Hold the HTTP answer of the next ``count`` outbound POSTs ``seconds`` long.

        The request is processed at once, so its CometD outcome may arrive before the answer.
        """
        self._arm(SlowAnswer(_seconds("seconds", seconds)), count, operation)

    def reset_connection(self, count: int | None = 1, operation: str | None = None) -> None:
        """Close the TCP connection of the next ``count`` outbound POSTs unanswered.

        The request is not processed.
        """
        self._arm(ResetConnection(), count, operation)

    def expire_session(self, count: int | None = 1, operation: str | None = None) -> None:
        """Expire the caller's GWS session just before the next ``count`` outbound POSTs.

        With CSRF on this yields the 403 ``Missing or invalid Csrf token`` answer.
        """
        self._arm(ExpireSession(), count, operation)

    # ------------------------------------------------------------------------ CometD
    def hold_connects(self, seconds: float, count: int | None = 1) -> None:
        """Hold the next ``count`` held ``/meta/connect``s ``seconds`` long.

        A connect the server would hold (not the first after a handshake, not one sent with
        other messages, none with events waiting) is held ``seconds`` instead of
        ``connect_timeout`` or the client's ``advice.timeout``, while the advice sent keeps
        saying ``connect_timeout``: with ``seconds`` beyond it, the client's request timeout
        runs out first. A published message, a newer connect, a disconnect or
        ``forget_cometd_clients()`` still ends the hold early.
        """
        seconds = _seconds("seconds", seconds)
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds!r}")
        self._arm(HoldConnects(seconds), count)

    def advise_connects(
        self,
        interval: float | None = None,
        reconnect: str | None = None,
        count: int | None = 1,
        *,
        timeout: float | None = None,
    ) -> None:
        """Send this advice in the replies of the next ``count`` successful ``/meta/connect``s.

        ``interval`` (how long the client should wait before its next connect) and
        ``timeout`` (how long the server may hold a connect) are in milliseconds, as on the
        wire: any number, ``math.inf`` and ``math.nan`` included, which the simulator writes
        as ``Infinity`` and ``NaN`` (not JSON, but what Python's JSON parser reads: a broken
        or hostile server's advice), or a bool (``True`` is sent as ``true``, which a client
        in Python takes for 1 ms); ``reconnect`` is ``"retry"``, ``"handshake"`` or
        ``"none"``. What is not given keeps the usual advice. A reply answering a connect
        taken over by a newer one, or a disconnected client's, is not changed and does not
        count.
        """
        if interval is None and reconnect is None and timeout is None:
            raise ValueError("give interval or timeout (milliseconds), reconnect, or several")
        interval = _milliseconds("interval", interval)
        timeout = _milliseconds("timeout", timeout)
        if reconnect is not None and reconnect not in _RECONNECT_ADVICE:
            raise ValueError(
                f"reconnect must be one of {', '.join(_RECONNECT_ADVICE)}, got {reconnect!r}"
            )
        self._arm(AdviseConnects(interval, reconnect, timeout), count)

    def refuse_connects(
        self,
        error: str = "500::Internal error",
        reconnect: str | None = "retry",
        count: int | None = 1,
    ) -> None:
        """Refuse the next ``count`` ``/meta/connect``s of known clients: each is answered
        at once with ``successful: false``, ``error`` and the advice ``{"reconnect":
        reconnect, "interval": 0}`` (no advice at all with ``reconnect=None``), and the
        client stays known, as from a GWS node that cannot serve long polls for a while.
        ``reconnect`` is ``"retry"``, ``"handshake"``, ``"none"`` or ``None``. A connect held
        when it is armed is not refused."""
        _check_refusal(error, reconnect)
        self._arm(RefuseConnects(error, reconnect), count)

    def refuse_handshakes(
        self,
        error: str = "403::Handshake denied",
        reconnect: str | None = "handshake",
        count: int | None = 1,
    ) -> None:
        """Refuse the next ``count`` authenticated ``/meta/handshake``s: each is answered
        ``successful: false`` with ``error`` and the advice ``{"reconnect": reconnect,
        "interval": 0}`` (no advice with ``reconnect=None``), as from a GWS node that cannot
        take CometD clients for a while. ``reconnect`` is ``"retry"``, ``"handshake"``,
        ``"none"`` or ``None``."""
        _check_refusal(error, reconnect)
        self._arm(RefuseHandshakes(error, reconnect), count)

    def forget_on_subscribe(
        self, count: int | None = 1, channel: str | None = None, seconds: float = 0.0
    ) -> None:
        """Forget the CometD client of each of the next ``count`` ``/meta/subscribe``
        messages (to ``channel`` only, if given) just before answering it: it gets
        ``402::Unknown client`` (advice ``reconnect: handshake``), ``seconds`` late, as every
        later message of that client does (a connect it holds is answered so at once)."""
        if channel is not None and (not isinstance(channel, str) or not channel.startswith("/")):
            raise ValueError(f"channel must be None or a channel name, got {channel!r}")
        self._arm(ForgetOnSubscribe(channel, _seconds("seconds", seconds)), count)

    # ------------------------------------------------------------------------ common
    def clear(self) -> None:
        """Disarm every rule, stop holding and publish what was held."""
        self._rules.clear()
        self.release_notifications()

    @property
    def active(self) -> tuple[str, ...]:
        """One readable line per armed rule (and ``hold_notifications`` when holding)."""
        lines = []
        for rule in self._rules:
            left = "until cleared" if rule.remaining is None else f"{rule.remaining} left"
            lines.append(f"{rule.describe()}: {left}")
        if self._holding:
            lines.append(f"hold_notifications(): {len(self._held)} held")
        return tuple(lines)

    @property
    def holding(self) -> bool:
        """Whether outcomes are being held back."""
        return self._holding

    @property
    def held_count(self) -> int:
        """How many outcomes are parked by :meth:`hold_notifications`."""
        return len(self._held)

    # ------------------------------------------------------------ simulator internals
    def _arm(self, spec: FaultSpec, count: int | None, operation: str | None = None) -> None:
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValueError(f"count must be a positive integer or None, got {count!r}")
        if count is not None and count < 1:
            raise ValueError(f"count must be a positive integer or None, got {count!r}")
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(
                f"operation must be None or one of {', '.join(OPERATIONS)}, got {operation!r}"
            )
        self._rules.append(_Rule(spec, count, operation))

    def _pop(
        self, matches: Callable[[FaultSpec], bool], operation: str | None = None
    ) -> FaultSpec | None:
        """Use up one event of the first rule (in arming order) whose spec ``matches``.

        A rule limited to an operation matches only when ``operation`` is that one.
        """
        for index, rule in enumerate(self._rules):
            if matches(rule.spec) and rule.operation in (None, operation):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        del self._rules[index]
                return rule.spec
        return None

    def _take(self, kind: type[_F], operation: str | None = None) -> _F | None:
        spec = self._pop(lambda candidate: isinstance(candidate, kind), operation)
        return spec if isinstance(spec, kind) else None

    def _take_refusal(self, operation: str | None) -> Refusal | None:
        """The refusal armed first, of any kind (one POST gets one answer)."""
        spec = self._pop(lambda candidate: isinstance(candidate, _REFUSALS), operation)
        return spec if isinstance(spec, _REFUSALS) else None

    def _take_request_plan(self, operation: str | None = None) -> RequestPlan:
        if self._take(ResetConnection, operation) is not None:
            return RequestPlan(reset=True)
        slow = self._take(SlowAnswer, operation)
        expire = self._take(ExpireSession, operation)
        return RequestPlan(
            slow_seconds=slow.seconds if slow else 0.0,
            expire_session=expire is not None,
            refusal=self._take_refusal(operation),
        )

    def _take_connect_hold(self) -> float | None:
        """Seconds to hold a ``/meta/connect`` the server is about to hold, if a rule says."""
        hold = self._take(HoldConnects)
        return hold.seconds if hold else None

    def _take_connect_advice(self) -> dict[str, Any] | None:
        """The advice a successful ``/meta/connect`` reply should carry instead, if a rule
        says."""
        advice = self._take(AdviseConnects)
        if advice is None:
            return None
        changed: dict[str, Any] = {}
        if advice.interval is not None:
            changed["interval"] = advice.interval
        if advice.reconnect is not None:
            changed["reconnect"] = advice.reconnect
        if advice.timeout is not None:
            changed["timeout"] = advice.timeout
        return changed

    def _take_connect_refusal(self) -> tuple[str, dict[str, Any] | None] | None:
        """The error and advice of the refusal a ``/meta/connect`` gets instead, if a rule
        says."""
        refusal = self._take(RefuseConnects)
        if refusal is None:
            return None
        if refusal.reconnect is None:
            return refusal.error, None
        return refusal.error, {"reconnect": refusal.reconnect, "interval": 0}

    def _take_handshake_refusal(self) -> tuple[str, dict[str, Any] | None] | None:
        """The error and advice of the refusal a ``/meta/handshake`` gets instead, if a rule
        says."""
        refusal = self._take(RefuseHandshakes)
        if refusal is None:
            return None
        if refusal.reconnect is None:
            return refusal.error, None
        return refusal.error, {"reconnect": refusal.reconnect, "interval": 0}

    def _take_subscribe_forget(self, subscription: object) -> float | None:
        """Seconds to wait before answering a ``/meta/subscribe`` whose client is forgotten
        now, or ``None`` to answer it as usual."""
        spec = self._pop(
            lambda candidate: (
                isinstance(candidate, ForgetOnSubscribe)
                and candidate.channel in (None, subscription)
            )
        )
        return spec.seconds if isinstance(spec, ForgetOnSubscribe) else None

    def _take_status_code(self, operation: str | None = None) -> StatusCode | None:
        return self._take(StatusCode, operation)

    def _take_outcome_plan(self, operation: str | None = None) -> OutcomePlan:
        cometd = self._take(CometDError, operation)
        ocs = None if cometd is not None else self._take(OCSErrorFault, operation)
        delay = self._take(DelayNotifications, operation)
        drop = self._take(DropNotifications, operation)
        duplicate = self._take(DuplicateNotifications, operation)
        reverse = self._take(ReverseNotifications, operation)
        echo = self._take(EchoReferenceIds, operation)
        mislabel = self._take(MislabelNotifications, operation)
        return OutcomePlan(
            cometd_error=cometd,
            ocs_error=ocs,
            delay=delay.seconds if delay else 0.0,
            drop=drop.which if drop else None,
            times=duplicate.times if duplicate else 1,
            regenerate=duplicate.regenerate if duplicate else False,
            reverse=reverse is not None,
            echo_reference=echo is not None,
            mislabel=mislabel,
        )

    def _park(self, deliver: Callable[[], None]) -> bool:
        """Keep ``deliver`` for later when holding; say whether it was parked."""
        if not self._holding:
            return False
        self._held.append(deliver)
        return True

    def _discard_held(self) -> int:
        """Forget parked outcomes (a simulator stop loses them); return how many."""
        count = len(self._held)
        self._held = []
        return count


def _check_refusal(error: object, reconnect: object) -> None:
    if not isinstance(error, str) or not error:
        raise ValueError(f"error must be a non-empty string, got {error!r}")
    if reconnect is not None and reconnect not in _RECONNECT_ADVICE:
        raise ValueError(
            f"reconnect must be None or one of {', '.join(_RECONNECT_ADVICE)}, got {reconnect!r}"
        )


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return seconds


def _milliseconds(name: str, value: float | None) -> float | None:
    """An advice value as sent: any number (an integral one as an ``int``), a bool (JSON
    ``true``/``false``, which a client in Python reads as 1 and 0), or ``None``."""
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of milliseconds, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: Faults that can be armed from the command line (``--fault NAME:...``), in help order.
ARMABLE_FAULTS: tuple[str, ...] = (
    "delay_notifications",
    "drop_notifications",
    "duplicate_notifications",
    "reverse_notifications",
    "echo_reference_ids",
    "mislabel_notifications",
    "ocs_error",
    "cometd_error",
    "status_code",
    "http_error",
    "slow_answer",
    "reset_connection",
    "expire_session",
    "unauthorized",
    "csrf_reject",
    "hold_connects",
    "advise_connects",
    "refuse_connects",
    "refuse_handshakes",
    "forget_on_subscribe",
    "hold_notifications",
)
#: Everything ``POST /_simulator/faults`` accepts: the armable faults and their controls.
ADMIN_FAULTS: frozenset[str] = frozenset((*ARMABLE_FAULTS, "release_notifications", "clear"))
