"""The correlator: the pure core of the engine.

Requests, HTTP answers, CometD messages, timer expiries and session events go in; effects come
out (send this, start or stop that timer, this request has this outcome, fire ``on_user_event``
with this event). It does no I/O, has no clock and logs nothing: the engine around it
(``_engine.py``) carries the effects out. Every method runs to completion without awaiting, so
nothing can interrupt it between deciding an outcome and reporting it.

It is split by job: :class:`Correlator` (this module) takes the requests, the POSTs' answers,
the timers and the session events; :class:`~._answers.Answers` takes the CometD messages;
:class:`~._pending.PendingRequests` holds the pending requests and makes their outcomes; a
request's phases are in ``_lifecycle``.

What it promises, by construction:

* every accepted request gets exactly one :class:`~._effects.Resolved` effect (its outcome):
  the entry is removed from every index in :meth:`~._pending.PendingRequests.finish`, the only
  place a ``Resolved`` for an accepted request is made;
* every outcome is the request's own: which request a message answers is decided by one rule,
  written as a table in ``docs/design-notes.md`` ("Which request a message answers") and
  followed by :func:`~._matching.place` (M1 to M10 refer to its rows; M11 holds an answer back
  ``merge_window`` first, in :class:`~._answers.Answers`);
* a request's lifecycle follows :data:`~._lifecycle.TRANSITIONS`;
* facts the matching relies on (reserved reference ids, answers still owed to finished
  requests, answers already taken) are kept for ``late_window`` seconds, never dropped early
  because a count was reached: when ``max_reserved`` is reached, new requests are refused.

``tests/unit/test_correlator_oracle.py`` checks this against a simulated OCS that knows which
request each message answers.
"""

from __future__ import annotations

import itertools

from ._answers import Answers
from ._effects import (
    UNFINISHED_STATUS_CODES,
    CancelTimer,
    Effect,
    Failed,
    Limits,
    Notice,
    PostResult,
    Resolved,
    StartTimer,
    TimerId,
)
from ._lifecycle import TRANSITIONS, Entry, Phase, move
from ._matching import by_key_only, decides_now
from ._payloads import FailureReason
from ._pending import PendingRequests
from ._spec import Operation

__all__ = ["TRANSITIONS", "Correlator", "Phase"]


