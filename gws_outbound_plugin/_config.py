"""Connection and behaviour settings."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import ConfigError

__all__ = ["GWSConfig"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class GWSConfig:
    """Settings of one GWS connection (one agent). Keyword-constructed and validated.

    Times are in seconds. The password never appears in the repr.
    """

    base_url: str
    """GWS node, e.g. ``https://gws.example.com`` (the ``/api/v2`` prefix is added)."""
    username: str
    password: str = field(repr=False)
    ack_timeout: float = 10.0
    """How long to wait for the CometD outcome once GWS accepted a cancel."""
    request_timeout: float = 10.0
    """Timeout of one HTTP request to GWS (connect, read, write, pool)."""
    hook_timeout: float = 5.0
    """Longest an ``async def`` hook implementation may take before it is abandoned."""
    verify_tls: bool = True
    """Verify the server's TLS certificate (keep it on outside tests)."""
    allow_insecure_http: bool = False
    """Allow a plain ``http://`` base URL for a host that is not loopback."""
    drain_timeout: float = 5.0
    """On close, how long to wait for pending outcomes before failing them as shut down."""
    retries: int = 2
    """Extra attempts after an HTTP 5xx or a connection error (same ``referenceId``)."""
    retry_backoff: float = 0.2
    """First retry delay; doubled for each further attempt."""
    merge_window: float = 0.25
    """After one of the two CometD messages of an acknowledgement arrived, how long to wait
    for the other before the acknowledgement is fired with what arrived."""
    cometd_path: str = "/api/v2/notifications"
    """Path of the CometD (Bayeux) endpoint on the GWS node."""
    cometd_connection_timeout: float = 10.0
    """How long the CometD client tries to reconnect before it reports the session lost."""
    reconnect_backoff_max: float = 30.0
    """Upper bound of the delay between CometD reconnection attempts."""
    max_concurrent_requests: int = 100
    """Cancels POSTed to GWS at the same time; more wait their turn (keep-alive pool size)."""
    max_pending: int = 100_000
    """Cancels accepted and not yet resolved; beyond it ``on_cancel_requested`` refuses."""
    event_queue_size: int = 1024
    """Bounded queue between the CometD listener and the dispatcher."""
    hook_queue_size: int = 1024
    """Bounded queue between the dispatcher and the hook calls."""
    max_message_bytes: int = 256 * 1024
    """CometD notifications larger than this (as JSON) are dropped and logged."""
    max_user_data_entries: int = 512
    """userData mappings with more entries than this are dropped and logged."""
    slow_hook_warning: float = 0.1
    """A plain (sync) hook implementation that runs longer than this is logged as blocking."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        parts = urlsplit(self.base_url) if isinstance(self.base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("base_url must be an http:// or https:// URL with a host")
        elif parts.username or parts.password:
            problems.append("base_url must not carry credentials (use username and password)")
        elif parts.query or parts.fragment:
            problems.append("base_url must not have a query or a fragment")
        elif (
            parts.scheme == "http"
            and not self.allow_insecure_http
            and not _is_loopback(parts.hostname)
        ):
            problems.append(
                "base_url uses plain http:// for a host that is not loopback; use https:// "
                "or set allow_insecure_http=True (GWS_ALLOW_INSECURE_HTTP=1)"
            )
        if not isinstance(self.username, str) or not self.username:
            problems.append("username must be a non-empty string")
        if not isinstance(self.password, str) or not self.password:
            problems.append("password must be a non-empty string")
        for name in (
            "ack_timeout",
            "request_timeout",
            "hook_timeout",
            "drain_timeout",
            "merge_window",
            "retry_backoff",
            "cometd_connection_timeout",
            "reconnect_backoff_max",
            "slow_hook_warning",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
                or (value == 0 and name not in ("merge_window", "retry_backoff"))
            ):
                problems.append(f"{name} must be a positive number of seconds")
        for name in (
            "max_concurrent_requests",
            "max_pending",
            "event_queue_size",
            "hook_queue_size",
            "max_message_bytes",
            "max_user_data_entries",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            problems.append("retries must be an integer >= 0")
        if not isinstance(self.cometd_path, str) or not self.cometd_path.startswith("/"):
            problems.append("cometd_path must be a path starting with '/'")
        if problems:
            raise ConfigError("invalid GWSConfig: " + "; ".join(problems))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def api_url(self) -> str:
        """``base_url`` + ``/api/v2``."""
        return self.base_url + "/api/v2"

    @property
    def cometd_url(self) -> str:
        """The Bayeux endpoint."""
        return self.base_url + self.cometd_path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> GWSConfig:
        """Read ``GWS_BASE_URL``, ``GWS_USERNAME``, ``GWS_PASSWORD`` and ``GWS_<FIELD>`` for the
        other fields (e.g. ``GWS_ACK_TIMEOUT=5``, ``GWS_VERIFY_TLS=0``). Keyword arguments win.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            key = "GWS_" + spec.name.upper()
            if key not in env:
                continue
            raw = env[key]
            default = spec.default
            try:
                if isinstance(default, bool):
                    lowered = raw.strip().lower()
                    if lowered not in _TRUE | _FALSE:
                        raise ValueError(raw)
                    values[spec.name] = lowered in _TRUE
                elif isinstance(default, int):
                    values[spec.name] = int(raw)
                elif isinstance(default, float):
                    values[spec.name] = float(raw)
                else:
                    values[spec.name] = raw
            except ValueError:
                # Never echo the value: it may be a secret in the wrong variable.
                raise ConfigError(f"{key} has an invalid value for {spec.name}") from None
        values.update(overrides)
        missing = [n for n in ("base_url", "username", "password") if n not in values]
        if missing:
            names = ", ".join("GWS_" + n.upper() for n in missing)
            raise ConfigError(f"missing configuration: {names}")
        return cls(**values)
