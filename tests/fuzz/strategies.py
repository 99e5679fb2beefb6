"""Hypothesis strategies shared by the fuzz suites."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from gws_outbound_plugin._requests import BUS_KEYS

GSW_KEYS = (
    "GSW_USER_EVENT",
    "GSW_APPLICATION_ID",
    "GSW_RECORD_HANDLE",
    "GSW_CALLING_LIST",
    "GSW_CAMPAIGN_NAME",
    "GSW_CHAIN_ATTR",
    "GSW_PHONE",
    "GSW_ERROR",
    "GSW_ERROR_NUMBER",
    "GSW_REFERENCE_ID",
)

# Scalars as JSON decoders produce them (Python's json also accepts NaN and Infinity).
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "11", "²", "١٢", "-1", "1e3", "RecordCancelAcknowledge"]),
)

json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)


class Unprintable:
    """A value whose repr and str raise, as a buggy host object might."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # How Hypothesis shows the value in its reports (it does not use repr() then).
        printer.text("Unprintable()")


# Python values a host could put on its bus besides JSON data.
python_values = st.one_of(
    json_values,
    st.integers(),  # unbounded: also integers too long to print
    st.binary(max_size=10),
    st.tuples(json_scalars, json_scalars),
    st.frozensets(st.integers(), max_size=3),
    st.builds(Unprintable),
    st.sampled_from([math.inf, -0.0, 2**53, 2**53 - 1, 0, 10**5000]),
)

bus_keys = st.one_of(
    st.sampled_from([*BUS_KEYS, "operationName"]),
    st.text(max_size=20),
    st.integers(),
    st.none(),
    st.tuples(st.integers(), st.text(max_size=3)),
)


# Printable names (no control characters), as OCS campaign and calling list names are.
names = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters="\x7f"),
    min_size=1,
    max_size=40,
).filter(str.strip)


def valid_bus_event(device_path: str = "/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f") -> Any:
    """Valid bus events, with the optional keys present or not."""
    return st.fixed_dictionaries(
        {
            "recordHandle": st.integers(min_value=1, max_value=2**31 - 1),
            "applicationId": st.integers(min_value=1, max_value=2**31 - 1),
            "campaignName": names,
            "callingList": names,
            "devicePath": st.just(device_path),
        },
        optional={
            "phoneNumber": st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True),
            "chainAttribute": st.sampled_from(["AllChain", "RecordOnly", None]),
            # (digits with a leading zero are refused: OCS may echo them as a number)
            "referenceId": st.from_regex(r"[A-Za-z0-9-]{1,40}", fullmatch=True).filter(
                lambda ref: not (len(ref) > 1 and ref[0] == "0" and ref.isdigit())
            ),
            "operationName": st.just("CancelRecord"),
        },
    )
