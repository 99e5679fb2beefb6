"""Seeded records, the JSON loader and custom record sets."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gws_outbound_plugin.simulator import (
    DEFAULT_RECORDS,
    GWSSimulator,
    SeedRecord,
    SimulatorClock,
    load_records,
    parse_records,
)
from tests.simulator.sim_helpers import GWS, USERS

pytestmark = pytest.mark.anyio


def test_default_records_match_the_seed_page():
    by_handle = {record.record_handle: record for record in DEFAULT_RECORDS}
    assert len(by_handle) == len(DEFAULT_RECORDS)
    assert set(range(11, 21)) <= set(by_handle)
    seed = by_handle[11]
    assert (seed.application_id, seed.campaign_name, seed.calling_list, seed.phone_number) == (
        134,
        "Campaign1",
        "CallingList1",
        "3001",
    )
    chains = Counter((record.calling_list, record.chain_id) for record in DEFAULT_RECORDS)
    assert sum(1 for size in chains.values() if 2 <= size <= 3) >= 2


def test_load_records_round_trip(tmp_path: Path):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([record.to_json() for record in DEFAULT_RECORDS[:3]]))
    assert load_records(path) == DEFAULT_RECORDS[:3]
    assert load_records(str(path)) == DEFAULT_RECORDS[:3]


GOOD = {
    "recordHandle": 1,
    "applicationId": 2,
    "campaignName": "C",
    "callingList": "L",
    "phoneNumber": "5",
    "chainId": 3,
}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"recordHandle": 1}, "list"),
        ([GOOD, GOOD], "duplicate"),
        ([{k: v for k, v in GOOD.items() if k != "chainId"}], "chainId"),
        ([GOOD | {"extra": 1}], "extra"),
        ([GOOD | {"recordHandle": True}], "record_handle"),
        ([GOOD | {"recordHandle": "1"}], "record_handle"),
        ([GOOD | {"applicationId": 0}], "application_id"),
        ([GOOD | {"campaignName": ""}], "campaign_name"),
        (["not an object"], "object"),
    ],
)
def test_parse_records_rejects_bad_data(data, complaint: str):
    with pytest.raises(ValueError, match=complaint):
        parse_records(data)


def test_load_records_rejects_invalid_json(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(ValueError, match="JSON"):
        load_records(path)


async def test_custom_records_replace_the_defaults(new_http):
    records = [SeedRecord(500, 7, "Camp", "List", "777", 1)]
    async with GWSSimulator(users=USERS, records=records) as sim:
        assert list(sim.records) == [500]
        gws = GWS(sim, await new_http(base_url=sim.base_url), "agent1")
        await gws.login()
        response = await gws.cancel(500, applicationId=7, campaignName="Camp", callingList="List")
        assert response.json() == {"statusCode": 0}
        await sim.wait_for_published(2)
        assert sim.records[500].cancelled
        await gws.cancel(11)
        [*_, refused] = await sim.wait_for_published(3)
        assert refused.data["userData"]["GSW_ERROR_NUMBER"] == 101


def test_records_view_is_read_only():
    sim = GWSSimulator()
    with pytest.raises(TypeError):
        sim.records[11] = sim.records[12]  # type: ignore[index]
    assert sim.users == ("agent1",)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"users": {}},
        {"users": {"a:b": "x"}},
        {"session_idle_timeout": 0},
        {"connect_timeout": -1},
        {"port": 70000},
        {"records": [SeedRecord(1, 1, "c", "l", "p", 1)] * 2},
    ],
)
def test_constructor_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011
        GWSSimulator(**kwargs)


def test_optional_record_keys_round_trip():
    data = GOOD | {
        "timeZone": "CET",
        "phoneType": "VoiceMail",
        "from": 0,
        "until": 86399,
        "otherFields": {"customer_name": "Ada", "score": 7},
    }
    [record] = parse_records([data])
    assert (record.time_zone, record.phone_type, record.dial_from, record.dial_until) == (
        "CET",
        "VoiceMail",
        0,
        86399,
    )
    assert record.to_json() == data
    assert parse_records([record.to_json()]) == (record,)
    with pytest.raises(TypeError):
        record.other_fields["score"] = 8  # type: ignore[index]
    # Without the optional keys, the defaults (and no otherFields) come back out.
    [plain] = parse_records([GOOD])
    assert plain.to_json() == GOOD | {
        "timeZone": "PST",
        "phoneType": "HomePhone",
        "from": 28800,
        "until": 72000,
    }


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"phoneType": "Fax"}, "phone_type"),
        ({"from": -1}, "dial_from"),
        ({"until": 86401}, "dial_until"),
        ({"timeZone": ""}, "time_zone"),
        ({"otherFields": {"nested": {"a": 1}}}, "other_fields"),
        ({"otherFields": ["a"]}, "other_fields"),
        ({"recordHandle": 2**31}, "record_handle"),
    ],
)
def test_parse_records_rejects_bad_optional_data(changes: dict, complaint: str):
    with pytest.raises(ValueError, match=complaint):
        parse_records([GOOD | changes])


def test_default_records_support_a_preview_demo():
    by_campaign = Counter(record.campaign_name for record in DEFAULT_RECORDS)
    assert by_campaign["Campaign1"] >= 5
    chains = Counter((r.calling_list, r.chain_id) for r in DEFAULT_RECORDS)
    assert max(chains.values()) == 3
    assert all(record.other_fields.get("customer_name") for record in DEFAULT_RECORDS)


def test_clock_ticks_or_stands_still():
    start = datetime(2030, 1, 1, tzinfo=UTC)
    frozen = SimulatorClock(start, frozen=True)
    assert frozen.now() == start.timestamp()
    frozen.advance(90)
    assert frozen.datetime() == datetime(2030, 1, 1, 0, 1, 30, tzinfo=UTC)
    frozen.set(1_000)
    assert frozen.now() == 1_000.0
    assert "frozen" in repr(frozen) and "1970-01-01T00:16:40" in repr(frozen)
    ticking = SimulatorClock(start)
    assert not ticking.frozen
    assert start.timestamp() <= ticking.now() < start.timestamp() + 60
    real = SimulatorClock()
    before = time.time()
    real.advance(3600)
    assert before + 3600 <= real.now() <= time.time() + 3600


@pytest.mark.parametrize(
    ("method", "argument"),
    [
        ("advance", -1),
        ("advance", float("inf")),
        ("advance", "60"),
        ("advance", True),
        ("set", datetime(2030, 1, 1)),  # naive
        ("set", float("nan")),
        ("set", "2030-01-01"),
        ("set", 1e13),  # beyond the year 9999
        ("advance", 1e13),
    ],
)
def test_clock_rejects_bad_arguments(method: str, argument):
    clock = SimulatorClock(0, frozen=True)
    with pytest.raises(ValueError):  # noqa: PT011
        getattr(clock, method)(argument)
    assert clock.now() == 0


def test_clock_must_be_a_simulator_clock():
    with pytest.raises(ValueError, match="clock"):
        GWSSimulator(clock=123)  # type: ignore[arg-type]
