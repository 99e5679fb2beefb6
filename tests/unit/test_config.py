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


GOOD_ENV = {"GWS_BASE_URL": "https://gws.example.com", "GWS_USERNAME": "a", "GWS_PASSWORD": "p"}


def test_a_misspelt_variable_is_reported_with_the_name_meant() -> None:
    with pytest.raises(ConfigError) as info:
        GWSConfig.from_env({**GOOD_ENV, "GWS_ACK_TIMOUT": "5"})
    assert "GWS_ACK_TIMOUT is not a setting (did you mean GWS_ACK_TIMEOUT?)" in str(info.value)


def test_unrelated_gws_variables_and_the_plugin_variables_are_left_alone() -> None:
    env = {
        **GOOD_ENV,
        "GWS_HOME": "/opt/gws",  # nothing like a setting
        "GWS_OUTBOUND_PLUGINS": "audit",  # the plugin manager's
        "GWS_OUTBOUND_AUDIT_FILE": "/tmp/audit.jsonl",  # a plugin's
        "GWS_OUTBOUND_ACK_TIMEOUT": "3",  # a plugin may use any GWS_OUTBOUND_* name
    }
    assert GWSConfig.from_env(env).ack_timeout == 10.0


def test_every_bad_variable_is_reported_at_once_with_the_expected_type() -> None:
    env = {
        "GWS_BASE_URL": "https://gws.example.com",
        "GWS_USERNAME": "a",
        "GWS_ACK_TIMEOUT": "soon-secret-1",
        "GWS_RETRIES": "two-secret-2",
        "GWS_VERIFY_TLS": "maybe-secret-3",
        "GWS_HOOK_TIMEOUT": "-1",
        "GWS_REQEST_TIMEOUT": "5",
    }
    with pytest.raises(ConfigError) as info:
        GWSConfig.from_env(env)
    message = str(info.value)
    assert "\n" not in message
    assert "GWS_ACK_TIMEOUT: expected a number of seconds" in message
    assert "GWS_RETRIES: expected an integer" in message
    assert "GWS_VERIFY_TLS: expected a boolean (1/0, true/false, yes/no, on/off)" in message
    assert "GWS_HOOK_TIMEOUT must be a positive number of seconds" in message
    assert "GWS_REQEST_TIMEOUT is not a setting (did you mean GWS_REQUEST_TIMEOUT?)" in message
    assert "missing GWS_PASSWORD" in message
    assert "secret" not in message  # values are never echoed


def test_keyword_overrides_are_checked_under_their_own_name() -> None:
    with pytest.raises(ConfigError, match="ack_timeout must be a positive number") as info:
        GWSConfig.from_env(GOOD_ENV, ack_timeout=0)
    assert "GWS_ACK_TIMEOUT" not in str(info.value)
    # An override replaces the variable: its bad value does not matter then.
    assert GWSConfig.from_env({**GOOD_ENV, "GWS_RETRIES": "x"}, retries=1).retries == 1


@pytest.mark.parametrize(
    "base_url",
    [
        "https://gws.example.com/api/v2",
        "https://gws.example.com/api/v2/",
        "https://gws.example.com/",
    ],
)
def test_a_base_url_ending_in_the_api_prefix_is_accepted(base_url: str) -> None:
    config = GWSConfig(base_url=base_url, username="a", password="b")
    assert config.base_url == "https://gws.example.com"
    assert config.api_url == "https://gws.example.com/api/v2"
    assert config.cometd_url == "https://gws.example.com/api/v2/notifications"


def test_a_base_url_behind_a_path_prefix_keeps_it() -> None:
    config = GWSConfig(base_url="https://proxy.example.com/gws/api/v2", username="a", password="b")
    assert config.api_url == "https://proxy.example.com/gws/api/v2"


@pytest.mark.parametrize(
    "base_url", ["https://gws.example.com/api/v2/me", "https://gws.example.com/api/v1"]
)
def test_a_base_url_naming_an_api_resource_is_refused(base_url: str) -> None:
    with pytest.raises(ConfigError, match=r"must be the GWS node .* not the URL of an API"):
        GWSConfig(base_url=base_url, username="a", password="b")


