"""The redaction tools hosts can use: ``SecretRedactor`` (structlog) and ``RedactingLogFilter``
(standard logging)."""

from __future__ import annotations

import base64
import io
import json
import logging
from types import MappingProxyType
from typing import Any

import pytest
import structlog

from gws_outbound_plugin import (
    CancelFailure,
    ChainAttribute,
    FailureReason,
    GWSConfig,
    RecordCancelAck,
    UserEvent,
)
from gws_outbound_plugin._redact import (
    PLUGIN_SECRETS,
    REDACTED,
    RedactingLogFilter,
    SecretRedactor,
    guard_library_logs,
    redact_secrets,
    redact_secrets_and_pii,
)
from tests.helpers import make_request

PASSWORD = "Tr0ub4dor-3-horse"
TOKEN = base64.b64encode(f"agent1:{PASSWORD}".encode()).decode()
SESSION = "02AC8B006C59E76DA4E6A38DAEC87D25"
CSRF = "d2839254-c0c7-494e-b06a-ad7f5cac54f8"
PHONE = "+15550199876"


def run(processor: Any, **event: Any) -> dict[str, Any]:
    return dict(processor(None, "info", dict(event)))


def test_secret_keys_are_redacted_at_any_depth() -> None:
    event = run(
        redact_secrets,
        event="request sent",
        password=PASSWORD,
        headers={"Authorization": f"Basic {TOKEN}", "X-CSRF-TOKEN": CSRF, "Accept": "json"},
        received=[{"Set-Cookie": f"JSESSIONID={SESSION}; Path=/"}],
        nested={"deeper": {"gws_password": PASSWORD, "api_key": "k-123456"}},
        csrf=True,
        count=3,
    )
    assert event["password"] == REDACTED
    assert event["headers"] == {
        "Authorization": REDACTED,
        "X-CSRF-TOKEN": REDACTED,
        "Accept": "json",
    }
    assert event["received"] == [{"Set-Cookie": REDACTED}]
    assert event["nested"] == {"deeper": {"gws_password": REDACTED, "api_key": REDACTED}}
    assert event["csrf"] is True and event["count"] == 3  # flags and numbers stay


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Basic {TOKEN}", f"Authorization: {REDACTED}"),
        (f"sent Basic {TOKEN} to GWS", f"sent Basic {REDACTED} to GWS"),
        ("bearer abc.def-123_x", f"bearer {REDACTED}"),
        (f"Cookie: JSESSIONID={SESSION}; BAYEUX_BROWSER=x1", f"Cookie: {REDACTED}"),
        (f"got JSESSIONID={SESSION}; Path=/", f"got JSESSIONID={REDACTED}; Path=/"),
        (
            f"[(b'X-CSRF-TOKEN', b'{CSRF}'), (b'Set-Cookie', b'JSESSIONID={SESSION}; Path=/')]",
            f"[(b'X-CSRF-TOKEN', b'{REDACTED}'), (b'Set-Cookie', b'{REDACTED}')]",
        ),
        (f"{{'authorization': 'Basic {TOKEN}'}}", f"{{'authorization': '{REDACTED}'}}"),
        (f"login with password={PASSWORD}&user=a", f"login with password={REDACTED}&user=a"),
        (
            f"https://agent1:{PASSWORD}@gws.example.com/api",
            f"https://{REDACTED}@gws.example.com/api",
        ),
        ("nothing secret here: 11 records", "nothing secret here: 11 records"),
    ],
)
def test_secrets_in_text(text: str, expected: str) -> None:
    assert redact_secrets.redact_text(text) == expected
    assert run(redact_secrets, event=text)["event"] == expected


def test_known_secret_values_are_replaced_anywhere() -> None:
    redactor = SecretRedactor([PASSWORD, CSRF])
    event = run(
        redactor,
        event=f"failed with {PASSWORD}",
        detail=("x", f"token {CSRF}!"),
        error=ValueError(f"bad {PASSWORD}"),
    )
    assert event["event"] == f"failed with {REDACTED}"
    assert event["detail"] == ("x", f"token {REDACTED}!")
    assert event["error"] == f"ValueError: bad {REDACTED}"
    assert PASSWORD not in repr(redactor) and CSRF not in repr(redactor)


def test_short_secrets_only_as_whole_words() -> None:
    redactor = SecretRedactor(["abc"])
    assert redactor.redact_text("abc abcdef x-abc") == f"{REDACTED} abcdef x-{REDACTED}"


def test_add_and_discard_are_counted() -> None:
    redactor = SecretRedactor()
    redactor.add_secret(CSRF)
    redactor.add_secret(CSRF)
    redactor.discard_secret(CSRF)
    assert CSRF not in redactor.redact_text(CSRF)
    redactor.discard_secret(CSRF)
    assert redactor.redact_text(CSRF) == CSRF
    redactor.add_secret("")  # ignored
    assert redactor.redact_text("x") == "x"


def test_for_config_knows_the_password_and_the_basic_credentials() -> None:
    config = GWSConfig(base_url="https://gws.example.com", username="agent1", password=PASSWORD)
    redactor = SecretRedactor.for_config(config)
    text = f"pw {PASSWORD} token {TOKEN} agent1"
    assert redactor.redact_text(text) == f"pw {REDACTED} token {REDACTED} agent1"