class Correlator:
    """See the module docstring. One per engine; not thread-safe (the engine calls it from
    the event loop thread only)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits = limits or Limits()
        self.late_window = limits.late_window or limits.deadline or 60.0
        self._tokens = itertools.count(1)
        self._pending = PendingRequests(limits, self.late_window)
        self._answers = Answers(self._pending, limits)
        self._recent = self._pending.recent
        self._lost = False
        self._losses = 0  # session losses so far; an entry's ``lost`` is the last it was in
        self.stats: dict[str, int] = self._pending.stats

    # -- introspection (tests, stats) ----------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending.entries)

    def state_sizes(self) -> dict[str, int]:
        """How much each index holds."""
        return {
            **self._pending.sizes(),
            "foreign": len(self._answers.foreign),
            **self._recent.sizes(),
        }

    def waiting(self, token: int) -> bool:
        """Whether ``token`` has no outcome yet."""
        return token in self._pending.entries

    def may_write_again(self, token: int) -> bool:
        """Whether the transport may write the POST of ``token`` again (its last attempt
        certainly did not reach GWS, it said): not once it has an outcome, nor once a message
        with its reference id arrived (GWS got an attempt after all: never sent again)."""
        entry = self._pending.entries.get(token)
        return entry is not None and not entry.confirmed

    def is_queued(self, token: int) -> bool:
        entry = self._pending.entries.get(token)
        return entry is not None and entry.phase is Phase.READY

    # -- requests --------------------------------------------------------------------------------

    def accept(self, request: Operation) -> tuple[int, list[Effect]]:
        """Register a request; returns its token and the effects (``Send``, or its outcome
        when it cannot be sent)."""
        token = next(self._tokens)
        self.stats["accepted"] += 1
        refusal = self._refusal(request.reference_id)
        if refusal is not None:
            self.stats["failed"] += 1
            return token, [Resolved(token, request, refusal)]
        self._pending.add(Entry(token, request))
        if self.limits.deadline is not None:
            self._pending.fx.append(StartTimer(("deadline", token), self.limits.deadline))
        return token, self._pending.take()

    def _refusal(self, reference: str) -> Failed | None:
        """Why a request with this reference id cannot be accepted now, if it cannot."""
        reserved = self._recent.reserved
        if self._pending.closed:
            why = "the plugin is closing; nothing was sent"
            return Failed(FailureReason.SHUT_DOWN, why)
        if reference in self._pending.by_reference:
            why = (
                f"a request with referenceId {reference} is already pending; nothing was sent "
                "(GWS could not tell the answers apart)"
            )
        elif reference in reserved:
            why = (
                f"referenceId {reference} was used by a recent request whose answer may still "
                "arrive; nothing was sent (use a new referenceId)"
            )
        elif len(reserved) >= self.limits.max_reserved:
            why = (
                f"{len(reserved)} recent requests may still be answered "
                "(max_reserved); nothing was sent, try again shortly"
            )
        else:
            return None
        return Failed(FailureReason.REJECTED, why)

    def sending(self, token: int) -> bool:
        """The POST of ``token`` is about to be written. False: it has an outcome already
        (the sender must not send it)."""
        entry = self._pending.entries.get(token)
        if entry is None or not move(entry, "sending"):
            return False
        entry.lost = self._losses if self._lost else 0
        entry.sent_seq = self._answers.seq
        if entry.spec.part is not None:
            self._pending.part_entries.add(entry)
        return True

    def resending(self, token: int) -> list[Effect]:
        """The POST of ``token`` is about to be written again: the last attempt certainly did
        not reach GWS (a re-login, a retry). What was matched to it by key alone meanwhile
        (M10) was another client's answer: it is forgotten (its copies are repeats, M8), and
        the request waits for its own, as if it had just been sent."""
        entry = self._pending.entries.get(token)
        if entry is not None and entry.phase is Phase.READY:
            self.sending(token)  # back from "not received": written again, as if just sent
            return self._pending.take()
        if entry is None or not entry.sent or not by_key_only(entry):
            return []
        self._forget_by_key(entry)
        entry.sent_seq = self._answers.seq
        move(entry, "resent")
        return self._pending.take()

    def not_received(self, token: int) -> list[Effect]:
        """The attempt to write the POST of ``token`` just failed without reaching GWS (no
        connection, or refused unread), and the transport writes it again only after
        :meth:`resending`: until then nothing of the request may have been processed. It
        goes back to ``ready``: its deadline or the close ends it as not sent, a sender
        interrupted meanwhile sends it again, and what was matched to it by key alone was
        another client's answer (M10: forgotten, its copies are repeats, M8). Nothing
        changes for a request something with its reference id answered (GWS got it).

        Decided already (its deadline came while the attempt was being written), it is owed
        no late answer on its key any more (M4): GWS got none of its attempts, and the next
        answer there is the next request's, not to be taken while the transport waits."""
        entry = self._pending.entries.get(token)
        if entry is None:
            key = self._pending.owed_unposted.pop(token, None)
            if key is not None:
                self._recent.forgive(key, token)
            return []
        if not entry.sent or entry.post_answered or not by_key_only(entry):
            return []
        self._forget_by_key(entry)
        self._pending.part_entries.discard(entry)
        entry.lost = 0  # nothing of it can have been published during a loss
        entry.tried = True
        move(entry, "unsent")
        return self._pending.take()

    def _forget_by_key(self, entry: Entry) -> None:
        """What was matched to ``entry`` by key alone was another client's answer (M10)."""
        for content in (entry.user_content, *(c for _, _, c in entry.event_parts)):
            if content is not None:
                self._recent.took(content)
        self._answers.forget_withheld(entry)
        if entry.merging:
            entry.merging = False
            self._pending.fx.append(CancelTimer(("merge", entry.token)))
        self._pending.close_refusal_window(entry)
        entry.user_event = entry.user_content = entry.maybe = entry.chain = None
        entry.after_post = None
        entry.empty = False
        entry.event_parts = []

    def posted(
        self,
        token: int,
        result: PostResult,
        *,
        status_code: int | None = None,
        message: str | None = None,
    ) -> list[Effect]:
        """The POST of ``token`` ended with ``result``."""
        entry = self._pending.entries.get(token)
        if (
            result is not PostResult.ACCEPTED
            and result is not PostResult.NO_ANSWER
            and entry is not None
            and entry.confirmed
            and entry.sent
            and not entry.answered
        ):
            # Something with its reference id arrived (M1): GWS got an attempt, whatever
            # the POST's answer says. Not written again for that, or refused (a node in front
            # of GWS answering as if GWS got nothing, or GWS refusing a later attempt of a
            # request it got): it may have been processed, its answer still decides.
            if result is PostResult.REJECTED and status_code is not None:
                entry.post_status = (
                    status_code,
                    f"{message or 'GWS refused the request'} (yet a message with its "
                    "referenceId arrived: GWS got it)",
                )
            result = PostResult.NO_ANSWER
        unfinished = result is PostResult.REJECTED and status_code in UNFINISHED_STATUS_CODES
        processed = result is PostResult.ACCEPTED or result is PostResult.NO_ANSWER or unfinished
        if entry is None:  # decided already (its deadline, a lost session)
            key = self._pending.owed_unposted.pop(token, None)
            if key is not None and not processed:
                self._recent.forgive(key, token)  # GWS never passed it on: owed nothing (M4)
            return []
        if processed:
            if not entry.sent:
                return []  # never written: a confused sender, ignore
            move(entry, "posted")
            entry.post_answered = True
            entry.unanswered = result is not PostResult.ACCEPTED
            if unfinished and status_code is not None:
                entry.post_status = (status_code, message)
            if entry.refusing:
                pass  # OCS's refusal waits for the acknowledgement by reference (M9)
            elif isinstance(entry.after_post, Failed):
                # OCS's refusal, matched by key alone before GWS answered (M10): it waits
                # merge_window from now for the request's acknowledgement by reference (M9).
                self._pending.hold_refusal(entry, entry.after_post)
            elif entry.after_post is not None:  # what CometD answered by key decides now
                self._pending.conclude(entry, "decided by its answer")
            else:
                self._pending.fx.append(StartTimer(("ack", token), self.limits.ack_timeout))
            return self._pending.take()
        if entry.answered and not by_key_only(entry):
            # CometD answered by reference before the POST's answer: that stands. GWS has
            # answered the POST (nothing for ``owed_unposted`` to wait for).
            entry.post_answered = True
            return []
        # Refused or never received: what was matched by key meanwhile was another client's
        # (M10); GWS did nothing with the request. Copies of it are repeats (M8).
        if entry.user_content is not None:
            self._recent.took(entry.user_content)
        self._answers.forget_withheld(entry)
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
        self._pending.finish(entry, failed, may_answer_late=False)
        return self._pending.take()

    # -- CometD messages -------------------------------------------------------------------------

    def message(self, message: object) -> list[Effect]:
        """One CometD message (``{"channel": ..., "data": {...}}``) from the listener."""
        dropped = self._answers.message(message)
        return dropped if dropped is not None else self._pending.take()

    # -- timers ----------------------------------------------------------------------------------

    def timer_expired(self, timer: TimerId) -> list[Effect]:
        kind = timer[0]
        if kind == "sweep":
            self._recent.sweep()
        elif kind == "foreign":
            foreign = self._answers.foreign.expire((timer[1], timer[2]))
            if foreign is not None:
                self.stats["foreign_acks"] += 1
                self._pending.fx.append(foreign)
        elif kind == "settle":
            self._settle_lost(timer[1])
        elif kind == "claim":
            self._recent.claim_aged(timer[1])
        else:
            entry = self._pending.entries.get(timer[1])
            if entry is not None:
                self._entry_timer(entry, kind)
        return self._pending.take()

    def _entry_timer(self, entry: Entry, kind: str) -> None:
        pending = self._pending
        if kind == "merge" and entry.withheld:
            # M11: no earlier request's notification claimed what it withheld: its own now.
            self._answers.release_withheld(entry)
            if entry.merging or pending.entries.get(entry.token) is not entry:
                return
        if entry.refusing and kind != "deadline":
            # OCS's refusal waits for the request's acknowledgement by reference (M9): at
            # the end of the window it decides; no other timer decides meanwhile.
            if kind == "refusal" and isinstance(entry.after_post, Failed):
                entry.refusing = False
                pending.finish(entry, entry.after_post)
            return
        if kind == "deadline" and (entry.answered or entry.after_post is not None):
            # Acknowledged, or what its messages decided (M10: unknown if that was matched by
            # key alone and GWS has not answered the POST).
            pending.conclude(
                entry, f"no outcome within {self.limits.deadline or 0.0:g}s of acceptance"
            )
        elif entry.answered:
            if kind in ("merge", "ack"):
                pending.acknowledge(entry)
        elif kind == "ack" and entry.phase is Phase.AWAITING:
            pending.no_answer(entry, f"no acknowledgement within {self.limits.ack_timeout:g}s")
        elif kind == "deadline":
            within = f"within {self.limits.deadline or 0.0:g}s of acceptance"
            if entry.sent:
                pending.no_answer(entry, f"no acknowledgement {within}")
            elif entry.tried:
                failed = Failed(
                    FailureReason.TRANSPORT_FAILURE,
                    f"GWS got none of its attempts {within} (each failed to reach GWS or was "
                    "refused unread); nothing was processed",
                )
                pending.finish(entry, failed)
            else:
                failed = Failed(
                    FailureReason.TRANSPORT_FAILURE, f"not sent {within}; nothing was sent"
                )
                pending.finish(entry, failed)

    # -- session events --------------------------------------------------------------------------

    def session_lost(self) -> list[Effect]:
        """The CometD session is gone: whatever was published meanwhile may be lost."""
        self._lost = True
        self._losses += 1
        for entry in self._pending.entries.values():
            if entry.sent:
                entry.lost = self._losses
        return []

    def session_restored(self) -> list[Effect]:
        """The CometD session is back. Messages already on their way are processed during one
        merge window; then what was sent before the loss and is still pending ends: with what
        arrived of its answer, else ``outcome_unknown`` (unless GWS has not answered its POST:
        that answer decides). The timer names the loss it settles:
        what is lost again before it expires waits for the next restoration's."""
        self._lost = False
        return [StartTimer(("settle", self._losses), self.settle_delay)]

    @property
    def settle_delay(self) -> float:
        """The grace period after a restoration (a settle timer's delay)."""
        return max(self.limits.merge_window, 0.05)

    def _settle_lost(self, loss: int) -> None:
        """The grace period after the restoration from loss number ``loss`` is over: what was
        lost in it (or before) and not lost again since ends now. A request lost again since
        waits for the grace period of the restoration after that loss (or its deadline)."""
        lost = [e for e in self._pending.entries.values() if 0 < e.lost <= loss]
        # GWS has not answered the POST (it is being written, or waits to be written again
        # after GWS refused it unread): that answer decides, not the grace period. M10: what
        # was matched by key alone meanwhile waits for it (a refusal proves it was another
        # client's); with nothing matched, an accepted POST is followed by the
        # acknowledgement timer (``outcome_unknown`` without an answer: it was lost). The
        # deadline bounds both.
        waiting = [e for e in lost if not decides_now(e)]
        for entry in waiting:
            if entry.answered or entry.after_post:
                self._pending.decide_after_post(entry)
            lost.remove(entry)
        unknown = sum(1 for e in lost if not e.answered)
        if unknown:
            self._pending.fx.append(
                Notice("cometd_outcomes_unknown", "warning", {"count": unknown})
            )
        for entry in lost:
            self._pending.conclude(
                entry, "the CometD session was lost while the outcome was pending"
            )

    def shutdown(self) -> list[Effect]:
        """Resolve everything still pending on the evidence at hand; from now on ``accept``
        fails at once."""
        pending = self._pending
        pending.closed = True
        for entry in list(pending.entries.values()):
            if entry.sent or entry.answered:
                pending.conclude(entry, "the plugin was closed before the outcome arrived")
            else:
                why = (
                    "the plugin was closed between attempts to send the request, none of "
                    "which GWS got; nothing was processed"
                    if entry.tried
                    else "the plugin was closed before the request was sent; nothing was sent"
                )
                pending.finish(entry, Failed(FailureReason.SHUT_DOWN, why))
        flushed = self._answers.foreign.flush()
        self.stats["foreign_acks"] += len(flushed)
        pending.fx += flushed
        return pending.take()
