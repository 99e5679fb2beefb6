"""The GWS REST handlers: the user and their devices, the contact-center session, every
outbound operation (validated like GWS, with the request-stage faults) and GWS's JSON 404."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from ._app import Route
from ._auth import ACCESS_DENIED, SESSION_COOKIE, Authenticator, User, csrf_refused
from ._delivery import Delivery
from ._faults import SERVICE_UNAVAILABLE_BODY, CSRFReject, Refusal, Unauthorized
from ._http import (
    CAMPAIGNS_PREFIX,
    INTERNAL_ERROR,
    OUTBOUND_PREFIX,
    json_response,
    request_info,
    reset_connection,
)
from ._outbound import Command, ErrorReply, Resource, operation_of, validate
from ._recording import HandledOperation, OCSVerdict
from ._state import SimulatorState

__all__ = ["STATUS_MESSAGES", "RestAPI", "device_json", "user_json"]

# Deterministic ids of the voice environment and of the Ready state.
_ENVIRONMENT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:env"))
_READY_STATE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:gws-outbound-plugin:simulator:ready"))

STATUS_MESSAGES: Mapping[int, str] = {
    1: "A required parameter is missing",
    2: "A parameter is not valid for the current state",
    3: "Operation forbidden",
    4: "Internal error",
    5: "User does not have permission",
    6: "Resource not found",
    7: "Partial success",
    8: "Password change demanded",
    9: "Processing incomplete",
    10: "Input validation error",
    11: "Attempt to change a read-only property",
    12: "Unable to retrieve resource",
    13: "Unable to create resource",
    14: "Unable to delete resource",
    15: "Unable to update resource",
    16: "Unable to assign resource",
    17: "Unable to unassign resource",
    18: "Resource already exists",
    19: "Resource already in use",
    20: ACCESS_DENIED,
}


#: A POST GWS passed on: the command, its user and what OCS did with it.
Handled = tuple[Command, str, OCSVerdict]


def _handled(
    request: web.Request,
    operation: str | None,
    response: web.StreamResponse,
    handled: Handled | None,
    *,
    reset: bool,
    delay: float,
) -> HandledOperation:
    """The journal's entry for an outbound POST answered with ``response``."""
    body = request_info(request).body
    reference: Any = body.value.get("referenceId") if isinstance(body.value, dict) else None
    if isinstance(reference, int) and not isinstance(reference, bool):
        reference = str(reference)
    status_code: int | None = None
    if (
        not reset
        and isinstance(response, web.Response)
        and response.content_type == "application/json"
    ):
        try:
            answered = json.loads(response.body) if isinstance(response.body, bytes) else None
        except ValueError:
            answered = None
        code = answered.get("statusCode") if isinstance(answered, dict) else None
        status_code = code if isinstance(code, int) else None
    command = handled[0] if handled is not None else None
    handle: int | None = command.record_handle if command is not None else None
    in_path = request.match_info.get("handle", "")
    if handle is None and in_path.isascii() and in_path.isdigit() and len(in_path) <= 20:
        handle = int(in_path)
    return HandledOperation(
        reference_id=reference if isinstance(reference, str) else None,
        operation=operation,
        path=request.path,
        record_handle=handle,
        username=handled[1] if handled is not None else None,
        received=request_info(request).started,
        http_status=0 if reset else response.status,
        status_code=status_code,
        ocs=handled[2] if handled is not None else None,
        answer_delay=0.0 if reset else delay,
    )


def user_json(user: User, base_url: str) -> dict[str, Any]:
    """The ``user`` object of ``GET /api/v2/me`` (without ``devices``)."""
    return {
        "id": user.user_id,
        "userName": user.name,
        "firstName": user.name[:1].upper() + user.name[1:],
        "lastName": "Simulated",
        "roles": ["ROLE_AGENT"],
        "enabled": True,
        "changePasswordOnFirstLogin": False,
        "uri": f"{base_url}/api/v2/users/{user.user_id}",
        "path": f"/users/{user.user_id}",
    }


def device_json(user: User, base_url: str) -> dict[str, Any]:
    """The user's one device, as ``GET /api/v2/me/devices`` lists it."""
    return {
        "id": user.device_id,
        "deviceState": "Active",
        "userState": {"id": _READY_STATE_ID, "displayName": "Ready", "state": "Ready"},
        "phoneNumber": user.phone_number,
        "e164Number": f"+1555000{user.phone_number}",
        "telephonyNetwork": "Private",
        "doNotDisturb": "Off",
        "voiceEnvironmentUri": f"{base_url}/api/v2/voice-environments/{_ENVIRONMENT_ID}",
        "uri": f"{base_url}/api/v2/devices/{user.device_id}",
        "path": f"/devices/{user.device_id}",
    }


