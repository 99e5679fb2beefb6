"""How the outcome of each GWS outbound operation arrives: what the correlator needs to know.

One :class:`OperationSpec` per ``operationName`` (and per URL shape: ``DoNotCallRecord`` exists
with a record handle and without one). The names come from the GWS and OCS references; which of
them are confirmed on a real GWS is said in ``docs/hooks.md``. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Protocol

from ._coerce import as_id, as_name

__all__ = [
    "OPERATION_SPECS",
    "SPEC_BY_ACKNOWLEDGEMENT",
    "CorrelationKey",
    "Operation",
    "OperationSpec",
    "Target",
    "campaign_key",
    "phone_key",
    "record_key",
]

#: What a message without a reference id of ours is matched on (``docs/design-notes.md``,
#: "Which request a message answers"): ``("record", handle)``, ``("phone", application,
#: campaign, phone number)`` or ``("campaign", application, campaign)``.
CorrelationKey = tuple[Any, ...]


class Target(enum.StrEnum):
    """Which URL an operation is POSTed to (under ``/api/v2``)."""

    RECORD = "record"
    """``/me/outbound-records/<recordHandle>``"""
    RECORDS = "records"
    """``/me/outbound-records`` (no handle: AddRecord, DoNotCallRecord by phone number)"""
    CAMPAIGN = "campaign"
    """``/me/outbound-campaigns/<campaignName>``"""


@dataclass(frozen=True, slots=True)
class OperationSpec:
    """What ends one operation, as the correlator sees it.

    The ``OutboundRecordMessage`` / ``OutboundCampaignMessage`` whose ``notificationType`` is
    ``acknowledgement`` and whose ``referenceId`` is the request's ends it successfully; the
    ``DeviceUserEventMessage`` whose ``GSW_USER_EVENT`` is in ``user_events`` is its second
    half (matched by ``GSW_REFERENCE_ID``, else by record or campaign); messages of type
    ``part`` arrive before the acknowledgement and are collected into the result (the chained
    records of ``GetChainedRecord``); an ``empty`` notification or user event ends it
    successfully with no record (``GetPreviewRecord`` on an exhausted list).
    """

    name: str
    """The GWS ``operationName``."""
    target: Target
    message_type: str
    """``messageType`` of its acknowledgement on ``/v2/me/outbound``."""
    acknowledgement: str
    """``notificationType`` of its acknowledgement."""
    user_events: frozenset[str]
    """``GSW_USER_EVENT`` values of the OCS user events that answer it (acknowledgement and
    partial results)."""
    part: str | None = None
    """``notificationType`` (and ``GSW_USER_EVENT``) of a partial result, collected in order."""
    empty: frozenset[str] = frozenset()
    """Names (``notificationType`` or ``GSW_USER_EVENT``) meaning "no record available"."""
    empty_error_texts: frozenset[str] = frozenset()
    """``GSW_ERROR`` texts that mean an empty result rather than a failure."""
    pushed: bool = False
    """OCS also sends the acknowledgement on its own (a preview record pushed to the agent):
    its user event without our reference id is never matched by key."""

    @property
    def key(self) -> tuple[str, Target]:
        return (self.name, self.target)


def _spec(
    name: str,
    target: Target,
    acknowledgement: str,
    *,
    message_type: str = "OutboundRecordMessage",
    user_events: tuple[str, ...] = (),
    part: str | None = None,
    empty: tuple[str, ...] = (),
    empty_error_texts: tuple[str, ...] = (),
    pushed: bool = False,
) -> OperationSpec:
    events = frozenset((acknowledgement, *user_events, *((part,) if part else ())))
    return OperationSpec(
        name=name,
        target=target,
        message_type=message_type,
        acknowledgement=acknowledgement,
        user_events=events,
        part=part,
        empty=frozenset(empty),
        empty_error_texts=frozenset(text.casefold() for text in empty_error_texts),
        pushed=pushed,
    )


CANCEL_RECORD: Final = _spec("CancelRecord", Target.RECORD, "RecordCancelAcknowledge")
REJECT_RECORD: Final = _spec("RejectRecord", Target.RECORD, "RecordRejectAcknowledge")
COMPLETE_RECORD: Final = _spec("CompleteRecord", Target.RECORD, "RecordProcessedAcknowledge")
DO_NOT_CALL_RECORD: Final = _spec("DoNotCallRecord", Target.RECORD, "DoNotCallAcknowledge")
RESCHEDULE_RECORD: Final = _spec(
    "RescheduleRecord",
    Target.RECORD,
    "ScheduledRecordRescheduleAcknowledge",
    # Which OCS request GWS sends is unconfirmed: accept the user event of either.
    user_events=("RecordRescheduleAcknowledge",),
)
UPDATE_RECORD: Final = _spec("UpdateRecord", Target.RECORD, "UpdateCallCompletionStatsAcknowledge")
GET_CHAINED_RECORD: Final = _spec(
    "GetChainedRecord", Target.RECORD, "ChainedRecordsDataEnd", part="ChainedRecord"
)
ADD_RECORD: Final = _spec("AddRecord", Target.RECORDS, "AddRecordAcknowledge")
DO_NOT_CALL_PHONE: Final = _spec("DoNotCallRecord", Target.RECORDS, "DoNotCallAcknowledge")
START_PREVIEW_SESSION: Final = _spec(
    "StartPreviewSession",
    Target.CAMPAIGN,
    "PreviewSessionStarted",
    message_type="OutboundCampaignMessage",
    user_events=("PreviewDialingModeStartAcknowledge",),
)
END_PREVIEW_SESSION: Final = _spec(
    "EndPreviewSession",
    Target.CAMPAIGN,
    "PreviewSessionEnded",
    message_type="OutboundCampaignMessage",
    user_events=("PreviewDialingModeOverAcknowledge",),
)
GET_PREVIEW_RECORD: Final = _spec(
    "GetPreviewRecord",
    Target.CAMPAIGN,
    "PreviewRecord",
    empty=("PreviewRecordEmpty",),
    user_events=("PreviewRecordEmpty",),
    empty_error_texts=("No Records Available",),
    pushed=True,
)

#: Every operation, keyed by (operationName, target).
OPERATION_SPECS: Final[Mapping[tuple[str, Target], OperationSpec]] = MappingProxyType(
    {
        spec.key: spec
        for spec in (
            CANCEL_RECORD,
            REJECT_RECORD,
            COMPLETE_RECORD,
            DO_NOT_CALL_RECORD,
            RESCHEDULE_RECORD,
            UPDATE_RECORD,
            GET_CHAINED_RECORD,
            ADD_RECORD,
            DO_NOT_CALL_PHONE,
            START_PREVIEW_SESSION,
            END_PREVIEW_SESSION,
            GET_PREVIEW_RECORD,
        )
    }
)

#: notificationType of an acknowledgement -> the specs it can end (for foreign acks).
SPEC_BY_ACKNOWLEDGEMENT: Final[Mapping[str, tuple[OperationSpec, ...]]] = MappingProxyType(
    {
        ack: tuple(s for s in OPERATION_SPECS.values() if s.acknowledgement == ack)
        for ack in {s.acknowledgement for s in OPERATION_SPECS.values()}
    }
)


class Operation(Protocol):
    """What the engine needs of a request: every request type implements it."""

    @property
    def spec(self) -> OperationSpec: ...

    @property
    def reference_id(self) -> str: ...

    @property
    def correlation_key(self) -> CorrelationKey | None:
        """The key its user event is matched on when it carries no ``GSW_REFERENCE_ID``."""
        ...

    def gws_path(self) -> str:
        """The URL path under ``/api/v2`` (e.g. ``/me/outbound-records/12``)."""
        ...

    def to_gws_body(self) -> dict[str, Any]: ...


def record_key(handle: object) -> CorrelationKey | None:
    """A record is known to OCS by its handle alone: OCS keys its answers, and its refusals
    (which carry the stored record's application and campaign, not the request's), on it."""
    h = as_id(handle)
    return None if h is None else ("record", h)


def campaign_key(application: object, campaign: object) -> CorrelationKey | None:
    a, c = as_id(application), as_name(campaign)
    return None if a is None or c is None else ("campaign", a, c)


def phone_key(application: object, campaign: object, phone: object) -> CorrelationKey | None:
    a, c, p = as_id(application), as_name(campaign), as_name(phone)
    return None if a is None or c is None or p is None else ("phone", a, c, p)
