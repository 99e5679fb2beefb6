"""Fuzzing the simulator's cancel endpoint: arbitrary bodies get a GWS error answer, never a
500, and never an accepted cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gws_outbound_plugin.simulator import GWSSimulator
from tests.fuzz.strategies import json_scalars, json_values
from tests.helpers import AGENT, PASSWORD

pytestmark = pytest.mark.anyio

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REQUIRED = ("operationName", "applicationId", "campaignName", "callingList", "devicePath")


@pytest.fixture
async def gws(sim: GWSSimulator) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in REST client: session cookie and CSRF token on every request."""
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        me = await client.get("/api/v2/me", auth=(AGENT, PASSWORD))
        client.headers["X-CSRF-TOKEN"] = me.headers["X-CSRF-TOKEN"]
        client.headers["Content-Type"] = "application/json"
        yield client


def valid_body(sim: GWSSimulator) -> dict[str, Any]:
    return {
        "operationName": "CancelRecord",
        "applicationId": 134,
        "campaignName": "Campaign1",
        "callingList": "CallingList1",
        "devicePath": sim.device_path(AGENT),
        "referenceId": "fuzz",
    }


# Ways to make a valid body invalid: drop a required key, or give a key a wrong value.
wrong_values = {
    "operationName": st.one_of(json_values.filter(lambda v: v != "CancelRecord")),
    "applicationId": st.one_of(
        json_values.filter(lambda v: not (type(v) is int and 0 < v <= 2**31 - 1)),
        st.integers(max_value=0),
        st.integers(min_value=2**31),
    ),
    "campaignName": json_values.filter(lambda v: not (isinstance(v, str) and v.strip())),
    "callingList": json_values.filter(lambda v: not (isinstance(v, str) and v.strip())),
    "devicePath": json_values.filter(lambda v: v != "KEEP"),
    "chainAttribute": json_values.filter(lambda v: v not in ("AllChain", "RecordOnly")),
    "phoneNumber": json_values.filter(lambda v: not (isinstance(v, str) and v.strip())),
    "referenceId": json_values.filter(lambda v: not (isinstance(v, str) and v.strip())),
}
mutations = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(REQUIRED), st.none()),
    *(st.tuples(st.just("set"), st.just(key), values) for key, values in wrong_values.items()),
)
handles = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40).map(str),
    st.text(max_size=20),
    st.sampled_from(["11", "0", "-1", "2147483648", "11.0", "1e3", "%31%31", "", "11/x"]),
)


def check_gws_error(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    assert response.status_code < 500, response.text
    if response.status_code == 403:  # GWS's CSRF answer is text, not JSON
        assert response.text == "Missing or invalid Csrf token"
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("statusCode"), int) and body["statusCode"] != 0, body
    assert isinstance(body.get("statusMessage"), str) and body["statusMessage"], body


def encode(body: Any) -> bytes:
    # Python's encoder writes NaN and Infinity, as a sloppy client might (httpx refuses to).
    return json.dumps(body).encode()


@FUZZ
@given(body=json_values)
@example(body={"operationName": "CancelRecord"})
@example(body=["CancelRecord"])
async def test_arbitrary_json_bodies(gws: httpx.AsyncClient, sim: GWSSimulator, body: Any) -> None:
    response = await gws.post("/api/v2/me/outbound-records/11", content=encode(body))
    check_gws_error(response)
    assert not sim.records[11].cancelled


@FUZZ
@given(content=st.binary(max_size=300))
@example(content=b"")
@example(content=b"\xff\xfe{")
@example(content=b'{"operationName": "CancelRecord", "applicationId": NaN}')
async def test_arbitrary_bytes(gws: httpx.AsyncClient, sim: GWSSimulator, content: bytes) -> None:
    response = await gws.post("/api/v2/me/outbound-records/11", content=content)
    check_gws_error(response)
    assert not sim.records[11].cancelled


@FUZZ
@given(mutation=mutations, handle=st.sampled_from(["11", "12"]))
async def test_valid_bodies_with_one_fault(
    gws: httpx.AsyncClient, sim: GWSSimulator, mutation: tuple[str, str, Any], handle: str
) -> None:
    action, key, value = mutation
    body = valid_body(sim)
    if action == "drop":
        del body[key]
    else:
        body[key] = value
    response = await gws.post(f"/api/v2/me/outbound-records/{handle}", content=encode(body))
    check_gws_error(response)
    assert not sim.records[int(handle)].cancelled


@FUZZ
@given(handle=handles, body=st.one_of(st.none(), json_scalars))
async def test_arbitrary_record_handles(
    gws: httpx.AsyncClient, sim: GWSSimulator, handle: str, body: Any
) -> None:
    payload = valid_body(sim) if body is None else body
    path = "/api/v2/me/outbound-records/" + quote(handle, safe="")
    response = await gws.post(path, content=encode(payload))
    if response.status_code == 200 and response.json() == {"statusCode": 0}:
        # Only a valid body on a positive handle (a Java int, as GWS reads it) is accepted;
        # whether OCS knows the record is its answer on CometD.
        assert body is None
        assert handle.isascii() and handle.isdigit() and 0 < int(handle) <= 2**31 - 1
        return
    check_gws_error(response)


async def test_deeply_nested_json_body(gws: httpx.AsyncClient) -> None:
    depth = 100_000
    response = await gws.post(
        "/api/v2/me/outbound-records/11", content=("[" * depth + "]" * depth).encode()
    )
    check_gws_error(response)
