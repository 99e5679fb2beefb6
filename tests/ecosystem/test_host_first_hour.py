"""What a host author meets in the first hour: errors that say what to do instead."""

from __future__ import annotations

import inspect

import pytest

from gws_outbound_plugin import (
    CancelRequest,
    ConfigError,
    GWSConfig,
    InvalidCancelRequest,
    InvalidOperationRequest,
    OutboundPlugin,
    RejectRecordRequest,
    make_plugin_manager,
)

pytestmark = pytest.mark.anyio

BUS_EVENT = {"operationName": "RejectRecord", "recordHandle": 12, "applicationId": 134}


async def test_perform_of_a_bus_event_names_request_from_bus_and_the_types(
    gws_outbound: OutboundPlugin,
):
    with pytest.raises(InvalidOperationRequest) as raised:
        await gws_outbound.perform(BUS_EVENT)

    message = str(raised.value)
    assert not isinstance(raised.value, InvalidCancelRequest)  # not "invalid cancel request"
    assert "perform() takes a request object, got a dict" in message
    assert "request_from_bus(event)" in message
    assert "RejectRecordRequest" in message and "StartPreviewSessionRequest" in message
    assert gws_outbound.pending_count == 0


async def test_cancel_of_a_bus_event_names_cancel_request_from_bus(gws_outbound: OutboundPlugin):
    with pytest.raises(InvalidCancelRequest, match=r"CancelRequest\.from_bus\(event\)"):
        await gws_outbound.cancel({"recordHandle": 11})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "node"),
    [
        ("https://gws.example.com/api/v2/me", "https://gws.example.com"),
        (
            "https://gws.example.com:8443/api/v2/me/outbound-records/11",
            "https://gws.example.com:8443",
        ),
        ("https://proxy.example.com/gws/api/v2/me", "https://proxy.example.com/gws"),
    ],
)
def test_a_base_url_with_an_api_path_says_what_the_base_url_should_be(base_url, node):
    with pytest.raises(ConfigError) as raised:
        GWSConfig(base_url=base_url, username="agent1", password="secret")

    message = str(raised.value)
    assert f"use {node!r}" in message
    assert "scheme://host[:port]" in message
    assert "secret" not in message


# -- 12. the connection state, as a public API ----------------------------------------------------


async def test_every_connection_state_change_fires_the_hook_in_order(
    gws_outbound: OutboundPlugin, gws_simulator, gws_hook_recorder, wait_for_hook
):
    await wait_for_hook("on_connection_state_changed", lambda call: call.state == "connected")
    assert gws_outbound.connection_state == "connected"

    gws_simulator.forget_cometd_clients()  # the server no longer knows the CometD client
    await wait_for_hook(
        "on_connection_state_changed",
        lambda call: call.state == "connected" and call.previous == "reconnecting",
        timeout=15,
    )

    changes = [
        (call.previous, call.state)
        for call in gws_hook_recorder.calls_of("on_connection_state_changed")
    ]
    assert not any(call.name == "on_connection_state_changed" for call in gws_hook_recorder.calls)
    assert changes == [
        ("closed", "connecting"),
        ("connecting", "connected"),
        ("connected", "reconnecting"),
        ("reconnecting", "connected"),
    ]
    assert gws_outbound.connection_state == "connected"


def _cancel(device_path: object, record_handle: object = 11) -> CancelRequest:
    return CancelRequest(
        record_handle=record_handle,  # type: ignore[arg-type]
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        device_path=device_path,  # type: ignore[arg-type]
    )


