"""GWSConfig validation, from_env and secrecy."""

from __future__ import annotations

import pytest

from gws_outbound_plugin import ConfigError, GWSConfig


def test_repr_never_shows_the_password() -> None:
    config = GWSConfig(base_url="https://gws.example.com/", username="agent1", password="s3cr3t!")
    assert "s3cr3t!" not in repr(config)
    assert config.base_url == "https://gws.example.com"
    assert config.api_url == "https://gws.example.com/api/v2"
    assert config.cometd_url == "https://gws.example.com/api/v2/notifications"
    assert config.verify_tls is True


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8090", "http://localhost:8090", "http://[::1]:8090", "http://127.0.0.2"],
)
def test_plain_http_is_allowed_on_loopback(base_url: str) -> None:
    GWSConfig(base_url=base_url, username="a", password="b")


@pytest.mark.parametrize("base_url", ["http://10.0.0.5", "http://gws.example.com"])
def test_plain_http_elsewhere_needs_an_explicit_opt_in(base_url: str) -> None:
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        GWSConfig(base_url=base_url, username="a", password="b")
    GWSConfig(base_url=base_url, username="a", password="b", allow_insecure_http=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": "https://user:pw@gws"}, "credentials"),
        ({"base_url": "https://gws?x=1"}, "query"),
        ({"username": ""}, "username"),
        ({"password": ""}, "password"),
        ({"ack_timeout": 0}, "ack_timeout"),
        ({"hook_timeout": float("nan")}, "hook_timeout"),
        ({"request_timeout": True}, "request_timeout"),
        ({"retries": -1}, "retries"),
        ({"max_pending": 0}, "max_pending"),
        ({"cometd_path": "notifications"}, "cometd_path"),
    ],
)
def test_invalid_values_are_named(changes: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "base_url": "https://gws",
        "username": "agent1",
        "password": "pw-not-in-errors",
    }
    values.update(changes)
    with pytest.raises(ConfigError, match=message) as info:
        GWSConfig(**values)  # type: ignore[arg-type]
    assert "pw-not-in-errors" not in str(info.value)


def test_from_env_reads_every_field() -> None:
    env = {
        "GWS_BASE_URL": "https://gws.example.com",
        "GWS_USERNAME": "agent1",
        "GWS_PASSWORD": "secret",
        "GWS_ACK_TIMEOUT": "2.5",
        "GWS_VERIFY_TLS": "no",
        "GWS_RETRIES": "4",
        "UNRELATED": "x",
    }
    config = GWSConfig.from_env(env, hook_timeout=1.0)
    assert config.ack_timeout == 2.5
    assert config.verify_tls is False
    assert config.retries == 4
    assert config.hook_timeout == 1.0


def test_from_env_names_what_is_missing_or_wrong_without_echoing_values() -> None:
    with pytest.raises(ConfigError, match="GWS_PASSWORD"):
        GWSConfig.from_env({"GWS_BASE_URL": "https://g", "GWS_USERNAME": "a"})
    env = {
        "GWS_BASE_URL": "https://g",
        "GWS_USERNAME": "a",
        "GWS_PASSWORD": "p",
        "GWS_ACK_TIMEOUT": "hunter2",
    }
    with pytest.raises(ConfigError, match="GWS_ACK_TIMEOUT") as info:
        GWSConfig.from_env(env)
    assert "hunter2" not in str(info.value)
