"""Seeded records, the JSON loader and custom record sets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gws_outbound_plugin.simulator import (
    DEFAULT_RECORDS,
    GWSSimulator,
    SeedRecord,
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
