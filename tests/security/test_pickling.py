"""Every public exception of the package survives ``pickle.loads(pickle.dumps(error))`` (a
process pool's worker, a ``multiprocessing`` or queue log handler): the same class, message,
``args`` and attributes, the failures it carries with their read-only ``user_data`` and
requests included; and no secret in what is pickled. The exceptions are found on the public
surface (``gws_outbound_plugin.__all__``), not listed by hand: a new one is covered, or fails
here until it can be made."""

from __future__ import annotations

import base64
import inspect
import pickle
from types import MappingProxyType
from typing import Any

import pluggy
import pytest

import gws_outbound_plugin
from gws_outbound_plugin import (
    AddRecordRequest,
    CancelFailed,
    OperationFailed,
    OutboundPlugin,
    PhoneType,
)
from gws_outbound_plugin.simulator import GWSSimulator
from tests.faults.conftest import fast_config
from tests.faults.support import handles, request_for
from tests.helpers import AGENT, PASSWORD

pytestmark = pytest.mark.anyio

PUBLIC_EXCEPTIONS = sorted(
    (
        found
        for found in (getattr(gws_outbound_plugin, name) for name in gws_outbound_plugin.__all__)
        if inspect.isclass(found) and issubclass(found, BaseException)
    ),
    key=lambda kind: kind.__name__,
)


async def _real_failures(pm: pluggy.PluginManager, sim: GWSSimulator) -> dict[str, Any]:
    """A cancel and an ``AddRecord`` (with ``other_fields``) OCS refused, as the plugin
    reported them: failures whose ``user_data`` and request hold read-only mappings; and a
    cancel's acknowledgement (its ``user_data`` read-only too)."""
    failures: dict[str, Any] = {}
    async with OutboundPlugin(pm, fast_config(sim.base_url)) as plugin:
        failures["ack"] = await plugin.cancel(request_for(sim, handles(sim, 2)[1]))
        sim.faults.ocs_error(number=7, message="Record locked", operation="CancelRecord")
        with pytest.raises(CancelFailed) as cancel:
            await plugin.cancel(request_for(sim, handles(sim, 1)[0]))
        failures["cancel"] = cancel.value.failure
        sim.faults.ocs_error(number=9, message="List full", operation="AddRecord")
        with pytest.raises(OperationFailed) as other:
            await plugin.perform(
                AddRecordRequest(
                    application_id=134,
                    campaign_name="Campaign1",
                    calling_list="CallingList1",
                    phone_number="5550001",
                    time_zone="PST",
                    phone_type=PhoneType.HOME_PHONE,
                    call_from=0,
                    call_until=86339,
                    device_path=sim.device_path(AGENT),
                    other_fields={"region": "north", "tries": 2},
                )
            )
        failures["operation"] = other.value.failure
    return failures


def _sample(kind: type[BaseException], failures: dict[str, Any]) -> BaseException:
    """An instance of ``kind`` made from its constructor's parameters."""
    arguments: dict[str, Any] = {}
    positional: list[Any] = []
    for parameter in list(inspect.signature(kind.__init__).parameters.values())[1:]:
        if parameter.kind is parameter.VAR_POSITIONAL:
            positional.append(f"{kind.__name__} happened")
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        annotation = str(parameter.annotation)
        if parameter.name == "failure":
            value = failures["cancel" if "Cancel" in annotation else "operation"]
        elif "Mapping" in annotation:
            value = {"phone_number": "must be digits", "call_from": "must be 0..86399"}
        elif annotation.startswith("int"):
            value = 503 if parameter.name == "http_status" else 4
        elif annotation.startswith("str"):
            value = f"{parameter.name} of {kind.__name__}"
        else:
            pytest.fail(f"no sample for {kind.__name__}({parameter.name}: {annotation})")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            positional.append(value)
        else:
            arguments[parameter.name] = value
    return kind(*positional, **arguments)


