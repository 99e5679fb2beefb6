"""gws_outbound_audit: an append-only JSON-lines audit trail of outbound record operations.

A ``gws_outbound`` plugin. Installed, it is found under the ``gws_outbound`` entry-point
group as ``audit`` and configured from the environment:

``GWS_OUTBOUND_AUDIT_FILE``
    The file to append to (created with mode 0600 if missing; its directory must exist).
    Unset: the plugin is installed but writes nothing; it says so once at INFO level (quiet
    by default) and ``gws-outbound plugins`` lists it as not configured.
``GWS_OUTBOUND_AUDIT_PHONE_NUMBERS``
    ``1`` to include phone numbers in the trail. Off by default: phone numbers are
    personal data.
``GWS_OUTBOUND_AUDIT_FSYNC``
    ``1`` to ``fsync`` after each batch of lines (durable, slower).

It writes one JSON object per line for every request, acknowledgement and failure of every
operation: a cancel's ``on_cancel_requested`` (``"event": "cancel_requested"``),
``on_record_cancel_acknowledged`` (``"cancel_acknowledged"``) and ``on_cancel_failed``
(``"cancel_failed"``); any other operation's ``on_operation_requested``
(``"operation_requested"``), ``on_operation_acknowledged`` (``"operation_acknowledged"``) and
``on_operation_failed`` (``"operation_failed"``), each with ``"operation"`` (its
``operationName``). A cancel's outcome also fires the ``on_operation_*`` hooks: it is written
once, as ``cancel_acknowledged`` / ``cancel_failed``. Phone numbers only with
``GWS_OUTBOUND_AUDIT_PHONE_NUMBERS=1``; a new record's custom fields (``otherFields``) never.
The hooks only put the line on a bounded queue; a
dedicated writer thread appends it, so neither the event loop nor the host's threads ever
wait for the disk.

Or construct it yourself and register it::

    from gws_outbound_audit import AuditTrail

    trail = AuditTrail("/var/log/gws/audit.jsonl")
    pm.register(trail, name="audit")
    ...
    await trail.aclose()      # or trail.close() from a thread: writes what is queued
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import difflib
import json
import os
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

import anyio

from gws_outbound_plugin import (
    CancelFailure,
    CancelRequest,
    OperationAck,
    OperationFailure,
    OperationRequest,
    RecordCancelAck,
    get_logger,
    hookimpl,
    to_jsonable,
)

__all__ = [
    "ENV_FILE",
    "ENV_FSYNC",
    "ENV_PHONE_NUMBERS",
    "AuditTrail",
    "plugin",
]

__version__ = "0.1.0"

# Quiet below WARNING unless the host configured logging (see gws_outbound_plugin.get_logger).
logger = get_logger(__name__)

ENV_FILE: Final = "GWS_OUTBOUND_AUDIT_FILE"
ENV_PHONE_NUMBERS: Final = "GWS_OUTBOUND_AUDIT_PHONE_NUMBERS"
ENV_FSYNC: Final = "GWS_OUTBOUND_AUDIT_FSYNC"


#: Every variable of this plugin: one under its prefix that is none of them is a mistake.
_SETTINGS: Final = (ENV_FILE, ENV_PHONE_NUMBERS, ENV_FSYNC)


def _refuse_unknown_settings(environ: Mapping[str, str]) -> None:
    """A ``GWS_OUTBOUND_AUDIT_*`` variable that is no setting (a misspelt one) would be
    ignored without a word: refuse it, with the setting meant."""
    problems = []
    others: tuple[str, ...] | None = None
    for name in sorted(environ):
        if not name.startswith("GWS_OUTBOUND_AUDIT_") or name in _SETTINGS:
            continue
        if others is None:
            others = _longer_prefixes()
        if name.startswith(others):
            continue  # another plugin's (see _longer_prefixes)
        close = difflib.get_close_matches(name, _SETTINGS, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "its settings are " + ", ".join(_SETTINGS)
        problems.append(f"{name} is not a setting of the audit plugin ({hint})")
    if problems:
        raise ValueError("; ".join(problems))


def _longer_prefixes() -> tuple[str, ...]:
    """The variable prefixes of the other installed plugins that start with this one's: a
    plugin announced as ``audit_s3`` (or ``audit-s3``) reads ``GWS_OUTBOUND_AUDIT_S3_*``, which
    are its settings, not misspelt ones of this plugin."""
    from importlib.metadata import entry_points

    prefixes = []
    for entry in entry_points(group="gws_outbound"):
        prefix = "GWS_OUTBOUND_" + "".join(c if c.isalnum() else "_" for c in entry.name).upper()
        if prefix.startswith("GWS_OUTBOUND_AUDIT_"):
            prefixes.append(prefix + "_")
    return tuple(prefixes)


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
_BATCH: Final = 512


class _Stop:
    """Queue marker: write what precedes, then end the writer thread."""


_STOP: Final = _Stop()


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be 1/0, true/false, yes/no or on/off")


def _failure_fields(failure: CancelFailure | OperationFailure) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "reason": failure.reason.value,
        "status_code": failure.status_code,
        "error_number": failure.error_number,
        "message": failure.message,
    }
    may_have_acted = getattr(failure, "may_have_acted", None)  # newer cores say it
    if may_have_acted is not None:
        fields["may_have_acted"] = may_have_acted
    return fields


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class AuditTrail:
    """The audit-trail plugin: register an instance in a ``gws_outbound`` plugin manager.

    :param path: the JSON-lines file to append to, or ``None`` for a trail that writes
        nothing (what the entry point registers when ``GWS_OUTBOUND_AUDIT_FILE`` is unset).
    :param include_phone_number: add ``phone_number`` to the lines (off: personal data).
    :param fsync: ``fsync`` the file after each batch of lines.
    :param max_queued: lines waiting for the writer at most; beyond that a line is dropped
        and logged (``audit_queue_full``) instead of blocking the caller.
    :raises ValueError: the file's directory does not exist, or ``max_queued`` < 1.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        include_phone_number: bool = False,
        fsync: bool = False,
        max_queued: int = 10_000,
    ) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.path = None if path is None else Path(path)
        if self.path is not None and not self.path.parent.is_dir():
            raise ValueError(f"audit file directory {str(self.path.parent)!r} does not exist")
        self.include_phone_number = include_phone_number
        self.fsync = fsync
        self._queue: queue.Queue[str | threading.Event | _Stop] = queue.Queue(max_queued)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._warned_disabled = False
        self.written = 0
        """Lines written to the file so far."""
        self.dropped = 0
        """Lines lost: queue full, trail closed, or the write failed."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuditTrail:
        """A trail configured from ``GWS_OUTBOUND_AUDIT_*`` (see the module docstring)."""
        env = os.environ if environ is None else environ
        _refuse_unknown_settings(env)
        path = env.get(ENV_FILE, "").strip()
        return cls(
            path or None,
            include_phone_number=_flag(env, ENV_PHONE_NUMBERS),
            fsync=_flag(env, ENV_FSYNC),
        )

    def __repr__(self) -> str:
        where = "disabled" if self.path is None else str(self.path)
        return f"<AuditTrail {where} written={self.written} dropped={self.dropped}>"

    @property
    def enabled(self) -> bool:
        """Whether the trail writes anywhere."""
        return self.path is not None

    @property
    def setup_hint(self) -> str | None:
        """What to set when the trail is not configured (``gws-outbound plugins`` shows it)."""
        return None if self.enabled else f"set {ENV_FILE} to a file path"

    # -- hooks (plain functions: they only enqueue, from whichever thread calls them) -------

    @hookimpl
    def on_cancel_requested(self, request: CancelRequest) -> None:
        self._submit({"event": "cancel_requested", **self._request_fields(request)})

    @hookimpl
    def on_record_cancel_acknowledged(self, ack: RecordCancelAck) -> None:
        entry: dict[str, Any] = {
            "event": "cancel_acknowledged",
            "reference_id": ack.reference_id,
            "record_handle": ack.record_handle,
            "application_id": ack.application_id,
            "campaign_name": ack.campaign_name,
            "calling_list": ack.calling_list,
            "chain_attribute": None if ack.chain_attribute is None else ack.chain_attribute.value,
            "device_id": ack.device_id,
            "requested_here": ack.request is not None,
        }
        if self.include_phone_number:
            entry["phone_number"] = ack.phone_number
        self._submit(entry)

    @hookimpl
    def on_cancel_failed(self, failure: CancelFailure) -> None:
        self._submit(
            {
                "event": "cancel_failed",
                **self._request_fields(failure.request),
                **_failure_fields(failure),
            }
        )

    @hookimpl
    def on_operation_requested(self, request: OperationRequest) -> None:
        self._submit(
            {
                "event": "operation_requested",
                "operation": request.operation_name,
                **self._operation_fields(request),
            }
        )

    @hookimpl
    def on_operation_acknowledged(self, ack: OperationAck) -> None:
        if ack.operation == "CancelRecord":
            return  # written by on_record_cancel_acknowledged
        entry: dict[str, Any] = {
            "event": "operation_acknowledged",
            "operation": ack.operation,
            "reference_id": ack.reference_id,
            "record_handle": ack.record_handle,
            "requested_here": ack.request is not None,
        }
        if ack.request is not None:
            entry.update(self._operation_fields(ack.request))
            entry["reference_id"] = ack.reference_id
            entry["record_handle"] = ack.record_handle
        if ack.operation == "GetPreviewRecord":
            entry["empty"] = ack.empty
        if ack.operation == "GetChainedRecord":
            entry["chained_records"] = len(ack.records)
        self._submit(entry)

    @hookimpl
    def on_operation_failed(self, failure: OperationFailure) -> None:
        if failure.operation == "CancelRecord":
            return  # written by on_cancel_failed
        entry = {
            "event": "operation_failed",
            "operation": failure.operation,
            **self._operation_fields(failure.request),
            **_failure_fields(failure),
        }
        self._submit(entry)

    def _operation_fields(self, request: OperationRequest) -> dict[str, Any]:
        fields = {
            key: value
            for key, value in to_jsonable(request).items()
            if value is not None and key != "other_fields"
        }
        if not self.include_phone_number:
            fields.pop("phone_number", None)
        return fields

    def _request_fields(self, request: CancelRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "reference_id": request.reference_id,
            "record_handle": request.record_handle,
            "application_id": request.application_id,
            "campaign_name": request.campaign_name,
            "calling_list": request.calling_list,
            "device_path": request.device_path,
            "chain_attribute": (
                None if request.chain_attribute is None else request.chain_attribute.value
            ),
        }
        if self.include_phone_number:
            fields["phone_number"] = request.phone_number
        return fields

    # -- flushing and closing ---------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every line queued so far is written; False if ``timeout`` ran out.

        Call it from a thread; on the event loop use :meth:`aflush`.
        """
        with self._lock:
            if self._thread is None or self._closed:
                return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    async def aflush(self, timeout: float = 5.0) -> bool:
        """:meth:`flush` without blocking the event loop."""
        return await anyio.to_thread.run_sync(self.flush, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the writer thread and close the file.

        Idempotent. Lines submitted afterwards are dropped (and logged).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        atexit.unregister(self._close_at_exit)
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.error("audit_close_timed_out", path=str(self.path), queued=self._queue.qsize())
            return
        thread.join(timeout)
        if thread.is_alive():
            logger.error("audit_close_timed_out", path=str(self.path), queued=self._queue.qsize())

    async def aclose(self, timeout: float = 5.0) -> None:
        """:meth:`close` without blocking the event loop."""
        await anyio.to_thread.run_sync(self.close, timeout)

    def _close_at_exit(self) -> None:
        self.close(timeout=2.0)

    # -- the writer --------------------------------------------------------------------------

    def _submit(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            if not self._warned_disabled:
                self._warned_disabled = True
                # Quiet by default: an installed but unconfigured plugin is not a problem.
                logger.info("audit_trail_disabled", hint=f"set {ENV_FILE} to a file path")
            return
        line = json.dumps({"time": _now(), **entry}, ensure_ascii=False) + "\n"
        with self._lock:
            if self._closed:
                self.dropped += 1
                logger.warning("audit_line_dropped", reason="closed", audit_event=entry["event"])
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gws-outbound-audit-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self._close_at_exit)
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self.dropped += 1
                logger.error(
                    "audit_queue_full",
                    path=str(self.path),
                    audit_event=entry["event"],
                    reference_id=entry.get("reference_id"),
                    dropped=self.dropped,
                )

    def _run(self) -> None:
        file: IO[str] | None = None
        try:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = _STOP in batch
                lines = [item for item in batch if isinstance(item, str)]
                if lines:
                    file = self._write(file, lines)
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()
        finally:
            if file is not None:
                file.close()

    def _open(self) -> IO[str]:
        assert self.path is not None
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(descriptor, "a", encoding="utf-8")

    def _write(self, file: IO[str] | None, lines: list[str]) -> IO[str] | None:
        try:
            if file is None:
                file = self._open()
            file.write("".join(lines))
            file.flush()
            if self.fsync:
                os.fsync(file.fileno())
        except OSError as error:
            with self._lock:
                self.dropped += len(lines)
            logger.error(
                "audit_write_failed",
                path=str(self.path),
                lines=len(lines),
                error=f"{type(error).__name__}: {error.strerror or error}",
            )
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()
            return None  # reopen for the next batch
        with self._lock:
            self.written += len(lines)
        return file


plugin: AuditTrail = AuditTrail.from_env()
"""The instance the ``audit`` entry point registers, configured from the environment."""
