"""Connection and behaviour settings."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final
from urllib.parse import urlsplit

from ._exceptions import ConfigError
from ._hints import closest
from ._log import get_logger

__all__ = ["GWSConfig"]

logger = get_logger(__name__)

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
    """GWS node, e.g. ``https://gws.example.com`` (the ``/api/v2`` prefix is added; a
    ``base_url`` that already ends in ``/api/v2`` is accepted and the suffix removed)."""
    username: str
    password: str = field(repr=False)
    ack_timeout: float = 10.0
    """How long to wait for the CometD outcome once GWS accepted a request (of any
    operation); then it fails as ``timed_out``."""
    request_timeout: float = 10.0
    """Timeout of one HTTP request to GWS, in all (connecting, writing, the whole answer):
    each step and the exchange as a whole."""
    hook_timeout: float = 5.0
    """Longest an ``async def`` hook implementation may take before it is abandoned."""
    verify_tls: bool = True
    """Verify the server's TLS certificate (keep it on outside tests)."""
    allow_insecure_http: bool = False
    """Allow a plain ``http://`` base URL for a host that is not loopback."""
    drain_timeout: float = 5.0
    """On close, how long to wait for pending outcomes before failing them as shut down."""
    retries: int = 2
    """Extra attempts (same ``referenceId``): a GET after a connection error, timeout or HTTP
    5xx; an operation (POST) only when GWS certainly did not get it (no connection, HTTP 503
    with a GWS ``statusCode`` other than 7 or 9, or HTTP 429). See ``_session.py``."""
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
    max_concurrent_requests: int = 8
    """Operations POSTed to GWS at the same time; more wait their turn (the keep-alive pool
    size and the number of POST workers, started as they are needed). 8 keeps a GWS nearby
    busy (see ``docs/hosting.md``, "Sizing"); for a distant one allow about the wanted rate
    times the round trip, e.g. 200 requests/s over 50 ms: 10, plus a margin."""
    max_pending: int = 100_000
    """Requests (of any operation) accepted and not yet resolved; beyond it a new one is
    refused (``GWSOutboundError``, nothing sent)."""
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
        values = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        problems = _problems(values)
        if problems:
            raise ConfigError(
                "invalid GWSConfig: " + "; ".join(f"{name} {text}" for name, text in problems)
            )
        object.__setattr__(self, "base_url", _normal_base_url(self.base_url))

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

        Every problem is reported at once, in one :class:`ConfigError`: missing variables,
        values that do not parse (with the type expected, never the value), values out of
        range, and ``GWS_*`` variables that are not settings but are close to one (a
        misspelling such as ``GWS_ACK_TIMOUT``, with the name meant). ``GWS_OUTBOUND_*``
        variables belong to the plugin manager and the plugins and are left alone.
        """
        env = os.environ if environ is None else environ
        specs = {spec.name: spec for spec in fields(cls)}
        values: dict[str, Any] = {}
        problems: list[str] = _unknown_keywords(overrides, specs)
        overrides = {name: value for name, value in overrides.items() if name in specs}
        for name, spec in specs.items():
            key = _env_name(name)
            if key not in env or name in overrides:
                continue
            parsed = _parse(env[key], spec.default)
            if parsed is _INVALID:
                # Never echo the value: it may be a secret in the wrong variable.
                problems.append(f"{key}: expected {_expected(spec.default)}")
            else:
                values[name] = parsed
        problems.extend(_unknown_variables(env, specs))
        values.update(overrides)
        missing = [n for n in _REQUIRED if n not in values]
        if missing:
            problems.append(
                "missing " + ", ".join(_env_name(n) for n in missing) + _keywords_hint(missing)
            )
        candidate = {name: spec.default for name, spec in specs.items() if name not in _REQUIRED}
        candidate.update(values)
        parsed_keys = {name for name in values if name not in overrides}
        for name, text in _problems(candidate, skip=set(_REQUIRED) - set(values)):
            label = _env_name(name) if name in parsed_keys else name
            problems.append(f"{label} {text}")
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return cls(**values)


_REQUIRED: Final = ("base_url", "username", "password")
_INVALID: Final = object()
#: Variables of the plugin manager and of plugins: not settings of GWSConfig.
_FOREIGN_PREFIX: Final = "GWS_OUTBOUND_"
_SECONDS: Final = (
    "ack_timeout",
    "request_timeout",
    "hook_timeout",
    "drain_timeout",
    "merge_window",
    "retry_backoff",
    "cometd_connection_timeout",
    "reconnect_backoff_max",
    "slow_hook_warning",
)
_MAY_BE_ZERO: Final = ("merge_window", "retry_backoff")
_SWITCHES: Final = ("verify_tls", "allow_insecure_http")
_COUNTS: Final = (
    "max_concurrent_requests",
    "max_pending",
    "event_queue_size",
    "hook_queue_size",
    "max_message_bytes",
    "max_user_data_entries",
)
_API_SUFFIX: Final = "/api/v2"


def _env_name(name: str) -> str:
    return "GWS_" + name.upper()


def _parse(raw: str, default: object) -> object:
    text = raw.strip()
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                return _INVALID
            return lowered in _TRUE
        if isinstance(default, int):
            return int(text, 10)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        return _INVALID
    return raw


def _expected(default: object) -> str:
    if isinstance(default, bool):
        return "a boolean (1/0, true/false, yes/no, on/off)"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number of seconds (e.g. 5 or 2.5)"
    return "a string"


def _keywords_hint(missing: Iterable[str]) -> str:
    """What ``from_env()``'s message adds to the variables it misses: the keywords that stand
    in for them (an application that reads no environment itself, the CLI, leaves it out)."""
    keywords = ", ".join(f"{name}=..." for name in missing)
    return f" (or pass {keywords} to GWSConfig.from_env(): a keyword wins over its variable)"


def _unknown_keywords(overrides: Mapping[str, Any], specs: Mapping[str, Any]) -> list[str]:
    """Keyword arguments of ``from_env()`` that are not settings, each with the closest one."""
    problems = []
    for name in sorted(set(overrides) - set(specs)):
        close = closest(name, list(specs))
        hint = f"did you mean {close}?" if close else "the settings are " + ", ".join(specs)
        problems.append(f"{name}= is not a setting ({hint})")
    return problems


def _unknown_variables(env: Mapping[str, str], specs: Mapping[str, Any]) -> list[str]:
    """``GWS_*`` variables that are not settings but look like one (misspellings)."""
    known = [_env_name(name) for name in specs]
    problems = []
    for key in sorted(env):
        if not key.startswith("GWS_") or key in known or key.startswith(_FOREIGN_PREFIX):
            continue
        close = closest(key, known, 0.8)
        if close:
            problems.append(f"{key} is not a setting (did you mean {close}?)")
        else:
            logger.debug("config_variable_ignored", variable=key)
    return problems


def _normal_base_url(base_url: str) -> str:
    """``base_url`` without a trailing ``/`` and without a trailing ``/api/v2`` (GWS's API
    prefix, which the plugin adds itself)."""
    url = base_url.strip().rstrip("/")  # "$(cat url.txt)", a .env line's \r: not part of it
    if url.endswith(_API_SUFFIX):
        stripped = url.removesuffix(_API_SUFFIX).rstrip("/")
        logger.debug("config_base_url_api_suffix_removed", base_url=stripped)
        url = stripped
    return url


def _problems(values: Mapping[str, Any], skip: set[str] | None = None) -> list[tuple[str, str]]:
    """(field, what is wrong) for every invalid value; ``skip`` names fields not to check."""
    skip = skip or set()
    problems: list[tuple[str, str]] = []
    base_url = values.get("base_url")
    if "base_url" not in skip:
        problem = _base_url_problem(base_url, bool(values.get("allow_insecure_http")))
        if problem is not None:
            problems.append(("base_url", problem))
    for name in ("username", "password"):
        if name in skip:
            continue
        value = values.get(name)
        if not isinstance(value, str) or not value:
            problems.append((name, "must be a non-empty string"))
    for name in _SECONDS:
        value = values.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
            or (value == 0 and name not in _MAY_BE_ZERO)
        ):
            zero = " (or 0)" if name in _MAY_BE_ZERO else ""
            problems.append((name, f"must be a positive number of seconds{zero}{_got(value)}"))
    for name in _COUNTS:
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((name, f"must be a positive integer{_got(value)}"))
    for name in _SWITCHES:
        if not isinstance(values.get(name), bool):
            # A string such as "false" or "0" would be true: say so rather than act on it.
            problems.append((name, "must be True or False (a bool, not a string or a number)"))
    retries = values.get("retries")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(("retries", f"must be an integer >= 0{_got(retries)}"))
    cometd_path = values.get("cometd_path")
    if not isinstance(cometd_path, str) or not cometd_path.startswith("/"):
        problems.append(("cometd_path", "must be a path starting with '/'"))
    return problems


def _got(value: object) -> str:
    """What a number setting was given instead, when it is not a number: its type only (the
    value could be a secret in the wrong place). ``"5"`` from a YAML or INI file reads as a
    number to its author; the type says why it is refused."""
    if value is None:
        return ", got None"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f", got a {type(value).__name__}"
    return ""


def _scheme_hint(base_url: object) -> str:
    """For a host written without its scheme (``gws.example.com:8090``), the URL it may
    mean; nothing for a value that could hold credentials (an ``@``) or is no plain word."""
    if (
        not isinstance(base_url, str)
        or not base_url
        or "://" in base_url
        or "@" in base_url
        or not base_url.isprintable()
        or any(char.isspace() for char in base_url)
        or len(base_url) > 200
    ):
        return ""
    return (
        f" (got {base_url!r}: add the scheme, e.g. 'https://{base_url}', or "
        f"'http://{base_url}' for the simulator)"
    )


def _base_url_problem(base_url: object, allow_insecure_http: bool) -> str | None:
    if isinstance(base_url, str):
        base_url = base_url.strip()  # as _normal_base_url keeps it
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host" + _scheme_hint(base_url)
    if parts.username or parts.password:
        return "must not carry credentials (use username and password)"
    if isinstance(base_url, str) and any(char.isspace() for char in base_url):
        return "must not contain spaces or line breaks"
    try:
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        port = 0
    if port == 0:  # refused here, not by httpx's InvalidURL once the plugin starts
        return "has a port that is not a number from 1 to 65535 (scheme://host:port)"
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    path = parts.path.rstrip("/")
    if path.endswith(_API_SUFFIX):
        path = path.removesuffix(_API_SUFFIX)
    if "/api/" in path + "/":
        node = f"{parts.scheme}://{parts.netloc}{path.split('/api/', 1)[0]}"
        return (
            "must be the GWS node (scheme://host[:port], e.g. https://gws.example.com), "
            f"not the URL of an API resource ({parts.path!r}): use {node!r} (the plugin "
            "adds /api/v2 itself)"
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        return (
            "uses plain http:// for a host that is not loopback; use https:// "
            "or set allow_insecure_http=True (GWS_ALLOW_INSECURE_HTTP=1)"
        )
    return None