def _read_only_mappings(value: Any) -> list[str]:
    """Where in ``value`` (a failure) read-only mappings are: they must stay read-only."""
    found = [
        name for name in ("user_data",) if isinstance(getattr(value, name, None), MappingProxyType)
    ]
    other = getattr(getattr(value, "request", None), "other_fields", None)
    if isinstance(other, MappingProxyType):
        found.append("request.other_fields")
    return found


async def test_every_public_exception_survives_pickling(
    pm: pluggy.PluginManager, sim: GWSSimulator
) -> None:
    """Before, ``GWSStatusError``, ``PluginLoadError``, ``InvalidOperationRequest``,
    ``InvalidCancelRequest``, ``OperationFailed`` and ``CancelFailed`` could not be unpickled
    (unpickling called their ``__init__`` with the message), and a failure could not even be
    pickled (its read-only ``user_data``)."""
    assert len(PUBLIC_EXCEPTIONS) >= 13, PUBLIC_EXCEPTIONS
    failures = await _real_failures(pm, sim)
    assert _read_only_mappings(failures["cancel"]) == ["user_data"]
    assert _read_only_mappings(failures["operation"]) == ["user_data", "request.other_fields"]
    secrets = [PASSWORD, base64.b64encode(f"{AGENT}:{PASSWORD}".encode()).decode()]
    for kind in PUBLIC_EXCEPTIONS:
        error = _sample(kind, failures)
        try:
            raise error
        except BaseException as raised:  # with a traceback, as a host's handler gets it
            pickled = pickle.dumps(raised)
        copy = pickle.loads(pickled)
        assert type(copy) is kind
        assert str(copy) == str(error) and copy.args == error.args, kind
        assert vars(copy) == vars(error), kind
        if isinstance(error, OperationFailed):
            assert copy.failure == error.failure, kind
            assert _read_only_mappings(copy.failure) == _read_only_mappings(error.failure)
            assert copy.failure.describe() == error.failure.describe()
        for secret in secrets:
            assert secret.encode() not in pickled, kind


class _HostsError(gws_outbound_plugin.GWSStatusError):
    """A host's subclass with a constructor of its own."""

    def __init__(self, ticket: str, status_code: int) -> None:
        self.ticket = ticket
        super().__init__(status_code, f"refused for {ticket}")


async def test_a_hosts_subclass_and_an_acknowledgement_survive_pickling(
    pm: pluggy.PluginManager, sim: GWSSimulator
) -> None:
    """What docs/security.md promises besides the public exceptions: a host's subclass of
    one (its own ``__init__``) and an acknowledgement (before, its read-only ``user_data``
    could not be pickled)."""
    error = _HostsError("T-17", 3)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), vars(copy)) == (_HostsError, str(error), vars(error))
    ack = (await _real_failures(pm, sim))["ack"]
    assert isinstance(ack.user_data, MappingProxyType) and ack.user_data
    again = pickle.loads(pickle.dumps(ack))
    assert again == ack
    assert isinstance(again.user_data, MappingProxyType)


def test_every_public_value_with_a_read_only_mapping_pickles_it():
    """A public frozen value (request or hook payload) with a mapping field holds it
    read-only (a ``MappingProxyType``, which pickle refuses): each such class pickles it
    through ``__reduce__``. Found on the public surface: OCS's unsolicited events
    (``RecordCancelledEvent``, ``ScheduledCallEvent``, ``CampaignStatusEvent``,
    ``PreviewRecordEvent``) had none; a new payload is covered, or fails here."""
    import dataclasses

    with_mappings = [
        found
        for found in (getattr(gws_outbound_plugin, name) for name in gws_outbound_plugin.__all__)
        if inspect.isclass(found)
        and dataclasses.is_dataclass(found)
        and any("Mapping[" in str(field.type) for field in dataclasses.fields(found))
    ]
    assert len(with_mappings) >= 9, with_mappings
    unpicklable = [kind.__name__ for kind in with_mappings if kind.__reduce__ is object.__reduce__]
    assert unpicklable == []
