"""Old home of the request types and their payloads; they live in ``_requests`` (requests),
``_payloads`` (payload types) and ``_builders`` (building payloads) now. Kept for the modules
that still import from here (the CLI, the engine); add nothing here.
"""

from ._builders import build_ack, preview_record_from_outbound, unsolicited_from_user_event
from ._payloads import (
    CampaignStatus,
    CampaignStatusEvent,
    OperationAck,
    OperationFailure,
    PreviewRecordEvent,
    RecordCancelledEvent,
    ScheduledCallEvent,
)
from ._requests import (
    OPERATION_TYPES,
    SECONDS_PER_DAY,
    AddRecordRequest,
    CallbackType,
    CompleteRecordRequest,
    DoNotCallPhoneRequest,
    DoNotCallRecordRequest,
    EndPreviewSessionRequest,
    GetChainedRecordRequest,
    GetPreviewRecordRequest,
    OperationRequest,
    PhoneType,
    RejectRecordRequest,
    RescheduleRecordRequest,
    StartPreviewSessionRequest,
    UpdateRecordRequest,
    request_from_bus,
)

__all__ = [
    "OPERATION_TYPES",
    "SECONDS_PER_DAY",
    "AddRecordRequest",
    "CallbackType",
    "CampaignStatus",
    "CampaignStatusEvent",
    "CompleteRecordRequest",
    "DoNotCallPhoneRequest",
    "DoNotCallRecordRequest",
    "EndPreviewSessionRequest",
    "GetChainedRecordRequest",
    "GetPreviewRecordRequest",
    "OperationAck",
    "OperationFailure",
    "OperationRequest",
    "PhoneType",
    "PreviewRecordEvent",
    "RecordCancelledEvent",
    "RejectRecordRequest",
    "RescheduleRecordRequest",
    "ScheduledCallEvent",
    "StartPreviewSessionRequest",
    "UpdateRecordRequest",
    "build_ack",
    "preview_record_from_outbound",
    "request_from_bus",
    "unsolicited_from_user_event",
]
