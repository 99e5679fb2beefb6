"""Old home of ``CancelRequest`` and the cancel payloads; they live in ``_requests`` and
``_payloads`` now. Kept for the modules that still import from here (the CLI, the engine, the
plugin and the correlator's modules); add nothing here.
"""

from ._payloads import (
    EMPTY_MAPPING,
    CancelFailure,
    EventMetrics,
    FailureReason,
    RecordCancelAck,
    UserEvent,
    describe_failure,
    may_have_acted,
    to_jsonable,
)
from ._requests import (
    BUS_KEYS,
    MAX_JSON_INT,
    MAX_OCS_ID,
    MAX_TEXT_LENGTH,
    CancelRecordRequest,
    CancelRequest,
    ChainAttribute,
)

__all__ = [
    "BUS_KEYS",
    "EMPTY_MAPPING",
    "MAX_JSON_INT",
    "MAX_OCS_ID",
    "MAX_TEXT_LENGTH",
    "CancelFailure",
    "CancelRecordRequest",
    "CancelRequest",
    "ChainAttribute",
    "EventMetrics",
    "FailureReason",
    "RecordCancelAck",
    "UserEvent",
    "describe_failure",
    "may_have_acted",
    "to_jsonable",
]
