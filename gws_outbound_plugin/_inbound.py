"""Inbound CometD messages, parsed once into typed events.

The correlator and the payload builders read what arrived through these types, never through
the raw mappings, so there is one rule for every value that GWS or OCS may spell two ways
(``_coerce.py``). Nothing here does I/O or keeps state.

The events are named tuples: immutable like frozen dataclasses, and made several times faster
(one is made for every message; a frozen dataclass sets each field through
``object.__setattr__``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from ._builders import _freeze
from ._coerce import as_id, as_name, as_reference, is_object
from ._models import EventMetrics, UserEvent
from ._spec import CorrelationKey, campaign_key, phone_key, record_key

__all__ = [
    "ErrorNotice",
    "Inbound",
    "Malformed",
    "Notification",
    "UserEventNotice",
    "error_number",
    "parse",
]

OUTBOUND_TYPES: Final = frozenset({"OutboundRecordMessage", "OutboundCampaignMessage"})
#: What JSON's scalars are: userData values that need no read-only copy.
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})

#: ``GSW_ERROR_NUMBER`` / ``errorCode``: the same rule as identifiers.
error_number = as_id


def _keys(*keys: CorrelationKey | None) -> tuple[CorrelationKey, ...]:
    return tuple([key for key in keys if key is not None])


class Notification(NamedTuple):
    """An ``OutboundRecordMessage`` / ``OutboundCampaignMessage`` on ``/v2/me/outbound``."""

    data: Mapping[str, Any]
    """The message's ``data``, as it arrived (handed to hooks)."""
    notification: str | None
    reference: str | None
    record_handle: int | None
    """The record it names (``record.recordHandle``, or ``GSW_RECORD_HANDLE`` in a pushed or
    handed-out record's ``userData``)."""

    @property
    def keys(self) -> tuple[CorrelationKey, ...]:
        """What an unmatched acknowledgement pairs with its user event on (foreign halves):
        read when one is unmatched, not for every notification."""
        record = self.data.get("record")
        if is_object(record):
            phone = phone_key(
                record.get("applicationId"), record.get("campaignName"), record.get("phoneNumber")
            )
            return _keys(record_key(self.record_handle), phone)
        campaign = self.data.get("campaign")
        if is_object(campaign):
            return _keys(campaign_key(campaign.get("applicationId"), campaign.get("name")))
        return ()

    @property
    def is_error(self) -> bool:
        return self.notification == "Error"

    @property
    def error_text(self) -> str | None:
        return as_name(self.data.get("errorMessage")) or as_name(self.data.get("statusMessage"))


class ErrorNotice(NamedTuple):
    """A CometD ``ErrorMessage`` (GWS reports an error decided after its HTTP answer)."""

    channel: str | None
    reference: str | None
    code: int | None
    text: str | None


class UserEventNotice(NamedTuple):
    """A ``DeviceUserEventMessage``: OCS's answer, partial result, push or refusal."""

    event: UserEvent
    name: str | None
    """``event.user_event``: its ``GSW_USER_EVENT``."""
    is_error: bool
    """``event.is_error``: a refusal (read once; the matching rule asks several times)."""
    reference: str | None
    record_handle: int | None
    chain: tuple[int, str, int] | None
    """``(application, campaign, GSW_CHAIN_ID)`` when all three are present."""
    keys: tuple[CorrelationKey, ...]
    """Every key it can be matched on, most specific first: record, phone, campaign."""
    content: bytes | None = None
    """A digest of its ``userData``: what a regenerated copy shares with it."""

    @property
    def error_text(self) -> str | None:
        return as_name(self.event.user_data.get("GSW_ERROR"))


Inbound = Notification | ErrorNotice | UserEventNotice


class Malformed(ValueError):
    """The message cannot be read; its text says why."""


def _record_handle(record: Mapping[str, Any]) -> int | None:
    handle = as_id(record.get("recordHandle"))
    if handle is None:
        user_data = record.get("userData")
        if isinstance(user_data, Mapping):
            handle = as_id(user_data.get("GSW_RECORD_HANDLE"))
    return handle


def _notification(data: Mapping[str, Any]) -> Notification:
    record = data.get("record")
    return Notification(
        data=data,
        notification=as_name(data.get("notificationType")),
        reference=as_reference(data.get("referenceId")),
        record_handle=_record_handle(record) if is_object(record) else None,
    )


def _error(channel: str | None, data: Mapping[str, Any]) -> ErrorNotice:
    code = data.get("errorCode")
    if code is None:
        code = data.get("statusCode")
    return ErrorNotice(
        channel=channel,
        reference=as_reference(data.get("referenceId")),
        code=as_id(code),
        text=as_name(data.get("errorMessage")) or as_name(data.get("statusMessage")),
    )


def _user_event(
    channel: str, data: Mapping[str, Any], max_entries: int, content: bytes | None
) -> UserEventNotice:
    raw = data.get("userData")
    if not is_object(raw):
        raise Malformed("userData is not an object")
    if len(raw) > max_entries:
        raise Malformed(f"more than {max_entries} userData entries")
    fields = {str(k): v for k, v in raw.items()}  # read below as a dict (no proxy call)
    for value in fields.values():
        if type(value) not in _SCALARS:
            # A list or an object (a KVList value may be one): copied read-only, or every
            # plugin given the event, and the acknowledgement built from it, would share it
            # mutable.
            fields = {key: _freeze(value) for key, value in fields.items()}
            break
    user_data = MappingProxyType(fields)
    event = UserEvent(
        user_event=as_name(fields.get("GSW_USER_EVENT")),
        user_data=user_data,
        device_id=as_name(data.get("deviceId")),
        metrics=EventMetrics.from_message(data),
        channel=channel,
    )
    app = as_id(fields.get("GSW_APPLICATION_ID"))
    campaign = as_name(fields.get("GSW_CAMPAIGN_NAME"))
    handle = as_id(fields.get("GSW_RECORD_HANDLE"))
    chain_id = as_id(fields.get("GSW_CHAIN_ID"))
    phone = fields.get("GSW_PHONE")  # most answers carry none: no phone key to make then
    # The keys record_key, phone_key and campaign_key make, from the values read above.
    keys: list[CorrelationKey] = [] if handle is None else [("record", handle)]
    if app is not None and campaign is not None:
        if phone is not None and (number := as_name(phone)) is not None:
            keys.append(("phone", app, campaign, number))
        keys.append(("campaign", app, campaign))
    return UserEventNotice(
        event=event,
        name=event.user_event,
        is_error="GSW_ERROR" in fields or "GSW_ERROR_NUMBER" in fields,  # event.is_error
        reference=as_reference(fields.get("GSW_REFERENCE_ID")),
        record_handle=handle,
        chain=None
        if app is None or campaign is None or chain_id is None
        else (app, campaign, chain_id),
        keys=tuple(keys),
        content=content,
    )


def parse(
    channel: str | None,
    data: Mapping[str, Any],
    *,
    max_user_data_entries: int,
    content: bytes | None = None,
) -> Inbound | None:
    """The typed event of one message's ``data``; ``None`` for a message type that answers
    nothing of ours. Raises :class:`Malformed` for a user event without a readable
    ``userData``."""
    message_type = data.get("messageType")
    if not isinstance(message_type, str):
        return None  # not a type we know (a list or an object would not even hash)
    if message_type in OUTBOUND_TYPES:
        return _notification(data)
    if message_type == "DeviceUserEventMessage":
        return _user_event(channel or "", data, max_user_data_entries, content)
    if message_type == "ErrorMessage":
        return _error(channel, data)
    return None