@pytest.mark.parametrize("base_url", ["127.0.0.1:8090", "localhost:8090", "gws.example.com"])
def test_a_base_url_without_its_scheme_says_which_to_add(base_url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GWSConfig(base_url=base_url, username="a", password="b")
    assert f"got {base_url!r}: add the scheme, e.g. 'https://{base_url}'" in str(caught.value)


@pytest.mark.parametrize("base_url", ["agent:s3cr3t@gws.example.com", "ftp://gws", ""])
def test_a_refused_base_url_that_may_hold_credentials_is_not_echoed(base_url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GWSConfig(base_url=base_url, username="a", password="b")
    assert "add the scheme" not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_missing_variables_name_the_keywords_that_stand_in_for_them() -> None:
    with pytest.raises(ConfigError) as info:
        GWSConfig.from_env({"GWS_BASE_URL": "https://gws.example.com"})

    assert str(info.value) == (
        "invalid configuration: missing GWS_USERNAME, GWS_PASSWORD (or pass username=..., "
        "password=... to GWSConfig.from_env(): a keyword wins over its variable)"
    )
    # ... and what it says works:
    config = GWSConfig.from_env(
        {"GWS_BASE_URL": "https://gws.example.com"}, username="a", password="b"
    )
    assert (config.username, config.password) == ("a", "b")


def test_a_misspelt_keyword_is_a_config_error_with_the_setting_meant() -> None:
    with pytest.raises(ConfigError) as info:
        GWSConfig.from_env(GOOD_ENV, ack_timout=5, hook_timeout=0)

    message = str(info.value)
    assert "ack_timout= is not a setting (did you mean ack_timeout?)" in message
    assert "hook_timeout must be a positive number of seconds" in message  # all at once


@pytest.mark.parametrize("name", ["verify_tls", "allow_insecure_http"])
@pytest.mark.parametrize("value", ["false", "0", 0, None])
def test_a_switch_that_is_not_a_bool_is_refused_not_taken_as_true(name, value) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be True or False"):
        GWSConfig.from_env(GOOD_ENV, **{name: value})
    with pytest.raises(ConfigError, match=f"{name} must be True or False"):
        GWSConfig(base_url="https://gws.example.com", username="a", password="b", **{name: value})


@pytest.mark.parametrize(
    "base_url", [" http://127.0.0.1:8090", "http://127.0.0.1:8090 ", "http://127.0.0.1:8090\r\n"]
)
def test_whitespace_around_the_base_url_is_not_part_of_it(base_url) -> None:
    """A leading space failed at start-up with "missing an 'http://' protocol"; a trailing
    \\r (a .env file written on Windows) went into every URL."""
    config = GWSConfig.from_env(
        {"GWS_BASE_URL": base_url, "GWS_USERNAME": "a", "GWS_PASSWORD": "b"}
    )
    assert config.base_url == "http://127.0.0.1:8090"
    assert config.api_url == "http://127.0.0.1:8090/api/v2"


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://127.0.0.1:80x1", "has a port that is not a number from 1 to 65535"),
        ("http://127.0.0.1:99999", "has a port that is not a number from 1 to 65535"),
        ("http://127.0.0.1:0", "has a port that is not a number from 1 to 65535"),
        ("http://gws example.com", "must not contain spaces or line breaks"),
    ],
)
def test_a_base_url_httpx_would_refuse_at_start_is_a_config_error(base_url, problem) -> None:
    """A port like 80x1 passed validation and crashed the CLI with httpx's InvalidURL
    traceback when the plugin started."""
    with pytest.raises(ConfigError, match=f"base_url {problem}"):
        GWSConfig(base_url=base_url, username="a", password="b")


def test_a_number_given_as_a_string_says_it_is_a_string() -> None:
    """Settings read from a YAML or INI file ("5"): "must be a positive number of seconds"
    read as nonsense to someone who gave 5; the type (never the value) says why."""
    with pytest.raises(ConfigError) as caught:
        GWSConfig(
            base_url="https://gws.example.com",
            username="a",
            password="b",
            ack_timeout="5",
            max_pending=None,
            retries="2",
        )

    message = str(caught.value)
    assert "ack_timeout must be a positive number of seconds, got a str" in message
    assert "max_pending must be a positive integer, got None" in message
    assert "retries must be an integer >= 0, got a str" in message
