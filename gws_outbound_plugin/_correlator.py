"""The correlator: the pure core of the engine.

Requests, HTTP answers, CometD messages, timer expiries and session events go in; effects come
out (send this, start or stop that timer, this request has this outcome, fire ``on_user_event``
with this event). It does no I/O, has no clock and logs nothing: the engine around it
(``_engine.py``) carries the effects out. Every method runs to completion without awaiting, so
nothing can interrupt it between deciding an outcome and reporting it.

What it promises, by construction:

* every accepted request gets exactly one :class:`Resolved` effect (its outcome): the entry is
  removed from every index in :meth:`Correlator._finish`, the only place a ``Resolved`` is made;
* every outcome is the request's own: which request a message answers is decided by one rule,
  written as a table in ``docs/design-notes.md`` ("Which request a message answers") and
  followed by :meth:`Correlator._owner_by_key` and the ``_on_*`` methods (M1 to M9 below refer
  to its rows);
* a request's lifecycle follows :data:`TRANSITIONS`;
* facts the matching relies on (reserved reference ids, answers still owed to finished
  requests, answers already taken) are kept for ``late_window`` seconds, never dropped early
  because a count was reached: when ``max_reserved`` is reached, new requests are refused.

``tests/unit/test_correlator_oracle.py`` checks this against a simulated OCS that knows which
request each message answers.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

from ._coerce import as_id, as_name, as_reference
from ._effects import (
    UNFINISHED_STATUS_CODES,
    Acknowledged,
    CancelTimer,
    Effect,
    Failed,
    Foreign,
    Limits,
    Notice,
    PostResult,
    Resolved,
    Send,
    StartTimer,
    TimerId,
    Unsolicited,
    UserEventSeen,
)
from ._foreign import ForeignPairs
from ._inbound import (
    ErrorNotice,
    Malformed,
    Notification,
    UserEventNotice,
    error_number,
    parse,
)
from ._matching import ANSWER_EVENTS, PART_EVENTS, PUSHED_EVENTS, Placement, Verdict, answers, place
from ._models import FailureReason, UserEvent
from ._recent import SWEEPS, Recent
from ._spec import (
    SPEC_BY_ACKNOWLEDGEMENT,
    CorrelationKey,
    Operation,
    OperationSpec,
)

__all__ = ["TRANSITIONS", "Correlator", "Phase"]
# The effects, ``Limits`` and ``PostResult`` live in ``_effects``.


class Phase(enum.Enum):
    HELD = "held"
    """Accepted; waits until the request before it on the same key has its outcome."""
    READY = "ready"
    """``Send`` emitted; not being written yet."""
    SENDING = "sending"
    """Being written (:meth:`Correlator.sending` said yes); GWS may act on it from now on."""
    AWAITING = "awaiting"
    """GWS accepted it (or may have): its answer comes over CometD."""
    ANSWERING = "answering"
    """Part of its answer arrived; the rest may follow within ``merge_window``."""


#: (phase, what happened) -> next phase. Anything else leaves the phase as it is; every outcome
#: leaves the table altogether through ``_finish`` (the outcomes per phase are listed in
#: ``docs/design-notes.md``, "A request's lifecycle").
TRANSITIONS: Final[Mapping[tuple[Phase, str], Phase]] = MappingProxyType(
    {
        (Phase.HELD, "released"): Phase.READY,
        (Phase.READY, "sending"): Phase.SENDING,
        (Phase.SENDING, "posted"): Phase.AWAITING,
        (Phase.SENDING, "answer"): Phase.ANSWERING,
        (Phase.AWAITING, "answer"): Phase.ANSWERING,
    }
)
_SENT: Final = frozenset({Phase.SENDING, Phase.AWAITING, Phase.ANSWERING})


class _Entry:
    __slots__ = (
        "chain",
        "empty",
        "event_parts",
        "key",
        "lost",
        "maybe",
        "merging",
        "outbound",
        "parts",
        "phase",
        "post_status",
        "request",
        "sent_seq",
        "spec",
        "token",
        "unanswered",
        "user_content",
        "user_event",
    )

    def __init__(self, token: int, request: Operation) -> None:
        self.token = token
        self.request = request
        self.spec: OperationSpec = request.spec
        self.key: CorrelationKey | None = request.correlation_key
        self.phase = Phase.HELD
        self.unanswered = False
        self.post_status: tuple[int, str | None] | None = None
        self.lost = False
        self.merging = False
        self.empty = False
        self.sent_seq = 0
        self.chain: tuple[int, str, int] | None = None
        self.outbound: Mapping[str, Any] | None = None
        self.user_event: UserEvent | None = None
        self.user_content: bytes | None = None
        # M8: a user event that may be its answer or a copy of an earlier request's.
        self.maybe: tuple[UserEvent, bytes | None] | None = None
        self.parts: list[Mapping[str, Any]] = []
        self.event_parts: list[tuple[int, UserEvent, bytes | None]] = []

    @property
    def sent(self) -> bool:
        return self.phase in _SENT

    @property
    def answered(self) -> bool:
        """Part of its own answer arrived (a ``maybe`` does not count: M8)."""
        return self.outbound is not None or self.user_event is not None


class Correlator:
    """See the module docstring. One per engine; not thread-safe (the engine calls it from
    the event loop thread only)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits = limits or Limits()
        self.late_window = limits.late_window or limits.deadline or 60.0
        self._tokens = itertools.count(1)
        self._fx: list[Effect] = []
        self._entries: dict[int, _Entry] = {}
        self._by_reference: dict[str, _Entry] = {}
        # Pending requests per key, oldest first; only the head may be sent (one at a time).
        self._queues: dict[CorrelationKey, list[_Entry]] = {}
        # Our GetPreviewRecord requests holding their PreviewRecord notification, by the handle
        # it names, until the user event of that record joins them (M5).
        self._pairing: dict[int, _Entry] = {}
        # Facts kept for late_window after an outcome (M2, M4, M5, M6, M8).
        self._recent = Recent(
            fingerprint_limit=limits.fingerprint_limit, parts_limit=limits.parts_limit
        )
        self._seq = 0  # messages seen, for "arrived after it was sent" (M6)
        self._part_entries: set[_Entry] = set()  # requests with partial results in flight (M6)
        self._foreign = ForeignPairs(limits.merge_window, limits.foreign_limit)
        self._lost = False
        self._settles = itertools.count(1)
        self._closed = False
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "accepted",
                "acknowledged",
                "failed",
                "foreign_acks",
                "duplicates",
                "late",
                "malformed",
                "user_events",
                "unsolicited",
                "unmatched_errors",
            ),
            0,
        )

    # -- introspection (tests, stats) ----------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._entries)

    def state_sizes(self) -> dict[str, int]:
        """How much each index holds."""
        return {
            "entries": len(self._entries),
            "by_reference": len(self._by_reference),
            "queued": sum(len(v) for v in self._queues.values()),
            "foreign": len(self._foreign),
            **self._recent.sizes(),
        }

    def is_queued(self, token: int) -> bool:
        entry = self._entries.get(token)
        return entry is not None and entry.phase is Phase.READY

    def _take(self) -> list[Effect]:
        effects, self._fx = self._fx, []
        if self._recent.sweep_due():
            effects.append(StartTimer(("sweep",), self.late_window / SWEEPS))
        return effects

    @staticmethod
    def _move(entry: _Entry, what: str) -> bool:
        phase = TRANSITIONS.get((entry.phase, what))
        if phase is None:
            return False
        entry.phase = phase
        return True

    # -- requests --------------------------------------------------------------------------------

    def accept(self, request: Operation) -> tuple[int, list[Effect]]:
        """Register a request; returns its token and the effects (``Send``, or its outcome
        when it cannot be sent)."""
        token = next(self._tokens)
        self.stats["accepted"] += 1
        reference = request.reference_id
        refusal: str | None = None
        reason = FailureReason.REJECTED
        if self._closed:
            refusal, reason = "the plugin is closing; nothing was sent", FailureReason.SHUT_DOWN
        elif reference in self._by_reference:
            refusal = (
                f"a request with referenceId {reference} is already pending; nothing was sent "
                "(GWS could not tell the answers apart)"
            )
        elif reference in self._recent.reserved:
            refusal = (
                f"referenceId {reference} was used by a recent request whose answer may still "
                "arrive; nothing was sent (use a new referenceId)"
            )
        elif len(self._recent.reserved) >= self.limits.max_reserved:
            refusal = (
                f"{len(self._recent.reserved)} recent requests may still be answered "
                "(max_reserved); nothing was sent, try again shortly"
            )
        if refusal is not None:
            self.stats["failed"] += 1
            return token, [Resolved(token, request, Failed(reason, refusal))]
        entry = _Entry(token, request)
        self._entries[token] = entry
        self._by_reference[reference] = entry
        queue = self._queues.setdefault(entry.key, []) if entry.key is not None else None
        if queue is not None:
            queue.append(entry)
        if queue is None or len(queue) == 1:
            self._release(entry)
        if self.limits.deadline is not None:
            self._fx.append(StartTimer(("deadline", token), self.limits.deadline))
        return token, self._take()

    def _release(self, entry: _Entry) -> None:
        self._move(entry, "released")
        self._fx.append(Send(entry.token, entry.request))

    def sending(self, token: int) -> bool:
        """The POST of ``token`` is about to be written. False: it has an outcome already
        (the sender must not send it)."""
        entry = self._entries.get(token)
        if entry is None or not self._move(entry, "sending"):
            return False
        entry.lost = self._lost
        entry.sent_seq = self._seq
        if entry.spec.part is not None:
            self._part_entries.add(entry)
        return True

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> list[Effect]:
        """The POST of ``token`` ended with ``result``."""
        entry = self._entries.get(token)
        if entry is None:
            return []  # decided already
        unfinished = result is PostResult.REJECTED and status_code in UNFINISHED_STATUS_CODES
        if result is PostResult.ACCEPTED or result is PostResult.NO_ANSWER or unfinished:
            if not entry.sent:
                return []  # never written: a confused sender, ignore
            self._move(entry, "posted")
            entry.unanswered = result is not PostResult.ACCEPTED
            if unfinished and status_code is not None:
                entry.post_status = (status_code, message)
            self._fx.append(StartTimer(("ack", token), self.limits.ack_timeout))
            return self._take()
        if entry.answered:
            return []  # CometD answered before the POST's answer came: that answer stands
        if result is PostResult.REJECTED:
            failed = Failed(
                FailureReason.REJECTED, message or "GWS refused the request", status_code
            )
        elif result is PostResult.AUTHENTICATION_FAILED:
            failed = Failed(
                FailureReason.AUTHENTICATION_FAILED, message or "GWS refused the credentials"
            )
        else:
            failed = Failed(FailureReason.TRANSPORT_FAILURE, message or "the request was not sent")
        # GWS did nothing with a request it refused or never got: no late answer to expect.
        self._finish(entry, failed, may_answer_late=False)
        return self._take()

    # -- timers ----------------------------------------------------------------------------------

    def timer_expired(self, timer: TimerId) -> list[Effect]:
        kind = timer[0]
        if kind == "sweep":
            self._recent.sweep()
        elif kind == "foreign":
            foreign = self._foreign.expire((timer[1], timer[2]))
            if foreign is not None:
                self.stats["foreign_acks"] += 1
                self._fx.append(foreign)
        elif kind == "settle":
            self._settle_lost()
        else:
            entry = self._entries.get(timer[1])
            if entry is not None:
                self._entry_timer(entry, kind)
        return self._take()

    def _entry_timer(self, entry: _Entry, kind: str) -> None:
        if entry.answered:
            if kind in ("merge", "ack", "deadline"):
                self._acknowledge(entry)
        elif kind == "ack" and entry.phase is Phase.AWAITING:
            self._no_answer(entry, f"no acknowledgement within {self.limits.ack_timeout:g}s")
        elif kind == "deadline":
            within = f"within {self.limits.deadline or 0.0:g}s of acceptance"
            if entry.sent:
                self._no_answer(entry, f"no acknowledgement {within}")
            else:
                failed = Failed(
                    FailureReason.TRANSPORT_FAILURE, f"not sent {within}; nothing was sent"
                )
                self._finish(entry, failed)

    def _no_answer(self, entry: _Entry, why: str) -> None:
        """A sent request that nothing answered in time."""
        if entry.post_status is not None:
            code, text = entry.post_status
            failed = _unknown(f"{text or f'statusCode {code}'}; {why}", status_code=code)
        elif entry.phase is Phase.SENDING or entry.unanswered:
            failed = _unknown(why)
        else:
            failed = Failed(FailureReason.TIMED_OUT, why, may_have_acted=True)
        self._finish(entry, failed)

    # -- session events --------------------------------------------------------------------------

    def session_lost(self) -> list[Effect]:
        """The CometD session is gone: whatever was published meanwhile may be lost."""
        self._lost = True
        for entry in self._entries.values():
            if entry.sent:
                entry.lost = True
        return []

    def session_restored(self) -> list[Effect]:
        """The CometD session is back. Messages already on their way are processed during one
        merge window; then what was sent before the loss and is still pending ends: with what
        arrived of its answer, else ``outcome_unknown``."""
        self._lost = False
        delay = max(self.limits.merge_window, 0.05)
        return [StartTimer(("settle", next(self._settles)), delay)]

    def _settle_lost(self) -> None:
        lost = [e for e in self._entries.values() if e.lost]
        unknown = sum(1 for e in lost if not e.answered)
        if unknown:
            self._fx.append(Notice("cometd_outcomes_unknown", "warning", {"count": unknown}))
        for entry in lost:
            self._conclude(entry, "the CometD session was lost while the outcome was pending")

    def shutdown(self) -> list[Effect]:
        """Resolve everything still pending on the evidence at hand; from now on ``accept``
        fails at once."""
        self._closed = True
        for entry in list(self._entries.values()):
            if entry.sent or entry.answered:
                self._conclude(entry, "the plugin was closed before the outcome arrived")
            else:
                self._finish(
                    entry,
                    Failed(
                        FailureReason.SHUT_DOWN,
                        "the plugin was closed before the request was sent; nothing was sent",
                    ),
                )
        flushed = self._foreign.flush()
        self.stats["foreign_acks"] += len(flushed)
        self._fx += flushed
        return self._take()

    def _conclude(self, entry: _Entry, why: str) -> None:
        """End a sent request now: acknowledged if part of its answer arrived, else unknown."""
        if entry.answered:
            self._acknowledge(entry)
        else:
            self._finish(entry, _unknown(why))

    # -- CometD messages ---------------------------------------------------------------------------

    def message(self, message: object) -> list[Effect]:
        """One CometD message (``{"channel": ..., "data": {...}}``) from the listener."""
        if not isinstance(message, Mapping):
            return self._malformed("not a JSON object", None)
        channel = message.get("channel")
        data = message.get("data")
        if not isinstance(data, Mapping):
            return self._malformed("no data object", channel)
        seen = self._recent.fingerprint(channel, data, self.limits.max_message_bytes)
        if seen is None:
            return self._malformed(
                f"larger than {self.limits.max_message_bytes} bytes or not JSON", channel
            )
        duplicate, content = seen
        if duplicate:
            self.stats["duplicates"] += 1
            return [Notice("cometd_duplicate_dropped", "debug", {"channel": as_name(channel)})]
        self._seq += 1
        try:
            inbound = parse(
                as_name(channel),
                data,
                max_user_data_entries=self.limits.max_user_data_entries,
                content=content,
            )
        except Malformed as exc:
            return self._malformed(str(exc), channel)
        if isinstance(inbound, Notification):
            self._on_notification(inbound)
        elif isinstance(inbound, UserEventNotice):
            self._on_user_event(inbound)
        elif isinstance(inbound, ErrorNotice):
            self._on_error_message(inbound)
        else:
            self._fx.append(
                Notice(
                    "cometd_message_ignored",
                    "debug",
                    {"channel": as_name(channel), "message_type": as_name(data.get("messageType"))},
                )
            )
        return self._take()

    def _malformed(self, why: str, channel: object) -> list[Effect]:
        self.stats["malformed"] += 1
        return [
            Notice(
                "cometd_message_rejected", "warning", {"reason": why, "channel": as_name(channel)}
            )
        ]

    # -- the matching rule's view of the pending requests (``_matching.Pending``) --

    def sent_entry(self, reference: str | None) -> _Entry | None:
        entry = self._by_reference.get(reference) if reference is not None else None
        return entry if entry is not None and entry.sent else None

    def head(self, key: CorrelationKey) -> _Entry | None:
        queue = self._queues.get(key)
        return queue[0] if queue else None

    def _late(self, what: str, placement: Placement, **fields: Any) -> None:
        self.stats["late"] += 1
        self._fx.append(Notice(what, "info", {**fields, "rule": placement.rule}))

    def _on_notification(self, n: Notification) -> None:
        placement = place(n, self, self._recent)
        if placement.verdict is Verdict.OWN:
            self._notification_for(placement.entry, n)
        elif placement.verdict is Verdict.LATE:
            self._late("late_notification_ignored", placement, reference_id=n.reference)
        elif n.notification == "PreviewRecord":
            self.stats["unsolicited"] += 1
            self._fx.append(Unsolicited(outbound=n.data))
        elif n.notification is not None and n.notification in SPEC_BY_ACKNOWLEDGEMENT:
            spec = SPEC_BY_ACKNOWLEDGEMENT[n.notification][0]
            self._foreign_half(spec, n.keys, outbound=n.data)
        else:
            fields = {"notification": n.notification}
            self._fx.append(Notice("outbound_notification_ignored", "debug", fields))

    def _notification_for(self, entry: _Entry, n: Notification) -> None:
        spec = entry.spec
        if n.is_error:
            code = error_number(n.data.get("errorCode"))
            text = n.error_text or "GWS reported an error for this request"
            self._finish(entry, Failed(FailureReason.OCS_ERROR, text, error_number=code))
        elif n.notification == spec.acknowledgement:
            if entry.outbound is None:
                entry.outbound = n.data
                if spec.pushed and n.record_handle is not None:
                    self._pair_preview(entry, n.record_handle)
                self._half(entry)
        elif spec.part is not None and n.notification == spec.part:
            entry.parts.append(n.data)
            if entry.merging:
                self._half(entry)  # a straggler: the window starts again
        elif n.notification in spec.empty:
            entry.empty = True
            entry.outbound = n.data
            self._acknowledge(entry)
        else:
            fields = {"notification": n.notification, "reference_id": n.reference}
            self._fx.append(Notice("outbound_notification_ignored", "debug", fields))

    def _on_error_message(self, e: ErrorNotice) -> None:
        placement = place(e, self, self._recent)
        if placement.verdict is Verdict.OWN:
            text = e.text or "GWS reported an error for this request"
            self._finish(placement.entry, Failed(FailureReason.REJECTED, text, status_code=e.code))
        elif placement.verdict is Verdict.LATE:
            self._late("late_error_ignored", placement, reference_id=e.reference)
        else:
            self.stats["unmatched_errors"] += 1
            fields = {
                "channel": e.channel,
                "reference_id": e.reference,
                "error_code": e.code,
                "detail": (e.text or "")[:200],
            }
            self._fx.append(Notice("cometd_error_unmatched", "warning", fields))

    def _on_user_event(self, u: UserEventNotice) -> None:
        self.stats["user_events"] += 1
        self._fx.append(UserEventSeen(u.event))
        placement = place(u, self, self._recent)
        verdict = placement.verdict
        if verdict is Verdict.OWN:
            self._give(placement.entry, u)
        elif verdict is Verdict.TENTATIVE:
            self._give_tentatively(placement.entry, u)
        elif verdict is Verdict.LATE:
            if u.content is not None and u.reference is None:
                self._recent.took(u.content)  # its copies are repeats, not someone's answer
            self._late("late_user_event_ignored", placement, user_event=u.name)
        elif verdict is Verdict.REPEAT:
            self.stats["duplicates"] += 1
            self._fx.append(Notice("user_event_repeat_ignored", "debug", {"user_event": u.name}))
        elif verdict is Verdict.PART:
            self._keep_part(u)
        elif verdict is Verdict.PUSHED:
            if u.record_handle is not None:
                self._pushed_answer(u.record_handle, u.event)
        else:
            self._not_ours(u)

    def _give(self, entry: _Entry, u: UserEventNotice) -> None:
        """A user event that belongs to ``entry``'s request."""
        spec = entry.spec
        event = u.event
        if entry.user_event is None:
            entry.user_content = u.content  # what a regenerated copy is recognised by (M8)
        if u.is_error:
            text = u.error_text
            if text is not None and text.strip().casefold() in spec.empty_error_texts:
                entry.empty = True
                entry.user_event = event
                self._acknowledge(entry)
                return
            entry.user_event = event
            self._finish(
                entry,
                Failed(
                    FailureReason.OCS_ERROR,
                    text or "OCS refused the request",
                    error_number=error_number(event.user_data.get("GSW_ERROR_NUMBER")),
                    user_data=event.user_data,
                ),
            )
        elif spec.part is not None and u.name == spec.part:
            entry.event_parts.append((self._seq, event, u.content))
            if entry.merging or entry.maybe is not None:
                self._confirm(entry)
        elif u.name in spec.empty:
            entry.empty = True
            entry.user_event = event
            self._acknowledge(entry)
        elif answers(spec, u.name) and entry.user_event is None:
            entry.user_event, entry.user_content, entry.maybe = event, u.content, None
            if spec.part is not None:
                entry.chain = u.chain
                self._collect_parts(entry, before=self._seq)
            self._half(entry)
        else:
            self.stats["duplicates"] += 1
            self._fx.append(Notice("user_event_repeat_ignored", "debug", {"user_event": u.name}))

    def _give_tentatively(self, entry: _Entry, u: UserEventNotice) -> None:
        """M8: ``u`` has the ``userData`` of an answer an earlier request took, so it may be
        ``entry``'s answer or a copy of that one. It decides nothing alone: the request is
        acknowledged by its own notification (without ``u``), or, for an answer OCS sends as
        user events, by its partial results (with ``u``: its own end marker has the same
        content); else its timer ends it as for no answer."""
        self._fx.append(Notice("user_event_ambiguous", "info", {"user_event": u.name}))
        if u.is_error or u.name in entry.spec.empty or entry.answered or entry.maybe:
            return
        entry.maybe = (u.event, u.content)
        if entry.spec.part is not None:
            entry.chain = u.chain
            self._collect_parts(entry, before=self._seq)
            if entry.event_parts:
                self._confirm(entry)

    def _confirm(self, entry: _Entry) -> None:
        """Partial results of its own came as user events: its end marker (``maybe``) is the
        request's own too, whichever copy it was."""
        if entry.maybe is not None and entry.user_event is None:
            entry.user_event, entry.user_content = entry.maybe
        entry.maybe = None
        self._half(entry)

    def _not_ours(self, u: UserEventNotice) -> None:
        name = u.name
        if u.is_error:
            if name in ANSWER_EVENTS:
                self.stats["unmatched_errors"] += 1
                self._fx.append(Notice("ocs_error_unmatched", "info", {"user_event": name}))
            else:
                self.stats["unsolicited"] += 1
                self._fx.append(Unsolicited(event=u.event))
        elif name is not None and name in SPEC_BY_ACKNOWLEDGEMENT and name not in PUSHED_EVENTS:
            self._foreign_half(SPEC_BY_ACKNOWLEDGEMENT[name][0], u.keys, user_event=u.event)
        elif name not in ANSWER_EVENTS and name not in PART_EVENTS:
            self.stats["unsolicited"] += 1
            self._fx.append(Unsolicited(event=u.event))

    # -- M5: pushed answers, M6: partial results ---------------------------------------------

    def _pushed_answer(self, handle: int, event: UserEvent) -> None:
        entry = self._pairing.pop(handle, None)
        if entry is not None and entry.user_event is None:
            entry.user_event = event
            self._half(entry)
        else:
            self._recent.hold_preview(handle, event)

    def _pair_preview(self, entry: _Entry, handle: int) -> None:
        held = self._recent.pop_preview(handle)
        if held is not None:
            entry.user_event = held
        elif entry.user_event is None:
            self._pairing[handle] = entry

    def _keep_part(self, u: UserEventNotice) -> None:
        if u.chain is None or not self._part_entries:
            return  # no request of ours can own it: only on_user_event
        if not self._recent.keep_part(u.chain, self._seq, u.record_handle, u.event, u.content):
            return
        if len(self._part_entries) == 1:
            # After its end marker (reordered), a part is the one request's only while no other
            # request that could own it is in flight.
            (entry,) = self._part_entries
            if entry.chain == u.chain and (entry.merging or entry.maybe is not None):
                self._collect_parts(entry, before=self._seq + 1)
                self._confirm(entry)

    def _collect_parts(self, entry: _Entry, before: int) -> None:
        """M6: the unreferenced parts of its chain that arrived after it was sent and before
        its end marker, other than its own record, are its own."""
        if entry.chain is not None:
            entry.event_parts += self._recent.take_parts(
                entry.chain,
                after=entry.sent_seq,
                before=before,
                own=getattr(entry.request, "record_handle", None),
            )

    # -- halves ------------------------------------------------------------------------------

    def _half(self, entry: _Entry) -> None:
        """Part of ``entry``'s answer arrived: acknowledge when it is complete, else (re)open
        the merge window. A request with partial results always waits the window after its
        last message: parts may arrive after the end marker."""
        self._move(entry, "answer")
        whole = entry.outbound is not None and entry.user_event is not None
        if self.limits.merge_window == 0 or (whole and entry.spec.part is None):
            self._acknowledge(entry)
        elif entry.spec.part is not None or not entry.merging:
            entry.merging = True
            self._fx.append(StartTimer(("merge", entry.token), self.limits.merge_window))

    def _foreign_half(
        self,
        spec: OperationSpec,
        keys: tuple[CorrelationKey, ...],
        *,
        outbound: Mapping[str, Any] | None = None,
        user_event: UserEvent | None = None,
    ) -> None:
        effect = self._foreign.add(spec, keys, outbound=outbound, user_event=user_event)
        if isinstance(effect, Foreign):
            self.stats["foreign_acks"] += 1
        self._fx.append(effect)

    # -- outcomes ----------------------------------------------------------------------------------

    def _acknowledge(self, entry: _Entry) -> None:
        parts: tuple[Mapping[str, Any] | UserEvent, ...] = ()
        if entry.parts:
            notified = _one_per_record(entry.parts, _notification_record)
            parts = notified
        elif entry.event_parts:
            in_order = [event for _, event, _ in sorted(entry.event_parts, key=lambda p: p[0])]
            events = _one_per_record(in_order, _event_record)
            parts = events
        self._finish(entry, Acknowledged(entry.outbound, entry.user_event, parts, entry.empty))

    def _finish(
        self, entry: _Entry, outcome: Acknowledged | Failed, *, may_answer_late: bool = True
    ) -> None:
        """The one place an entry leaves the indexes and gets its outcome."""
        if self._entries.pop(entry.token, None) is None:
            return
        self._part_entries.discard(entry)
        reference = entry.request.reference_id
        if self._by_reference.get(reference) is entry:
            del self._by_reference[reference]
        follower: _Entry | None = None
        if entry.key is not None:
            queue = self._queues.get(entry.key)
            if queue is not None:
                if entry in queue:
                    queue.remove(entry)
                if not queue:
                    del self._queues[entry.key]
                elif queue[0].phase is Phase.HELD:
                    follower = queue[0]
        if self._pairing:
            for handle, paired in list(self._pairing.items()):
                if paired is entry:
                    del self._pairing[handle]
        if isinstance(outcome, Acknowledged):
            self.stats["acknowledged"] += 1
        else:
            self.stats["failed"] += 1
        self._fx.append(Resolved(entry.token, entry.request, outcome))
        if entry.sent and may_answer_late:
            # Its messages may still arrive (M2, M4); they must never answer another request.
            self._recent.reserved[reference] = self._recent.stamp()
            event, content = entry.user_event, entry.user_content
            if event is None and entry.key is not None:
                self._recent.owe(entry.key, entry.spec)
            elif event is not None and content is not None and _unreferenced(event):
                self._recent.took(content)
            for _, part, part_content in entry.event_parts:
                if part_content is not None and _unreferenced(part):
                    self._recent.took(part_content)  # its copies are repeats (M8)
        if entry.phase in (Phase.AWAITING, Phase.ANSWERING):
            self._fx.append(CancelTimer(("ack", entry.token)))
        if entry.merging:
            self._fx.append(CancelTimer(("merge", entry.token)))
        if self.limits.deadline is not None:
            self._fx.append(CancelTimer(("deadline", entry.token)))
        if follower is not None and not self._closed:
            self._release(follower)


def _unreferenced(event: UserEvent) -> bool:
    return as_reference(event.user_data.get("GSW_REFERENCE_ID")) is None


def _unknown(why: str, status_code: int | None = None) -> Failed:
    return Failed(
        FailureReason.OUTCOME_UNKNOWN,
        f"{why}; GWS may or may not have acted on the request",
        status_code=status_code,
        may_have_acted=True,
    )


_P = TypeVar("_P")


def _notification_record(data: Mapping[str, Any]) -> object:
    record = data.get("record")
    return record.get("recordHandle") if isinstance(record, Mapping) else None


def _event_record(event: UserEvent) -> object:
    return event.user_data.get("GSW_RECORD_HANDLE")


def _one_per_record(parts: Iterable[_P], handle_of: Callable[[_P], object]) -> tuple[_P, ...]:
    """Each chained record once (its last copy: a request's parts come after an earlier
    request's on the chain, and a regenerated copy after its original), in arrival order."""
    last: dict[object, int] = {}
    items = list(parts)
    for i, part in enumerate(items):
        handle = as_id(handle_of(part))
        last[handle if handle is not None else ("#", i)] = i
    return tuple(items[i] for i in sorted(last.values()))
