"""What the correlator remembers after an outcome, for ``late_window`` seconds.

The matching rule (``docs/design-notes.md``, "Which request a message answers") relies on facts
about requests that have ended: their reference ids stay reserved (M2), an answer still owed to
one of them is its own when it comes (M4), an answer one of them took is recognised when GWS
relays it again (M8), exact repeats are dropped (M8), and pushed preview records and partial
results wait for the request they belong to (M5, M6). Each fact is stamped with the current
sweep generation; the correlator's sweep timer runs every ``late_window / SWEEPS`` and drops
what is ``SWEEPS + 1`` generations old, so a fact lives between ``late_window`` and
1.25 times ``late_window``. Nothing is dropped because a count was reached, except by the
duplicate filter (a best-effort optimisation: an exact repeat it forgot is placed by the rule
like any message, never with another request).

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final

from ._coerce import is_object
from ._models import UserEvent
from ._spec import CorrelationKey, OperationSpec

__all__ = ["MAX_NESTING", "SWEEPS", "Aging", "Owed", "Recent"]

SWEEPS: Final = 4
_CANONICAL_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _not_json(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON")


# The same text as ``_CANONICAL_JSON.encode`` (its C encoder, made once instead of per call;
# no check for cycles: a cycle ends in RecursionError, which the caller handles as not JSON).
_MAKE_ENCODER: Final[Callable[..., Callable[[object, int], Iterable[str]]] | None] = getattr(
    json.encoder, "c_make_encoder", None
)
_C_ENCODER: Final = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True
    )
)


def _canonical(value: object) -> str:
    if _C_ENCODER is None:
        return _CANONICAL_JSON.encode(value)
    return "".join(_C_ENCODER(value, 0))


#: The deepest nesting of objects and lists accepted in a CometD message's ``data`` (the
#: object itself is level 1): deeper is malformed. The same on every Python version and
#: recursion limit, which decide how deep the JSON encoder itself can go (3.11 stops near 500
#: levels, 3.13 near 5,000, a raised ``sys.setrecursionlimit()`` further).
MAX_NESTING: Final = 64


def _nested_deeper(value: object, limit: int) -> bool:
    """Whether objects and lists nest deeper than ``limit`` levels in ``value`` (without
    recursion, so at any depth)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children: Iterable[object]
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        stack.extend(
            (child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple)
        )
    return False


def _containers(text: str) -> int:
    """How many objects and lists a JSON text holds at most (brackets in strings count too):
    an upper bound on its nesting, read in C (a list is rare: ``in`` finds there is none
    faster than ``count`` counts none)."""
    return text.count("{") + (text.count("[") if "[" in text else 0)


Chain = tuple[int, str, int]
#: (arrival sequence, record handle, event, stamp, userData digest)
_Part = tuple[int, int, UserEvent, int, bytes | None]


class Owed:
    """A request that was sent and ended without its user event: the next unreferenced answer
    on its key is its late answer (OCS answers a key's requests in order). When GWS
    acknowledged it (its acknowledgement notification arrived), that answer is the same
    answer: no refusal, and a "no record" only if it was acknowledged as one (M9)."""

    __slots__ = ("acknowledged", "empty", "spec", "stamp", "token")

    def __init__(
        self, spec: OperationSpec, stamp: int, token: int, *, acknowledged: bool, empty: bool
    ) -> None:
        self.spec = spec
        self.stamp = stamp
        self.token = token
        self.acknowledged = acknowledged
        self.empty = empty
        """Acknowledged as "no record" (an empty result)."""

    def takes(self, name: str | None, answer: bool, refusal: str | None) -> bool:
        """Whether a late user event named ``name`` can be this request's answer: any, for a
        refusal that names no operation (``answer`` false), else one its operation answers.
        ``refusal``: the event's error text, casefolded (``""`` for none), when it is an error
        event; a text that means "no records" for the operation (``empty_error_texts``) is an
        empty result, not a refusal. Once GWS acknowledged the request (M9): never a refusal,
        and a "no record" only if it was acknowledged as one."""
        if self.acknowledged:
            if refusal is None:
                nothing = name is not None and name in self.spec.empty
            else:
                nothing = refusal in self.spec.empty_error_texts
            if nothing or refusal is not None:
                return nothing and self.empty
        return not answer or (name is not None and name in self.spec.user_events | self.spec.empty)


