"""One rule for values that GWS or OCS may spell two ways (used for correlation and payloads).

* an identifier (``GSW_RECORD_HANDLE``, ``GSW_APPLICATION_ID``, ``GSW_CHAIN_ID``,
  ``GSW_ERROR_NUMBER``, a record's ``recordHandle``) is an integer, or a string of ASCII
  digits that means that integer (``"11"`` is ``11``);
* a reference id (``referenceId``, ``GSW_REFERENCE_ID``) is a string, or an integer that means
  its decimal string; an empty string is no reference at all;
* an OCS id in a payload (``as_ocs_id``) is an identifier in OCS's range, 1 to
  :data:`MAX_OCS_ID`: anything else is no id at all;
* a name (campaign, phone number, event name) is a non-empty string;
* a device id is the last segment of a non-empty ``/devices/<id>`` path;
* an object (a message's ``data``, ``record``, ``userData``, ``metrics``) is a mapping.

These read what GWS or OCS *sent*, and never raise. What a caller *gives* (a request's fields)
is validated more strictly in ``_requests`` (a real ``int``, never ``"11"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeGuard

__all__ = [
    "MAX_OCS_ID",
    "as_device_id",
    "as_id",
    "as_name",
    "as_ocs_id",
    "as_reference",
    "is_object",
]

#: Largest OCS id (record handle, application DBID, chain id): OCS keeps them as 32-bit signed
#: integers, so a larger value cannot exist on a real OCS (reference §10.5).
MAX_OCS_ID: Final = 2**31 - 1
_DEVICES: Final = "/devices/"
#: The longest identifier accepted from a string (GWS's are 32-bit; this is generous).
_MAX_DIGITS: Final = 18


def is_object(value: object) -> TypeGuard[Mapping[Any, Any]]:
    """A JSON object: a ``dict`` (what the JSON decoder makes, checked first: the ``Mapping``
    check goes through the ABC machinery) or any other ``Mapping``."""
    return type(value) is dict or isinstance(value, Mapping)


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


def as_ocs_id(value: object) -> int | None:
    """An identifier in OCS's range (1 to :data:`MAX_OCS_ID`), else ``None``."""
    number = as_id(value)
    return number if number is not None and 0 < number <= MAX_OCS_ID else None


def as_device_id(path: object) -> str | None:
    """The device id of a ``/devices/<id>`` path (its last segment), else ``None``."""
    if isinstance(path, str) and path.startswith(_DEVICES) and len(path) > len(_DEVICES):
        return path.rsplit("/", 1)[1] or None
    return None
