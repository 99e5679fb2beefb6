"""The one "did you mean ...?" of the project: the known name closest to a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest"]


def closest(name: str, candidates: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The candidate most like ``name`` (``difflib`` ratio at least ``cutoff``), else None."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None
