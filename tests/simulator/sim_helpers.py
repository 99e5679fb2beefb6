"""Helpers shared by the simulator tests: a REST client per user and a raw Bayeux client."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from gws_outbound_plugin.simulator import GWSSimulator

USERS = {"agent1": "secret", "agent2": "hunter2"}
NOTIFICATIONS = "/api/v2/notifications"
MISSING = object()  # marks a body key to delete in GWS.body()


class GWS:
    """A GWS REST client bound to one user's cookie jar."""

    def __init__(self, sim: GWSSimulator, http: httpx.AsyncClient, user: str) -> None:
        self.sim = sim
        self.http = http
        self.user = user
        self.token: str | None = None

    async def login(self) -> str:
        response = await self.http.get("/api/v2/me", auth=(self.user, USERS[self.user]))
        assert response.status_code == 200, response.text
        self.token = response.headers["X-CSRF-TOKEN"]
        return self.token

    def body(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operationName": "CancelRecord",
            "applicationId": 134,
            "campaignName": "Campaign1",
            "callingList": "CallingList1",
            "devicePath": self.sim.device_path(self.user),
            "chainAttribute": "RecordOnly",
            "referenceId": "ref-1",
        }
        for key, value in changes.items():
            if value is MISSING:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    async def cancel(
        self, handle: int | str = 11, body: Any = None, **changes: Any
    ) -> httpx.Response:
        headers = {"X-CSRF-TOKEN": self.token} if self.token else {}
        return await self.http.post(
            f"/api/v2/me/outbound-records/{handle}",
            json=self.body(**changes) if body is None else body,
            headers=headers,
        )

    async def post(self, path: str, body: Any) -> httpx.Response:
        headers = {"X-CSRF-TOKEN": self.token} if self.token else {}
        return await self.http.post(path, json=body, headers=headers)

    def op_body(self, operation: str, **fields: Any) -> dict[str, Any]:
        """A body with the common parameters, ``fields`` added (MISSING deletes a key)."""
        body: dict[str, Any] = {
            "operationName": operation,
            "applicationId": 134,
            "devicePath": self.sim.device_path(self.user),
            "referenceId": "ref-1",
        }
        for key, value in fields.items():
            if value is MISSING:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    async def record_op(
        self, operation: str, handle: int | str = 11, **fields: Any
    ) -> httpx.Response:
        """A record operation on ``/outbound-records/<handle>`` (Campaign1 by default)."""
        fields.setdefault("campaignName", "Campaign1")
        if operation in ("CancelRecord", "RejectRecord", "CompleteRecord", "DoNotCallRecord"):
            fields.setdefault("callingList", "CallingList1")
        return await self.post(
            f"/api/v2/me/outbound-records/{handle}", self.op_body(operation, **fields)
        )

    async def records_op(self, operation: str, **fields: Any) -> httpx.Response:
        """An operation on ``/outbound-records`` (no handle)."""
        return await self.post("/api/v2/me/outbound-records", self.op_body(operation, **fields))

    async def campaign_op(
        self, operation: str, campaign: str = "Campaign1", **fields: Any
    ) -> httpx.Response:
        """An operation on ``/outbound-campaigns/<campaign>``."""
        return await self.post(
            f"/api/v2/me/outbound-campaigns/{campaign}", self.op_body(operation, **fields)
        )


class Bayeux:
    """A raw Bayeux long-polling client: POSTs JSON arrays with httpx."""

    def __init__(self, http: httpx.AsyncClient, user: str = "agent1") -> None:
        self.http = http
        self.user = user
        self.client_id: str | None = None
        self._ids = itertools.count(1)

    def message(self, channel: str, **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"channel": channel, "id": str(next(self._ids))}
        if self.client_id is not None and channel != "/meta/handshake":
            message["clientId"] = self.client_id
        message.update(fields)
        return message

    async def post(
        self, *messages: dict[str, Any], auth: Any = None, path: str = NOTIFICATIONS
    ) -> httpx.Response:
        return await self.http.post(
            path,
            json=list(messages),
            auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
        )

    async def send(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.post(*messages)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        replies: list[dict[str, Any]] = response.json()
        return replies

    async def handshake(self) -> dict[str, Any]:
        response = await self.post(
            self.message(
                "/meta/handshake", version="1.0", supportedConnectionTypes=["long-polling"]
            ),
            auth=(self.user, USERS[self.user]),
        )
        assert response.status_code == 200, response.text
        [reply] = response.json()
        assert reply["successful"] is True, reply
        self.client_id = reply["clientId"]
        return dict(reply)

    async def connect(self, timeout_ms: int | None = None) -> list[dict[str, Any]]:
        fields: dict[str, Any] = {"connectionType": "long-polling"}
        if timeout_ms is not None:
            fields["advice"] = {"timeout": timeout_ms}
        return await self.send(self.message("/meta/connect", **fields))

    async def subscribe(self, *channels: str) -> list[dict[str, Any]]:
        return await self.send(
            *(self.message("/meta/subscribe", subscription=channel) for channel in channels)
        )

    async def ready(self, *channels: str) -> None:
        """Handshake, first connect (answered at once) and subscribe."""
        await self.handshake()
        replies = await self.connect()
        assert replies[-1]["successful"] is True
        if channels:
            replies = await self.subscribe(*channels)
            assert all(reply["successful"] for reply in replies), replies


def without_metrics(data: dict[str, Any]) -> dict[str, Any]:
    """A user event's data without its (time-dependent) metrics, checked for shape."""
    data = dict(data)
    metrics = data.pop("metrics")
    assert set(metrics["eventProcessing"]) == {
        "serverGenerationTimestamp",
        "nodeProcessingTimeNanos",
        "serverProcessingTimeTotalMs",
    }
    return data


def events(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The non-meta messages of a Bayeux answer."""
    return [reply for reply in replies if not reply.get("channel", "").startswith("/meta/")]
