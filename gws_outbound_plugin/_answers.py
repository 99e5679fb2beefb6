"""CometD messages to requests: each message parsed once (``_inbound``), placed by the
matching rule (``_matching.place``, rows M1 to M10 of ``docs/design-notes.md``, "Which request
a message answers"), and then what the verdict says is done: the message joins its request
(its acknowledgement, partial results, empty result or refusal), is dropped as late or as a
repeat, or is reported as another client's acknowledgement or as unsolicited. Row M11 holds
an answer matched by key back for ``merge_window`` before it joins its request (a late
notification of an earlier request on its key may show it is that request's): that takes a
timer, so it is done here, not in ``place``.

Pure: the effects go to :class:`~._pending.PendingRequests`, which makes the outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._coerce import as_id, as_name, is_object
from ._effects import (
    CancelTimer,
    Effect,
    Failed,
    Foreign,
    Limits,
    Notice,
    StartTimer,
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
from ._lifecycle import Entry
from ._matching import (
    ANSWER_EVENTS,
    PART_EVENTS,
    PUSHED_EVENTS,
    Placement,
    Verdict,
    answers,
    by_key_only,
    by_reference,
    place,
)
from ._payloads import FailureReason, UserEvent
from ._pending import PendingRequests
from ._recent import MAX_NESTING
from ._spec import SPEC_BY_ACKNOWLEDGEMENT, CorrelationKey, OperationSpec, Target

__all__ = ["Answers"]

#: M11: the most user events one request withholds at a time (the first, and what may follow
#: it while earlier requests on its key are given theirs back).
_WITHHELD_LIMIT = 4


class Answers:
    """One per correlator, over its :class:`~._pending.PendingRequests`."""

    def __init__(self, pending: PendingRequests, limits: Limits) -> None:
        self.limits = limits
        self._p = pending
        self._recent = pending.recent
        self._stats = pending.stats
        self.seq = 0  # messages seen, for "arrived after it was sent" (M6)
        self.foreign = ForeignPairs(limits.merge_window, limits.foreign_limit)

    def message(self, message: object) -> list[Effect] | None:
        """One CometD message (``{"channel": ..., "data": {...}}``) from the listener. A
        message dropped before it is parsed gets its effects returned at once; else they are
        in ``PendingRequests.fx`` (None is returned)."""
        if type(message) is not dict and not is_object(message):  # a dict, usually
            return self._malformed("not a JSON object", None)
        channel = message.get("channel")
        data = message.get("data")
        if type(data) is not dict and not is_object(data):
            return self._malformed("no data object", channel)
        seen = self._recent.fingerprint(channel, data, self.limits.max_message_bytes)
        if seen is None:
            return self._malformed(
                f"larger than {self.limits.max_message_bytes} bytes, nested deeper than "
                f"{MAX_NESTING} levels, or not JSON",
                channel,
            )
        duplicate, content = seen
        if duplicate:
            self._stats["duplicates"] += 1
            return [Notice("cometd_duplicate_dropped", "debug", {"channel": as_name(channel)})]
        self.seq += 1
        name = as_name(channel)
        try:
            inbound = parse(
                name,
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
            fields = {"channel": name, "message_type": as_name(data.get("messageType"))}
            self._p.fx.append(Notice("cometd_message_ignored", "debug", fields))
        return None

    def _malformed(self, why: str, channel: object) -> list[Effect]:
        self._stats["malformed"] += 1
        fields = {"reason": why, "channel": as_name(channel)}
        return [Notice("cometd_message_rejected", "warning", fields)]

    def _late(self, what: str, placement: Placement, **fields: Any) -> None:
        self._stats["late"] += 1
        self._p.fx.append(Notice(what, "info", {**fields, "rule": placement.rule}))

    # -- notifications and ErrorMessages ---------------------------------------------------------

    def _on_notification(self, n: Notification) -> None:
        placement = place(n, self._p, self._recent)
        if placement.verdict is Verdict.OWN:
            self._p.confirm(placement.entry)  # M1: by its reference id
            self._notification_for(placement.entry, n)
        elif placement.verdict is Verdict.LATE:
            if n.reference is not None:
                answered = self._give_back(n.reference, n.notification)
                self._recent.acknowledged_late(n.reference, n.notification, answered=answered)
            self._late("late_notification_ignored", placement, reference_id=n.reference)
        elif n.notification == "PreviewRecord":
            self._stats["unsolicited"] += 1
            self._p.fx.append(Unsolicited(outbound=n.data))
        elif n.notification is not None and n.notification in SPEC_BY_ACKNOWLEDGEMENT:
            spec = SPEC_BY_ACKNOWLEDGEMENT[n.notification][0]
            self._foreign_half(spec, n.keys, outbound=n.data)
        else:
            fields = {"notification": n.notification}
            self._p.fx.append(Notice("outbound_notification_ignored", "debug", fields))

    def _notification_for(self, entry: Entry, n: Notification) -> None:
        spec = entry.spec
        if n.is_error and _names_another_record(entry, n.record_handle):
            self._another_record(entry, n.notification, n.record_handle)  # M1
        elif n.is_error and _acknowledged(entry):
            self._refusal_of_a_copy(entry, n.notification)
        elif n.is_error:
            code = error_number(n.data.get("errorCode"))
            text = n.error_text or "GWS reported an error for this request"
            self._refused_by_reference(
                entry, Failed(FailureReason.OCS_ERROR, text, error_number=code)
            )
        elif n.notification == spec.acknowledgement and _names_another_record(
            entry, n.record_handle
        ):
            self._another_record(entry, n.notification, n.record_handle)
        elif n.notification == spec.acknowledgement:
            if entry.outbound is None:
                entry.outbound = n.data
                self._p.acknowledged_by_reference(entry)
                if spec.pushed and n.record_handle is not None:
                    self._pair_preview(entry, n.record_handle)
                self._p.half(entry)
        elif spec.part is not None and n.notification == spec.part:
            entry.parts.append(n.data)
            if entry.merging:
                self._p.half(entry)  # a straggler: the window starts again
        elif n.notification in spec.empty:
            entry.empty = True
            entry.outbound = n.data
            self._p.acknowledge(entry)
        else:
            fields = {"notification": n.notification, "reference_id": n.reference}
            self._p.fx.append(Notice("outbound_notification_ignored", "debug", fields))

    def _on_error_message(self, e: ErrorNotice) -> None:
        placement = place(e, self._p, self._recent)
        if placement.verdict is Verdict.OWN and _acknowledged(placement.entry):
            self._refusal_of_a_copy(placement.entry, "ErrorMessage")
        elif placement.verdict is Verdict.OWN:
            self._p.confirm(placement.entry)  # by its reference id: GWS got it
            text = e.text or "GWS reported an error for this request"
            failed = Failed(FailureReason.REJECTED, text, status_code=e.code)
            self._refused_by_reference(placement.entry, failed)
        elif placement.verdict is Verdict.LATE:
            self._late("late_error_ignored", placement, reference_id=e.reference)
        else:
            self._stats["unmatched_errors"] += 1
            fields = {
                "channel": e.channel,
                "reference_id": e.reference,
                "error_code": e.code,
                "detail": (e.text or "")[:200],
            }
            self._p.fx.append(Notice("cometd_error_unmatched", "warning", fields))

    def _refused_by_reference(self, entry: Entry, failed: Failed) -> None:
        """GWS refused ``entry``'s request by a message carrying its reference id (an
        ``ErrorMessage``, or an outbound ``Error`` notification) before any acknowledgement
        by that id: as OCS's refusal by reference (M9), it decides ``merge_window`` after it
        arrived unless that acknowledgement comes meanwhile (a node in front of GWS wrote the
        POST twice: OCS acted on one copy, GWS refused the other, and GWS's refusal is
        usually the faster). ``merge_window`` 0: it decides at once."""
        if self.limits.merge_window > 0:
            self._p.hold_refusal(entry, failed, own=True)
        else:
            self._p.finish(entry, failed)

    # -- user events -----------------------------------------------------------------------------

    def _on_user_event(self, u: UserEventNotice) -> None:
        self._stats["user_events"] += 1
        self._p.fx.append(UserEventSeen(u.event))
        placement = place(u, self._p, self._recent)
        verdict = placement.verdict
        if verdict is Verdict.OWN:
            if placement.rule == "M1":
                self._p.confirm(placement.entry)  # by its reference id
            elif self._withhold(placement.entry, u):
                return
            self._give(placement.entry, u)
        elif verdict is Verdict.TENTATIVE:
            self._give_tentatively(placement.entry, u)
        elif verdict is Verdict.LATE:
            if u.content is not None and u.reference is None:
                self._recent.took(u.content)  # its copies are repeats, not someone's answer
            claimed = self._recent.take_claimed()
            if claimed is not None:
                if self.limits.merge_window > 0:
                    self._p.fx.append(StartTimer(("claim", claimed), self.limits.merge_window))
                else:
                    self._recent.claim_aged(claimed)
            self._late("late_user_event_ignored", placement, user_event=u.name)
        elif verdict is Verdict.REPEAT:
            self._repeat(u)
        elif verdict is Verdict.PART:
            self._keep_part(u)
        elif verdict is Verdict.PUSHED:
            if u.record_handle is not None:
                self._pushed_answer(u.record_handle, u.event)
        else:
            self._not_ours(u)

    # -- M11: an earlier request's user event before its late notification ---------------------

    def _withhold(self, entry: Entry, u: UserEventNotice) -> bool:
        """M11: an acknowledgement matched by key alone to ``entry``'s request, which has no
        answer yet, while a request on its key ended before anything with its reference id
        arrived (``Recent.unconfirmed_before``): that request's late acknowledgement may
        be coming, its user event first. It is withheld ``merge_window`` (the ``merge``
        timer), and so is what follows it by key meanwhile; the earlier request's
        notification by reference arriving then makes it that request's
        (:meth:`_give_back`). Whether it was withheld."""
        if entry.withheld:
            if u.is_error:
                return False
            if len(entry.withheld) < _WITHHELD_LIMIT and all(
                w.content != u.content or u.content is None for w in entry.withheld
            ):
                entry.withheld.append(u)  # behind the first, in order
            else:
                # A copy of one withheld (or more answers than requests could be owed them
                # within merge_window): what it would be given is taken already.
                self._repeat(u)
            return True
        if (
            u.is_error
            or u.reference is not None
            or entry.user_event is not None
            or entry.key is None
            or self.limits.merge_window <= 0
            or not by_key_only(entry)
            or not self._recent.unconfirmed_before(entry.key, u.name)
        ):
            return False
        entry.withheld.append(u)
        if not entry.merging:
            entry.merging = True
            self._p.fx.append(StartTimer(("merge", entry.token), self.limits.merge_window))
        self._p.fx.append(Notice("user_event_withheld", "debug", {"user_event": u.name}))
        return True

    def _give_back(self, reference: str, notification: str | None) -> bool:
        """M11: the late notification of a request that ended unconfirmed (``reference``)
        arrived while the request in flight on its key withholds a user event that answers
        it: the first such event is the earlier request's (OCS answers a key's requests in
        order, and GWS sends the two halves of one answer within ``merge_window``): dropped
        as late, its copies repeats. Whether one was given back."""
        found = self._recent.late_acknowledgement(reference, notification)
        if found is None:
            return False
        key, spec = found
        entry = self._p.head(key)
        if entry is None or not entry.withheld or not answers(spec, entry.withheld[0].name):
            return False
        u = entry.withheld.pop(0)
        if u.content is not None:
            self._recent.took(u.content)
        if not entry.withheld and entry.merging and not entry.answered:
            entry.merging = False  # nothing else waits on its merge timer
            self._p.fx.append(CancelTimer(("merge", entry.token)))
        self._p.fx.append(
            Notice(
                "late_user_event_given_back",
                "info",
                {"user_event": u.name, "reference_id": reference, "rule": "M11"},
            )
        )
        return True

    def release_withheld(self, entry: Entry) -> None:
        """M11: the ``merge`` timer of ``entry``'s withheld user events fired, and no earlier
        request's notification claimed them: they are its own, as M4 gave them."""
        withheld, entry.withheld = entry.withheld, []
        entry.merging = False
        for u in withheld:
            if self._p.entries.get(entry.token) is not entry:
                return
            self._give(entry, u)

    def forget_withheld(self, entry: Entry) -> None:
        """What ``entry`` withheld was matched by key alone: another client's (M10); copies of
        it are repeats (M8)."""
        for u in entry.withheld:
            if u.content is not None:
                self._recent.took(u.content)
        entry.withheld = []

    def _repeat(self, u: UserEventNotice) -> None:
        self._stats["duplicates"] += 1
        self._p.fx.append(Notice("user_event_repeat_ignored", "debug", {"user_event": u.name}))

    def _give(self, entry: Entry, u: UserEventNotice) -> None:
        """A user event that belongs to ``entry``'s request."""
        spec = entry.spec
        event = u.event
        if u.reference is not None and u.name in ANSWER_EVENTS and not answers(spec, u.name):
            # M1: with its reference id, but answering another operation: ignored.
            fields = {"user_event": u.name, "reference_id": u.reference}
            self._p.fx.append(Notice("answer_for_another_operation_ignored", "warning", fields))
            return
        if u.is_error and u.reference is not None and _names_another_record(entry, u.record_handle):
            # M1: a refusal with its reference id about another record (a server putting the
            # id on the wrong message) is not its answer, as an acknowledgement would not be.
            self._another_record(entry, u.name, u.record_handle)
            return
        if entry.user_event is None:
            entry.user_content = u.content  # what a regenerated copy is recognised by (M8)
        if u.is_error:
            self._refused(entry, u)
        elif spec.part is not None and u.name == spec.part:
            entry.event_parts.append((self.seq, event, u.content))
            if entry.merging or entry.maybe is not None:
                self._confirm(entry)
        elif u.name in spec.empty:
            entry.empty = True
            entry.user_event = event
            self._p.acknowledge(entry)
        elif u.reference is not None and _names_another_record(entry, u.record_handle):
            self._another_record(entry, u.name, u.record_handle)
        elif answers(spec, u.name) and entry.user_event is None:
            entry.user_event, entry.user_content, entry.maybe = event, u.content, None
            if u.reference is not None:
                self._p.acknowledged_by_reference(entry)
            if spec.part is not None:
                entry.chain = u.chain
                self._collect_parts(entry, before=self.seq)
            self._p.half(entry)
        else:
            self._repeat(u)

    def _refused(self, entry: Entry, u: UserEventNotice) -> None:
        """OCS refused ``entry``'s request (or found nothing: an empty result)."""
        event = u.event
        text = u.error_text
        if text is not None and text.strip().casefold() in entry.spec.empty_error_texts:
            entry.user_event = event
            entry.empty = True
            self._p.acknowledge(entry)
            return
        failed = Failed(
            FailureReason.OCS_ERROR,
            text or "OCS refused the request",
            error_number=error_number(event.user_data.get("GSW_ERROR_NUMBER")),
            user_data=event.user_data,
        )
        if self._p.provisional(entry):
            # Matched by key: GWS's answer decides (M10). Whoever it turns out to be for (this
            # request, or another client's if GWS refuses the POST or acknowledges the request
            # by its reference id, M9), a copy of it is a repeat (M8), as of one that decides.
            if u.content is not None:
                self._recent.took(u.content)
            self._p.decide_after_post(entry, failed)
            return
        if _acknowledged(entry):
            if u.content is not None:
                self._recent.took(u.content)
            self._refusal_of_a_copy(entry, u.name)
            return
        if self.limits.merge_window > 0:
            # M9: the request's acknowledgement by reference may follow: the refusal may be
            # another desktop's on the record (matched by key alone), or, GWS having got the
            # POST twice, the second copy's, overtaking the first's answer. It decides once
            # the merge window passes without that acknowledgement.
            if u.content is not None:
                self._recent.took(u.content)
            self._p.hold_refusal(entry, failed, own=u.reference is not None)
            return
        entry.user_event = event
        self._p.finish(entry, failed)

    def _another_record(self, entry: Entry, what: str | None, handle: int | None) -> None:
        """M1: a message with ``entry``'s reference id that answers an operation on another
        record (a server putting the id on the wrong message) is not its answer: ignored,
        with a warning; the request waits for its own."""
        fields = {
            "message": what,
            "reference_id": entry.request.reference_id,
            "record_handle": handle,
            "request_record_handle": getattr(entry.request, "record_handle", None),
        }
        self._p.fx.append(Notice("answer_for_another_record_ignored", "warning", fields))

    def _refusal_of_a_copy(self, entry: Entry, what: str | None) -> None:
        """M9: a refusal with ``entry``'s reference id after its acknowledgement by that id
        answers a second copy of its POST (a node in front of GWS writing it again): OCS
        acted on the first, and the acknowledgement is the request's outcome."""
        self._stats["unmatched_errors"] += 1
        fields = {"refusal": what, "reference_id": entry.request.reference_id}
        self._p.fx.append(Notice("refusal_after_acknowledgement_ignored", "warning", fields))

    def _give_tentatively(self, entry: Entry, u: UserEventNotice) -> None:
        """M8: ``u`` has the ``userData`` of an answer an earlier request took, so it may be
        ``entry``'s answer or a copy of that one. It decides nothing alone: the request is
        acknowledged by its own notification (without ``u``), or, for an answer OCS sends as
        user events, by its partial results (with ``u``: its own end marker has the same
        content); else its timer ends it as for no answer."""
        self._p.fx.append(Notice("user_event_ambiguous", "info", {"user_event": u.name}))
        if u.is_error or u.name in entry.spec.empty or entry.answered or entry.maybe:
            return
        entry.maybe = (u.event, u.content)
        if entry.spec.part is not None:
            entry.chain = u.chain
            self._collect_parts(entry, before=self.seq)
            if entry.event_parts:
                self._confirm(entry)

    def _confirm(self, entry: Entry) -> None:
        """Partial results of its own came as user events: its end marker (``maybe``) is the
        request's own too, whichever copy it was."""
        if entry.maybe is not None and entry.user_event is None:
            entry.user_event, entry.user_content = entry.maybe
        entry.maybe = None
        self._p.half(entry)

    def _not_ours(self, u: UserEventNotice) -> None:
        name = u.name
        if u.is_error:
            if name in ANSWER_EVENTS:
                self._stats["unmatched_errors"] += 1
                self._p.fx.append(Notice("ocs_error_unmatched", "info", {"user_event": name}))
            else:
                self._stats["unsolicited"] += 1
                self._p.fx.append(Unsolicited(event=u.event))
        elif name is not None and name in SPEC_BY_ACKNOWLEDGEMENT and name not in PUSHED_EVENTS:
            self._foreign_half(SPEC_BY_ACKNOWLEDGEMENT[name][0], u.keys, user_event=u.event)
        elif name not in ANSWER_EVENTS and name not in PART_EVENTS:
            self._stats["unsolicited"] += 1
            self._p.fx.append(Unsolicited(event=u.event))

    # -- M5: pushed answers, M6: partial results ---------------------------------------------

    def _pushed_answer(self, handle: int, event: UserEvent) -> None:
        entry = self._p.pairing.pop(handle, None)
        if entry is not None and entry.user_event is None:
            entry.user_event = event
            self._p.half(entry)
        else:
            self._recent.hold_preview(handle, event)

    def _pair_preview(self, entry: Entry, handle: int) -> None:
        held = self._recent.pop_preview(handle)
        if held is not None:
            entry.user_event = held
        elif entry.user_event is None:
            self._p.pairing[handle] = entry
            entry.paired = handle

    def _keep_part(self, u: UserEventNotice) -> None:
        part_entries = self._p.part_entries
        if u.chain is None or not part_entries:
            return  # no request of ours can own it: only on_user_event
        if not self._recent.keep_part(u.chain, self.seq, u.record_handle, u.event, u.content):
            return
        if len(part_entries) == 1:
            # After its end marker (reordered), a part is the one request's only while no other
            # request that could own it is in flight.
            (entry,) = part_entries
            if entry.chain == u.chain and (entry.merging or entry.maybe is not None):
                self._collect_parts(entry, before=self.seq + 1)
                self._confirm(entry)

    def _collect_parts(self, entry: Entry, before: int) -> None:
        """M6: the unreferenced parts of its chain that arrived after it was sent and before
        its end marker, other than its own record, are its own."""
        if entry.chain is not None:
            entry.event_parts += self._recent.take_parts(
                entry.chain,
                after=entry.sent_seq,
                before=before,
                own=getattr(entry.request, "record_handle", None),
            )

    # -- another client's acknowledgements -----------------------------------------------------

    def _foreign_half(
        self,
        spec: OperationSpec,
        keys: tuple[CorrelationKey, ...],
        *,
        outbound: Mapping[str, Any] | None = None,
        user_event: UserEvent | None = None,
    ) -> None:
        effect = self.foreign.add(spec, keys, outbound=outbound, user_event=user_event)
        if isinstance(effect, Foreign):
            self._stats["foreign_acks"] += 1
        self._p.fx.append(effect)


def _names_another_record(entry: Entry, handle: int | None) -> bool:
    """Whether a message naming record ``handle`` cannot answer ``entry``'s request: an
    operation on one record, answered about another."""
    if handle is None or entry.spec.target is not Target.RECORD:
        return False
    return as_id(getattr(entry.request, "record_handle", None)) not in (None, handle)


def _acknowledged(entry: Entry) -> bool:
    """Whether a message with ``entry``'s reference id acknowledged it (M1, M9)."""
    return entry.outbound is not None or by_reference(entry.user_event)
