"""The admin API under ``/_simulator/``: the facade's controls over HTTP, for loopback
clients only, never recorded (the table in ``docs/simulator.md``)."""

from __future__ import annotations

import functools
import inspect
import ipaddress
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._app import Handler, Route
from ._faults import ADMIN_FAULTS
from ._http import ADMIN_PREFIX, json_response
from ._recording import decode_body
from ._records import CAMPAIGN_EVENTS

if TYPE_CHECKING:
    from ._server import GWSSimulator

__all__ = ["AdminAPI"]

_EVENTS_USAGE = (
    'expected {"event": "RecordCancel", "recordHandle": N}, '
    '{"event": "PreviewRecord", "campaignName": NAME, "user": USER} or '
    '{"event": "Campaign...", "campaignName": NAME, "mode": MODE, "user": USER}'
)
#: The keys each event of ``POST /_simulator/events`` takes (campaign events: the default).
_EVENT_KEYS = {
    "RecordCancel": {"recordHandle"},
    "PreviewRecord": {"campaignName", "user", "applicationId"},
}
_CAMPAIGN_EVENT_KEYS = {"campaignName", "mode", "user", "applicationId"}


def _loopback_only(handler: Handler) -> Handler:
    """``handler``, answering 403 to clients that are not on loopback."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        remote = request.remote or ""
        try:
            loopback = ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return json_response({"error": "the admin endpoint only answers loopback clients"}, 403)
        return await handler(request)

    return checked


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's body when it is a JSON object."""
    body = decode_body(await request.read())
    data = body.value if body.is_json else None
    return data if isinstance(data, dict) else None


class AdminAPI:
    """The handlers of ``/_simulator/...``, each calling the facade's public control."""

    def __init__(self, simulator: GWSSimulator) -> None:
        self._sim = simulator

    def routes(self) -> list[Route]:
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "faults", self.faults),
            ("POST", "forget-clients", self.forget_clients),
            ("POST", "expire-sessions", self.expire_sessions),
            ("POST", "rotate-csrf", self.rotate_csrf),
            ("POST", "users", self.users),
            ("GET", "stats", self.stats),
            ("POST", "events", self.events),
            ("GET", "clock", self.clock),
            ("POST", "clock", self.clock),
            ("POST", "forbidden-channels", self.forbidden_channels),
        ]
        return [(method, ADMIN_PREFIX + name, _loopback_only(h)) for method, name, h in routes]

    async def faults(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        if data is None or not isinstance(data.get("fault"), str):
            return json_response(
                {"error": 'expected a JSON object like {"fault": "<name>", ...}'}, 400
            )
        arguments = dict(data)
        name = arguments.pop("fault")
        if name not in ADMIN_FAULTS:
            body = {"error": f"unknown fault {name!r}", "faults": sorted(ADMIN_FAULTS)}
            return json_response(body, 400)
        method = getattr(self._sim.faults, name)
        try:
            inspect.signature(method).bind(**arguments)
        except TypeError as exc:
            return json_response({"error": f"{name}: {exc}"}, 400)
        try:
            method(**arguments)
        except ValueError as exc:
            return json_response({"error": f"{name}: {exc}"}, 400)
        return json_response({"ok": True, "active": list(self._sim.faults.active)})

    async def forget_clients(self, request: web.Request) -> web.StreamResponse:
        return json_response({"ok": True, "forgotten": self._sim.forget_cometd_clients()})

    async def expire_sessions(self, request: web.Request) -> web.StreamResponse:
        return json_response({"ok": True, "expired": self._sim.expire_sessions()})

    async def rotate_csrf(self, request: web.Request) -> web.StreamResponse:
        return json_response({"ok": True, "rotated": self._sim.rotate_csrf_tokens()})

    async def users(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        # Never echo the body: it holds a password.
        if (
            data is None
            or set(data) != {"user", "password"}
            or not isinstance(data["user"], str)
            or not isinstance(data["password"], str)
        ):
            usage = 'expected a JSON object {"user": "<name>", "password": "<password>"}'
            return json_response({"error": usage}, 400)
        username: str = data["user"]
        if username not in self._sim.users:
            return json_response({"error": f"unknown simulator user {username!r}"}, 404)
        self._sim.set_password(username, data["password"])
        return json_response({"ok": True, "user": username})

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return json_response(self._sim.stats())

    async def events(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        if data is None or not isinstance(data.get("event"), str):
            return json_response({"error": _EVENTS_USAGE}, 400)
        event = data.pop("event")
        unexpected = set(data) - _EVENT_KEYS.get(event, _CAMPAIGN_EVENT_KEYS)
        if unexpected:
            return json_response({"error": f"{event}: unexpected key(s) {sorted(unexpected)}"}, 400)
        try:
            return self._event(event, data)
        except KeyError as exc:
            return json_response({"error": f"{event}: {exc.args[0]}"}, 404)
        except LookupError as exc:
            return json_response({"error": f"{event}: {exc}"}, 409)
        except ValueError as exc:
            status = 409 if event == "RecordCancel" else 400
            return json_response({"error": f"{event}: {exc}"}, status)

    def _event(self, event: str, data: dict[str, Any]) -> web.Response:
        """Send the unsolicited ``event`` that ``data`` describes (its keys checked)."""
        if event == "RecordCancel":
            handle = data.get("recordHandle")
            if isinstance(handle, bool) or not isinstance(handle, int):
                return json_response(
                    {"error": "RecordCancel: recordHandle must be an integer"}, 400
                )
            self._sim.send_record_cancel(handle)
            return json_response({"ok": True, "event": event, "recordHandle": handle})
        name = data.get("campaignName")
        if not isinstance(name, str):
            return json_response({"error": f"{event}: campaignName must be a string"}, 400)
        if event == "PreviewRecord":
            handle = self._sim.send_preview_record(
                name, data.get("user"), application_id=data.get("applicationId")
            )
            return json_response({"ok": True, "event": event, "recordHandle": handle})
        if event not in CAMPAIGN_EVENTS:
            return json_response({"error": f"unknown event {event!r}; {_EVENTS_USAGE}"}, 400)
        self._sim.send_campaign_status(
            name,
            event,
            application_id=data.get("applicationId"),
            mode=data.get("mode"),
            user=data.get("user"),
        )
        return json_response({"ok": True, "event": event, "campaignName": name})

    async def clock(self, request: web.Request) -> web.StreamResponse:
        clock = self._sim.clock
        if request.method == "POST":
            data = await _json_object(request)
            if data is None or len(data) != 1 or not set(data) <= {"advance", "set"}:
                usage = 'expected {"advance": SECONDS} or {"set": ISO-8601 or EPOCH}'
                return json_response({"error": usage}, 400)
            try:
                if "advance" in data:
                    clock.advance(data["advance"])
                else:
                    when = data["set"]
                    clock.set(datetime.fromisoformat(when) if isinstance(when, str) else when)
            except ValueError as exc:
                return json_response({"error": str(exc)}, 400)
        body = {
            "ok": True,
            "now": clock.now(),
            "iso": clock.datetime().isoformat(),
            "frozen": clock.frozen,
        }
        return json_response(body)

    async def forbidden_channels(self, request: web.Request) -> web.StreamResponse:
        data = await _json_object(request)
        channels = None if data is None or set(data) != {"channels"} else data["channels"]
        if not isinstance(channels, list):
            return json_response({"error": 'expected {"channels": ["/me/internal", ...]}'}, 400)
        try:
            self._sim.set_forbidden_channels(channels)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        body = {"ok": True, "forbidden_channels": sorted(self._sim.forbidden_channels)}
        return json_response(body)
