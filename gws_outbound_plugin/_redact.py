"""Keeping secrets (and, on request, personal data) out of log output.

Two tools for hosts, one safeguard the plugin installs by itself:

* :class:`SecretRedactor` is a structlog processor. Put it in the processor chain after
  ``format_exc_info`` (so tracebacks are already text) and before the renderer::

      structlog.configure(processors=[
          structlog.processors.add_log_level,
          structlog.processors.TimeStamper(fmt="iso"),
          structlog.processors.format_exc_info,
          SecretRedactor.for_config(config, redact_pii=True),
          structlog.processors.JSONRenderer(),
      ])

  It replaces the values of secret-looking keys (``password``, ``authorization``, ``cookie``,
  ``set-cookie``, ``x-csrf-token``, ``jsessionid``, ``token``, ``secret``, ...), every
  occurrence of the secret values it was given, ``Basic``/``Bearer`` credentials, session
  cookies (``JSESSIONID=...``) and sensitive headers inside text, at any depth of dicts,
  lists and hook payloads. With ``redact_pii=True`` it also replaces phone numbers
  (``phoneNumber``, ``phone_number``, ``GSW_PHONE``, ...). :data:`redact_secrets` and
  :data:`redact_secrets_and_pii` are ready-made instances.
* :class:`RedactingLogFilter` does the same for records of the standard ``logging`` module
  (``logger.addFilter(...)`` or ``handler.addFilter(...)``).
* While a GWS session is open, the plugin keeps its own secrets out of the DEBUG logs of the
  HTTP libraries it drives (httpcore logs response headers, ``Set-Cookie`` and the CSRF
  token included): :func:`guard_library_logs` puts a :class:`RedactingLogFilter` on their
  loggers, and the session registers its secret values with :data:`PLUGIN_SECRETS`.

The plugin's own log events never carry a secret or a phone number in the first place.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._config import GWSConfig

__all__ = [
    "PII_KEYS",
    "PLUGIN_SECRETS",
    "REDACTED",
    "SECRET_KEYS",
    "RedactingLogFilter",
    "SecretRedactor",
    "guard_library_logs",
    "redact_secrets",
    "redact_secrets_and_pii",
]

REDACTED: Final = "[REDACTED]"

#: Keys whose values are always secret (compared lower-case, without ``-``, ``_`` or spaces).
SECRET_KEYS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "xcsrftoken",
        "csrftoken",
        "jsessionid",
        "bayeuxbrowser",
        "sessionid",
        "token",
        "accesstoken",
        "refreshtoken",
        "secret",
        "clientsecret",
        "apikey",
        "credentials",
    }
)
# Any key containing one of these (normalised) is secret too, e.g. ``gws_password``.
_SECRET_MARKERS: Final = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "credential",
    "jsessionid",
    "apikey",
)

#: Keys whose values are personal data (phone numbers), redacted with ``redact_pii=True``.
PII_KEYS: Final = frozenset(
    {
        "phonenumber",
        "phone",
        "gswphone",
        "e164number",
        "msisdn",
        "contactphone",
    }
)

_NORMALISE = re.compile(r"[^a-z0-9]")
# A secret value shorter than this is only redacted as a whole word, not inside other text.
_SHORT_SECRET: Final = 6
_MAX_DEPTH: Final = 12

_TEXT_PATTERNS: Final = (
    # Credentials of an Authorization header: Basic / Bearer / Digest <token>.
    (re.compile(r"(?i)\b(basic|bearer|digest)(\s+)[A-Za-z0-9+/=._~-]{4,}"), r"\1\2" + REDACTED),
    # Session cookies, in Cookie and Set-Cookie headers or anywhere else.
    (
        re.compile(r"(?i)\b(jsessionid|bayeux_browser|sessionid)(\s*=\s*)[^;,\s'\"]+"),
        r"\1\2" + REDACTED,
    ),
    # Sensitive headers as pairs in reprs: ('X-CSRF-TOKEN', '...'), {'Cookie': '...'}.
    (
        re.compile(
            r"(?i)(['\"](?:authorization|proxy-authorization|cookie|set-cookie|"
            r"x-csrf-token|csrf-token)['\"]\s*[,:]\s*b?['\"])([^'\"]*)"
        ),
        r"\1" + REDACTED,
    ),
    # Header lines: "Authorization: ...".
    (
        re.compile(
            r"(?im)^(\s*(?:authorization|proxy-authorization|cookie|set-cookie|x-csrf-token)"
            r"\s*:\s*).+$"
        ),
        r"\1" + REDACTED,
    ),
    # key=value / key: value for passwords and tokens in free text.
    (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|csrf_?token|access_?token|token|api_?key)"
            r"(['\"]?\s*[=:]\s*b?['\"]?)[^\s,;'\"&)}]+"
        ),
        r"\1\2" + REDACTED,
    ),
    # Credentials in URLs: scheme://user:password@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1" + REDACTED + "@"),
)
_PII_PATTERN: Final = re.compile(
    r"(?i)\b(phone_?number|gsw_phone|e164_?number|phone)(['\"]?\s*[=:]\s*b?['\"]?)"
    r"(\+?[0-9][0-9 ().-]{1,30}[0-9])"
)


def _normalise(key: str) -> str:
    return _NORMALISE.sub("", key.lower())


def is_secret_key(key: object) -> bool:
    """Whether values under ``key`` are secret (``X-CSRF-TOKEN``, ``gws_password``, ...)."""
    if not isinstance(key, str):
        return False
    normal = _normalise(key)
    return normal in SECRET_KEYS or any(marker in normal for marker in _SECRET_MARKERS)


class SecretRedactor:
    """A structlog processor (and general helper) that redacts secrets from log events.

    :param secrets: secret values to replace wherever they occur (passwords, tokens...).
        Values shorter than six characters are only replaced as whole words.
    :param redact_pii: also replace phone numbers (``phoneNumber``, ``phone_number``,
        ``GSW_PHONE`` keys at any depth, and ``phoneNumber=...`` in text).
    :param secret_keys: more keys whose values are secret (any spelling: ``X-Api-Key``).
    :param pii_keys: more keys whose values are personal data.
    :param replacement: what replaces a redacted value.

    Call it like any structlog processor: ``redactor(logger, method_name, event_dict)``. It
    returns the same event dict with redacted values; nested dicts, lists and payload objects
    are replaced by redacted copies, never changed in place. :meth:`redact` and
    :meth:`redact_text` work on any value or string. Thread-safe.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        redact_pii: bool = False,
        secret_keys: Iterable[str] = (),
        pii_keys: Iterable[str] = (),
        replacement: str = REDACTED,
    ) -> None:
        self.redact_pii = bool(redact_pii)
        self.replacement = replacement
        self._secret_keys = frozenset(_normalise(k) for k in secret_keys)
        self._pii_keys = PII_KEYS | frozenset(_normalise(k) for k in pii_keys)
        escaped = replacement.replace("\\", "\\\\")
        self._templates = [
            (pattern, template.replace(REDACTED, escaped)) for pattern, template in _TEXT_PATTERNS
        ]
        self._pii_template = r"\1\2" + escaped
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None
        for value in secrets:
            self.add_secret(value)

    @classmethod
    def for_config(cls, config: GWSConfig, **options: Any) -> SecretRedactor:
        """A redactor that knows the password of ``config`` and its Basic credentials."""
        redactor = cls(**options)
        redactor.add_secret(config.password)
        pair = f"{config.username}:{config.password}"
        redactor.add_secret(base64.b64encode(pair.encode()).decode())
        return redactor

    def __repr__(self) -> str:
        # The secrets themselves are never shown.
        return f"<SecretRedactor secrets={len(self._secrets)} redact_pii={self.redact_pii}>"

    # -- known secret values ----------------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """Replace ``value`` wherever it occurs from now on (counted: add twice, discard
        twice)."""
        if not isinstance(value, str) or not value:
            return
        with self._lock:
            self._secrets[value] = self._secrets.get(value, 0) + 1
            self._pattern = None

    def discard_secret(self, value: str) -> None:
        """Undo one :meth:`add_secret` of ``value``."""
        with self._lock:
            count = self._secrets.get(value, 0)
            if count <= 1:
                self._secrets.pop(value, None)
            else:
                self._secrets[value] = count - 1
            self._pattern = None

    def _known(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None:
            with self._lock:
                if not self._secrets:
                    return None
                parts = []
                for value in sorted(self._secrets, key=len, reverse=True):
                    escaped = re.escape(value)
                    if len(value) < _SHORT_SECRET:
                        escaped = rf"(?<!\w){escaped}(?!\w)"
                    parts.append(escaped)
                pattern = self._pattern = re.compile("|".join(parts))
        return pattern

    # -- redaction --------------------------------------------------------------------------

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            value = event_dict[key]
            if self._is_sensitive_key(key):
                if value is not None and not isinstance(value, bool):
                    event_dict[key] = self.replacement
                continue
            redacted, changed = self._walk(value, 0, set())
            if changed:
                event_dict[key] = redacted
        return event_dict

    def redact(self, value: Any) -> Any:
        """A redacted copy of ``value`` (the value itself when there is nothing to redact)."""
        return self._walk(value, 0, set())[0]

    def redact_text(self, text: str) -> str:
        """``text`` with secrets (and, with ``redact_pii``, phone numbers) replaced."""
        known = self._known()
        if known is not None:
            text = known.sub(lambda _: self.replacement, text)
        for pattern, template in self._templates:
            text = pattern.sub(template, text)
        if self.redact_pii:
            text = _PII_PATTERN.sub(self._pii_template, text)
        return text

    def _is_sensitive_key(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        if is_secret_key(key) or _normalise(key) in self._secret_keys:
            return True
        return self.redact_pii and _normalise(key) in self._pii_keys

    def _walk(self, value: Any, depth: int, seen: set[int]) -> tuple[Any, bool]:
        if isinstance(value, str):
            text = self.redact_text(value)
            return text, text != value
        if isinstance(value, bytes | bytearray):
            decoded = bytes(value).decode("utf-8", errors="replace")
            text = self.redact_text(decoded)
            return (text, True) if text != decoded else (value, False)
        if value is None or isinstance(value, bool | int | float):
            return value, False
        if depth >= _MAX_DEPTH:
            return "[TOO DEEP]", True
        if id(value) in seen:
            return "[CYCLE]", True
        seen.add(id(value))
        try:
            return self._walk_container(value, depth, seen)
        finally:
            seen.discard(id(value))

    def _walk_container(self, value: Any, depth: int, seen: set[int]) -> tuple[Any, bool]:
        if isinstance(value, Mapping):
            items: dict[Any, Any] = {}
            changed = False
            for key, item in value.items():
                if self._is_sensitive_key(key) and item is not None and not isinstance(item, bool):
                    items[key] = self.replacement
                    changed = True
                    continue
                new, item_changed = self._walk(item, depth + 1, seen)
                items[key] = new
                changed = changed or item_changed
            if not changed:
                return value, False
            return (MappingProxyType(items) if isinstance(value, MappingProxyType) else items), True
        if isinstance(value, list | tuple | set | frozenset):
            results = [self._walk(item, depth + 1, seen) for item in value]
            if not any(changed for _, changed in results):
                return value, False
            new_items = [new for new, _ in results]
            return (tuple(new_items) if isinstance(value, tuple) else new_items), True
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            redacted, changed = self._walk_container(fields, depth, seen)
            if not changed:
                return value, False
            inner = ", ".join(f"{name}={item!r}" for name, item in redacted.items())
            return f"{type(value).__name__}({inner})", True
        if isinstance(value, BaseException):
            text = f"{type(value).__name__}: {value}"
            redacted_text = self.redact_text(text)
            return (redacted_text, True) if redacted_text != text else (value, False)
        return value, False


class RedactingLogFilter(logging.Filter):
    """A ``logging.Filter`` that redacts each record's message with a :class:`SecretRedactor`.

    Attach it to a logger (it then sees the records created by that logger) or to a handler
    (it sees every record the handler emits). It never drops a record.
    """

    def __init__(self, redactor: SecretRedactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor if redactor is not None else SecretRedactor()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's business
            return True
        redacted = self.redactor.redact_text(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


#: Ready-made processor: secrets only.
redact_secrets: Final = SecretRedactor()
#: Ready-made processor: secrets and phone numbers.
redact_secrets_and_pii: Final = SecretRedactor(redact_pii=True)

#: The secret values of every open GWS session of this process (password, Basic
#: credentials, CSRF token), used by the filter :func:`guard_library_logs` installs.
PLUGIN_SECRETS: Final = SecretRedactor()

#: Loggers of the HTTP libraries the plugin drives.
LIBRARY_LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "aiohttp.client",
    "aiohttp.internal",
    "aiocometd_noloop.client",
    "aiocometd_noloop.transports.base",
    "aiocometd_noloop.transports.long_polling",
)
_GUARD: Final = RedactingLogFilter(PLUGIN_SECRETS)
_GUARD_LOCK: Final = threading.Lock()


def guard_library_logs() -> None:
    """Put the plugin's redacting filter on the HTTP libraries' loggers (idempotent)."""
    with _GUARD_LOCK:
        for name in LIBRARY_LOGGERS:
            library_logger = logging.getLogger(name)
            if _GUARD not in library_logger.filters:
                library_logger.addFilter(_GUARD)


#: What the library's own log lines redact in the text of an exception they carry: the
#: secrets of every open session, secret-looking text and phone numbers (by their key).
_EXCEPTION_TEXT: Final = SecretRedactor(redact_pii=True)


def _redacted_text(text: str) -> str:
    return _EXCEPTION_TEXT.redact_text(PLUGIN_SECRETS.redact_text(text))


def redact_exception(error: BaseException) -> BaseException:
    """``error`` itself when no text of its chain (its message, notes, causes and contexts)
    holds a secret; else a stand-in chain with the same type names, tracebacks and links,
    each text redacted. For the library's log lines: a host's code (a request subclass, a
    transport, a plugin) may have put what it read into an exception's text."""
    memo: dict[int, BaseException] = {}
    return _redact_chain(error, memo)


