"""The requests a command line gives, validated before any network."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._exceptions import InvalidOperationRequest
from .._operations import OperationRequest, request_from_bus
from .._requests import REQUEST_FIELDS
from ._commands import _OPTION_OF_BUS_KEY, _PREVIEW, _PREVIEW_ACTIONS, _REQUEST, _Command
from ._common import _PLACEHOLDER_DEVICE, _UsageError


def _given(args: argparse.Namespace, field: str) -> Any:
    value = getattr(args, field, None)
    return None if value == [] else value


def _option_event(command: _Command, args: argparse.Namespace) -> dict[str, Any]:
    """The fields the options give (all but the record handles), in GWS camelCase keys."""
    event: dict[str, Any] = {}
    for field in command.fields:
        value = _given(args, field)
        if field != "record_handle" and value is not None:
            kind = REQUEST_FIELDS[field].kind
            event[REQUEST_FIELDS[field].bus_key] = kind.to_bus(kind.normalize(value))
    return event


def _options_of(key: str) -> str:
    """The option(s) of an error's field key (``campaignName``, ``from/until``...)."""
    return "/".join(_OPTION_OF_BUS_KEY.get(part, part) for part in key.split("/"))


#: Field names that a validation message may mention in its text (``must not be before
#: from``): said as their options instead, for requests given as options.
_FIELD_WORDS: Final = re.compile(
    r"(?<![\w-])("
    + "|".join(re.escape(key) for key in sorted(_OPTION_OF_BUS_KEY, key=len, reverse=True))
    + r")(?= \(|$|[;,.])"
)


def _problem_with_options(problem: str) -> str:
    """A validation message with the field names it mentions (``from``) as the options
    (``--from``): only a field name followed by its value in parentheses or ending the
    message counts, so ordinary words are left alone."""
    return _FIELD_WORDS.sub(lambda match: _OPTION_OF_BUS_KEY[match[1]], problem)


def _label(operation: str | None) -> str:
    return "cancel" if operation == "CancelRecord" else (operation or "operation")


def _missing(command: _Command, args: argparse.Namespace) -> list[str]:
    missing = [
        REQUEST_FIELDS[field].flags[0] for field in command.required if _given(args, field) is None
    ]
    if command.name == "do-not-call":
        if _given(args, "record_handle") is not None:
            if _given(args, "calling_list") is None:
                missing.append("--calling-list")
        elif _given(args, "phone_number") is None:
            missing.append("--record-handle or --phone")
    return missing


def _build(
    build: Callable[[Mapping[str, Any]], OperationRequest], event: dict[str, Any]
) -> OperationRequest:
    """A request from the options, validated before any network: a usage error if not."""
    event.setdefault("devicePath", _PLACEHOLDER_DEVICE)
    try:
        return build(event)
    except InvalidOperationRequest as error:
        problems = "; ".join(
            f"{_options_of(key)} {_problem_with_options(problem)}"
            for key, problem in error.errors.items()
        )
        raise _UsageError(f"invalid {_label(error.operation)} request: {problems}") from None


def _check_arguments(command: _Command, args: argparse.Namespace) -> list[OperationRequest]:
    """The requests of the options (none with --stdin), validated before any network."""
    if command is _REQUEST:
        return _requests_of_json(args)
    handles: list[int] = _given(args, "record_handle") or []
    stdin = getattr(args, "stdin", False)
    if stdin:
        if handles:
            raise _UsageError("give the records either as --record-handle or with --stdin")
        if _given(args, "reference_id") is not None:
            raise _UsageError("--reference-id is for a single record (each request needs its own)")
        return []
    missing = _missing(command, args)
    if missing:
        hint = "" if command is _PREVIEW else " (or give the records as JSON lines with --stdin)"
        raise _UsageError("the following arguments are required: " + ", ".join(missing) + hint)
    if _given(args, "reference_id") is not None and len(handles) > 1:
        raise _UsageError("--reference-id is for a single record (each request needs its own)")
    defaults = _option_event(command, args)
    if command is _PREVIEW:
        return [_build(_PREVIEW_ACTIONS[action], dict(defaults)) for action in args.actions]
    if "record_handle" not in command.fields or (command.name == "do-not-call" and not handles):
        return [_build(command.build, dict(defaults))]
    return [_build(command.build, {**defaults, "recordHandle": handle}) for handle in handles]


def _requests_of_json(args: argparse.Namespace) -> list[OperationRequest]:
    texts: list[str] = args.requests
    if args.stdin == bool(texts):
        raise _UsageError(
            "give the requests either as JSON arguments or as JSON lines with --stdin"
            if texts
            else "give the requests as JSON arguments, or as JSON lines with --stdin"
        )
    defaults = _option_event(_REQUEST, args)
    requests = []
    for number, text in enumerate(texts, 1):
        try:
            event = json.loads(text)
        except ValueError as error:
            raise _UsageError(f"request {number} is not valid JSON: {error}") from None
        if not isinstance(event, dict):
            raise _UsageError(f"request {number} must be a JSON object of GWS camelCase keys")
        event = {**defaults, **event}
        event.setdefault("devicePath", _PLACEHOLDER_DEVICE)
        try:
            requests.append(request_from_bus(event))
        except InvalidOperationRequest as error:
            raise _UsageError(f"request {number}: {error}") from None
    return requests