def test_pii_only_on_request() -> None:
    ack = RecordCancelAck(
        reference_id="r1",
        record_handle=11,
        application_id=134,
        campaign_name="Campaign1",
        calling_list="CallingList1",
        phone_number=PHONE,
        chain_attribute=ChainAttribute.RECORD_ONLY,
        device_id="d1",
        request=make_request("/devices/d1", phone_number=PHONE),
        user_data=MappingProxyType({"GSW_PHONE": PHONE, "GSW_RECORD_HANDLE": 11}),
    )
    kept = run(redact_secrets, event="ack", ack=ack, phoneNumber=PHONE)
    assert kept["ack"] is ack and kept["phoneNumber"] == PHONE
    event = run(
        redact_secrets_and_pii,
        event=f"cancel for phoneNumber={PHONE}",
        ack=ack,
        body={"phoneNumber": PHONE, "campaignName": "Campaign1"},
        user_data={"GSW_PHONE": PHONE},
        phone_number=PHONE,
    )
    rendered = json.dumps(event, default=str)
    assert PHONE not in rendered
    assert event["body"] == {"phoneNumber": REDACTED, "campaignName": "Campaign1"}
    assert event["user_data"] == {"GSW_PHONE": REDACTED}
    assert event["event"] == f"cancel for phoneNumber={REDACTED}"
    assert event["ack"].startswith("RecordCancelAck(reference_id='r1', record_handle=11")
    assert "GSW_RECORD_HANDLE" in event["ack"]
    # The payload itself is untouched: other plugins still see the real number.
    assert ack.phone_number == PHONE and ack.user_data["GSW_PHONE"] == PHONE


def test_pii_in_reprs_of_payloads() -> None:
    request = make_request("/devices/d1", phone_number=PHONE)
    failure = CancelFailure(request=request, reason=FailureReason.TIMED_OUT)
    event = UserEvent(
        user_event="RecordCancelAcknowledge",
        user_data=MappingProxyType({"GSW_PHONE": PHONE}),
        device_id="d1",
        metrics=None,
        channel="/me/internal",
    )
    for value in (repr(request), repr(failure), repr(event), str({"phoneNumber": PHONE})):
        assert PHONE in value
        assert PHONE not in redact_secrets_and_pii.redact_text(value)


def test_cycles_depth_and_odd_values() -> None:
    loop: dict[str, Any] = {"password": PASSWORD}
    loop["self"] = loop
    deep: Any = {"password": PASSWORD}
    for _ in range(50):
        deep = {"d": deep}
    event = run(redact_secrets, a=loop, b=deep, c=b"Basic " + TOKEN.encode(), d=object, e=None)
    assert PASSWORD not in str(event["a"]) and event["a"]["self"] == "[CYCLE]"
    assert PASSWORD not in json.dumps(event["b"])
    assert event["c"] == f"Basic {REDACTED}"
    assert event["d"] is object and event["e"] is None


def test_custom_keys_and_replacement() -> None:
    redactor = SecretRedactor(secret_keys=["X-Tenant-Key"], pii_keys=["msisdn2"], replacement="***")
    event = run(redactor, x_tenant_key="t", msisdn2="1", other=f"Basic {TOKEN}")
    assert event == {"x_tenant_key": "***", "msisdn2": "1", "other": "Basic ***"}
    assert SecretRedactor(redact_pii=True, pii_keys=["msisdn2"])(None, "", {"msisdn2": "1"}) == {
        "msisdn2": REDACTED
    }


def test_structlog_chain_as_documented() -> None:
    """The configuration docs/security.md shows, end to end, tracebacks included."""
    out = io.StringIO()
    config = GWSConfig(base_url="https://gws.example.com", username="agent1", password=PASSWORD)
    previous = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            SecretRedactor.for_config(config, redact_pii=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(out),
    )
    try:
        log = structlog.get_logger("host")
        log.info("sent", headers={"Authorization": f"Basic {TOKEN}"}, phoneNumber=PHONE)
        try:
            raise RuntimeError(f"GWS said no to {PASSWORD} for phoneNumber={PHONE}")
        except RuntimeError:
            log.exception("failed", note=f"JSESSIONID={SESSION}")
    finally:
        structlog.configure(**previous)
    text = out.getvalue()
    for secret in (PASSWORD, TOKEN, SESSION, PHONE):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["headers"] == {"Authorization": REDACTED}
    assert "RuntimeError: GWS said no to [REDACTED]" in lines[1]["exception"]


def test_logging_filter() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingLogFilter(SecretRedactor([PASSWORD])))
    log = logging.getLogger("tests.security.filter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("login %s with %s", "agent1", PASSWORD)
        log.warning("headers %r", [(b"X-CSRF-TOKEN", CSRF.encode())])
        log.warning("plain %d", 5)
    finally:
        log.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        f"login agent1 with {REDACTED}",
        f"headers [(b'X-CSRF-TOKEN', b'{REDACTED}')]",
        "plain 5",
    ]
    assert RedactingLogFilter().filter(logging.makeLogRecord({"msg": "%s", "args": ()})) is True


def test_library_guard_is_installed_once_and_uses_the_plugin_secrets() -> None:
    guard_library_logs()
    guard_library_logs()
    record_logger = logging.getLogger("httpcore.http11")
    guards = [f for f in record_logger.filters if isinstance(f, RedactingLogFilter)]
    assert len(guards) == 1 and guards[0].redactor is PLUGIN_SECRETS
    PLUGIN_SECRETS.add_secret(CSRF)
    try:
        record = logging.makeLogRecord({"msg": "token=%s", "args": (CSRF,)})
        guards[0].filter(record)
        assert record.getMessage() == f"token={REDACTED}"
    finally:
        PLUGIN_SECRETS.discard_secret(CSRF)