def _redact_chain(error: BaseException, memo: dict[int, BaseException]) -> BaseException:
    known = memo.get(id(error))
    if known is not None:
        return known
    memo[id(error)] = error  # a cycle in the chain ends here
    try:
        text = str(error)
    except Exception:
        text = None
    notes = getattr(error, "__notes__", None)
    notes_list = [str(n) for n in notes] if isinstance(notes, list) else []
    cause = error.__cause__
    context = error.__context__
    new_cause = None if cause is None else _redact_chain(cause, memo)
    new_context = None if context is None else _redact_chain(context, memo)
    new_text = None if text is None else _redacted_text(text)
    new_notes = [_redacted_text(n) for n in notes_list]
    if (
        new_text == text
        and new_notes == notes_list
        and new_cause is cause
        and (new_context is context)
    ):
        return error
    kind = type(error)
    shown = text if new_text is None else new_text
    stand_in_type = type(
        kind.__name__,
        (Exception,),
        {
            "__module__": kind.__module__,
            "__qualname__": kind.__qualname__,
            "__str__": lambda self: shown,
            "__repr__": lambda self: f"{kind.__name__}({shown!r})",
        },
    )
    stand_in: BaseException = stand_in_type().with_traceback(error.__traceback__)
    if new_notes:
        stand_in.__notes__ = new_notes
    stand_in.__cause__ = new_cause
    stand_in.__context__ = new_context
    stand_in.__suppress_context__ = error.__suppress_context__
    memo[id(error)] = stand_in
    return stand_in
