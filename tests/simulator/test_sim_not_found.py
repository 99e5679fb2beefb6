"""Every unknown path under ``/api/v2`` gets GWS's JSON 404, whatever characters it holds.

aiohttp matches routes against the percent-decoded path: a path holding a newline or a brace
(``%0A``, ``%7B``) slipped past the catch-all route and got aiohttp's own ``text/plain`` 404.
"""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.sim_helpers import GWS

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v2/me/outbound-records/%0A%7B"),
        ("POST", "/api/v2/me/outbound-records/11/%0A"),
        ("POST", "/api/v2/me/outbound-campaigns/%7Bname%7D/x"),
        ("GET", "/api/v2/%0A"),
        ("PUT", "/api/v2/me/%0D%0Adevices"),
    ],
)
async def test_unknown_path_with_odd_characters_is_gws_json_404(
    gws: GWS, http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path, headers={"X-CSRF-TOKEN": gws.token or ""})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["statusCode"] == 6
    assert set(body) == {"statusCode", "statusMessage"}


async def test_odd_unknown_path_still_needs_authentication(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v2/me/outbound-records/%0A%7B")
    assert response.status_code == 401
    assert response.json()["statusCode"] == 20
