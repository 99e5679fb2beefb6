"""One-line descriptions of failed connections and requests, for messages and logs: why a
connection failed (``connection refused``, ``TLS certificate verify failed: ...``), the
``scheme://host:port`` of a URL. Never a secret: no header, body, credential or full URL."""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

import httpx

__all__ = ["MAX_ERROR_TEXT", "describe_failure", "exception_chain", "one_line", "target_of"]

#: The longest text taken from an answer or an exception into a message.
MAX_ERROR_TEXT: Final = 200


def target_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the port always given; never credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}:{port}"


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its cause (or context), then that one's, ... (each once)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def one_line(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    return " ".join(text.split())[:limit]


def _os_cause(error: BaseException) -> str | None:
    """The cause of a failed connection found in the exception chain, as a short phrase."""
    for link in exception_chain(error):
        # (aiohttp's ClientConnectorCertificateError is a CertificateError too: its cause
        # is the ssl module's error, with the details.)
        detail = getattr(link, "verify_message", None)
        if isinstance(link, ssl.SSLCertVerificationError) and isinstance(detail, str):
            return f"TLS certificate verify failed: {detail} (CERTIFICATE_VERIFY_FAILED)"
        if isinstance(link, ssl.SSLError) and isinstance(getattr(link, "reason", None), str):
            return f"TLS error: {link.reason}"
        if isinstance(link, OSError) and link.errno is not None:
            if isinstance(link, ConnectionRefusedError) or link.errno == errno.ECONNREFUSED:
                return "connection refused"
            if isinstance(link, ConnectionResetError) or link.errno == errno.ECONNRESET:
                return "connection reset by the server"
            if link.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                return (link.strerror or "host unreachable").lower()
            if link.strerror:
                phrase = link.strerror[:1].lower() + link.strerror[1:]
                if type(link).__name__ == "gaierror":
                    return f"host name lookup failed: {phrase}"
                return phrase
    return None


def describe_failure(error: BaseException, timeout: float | None = None) -> str:
    """One line saying why a request failed: ``connection refused``, ``host name lookup
    failed: ...``, ``TLS certificate verify failed: ...``, ``no answer within 10s``, ...,
    followed by the exception type in parentheses (``ReadTimeout``, ``ConnectError``, ...).
    Never contains a secret (no header, no body, no URL)."""
    name = type(error).__name__
    within = f" within {timeout:g}s" if timeout is not None else ""
    if isinstance(error, httpx.ConnectTimeout):
        cause = f"no connection{within}"
    elif isinstance(error, httpx.ReadTimeout):
        cause = f"no answer{within}"
    elif isinstance(error, httpx.WriteTimeout):
        cause = f"the request could not be sent{within}"
    elif isinstance(error, httpx.PoolTimeout):
        cause = f"no free connection{within}: every connection busy"
    elif isinstance(error, httpx.RemoteProtocolError) and "without sending" in str(error):
        cause = "the server closed the connection without an answer"
    elif isinstance(error, TimeoutError):
        cause = f"no answer{within}"
    else:
        cause = _os_cause(error) or one_line(str(error), 120) or "no detail"
    return f"{cause} ({name})"
