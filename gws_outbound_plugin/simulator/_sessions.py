"""GWS HTTP sessions: ``JSESSIONID`` value -> user and CSRF token, with idle expiry."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

__all__ = ["Session", "SessionStore"]


@dataclass(eq=False, slots=True)
class Session:
    session_id: str
    username: str
    csrf_token: str
    last_used: float

    def __repr__(self) -> str:
        # The session id and the CSRF token are secrets: keep them out of reprs.
        return f"Session(username={self.username!r})"


class SessionStore:
    """Sessions expire after ``idle_timeout`` seconds without a request, or on demand."""

    def __init__(self, idle_timeout: float) -> None:
        self._idle_timeout = idle_timeout
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, username: str) -> Session:
        session = Session(
            session_id=secrets.token_hex(16).upper(),
            username=username,
            csrf_token=str(uuid.uuid4()),
            last_used=time.monotonic(),
        )
        self._sessions[session.session_id] = session
        return session

    def peek(self, session_id: str | None) -> Session | None:
        """The live session named ``session_id``, without touching its idle timer."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if time.monotonic() - session.last_used > self._idle_timeout:
            del self._sessions[session_id]
            return None
        return session

    def use(self, session_id: str | None) -> Session | None:
        """The live session named ``session_id``, restarting its idle timer."""
        session = self.peek(session_id)
        if session is not None:
            session.last_used = time.monotonic()
        return session

    def expire(self, session_id: str | None) -> bool:
        return session_id is not None and self._sessions.pop(session_id, None) is not None

    def rotate_csrf_tokens(self) -> int:
        """Give every live session a new CSRF token; return how many sessions there are."""
        self.sweep()
        for session in self._sessions.values():
            session.csrf_token = str(uuid.uuid4())
        return len(self._sessions)

    def expire_all(self) -> int:
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def sweep(self) -> None:
        now = time.monotonic()
        stale = [
            key
            for key, session in self._sessions.items()
            if now - session.last_used > self._idle_timeout
        ]
        for key in stale:
            del self._sessions[key]
