"""The correlator's pending requests: their indexes, and the one place a request gets its
outcome (:meth:`PendingRequests.finish`).

Pure, like the rest of the correlator: the effects it makes are collected in ``fx`` and
handed to the engine by :meth:`PendingRequests.take`. It is the matching rule's view of the
pending requests (:class:`~._matching.Pending`), and it remembers, in
:class:`~._recent.Recent`, what a finished request may still be answered with (M2, M4, M8).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ._coerce import as_id, as_reference
from ._effects import (
    Acknowledged,
    CancelTimer,
    Effect,
    Failed,
    Limits,
    Resolved,
    Send,
    StartTimer,
)
from ._lifecycle import Entry, Phase, move
from ._matching import decides_now
from ._payloads import FailureReason, UserEvent
from ._recent import SWEEPS, Recent
from ._spec import CorrelationKey

__all__ = ["STATS", "PendingRequests", "unknown"]

#: The counters in ``Correlator.stats``.
STATS = (
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
)


class PendingRequests:
    """One per correlator. ``fx`` collects the effects of the call in progress."""

    def __init__(self, limits: Limits, late_window: float) -> None:
        self.limits = limits
        self.late_window = late_window
        self.fx: list[Effect] = []
        self.entries: dict[int, Entry] = {}
        self.by_reference: dict[str, Entry] = {}
        # Pending requests per key, oldest first; only the head may be sent (one at a time).
        self.queues: dict[CorrelationKey, list[Entry]] = {}
        # Our GetPreviewRecord requests holding their PreviewRecord notification, by the handle
        # it names, until the user event of that record joins them (M5).
        self.pairing: dict[int, Entry] = {}
        self.part_entries: set[Entry] = set()  # requests with partial results in flight (M6)
        # Requests that ended owed their answer (M4) while GWS had not answered their POST
        # yet: token -> key. A refusal of the POST after all says they are owed nothing.
        self.owed_unposted: dict[int, CorrelationKey] = {}
        # Facts kept for late_window after an outcome (M2, M4, M5, M6, M8).
        self.recent = Recent(
            fingerprint_limit=limits.fingerprint_limit, parts_limit=limits.parts_limit
        )
        self.closed = False
        self.stats: dict[str, int] = dict.fromkeys(STATS, 0)

    def take(self) -> list[Effect]:
        """The effects collected so far (and a sweep of ``recent`` when one is due)."""
        effects, self.fx = self.fx, []
        if self.recent.sweep_pending and self.recent.sweep_due():  # rarely: no call then
            effects.append(StartTimer(("sweep",), self.late_window / SWEEPS))
        return effects

    def sizes(self) -> dict[str, int]:
        return {
            "entries": len(self.entries),
            "by_reference": len(self.by_reference),
            "queued": sum(len(v) for v in self.queues.values()),
            "owed_unposted": len(self.owed_unposted),
        }

    # -- the matching rule's view (``_matching.Pending``) --------------------------------------

    def sent_entry(self, reference: str | None) -> Entry | None:
        entry = self.by_reference.get(reference) if reference is not None else None
        # ``tried``: written before, and waiting to be written again because the transport
        # was told GWS got none of it; a message with its reference id says GWS did.
        return entry if entry is not None and (entry.sent or entry.tried) else None

    def confirm(self, entry: Entry) -> None:
        """A message with ``entry``'s reference id arrived (M1): its answers are its own
        whatever its POST. Back at ``ready`` (the transport was told an attempt did not reach
        GWS and waits to write it again), GWS got an attempt after all: it counts as sent
        again (may have been processed, never written again: ``Engine.resending``)."""
        entry.confirmed = True
        if (
            isinstance(entry.after_post, Failed)
            and not entry.refusing
            and self.limits.merge_window > 0
        ):
            # A refusal matched by key held for GWS's answer to the POST (M10): GWS got the
            # request, so it waits merge_window from now for the acknowledgement (M9).
            self.hold_refusal(entry, entry.after_post)
        if move(entry, "reached") and entry.spec.part is not None:
            self.part_entries.add(entry)

    def head(self, key: CorrelationKey) -> Entry | None:
        queue = self.queues.get(key)
        return queue[0] if queue else None

    # -- in ------------------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Index an accepted request; it is released (``Send``) unless another on its key is
        pending."""
        self.entries[entry.token] = entry
        self.by_reference[entry.request.reference_id] = entry
        queue: list[Entry] | None = None
        if entry.key is not None:
            queue = self.queues.get(entry.key)
            if queue is None:
                queue = self.queues[entry.key] = []
            queue.append(entry)
        if queue is None or len(queue) == 1:
            self.release(entry)

    def release(self, entry: Entry) -> None:
        move(entry, "released")
        self.fx.append(Send(entry.token, entry.request))

    # -- answers -------------------------------------------------------------------------------

    def half(self, entry: Entry) -> None:
        """Part of ``entry``'s answer arrived: acknowledge when it is complete, else (re)open
        the merge window. A request with partial results always waits the window after its
        last message: parts may arrive after the end marker."""
        move(entry, "answer")
        whole = entry.outbound is not None and entry.user_event is not None
        if self.limits.merge_window == 0 or (whole and entry.spec.part is None):
            self.acknowledge(entry)
        elif entry.spec.part is not None or not entry.merging:
            entry.merging = True
            self.fx.append(StartTimer(("merge", entry.token), self.limits.merge_window))

    # -- outcomes ------------------------------------------------------------------------------

    def provisional(self, entry: Entry) -> bool:
        """Whether what arrived for ``entry`` so far decides nothing yet (M10: matched by key
        alone while GWS has not answered its POST; ``_matching.decides_now``)."""
        return not decides_now(entry)

    def decide_after_post(self, entry: Entry, outcome: Failed | None = None) -> None:
        """Keep what the messages matched by key decided (acknowledged; or ``outcome``, OCS's
        refusal) until GWS answers the POST (``Correlator.posted``); the first decision
        stands."""
        if entry.after_post is None:
            entry.after_post = True if outcome is None else outcome

    def hold_refusal(self, entry: Entry, outcome: Failed, *, own: bool = False) -> None:
        """OCS refused ``entry``'s request, GWS having got it (accepted the POST, or may
        have processed it, or a message with its reference id arrived): that decides at the
        end of ``merge_window`` (``refusal`` timer), unless the request's acknowledgement by
        reference arrives meanwhile (M9: a refusal matched by key alone was another
        desktop's; one with its reference id answered a second copy of its POST). The first
        refusal held stands, unless a later one carries its reference id (``own``); the
        request's deadline, the close or a lost session end the window early, the refusal
        deciding then. ``merge_window`` 0: it decides at once."""
        if entry.after_post is None or own:
            entry.after_post = outcome
        if self.limits.merge_window == 0:
            self.conclude(entry, "refused by OCS")
        elif not entry.refusing:
            entry.refusing = True
            self.fx.append(StartTimer(("refusal", entry.token), self.limits.merge_window))

    def acknowledged_by_reference(self, entry: Entry) -> None:
        """M9: a message with ``entry``'s reference id acknowledges it, so a refusal not
        decided yet (held for GWS's answer to the POST, M10, or waiting ``merge_window`` for
        this acknowledgement) was not its answer (another desktop's, or a second copy's of
        its POST). The request then waits for the rest of its answer as before the refusal
        (its acknowledgement timer, which the window held, starts again)."""
        if isinstance(entry.after_post, Failed):
            entry.after_post = None
        if self.close_refusal_window(entry) and entry.post_answered:
            self.fx.append(StartTimer(("ack", entry.token), self.limits.ack_timeout))

    def close_refusal_window(self, entry: Entry) -> bool:
        """End the window of a refusal held for ``merge_window`` (:meth:`hold_refusal`);
        whether one was open."""
        if not entry.refusing:
            return False
        entry.refusing = False
        self.fx.append(CancelTimer(("refusal", entry.token)))
        return True

    def conclude(self, entry: Entry, why: str) -> None:
        """End a sent request now: with what its messages decided, acknowledged if part of
        its answer arrived, else unknown.

        M10: what was matched by key alone while GWS has not answered the POST decides
        nothing even now (the deadline, the close). The attempt being written may yet prove
        never to have reached GWS, and then that answer was another client's: the request
        ends ``outcome_unknown``, never with an answer that may not be its own."""
        if (entry.answered or entry.after_post is not None) and not decides_now(entry):
            self.finish(
                entry,
                unknown(
                    f"{why}; GWS had not answered the POST, and what arrived over CometD was "
                    "matched by record or campaign alone (it may be another client's answer)"
                ),
            )
        elif isinstance(entry.after_post, Failed):
            self.finish(entry, entry.after_post)
        elif entry.answered:
            self.acknowledge(entry, final=True)
        else:
            self.finish(entry, unknown(why))

    def no_answer(self, entry: Entry, why: str) -> None:
        """A sent request that nothing answered in time."""
        if entry.post_status is not None:
            code, text = entry.post_status
            failed = unknown(f"{text or f'statusCode {code}'}; {why}", status_code=code)
        elif entry.phase is Phase.SENDING or entry.unanswered:
            failed = unknown(why)
        elif entry.lost:  # its answer may have been published while the session was lost
            failed = unknown(f"{why}; the CometD session was lost while the outcome was pending")
        else:
            failed = Failed(FailureReason.TIMED_OUT, why, may_have_acted=True)
        self.finish(entry, failed)

    def acknowledge(self, entry: Entry, *, final: bool = False) -> None:
        """Acknowledge ``entry`` with what arrived; unless ``final``, an answer matched by key
        alone waits for GWS's answer to the POST (:meth:`provisional`)."""
        if not final and not decides_now(entry):  # provisional(entry), one call less
            self.decide_after_post(entry)
            return
        parts: tuple[Mapping[str, Any] | UserEvent, ...] = ()
        if entry.parts:
            notified = _one_per_record(entry.parts, _notification_record)
            parts = notified
        elif entry.event_parts:
            in_order = [event for _, event, _ in sorted(entry.event_parts, key=lambda p: p[0])]
            events = _one_per_record(in_order, _event_record)
            parts = events
        self.finish(entry, Acknowledged(entry.outbound, entry.user_event, parts, entry.empty))

    def finish(
        self, entry: Entry, outcome: Acknowledged | Failed, *, may_answer_late: bool = True
    ) -> None:
        """The one place an entry leaves the indexes and gets its outcome."""
        if self.entries.pop(entry.token, None) is None:
            return
        follower = self._unindex(entry)
        if isinstance(outcome, Acknowledged):
            self.stats["acknowledged"] += 1
        else:
            self.stats["failed"] += 1
        self.fx.append(Resolved(entry.token, entry.request, outcome))
        if entry.sent and may_answer_late:
            self._remember(entry, outcome)
        if entry.phase in (Phase.AWAITING, Phase.ANSWERING):
            self.fx.append(CancelTimer(("ack", entry.token)))
        if entry.merging:
            self.fx.append(CancelTimer(("merge", entry.token)))
        if entry.refusing:
            self.fx.append(CancelTimer(("refusal", entry.token)))
        if self.limits.deadline is not None:
            self.fx.append(CancelTimer(("deadline", entry.token)))
        if follower is not None and not self.closed:
            self.release(follower)

    def _unindex(self, entry: Entry) -> Entry | None:
        """Take ``entry`` out of every index but ``entries``; the request held behind it on
        its key, if any, is returned."""
        self.part_entries.discard(entry)
        reference = entry.request.reference_id
        if self.by_reference.get(reference) is entry:
            del self.by_reference[reference]
        follower: Entry | None = None
        if entry.key is not None:
            queue = self.queues.get(entry.key)
            if queue is not None:
                if entry in queue:
                    queue.remove(entry)
                if not queue:
                    del self.queues[entry.key]
                elif queue[0].phase is Phase.HELD:
                    follower = queue[0]
        handle = entry.paired
        if handle is not None and self.pairing.get(handle) is entry:
            del self.pairing[handle]  # O(1): no scan of every paired request
        return follower

    def _remember(self, entry: Entry, outcome: Acknowledged | Failed) -> None:
        """Its messages may still arrive (M2, M4); they must never answer another request."""
        recent = self.recent
        recent.reserve(entry.request.reference_id)
        event, content = entry.user_event, entry.user_content
        # Nothing is owed on its key (the next answer there is the next request's) when OCS's
        # refusal by user event decided once GWS answered the POST (M10: that was its answer),
        # or GWS refused it by an ErrorMessage (``rejected``: GWS never passed it on), or a
        # refusal matched by key alone was held for GWS's answer to the POST when the request
        # ended (M10, ``outcome_unknown``): that refusal was its answer if GWS got the POST,
        # and GWS never passed it on if not.
        refused = isinstance(outcome, Failed) and (
            bool(outcome.user_data)
            or outcome.reason is FailureReason.REJECTED
            or isinstance(entry.after_post, Failed)
        )
        by_event = isinstance(outcome, Failed) and bool(outcome.user_data)
        if (
            entry.key is not None
            and not entry.confirmed
            and (by_event or (event is None and not refused))
        ):
            # Nothing with its reference id arrived, and no answer of its own: should its
            # acknowledgement come late, by reference id, its user event follows (a refusal
            # matched by key meanwhile, or taken as its late answer, was another client's).
            recent.ended_unconfirmed(entry.request.reference_id, entry.key, entry.spec, entry.token)
        if event is None and entry.key is not None and not refused:
            # GWS acknowledged it (M9): its late answer is no refusal, and a "no record" only
            # if it was acknowledged as one.
            acknowledged = entry.outbound is not None
            recent.owe(
                entry.key, entry.spec, entry.token, acknowledged=acknowledged, empty=entry.empty
            )
            if not entry.post_answered:
                self.owed_unposted[entry.token] = entry.key
        elif event is not None and content is not None and _unreferenced(event):
            recent.took(content)
        for _, part, part_content in entry.event_parts:
            if part_content is not None and _unreferenced(part):
                recent.took(part_content)  # its copies are repeats (M8)


def unknown(why: str, status_code: int | None = None) -> Failed:
    """``outcome_unknown``: GWS may or may not have acted."""
    return Failed(
        FailureReason.OUTCOME_UNKNOWN,
        f"{why}; GWS may or may not have acted on the request",
        status_code=status_code,
        may_have_acted=True,
    )


def _unreferenced(event: UserEvent) -> bool:
    return as_reference(event.user_data.get("GSW_REFERENCE_ID")) is None


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
