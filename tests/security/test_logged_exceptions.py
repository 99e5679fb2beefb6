"""The library's log lines never carry a secret-looking text a host's code put into an
exception (hunt14). A request subclass's error reaches the log as a traceback
(``request_not_buildable``, ``request_send_crashed``): its type and frames stay, useful for
the host's own bug, and its text is redacted like the plugin's own secrets (its outcome's
message carries the type only). Before, the text went into the log as it was."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pluggy
import pytest
import structlog

from gws_outbound_plugin import CancelFailed, CancelRequest, OutboundPlugin
from gws_outbound_plugin.testing import FakeGWS, virtual_clock_loop
from tests.engine.conftest import fake_config
from tests.faults.support import handles, rebuilt, request_for

pytestmark = pytest.mark.anyio

SECRET = "hunter2-Qx81"
PHONE = "+15550199876"
#: What a host's code might put into an exception's text.
TEXT = f"token={SECRET} while building phoneNumber={PHONE}"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"loop_factory": virtual_clock_loop})


class BodyRaisesWhenSent(CancelRequest):
    """A host's subclass whose ``to_gws_body()`` raises once the request was accepted."""

    def to_gws_body(self) -> dict[str, Any]:
        if self.__dict__.get("broken"):
            raise KeyError(TEXT)
        return CancelRequest.to_gws_body(self)


class Rendered(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(params=["structlog", "stdlib"])
def rendered(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Every log line of the library, rendered with its traceback, through a structlog
    pipeline (``format_exc_info``) or stdlib ``logging``."""
    previous = structlog.get_config()
    if request.param == "structlog":
        lines: list[str] = []

        def keep(logger: Any, method: str, event_dict: Any) -> str:
            lines.append(repr(event_dict))
            raise structlog.DropEvent

        structlog.configure(processors=[structlog.processors.format_exc_info, keep])
        try:
            yield lines
        finally:
            structlog.reset_defaults()
            structlog.configure(**previous)
        return
    structlog.reset_defaults()
    handler = Rendered()
    library = logging.getLogger("gws_outbound_plugin")
    level = library.level
    library.addHandler(handler)
    library.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        library.removeHandler(handler)
        library.setLevel(level)
        structlog.configure(**previous)


async def test_a_request_subclass_error_text_is_redacted_in_the_traceback(
    pm: pluggy.PluginManager, rendered: list[str]
) -> None:
    fake = FakeGWS()
    request = rebuilt(BodyRaisesWhenSent, request_for(fake, handles(fake, 1)[0]))
    async with OutboundPlugin(pm, fake_config(), transport=fake) as plugin:
        ticket = plugin.submit(request)
        request.__dict__["broken"] = True
        with pytest.raises(CancelFailed):
            await ticket
    text = "\n".join(rendered)
    assert "request_not_buildable" in text
    # The traceback is there: the type and the host's frame.
    assert "KeyError" in text and "to_gws_body" in text
    assert "token=[REDACTED]" in text
    assert SECRET not in text
    assert PHONE not in text