class RestAPI:
    """The handlers of GWS's REST resources.

    :param base_url: the simulator's ``base_url`` (for the ``uri`` fields).
    """

    def __init__(
        self,
        state: SimulatorState,
        auth: Authenticator,
        delivery: Delivery,
        base_url: Callable[[], str],
    ) -> None:
        self._state = state
        self._auth = auth
        self._delivery = delivery
        self._base_url = base_url
        #: Every outbound operation POST and what became of it (the facade's ``journal``).
        self.journal: list[HandledOperation] = []

    def routes(self) -> list[Route]:
        return [
            ("GET", "/api/v2/me", self.get_me),
            ("POST", "/api/v2/me", self.post_me),
            ("GET", "/api/v2/me/devices", self.get_devices),
            ("POST", OUTBOUND_PREFIX, self.outbound_records),
            ("POST", OUTBOUND_PREFIX + "/{handle}", self.outbound_record),
            ("POST", CAMPAIGNS_PREFIX + "/{name}", self.outbound_campaign),
        ]

    # ------------------------------------------------------------------ the user
    async def get_me(self, request: web.Request) -> web.StreamResponse:
        auth = self._auth.authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        user = self._state.users[auth.user]
        body = user_json(user, self._base_url())
        if request.query.get("subresources") == "*":
            body["devices"] = [device_json(user, self._base_url())]
        return self._auth.answer(auth, {"statusCode": 0, "user": body}, read=True)

    async def get_devices(self, request: web.Request) -> web.StreamResponse:
        auth = self._auth.authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        devices = [device_json(self._state.users[auth.user], self._base_url())]
        return self._auth.answer(auth, {"statusCode": 0, "devices": devices}, read=True)

    async def post_me(self, request: web.Request) -> web.StreamResponse:
        auth = self._auth.authenticate_write(request)
        if isinstance(auth, web.Response):
            return auth
        data = request_info(request).body
        if not data.is_json or not isinstance(data.value, dict):
            reply = ErrorReply(10, "Invalid request body: expected a JSON object")
            return self._auth.answer(auth, reply.body())
        operation = data.value.get("operationName")
        if operation is None:
            reply = ErrorReply(1, "Missing required parameter: operationName")
            return self._auth.answer(auth, reply.body())
        if operation == "StartContactCenterSession":
            return self._auth.answer(auth, {"statusCode": 0})
        if operation == "EndContactCenterSession":
            if auth.session is not None:
                self._state.sessions.expire(auth.session.session_id)
            return json_response({"statusCode": 0})
        reply = ErrorReply(3, f"Operation {operation} is not supported by this simulator")
        return self._auth.answer(auth, reply.body())

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """GWS's JSON 404, once the request is authenticated (and CSRF-checked if a write)."""
        read = request.method in ("GET", "HEAD", "OPTIONS")
        auth = self._auth.authenticate(request) if read else self._auth.authenticate_write(request)
        if isinstance(auth, web.Response):
            return auth
        body = {"statusCode": 6, "statusMessage": f"Resource not found: {request.path}"}
        return self._auth.answer(auth, body, 404, read=read)

    # ------------------------------------------------------------------ outbound
    async def outbound_records(self, request: web.Request) -> web.StreamResponse:
        return await self._outbound(request, "records", None)

    async def outbound_record(self, request: web.Request) -> web.StreamResponse:
        return await self._outbound(request, "record", request.match_info["handle"])

    async def outbound_campaign(self, request: web.Request) -> web.StreamResponse:
        return await self._outbound(request, "campaign", request.match_info["name"])

    async def _outbound(
        self, request: web.Request, resource: Resource, path_value: str | None
    ) -> web.StreamResponse:
        info = request_info(request)
        operation = operation_of(info.body)
        plan = self._state.faults._take_request_plan(operation)
        verdict: Handled | None = None
        if plan.reset:
            response: web.StreamResponse = reset_connection(request)
        else:
            if plan.expire_session:
                self._state.sessions.expire(request.cookies.get(SESSION_COOKIE))
            if plan.refusal is not None:
                response = self._refusal(plan.refusal)
            else:
                response, verdict = self._outbound_answer(request, resource, path_value)
        self.journal.append(
            _handled(
                request, operation, response, verdict, reset=plan.reset, delay=plan.slow_seconds
            )
        )
        if plan.reset:
            return response
        if plan.slow_seconds > 0:
            await asyncio.sleep(plan.slow_seconds)
        return response

    def _refusal(self, refusal: Refusal) -> web.Response:
        """The answer of a request-stage refusal fault (the request is not processed)."""
        if isinstance(refusal, Unauthorized):
            return self._auth.unauthorized()
        if isinstance(refusal, CSRFReject):
            return csrf_refused()
        status = refusal.status
        if refusal.gws_body:
            if status == 503:
                body: dict[str, Any] = dict(SERVICE_UNAVAILABLE_BODY)
            elif status == 500:
                body = {"statusCode": INTERNAL_ERROR, "statusMessage": "Simulated internal error"}
            else:
                body = {"statusCode": INTERNAL_ERROR, "statusMessage": STATUS_MESSAGES[4]}
            return json_response(body, status=status)
        return web.Response(
            status=status,
            text=f"Simulated HTTP {status} error",
            content_type="text/plain",
        )

    def _campaign_exists(self, name: str, application_id: int) -> bool | str:
        ocs = self._state.ocs
        if ocs.campaign(name, application_id) is not None:
            return True
        return "applicationId" if name in ocs.campaign_names() else "campaignName"

    def _outbound_answer(
        self, request: web.Request, resource: Resource, path_value: str | None
    ) -> tuple[web.Response, Handled | None]:
        """GWS's answer to a POST no request-stage fault took, and (when GWS passed it on)
        the command, its user and what OCS did with it."""
        auth = self._auth.authenticate_write(request)
        if isinstance(auth, web.Response):
            return auth, None
        info = request_info(request)
        result = validate(
            resource,
            path_value,
            info.body,
            frozenset({self._state.users[auth.user].device_id}),
            self._campaign_exists,
        )
        if isinstance(result, ErrorReply):
            return self._auth.answer(auth, result.body()), None
        injected = self._state.faults._take_status_code(result.operation)
        if injected is not None:
            message = injected.message or STATUS_MESSAGES.get(injected.code, "Simulated error")
            body = {"statusCode": injected.code, "statusMessage": message}
            return self._auth.answer(auth, body), None
        verdict = self._delivery.accept(result, auth.user, info.started_ns)
        return self._auth.answer(auth, {"statusCode": 0}), (result, auth.user, verdict)