def test_a_device_path_without_await_says_to_await_plugin_device_path():
    """``device_path=plugin.device_path()`` (no ``await``) or ``plugin.device_path`` (not
    called) was refused with "must be a string, got coroutine": true, but not what to write."""
    plugin = OutboundPlugin(
        make_plugin_manager(load_entrypoints=False),
        GWSConfig(base_url="http://127.0.0.1:9", username="agent1", password="secret"),
    )
    coroutine = plugin.device_path()
    try:
        with pytest.raises(InvalidCancelRequest) as not_awaited:
            _cancel(coroutine)
    finally:
        coroutine.close()
    with pytest.raises(InvalidCancelRequest) as not_called:
        _cancel(plugin.device_path)

    assert not_awaited.value.errors == {
        "device_path": "must be a string, got coroutine: an `await` is missing "
        "(device_path=await plugin.device_path())"
    }
    assert not_called.value.errors == {
        "device_path": "must be a string, got method device_path: call it and await its "
        "result (device_path=await plugin.device_path())"
    }


def test_any_field_given_an_awaitable_asks_whether_an_await_is_missing():
    async def lookup() -> int:
        return 11

    coroutine = lookup()
    try:
        with pytest.raises(InvalidOperationRequest) as raised:
            RejectRecordRequest(
                record_handle=coroutine,  # type: ignore[arg-type]
                application_id=134,
                campaign_name="Campaign1",
                calling_list="CallingList1",
                device_path="/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f",
            )
    finally:
        coroutine.close()
    assert raised.value.errors == {
        "record_handle": "must be a positive integer, got coroutine (an awaitable: is an "
        "`await` missing?)"
    }


def test_a_plugin_without_its_plugin_manager_says_what_comes_first():
    """``OutboundPlugin(config)`` was refused with "missing 1 required positional argument:
    'config'", although a config was given: the plugin manager was what was missing."""
    config = GWSConfig(base_url="http://127.0.0.1:9", username="agent1", password="secret")
    pm = make_plugin_manager(load_entrypoints=False)

    with pytest.raises(TypeError) as missing:
        OutboundPlugin(config)  # type: ignore[call-arg]
    with pytest.raises(TypeError) as swapped:
        OutboundPlugin(config, pm)  # type: ignore[arg-type]

    assert str(missing.value) == (
        "OutboundPlugin takes the plugin manager first, then the GWSConfig: "
        "OutboundPlugin(make_plugin_manager(), config)"
    )
    assert str(swapped.value).startswith(
        "OutboundPlugin(config, pm): the arguments are the other way round, the plugin "
        "manager first: OutboundPlugin(pm, config)"
    )
    assert "secret" not in str(missing.value) + str(swapped.value)
    # ... and what they say works:
    assert OutboundPlugin(pm, config).running is False
    # help() and IDEs still show the real parameters, not __new__'s (*args, **kwargs).
    assert list(inspect.signature(OutboundPlugin).parameters) == [
        "pm",
        "config",
        "channels",
        "name",
        "transport",
    ]


def test_a_hosts_subclass_with_its_own_constructor_is_built_and_shown_as_written():
    """A host's ``OutboundPlugin`` subclass whose ``__init__`` takes only the config (it
    makes its plugin manager itself): ``Mine(config)`` was refused by ``__new__`` as if it
    were ``OutboundPlugin(config)``, and ``inspect.signature(Mine)`` showed the base class's
    ``(pm, config, ...)``; a subclass without a constructor of its own still shows the
    base's parameters."""
    config = GWSConfig(base_url="http://127.0.0.1:9", username="agent1", password="secret")

    class Mine(OutboundPlugin):
        def __init__(self, config: GWSConfig, *, label: str = "mine") -> None:
            super().__init__(make_plugin_manager(load_entrypoints=False), config)
            self.label = label

    class Plain(OutboundPlugin):
        pass

    mine = Mine(config)
    assert (mine.label, mine.config, mine.running) == ("mine", config, False)
    assert list(inspect.signature(Mine).parameters) == ["config", "label"]
    assert list(inspect.signature(Plain).parameters) == [
        "pm",
        "config",
        "channels",
        "name",
        "transport",
    ]
    with pytest.raises(TypeError, match="takes the plugin manager first"):
        Plain(config)  # type: ignore[call-arg]
