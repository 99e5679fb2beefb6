"""The public calls are typed per request type: ``perform(CancelRequest)`` is a
``RecordCancelAck``, ``submit(RejectRecordRequest)`` an ``OperationTicket[OperationAck]``
(checked with mypy on tests/typing/public_api.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from mypy import api

HERE = Path(__file__).resolve().parent.parent / "typing" / "public_api.py"


def test_the_public_calls_are_typed_per_request_type() -> None:
    limit = sys.getrecursionlimit()
    try:
        stdout, stderr, status = api.run(
            ["--strict", "--no-error-summary", "--python-version", "3.11", str(HERE)]
        )
    finally:
        sys.setrecursionlimit(limit)  # mypy raises it for good: the tests after this one
    assert status == 0, stdout + stderr
