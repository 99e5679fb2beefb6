"""One rule for values that GWS or OCS may spell two ways (used for correlation and payloads).

* an identifier (``GSW_RECORD_HANDLE``, ``GSW_APPLICATION_ID``, ``GSW_CHAIN_ID``,
  ``GSW_ERROR_NUMBER``, a record's ``recordHandle``) is an integer, or a string of ASCII
  digits that means that integer (``"11"`` is ``11``);
* a reference id (``referenceId``, ``GSW_REFERENCE_ID``) is a string, or an integer that means
  its decimal string; an empty string is no reference at all;
* a name (campaign, phone number, event name) is a non-empty string.
"""

from __future__ import annotations

from typing import Final

__all__ = ["as_id", "as_name", "as_reference"]

#: The longest identifier accepted from a string (GWS's are 32-bit; this is generous).
_MAX_DIGITS: Final = 18


def as_id(value: object) -> int | None:
    """An identifier: an int (not a bool), or a string of ASCII digits."""
    if isinstance(value, int):
        return None if isinstance(value, bool) else value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS:
            return int(text)
    return None


def as_name(value: object) -> str | None:
    """A non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def as_reference(value: object) -> str | None:
    """A reference id: a non-empty string, or an int as its decimal string."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