class Aging:
    """Keys kept for whole sweep generations, oldest first.

    Adding, finding and counting a key cost O(1) (a key is looked up in at most
    ``SWEEPS + 2`` generations); dropping a generation costs its own keys and nothing else,
    and hands its memory back at once. (A single ``dict`` in stamp order, trimmed from the
    front, rescans the slots it already emptied on every ``next(iter(...))``: a sweep of
    ``n`` facts cost ``n**2 / 2`` steps, seconds of a blocked event loop at 80,000.)
    """

    __slots__ = ("_generations", "_size")

    def __init__(self) -> None:
        self._generations: deque[tuple[int, set[Hashable]]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        # A loop, not any(): no generator made for each look-up (several per message).
        for _, keys in self._generations:  # noqa: SIM110
            if key in keys:
                return True
        return False

    def add(self, key: Hashable, generation: int) -> None:
        """Keep ``key`` from ``generation`` on (a key already kept moves to it)."""
        newest = self._newest(generation)
        if key in newest:
            return
        self.discard(key)
        newest.add(key)
        self._size += 1

    def add_new(self, key: Hashable, generation: int) -> None:
        """:meth:`add` for a key the caller has just found not kept (``key not in self``):
        the generations are not searched again."""
        self._newest(generation).add(key)
        self._size += 1

    def _newest(self, generation: int) -> set[Hashable]:
        """The keys of ``generation``, the newest one (started if it is not there yet)."""
        generations = self._generations
        if not generations or generations[-1][0] != generation:
            generations.append((generation, set()))
        return generations[-1][1]

    def discard(self, key: Hashable) -> None:
        for _, keys in self._generations:
            if key in keys:
                keys.remove(key)
                self._size -= 1
                return

    def drop_one_oldest(self) -> None:
        """Forget one key of the oldest generation that has any."""
        generations = self._generations
        while generations:
            keys = generations[0][1]
            if keys:
                keys.pop()
                self._size -= 1
                return
            generations.popleft()

    def expire(self, cutoff: int) -> None:
        """Drop the generations numbered ``cutoff`` or lower."""
        generations = self._generations
        while generations and generations[0][0] <= cutoff:
            self._size -= len(generations.popleft()[1])


class Recent:
    """See the module docstring. Owned by one correlator's
    :class:`~._pending.PendingRequests`."""

    def __init__(self, *, fingerprint_limit: int, parts_limit: int) -> None:
        self._fingerprint_limit = fingerprint_limit
        self._parts_limit = parts_limit
        self.generation = 0
        self._sweeping = False
        self.sweep_pending = False
        """Whether the sweep timer must be started (:meth:`sweep_due` says it once)."""
        self.reserved = Aging()
        """The reference ids of requests that ended (M2); ``in`` and ``len()``."""
        self._owed: dict[CorrelationKey, list[Owed]] = {}
        self._unconfirmed: dict[str, tuple[CorrelationKey, OperationSpec, int, int]] = {}
        """Requests that ended before any message with their reference id arrived, without
        an answer of their own: reference id -> (key, spec, token, stamp), see
        :meth:`acknowledged_late`."""
        self._unconfirmed_tokens: dict[int, str] = {}
        self._unconfirmed_keys: dict[CorrelationKey, dict[str, OperationSpec]] = {}
        """The same requests by key: reference id -> spec (M11)."""
        self._fresh_claims: set[str] = set()
        """Those of them whose owed answer an acknowledgement was just taken as (M4), less than
        ``merge_window`` ago (the ``claim`` timer): their notification arriving meanwhile is the
        other half of that answer."""
        self._claimed: str | None = None
        self._taken = Aging()
        self._fingerprints = Aging()
        self._previews: dict[int, tuple[UserEvent, int]] = {}
        self._parts: dict[Chain, list[_Part]] = {}
        self._parts_count = 0

    def sizes(self) -> dict[str, int]:
        return {
            "reserved": len(self.reserved),
            "owed": sum(len(v) for v in self._owed.values()),
            "unconfirmed": len(self._unconfirmed),
            "taken": len(self._taken),
            "fingerprints": len(self._fingerprints),
            "parts": self._parts_count,
            "previews": len(self._previews),
        }

    # -- time -------------------------------------------------------------------------------

    def stamp(self) -> int:
        """The current generation; the sweep timer is due if it is not running."""
        if not self._sweeping:
            self._sweeping = self.sweep_pending = True
        return self.generation

    def sweep_due(self) -> bool:
        """Whether the correlator must start the sweep timer now (asked once per call)."""
        due, self.sweep_pending = self.sweep_pending, False
        return due

    def sweep(self) -> None:
        """The sweep timer fired: one generation older; drop what is old enough."""
        self.generation += 1
        cutoff = self.generation - SWEEPS - 1
        self.reserved.expire(cutoff)
        self._taken.expire(cutoff)
        self._fingerprints.expire(cutoff)
        for key in list(self._owed):
            owed = [slot for slot in self._owed[key] if slot.stamp > cutoff]
            if owed:
                self._owed[key] = owed
            else:
                del self._owed[key]
        for reference in [r for r, e in self._unconfirmed.items() if e[3] <= cutoff]:
            self._confirmed(reference)
        for handle in [h for h, (_, stamp) in self._previews.items() if stamp <= cutoff]:
            del self._previews[handle]
        for chain in list(self._parts):
            parts = [p for p in self._parts[chain] if p[3] > cutoff]
            self._parts_count -= len(self._parts[chain]) - len(parts)
            if parts:
                self._parts[chain] = parts
            else:
                del self._parts[chain]
        alive = bool(
            self.reserved
            or self._taken
            or self._fingerprints
            or self._owed
            or self._unconfirmed
            or self._previews
            or self._parts
        )
        self._sweeping = self.sweep_pending = alive

    # -- M8: repeats --------------------------------------------------------------------------

    def fingerprint(
        self, channel: object, data: Mapping[str, Any], max_bytes: int
    ) -> tuple[bool, bytes | None] | None:
        """Whether the message is an exact repeat, and the digest of its ``userData`` (what a
        regenerated copy of a user event shares with it, ``None`` for other messages); ``None``
        when the message is too large, nested deeper than :data:`MAX_NESTING`, or not JSON."""
        user_data = data.get("userData")
        try:
            if user_data is not None and is_object(user_data):
                content_text: str | None = _canonical(user_data)
                rest = dict(data)  # the message without its userData (a copy made in C)
                rest.pop("userData", None)
                text = _canonical([channel, rest])
            else:
                content_text, text = None, _canonical([channel, data])
        except (TypeError, ValueError, RecursionError):
            return None
        if len(text) + (0 if content_text is None else len(content_text) + 1) > max_bytes:
            return None
        containers = _containers(text) + (0 if content_text is None else _containers(content_text))
        if containers > MAX_NESTING and _nested_deeper(data, MAX_NESTING):
            return None
        whole = hashlib.blake2b(text.encode(), digest_size=16)
        content = None
        if content_text is not None:
            content = hashlib.blake2b(content_text.encode(), digest_size=16).digest()
            whole.update(content)  # the message: the rest of it and its userData's digest
        digest = whole.digest()
        fingerprints = self._fingerprints
        if digest in fingerprints:
            return True, content
        if len(fingerprints) >= self._fingerprint_limit:
            fingerprints.drop_one_oldest()
        fingerprints.add_new(digest, self.stamp())
        return False, content

    def took(self, content: bytes) -> None:
        """One of our requests took an unreferenced user event whose ``userData`` has this
        digest as its answer."""
        self._taken.add(content, self.stamp())

    def was_taken(self, content: bytes | None) -> bool:
        """A copy of an answer one of our requests took: the same ``userData``."""
        return content is not None and content in self._taken

    # -- M2, M4: what finished requests are still owed ----------------------------------------

    def reserve(self, reference_id: str) -> None:
        """A request that ended: its reference id stays reserved (M2)."""
        self.reserved.add(reference_id, self.stamp())

    def owe(
        self,
        key: CorrelationKey,
        spec: OperationSpec,
        token: int,
        *,
        acknowledged: bool,
        empty: bool,
    ) -> None:
        slot = Owed(spec, self.stamp(), token, acknowledged=acknowledged, empty=empty)
        self._owed.setdefault(key, []).append(slot)

    def ended_unconfirmed(
        self, reference_id: str, key: CorrelationKey, spec: OperationSpec, token: int
    ) -> None:
        """A request on ``key`` ended before any message with its reference id arrived and
        without an answer of its own (none, or a refusal matched by key alone); see
        :meth:`acknowledged_late`."""
        self._unconfirmed[reference_id] = (key, spec, token, self.stamp())
        self._unconfirmed_tokens[token] = reference_id
        self._unconfirmed_keys.setdefault(key, {})[reference_id] = spec

    def _confirmed(self, reference_id: str) -> tuple[CorrelationKey, OperationSpec, int] | None:
        found = self._unconfirmed.pop(reference_id, None)
        if found is None:
            return None
        key, spec, token, _ = found
        self._unconfirmed_tokens.pop(token, None)
        self._fresh_claims.discard(reference_id)
        on_key = self._unconfirmed_keys.get(key)
        if on_key is not None:
            on_key.pop(reference_id, None)
            if not on_key:
                del self._unconfirmed_keys[key]
        return key, spec, token

    def unconfirmed_before(self, key: CorrelationKey, name: str | None) -> bool:
        """M11: whether a request on ``key`` that ended unconfirmed (see
        :meth:`ended_unconfirmed`) and is owed nothing may still have its acknowledgement
        named ``name`` arrive late: its user event could come before its notification."""
        on_key = self._unconfirmed_keys.get(key)
        if not on_key or name is None:
            return False  # the usual case: nothing unconfirmed on the key
        return any(name in spec.user_events for spec in on_key.values())

    def late_acknowledgement(
        self, reference_id: str, notification: str | None
    ) -> tuple[CorrelationKey, OperationSpec] | None:
        """The key and operation of the request that ended unconfirmed with this reference
        id, when ``notification`` is its acknowledgement (see :meth:`acknowledged_late`)."""
        found = self._unconfirmed.get(reference_id)
        if found is None or notification != found[1].acknowledgement:
            return None
        return found[0], found[1]

    def acknowledged_late(
        self, reference_id: str, notification: str | None, *, answered: bool = False
    ) -> None:
        """A late notification (M2) carrying ``reference_id``: when it is the acknowledgement of
        a request that ended before any message with its reference id arrived, OCS acted on
        that request after all, and its user event, which follows without a reference id, is
        owed to it (M4), as an acknowledged request's (no refusal): never the answer of the
        next request on its key. That holds also when what it was owed was taken meanwhile by
        another client's unreferenced refusal, or when such a refusal ended it (matched by key
        alone: that outcome cannot be undone). ``answered``: its user event arrived already
        (held under M11, and given back to it): nothing is owed to it any more."""
        found = self._unconfirmed.get(reference_id)
        if found is None or notification != found[1].acknowledgement:
            return
        if reference_id in self._fresh_claims:
            # The acknowledgement taken as its late answer just before was its own user event
            # (the two halves of one answer come together): nothing more is owed to it.
            self._confirmed(reference_id)
            return
        key, spec, token = self._confirmed(reference_id) or found[:3]
        if answered:
            self.forgive(key, token)
            return
        for slot in self._owed.get(key, ()):
            if slot.token == token:
                slot.acknowledged = True  # still owed: now as acknowledged (M9)
                return
        self.owe(key, spec, token, acknowledged=True, empty=False)

    def take_claimed(self) -> str | None:
        """The reference id of the request whose owed answer the last :meth:`claim_owed` took
        as an acknowledgement, if it ended unconfirmed (once): its ``claim`` timer starts."""
        claimed, self._claimed = self._claimed, None
        return claimed

    def claim_aged(self, reference_id: str) -> None:
        """The ``claim`` timer of ``reference_id`` fired: its notification arriving from now on
        is not the other half of the acknowledgement taken as its answer (that was another
        client's): its own user event is owed to it then (:meth:`acknowledged_late`)."""
        self._fresh_claims.discard(reference_id)

    def forgive(self, key: CorrelationKey, token: int) -> None:
        """The request ``token`` is owed nothing after all: GWS refused its POST after it
        ended (it never passed the request on)."""
        reference = self._unconfirmed_tokens.get(token)
        if reference is not None:
            self._confirmed(reference)
        owed = self._owed.get(key)
        if owed:
            owed[:] = [slot for slot in owed if slot.token != token]
            if not owed:
                del self._owed[key]

    def is_owed(
        self, key: CorrelationKey, name: str | None, answer: bool, refusal: str | None
    ) -> bool:
        """Whether a request on ``key`` is still owed a user event named ``name`` (see
        :meth:`Owed.takes`)."""
        owed = self._owed.get(key)
        if not owed:
            return False  # the usual case: nothing is owed on the key
        return any(slot.takes(name, answer, refusal) for slot in owed)

    def claim_owed(
        self, key: CorrelationKey, name: str | None, answer: bool, refusal: str | None
    ) -> Owed | None:
        """The earliest request on ``key`` still owed a user event named ``name`` (see
        :meth:`Owed.takes`); it is owed no longer."""
        owed = self._owed.get(key)
        if not owed:
            return None
        for i, slot in enumerate(owed):
            if slot.takes(name, answer, refusal):
                del owed[i]
                if not owed:
                    del self._owed[key]
                reference = self._unconfirmed_tokens.get(slot.token)
                if refusal is None and reference is not None:
                    # An acknowledgement: its own, in order, or another client's answer on the
                    # key (the known limit). Its notification by reference within
                    # merge_window says the former; later, the latter (acknowledged_late).
                    self._fresh_claims.add(reference)
                    self._claimed = reference
                return slot
        return None

    # -- M5: preview records ------------------------------------------------------------------

    def hold_preview(self, handle: int, event: UserEvent) -> None:
        self._previews[handle] = (event, self.stamp())

    def pop_preview(self, handle: int) -> UserEvent | None:
        held = self._previews.pop(handle, None)
        return held[0] if held is not None else None

    # -- M6: partial results ------------------------------------------------------------------

    def keep_part(
        self, chain: Chain, seq: int, handle: int | None, event: UserEvent, content: bytes | None
    ) -> bool:
        if self._parts_count >= self._parts_limit:
            return False
        part = (seq, handle or 0, event, self.stamp(), content)
        self._parts.setdefault(chain, []).append(part)
        self._parts_count += 1
        return True

    def take_parts(
        self, chain: Chain, *, after: int, before: int, own: int | None
    ) -> list[tuple[int, UserEvent, bytes | None]]:
        """The parts of ``chain`` that arrived after ``after`` and before ``before``, other
        than record ``own``: they leave the buffer."""
        buffered = self._parts.get(chain)
        if not buffered:
            return []
        mine: list[_Part] = []
        rest: list[_Part] = []
        for part in buffered:
            (mine if after < part[0] < before and part[1] != own else rest).append(part)
        if rest:
            self._parts[chain] = rest
        else:
            del self._parts[chain]
        self._parts_count -= len(mine)
        return [(seq, event, content) for seq, _, event, _, content in mine]
