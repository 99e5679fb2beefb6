"""One place per fact: what the docs state in several places (a setting's default, the outcome
bound and the constants it is made of, the operations, the commands, which hooks may be
``async def``, the failure reasons, the simulator's defaults) is read from the code here, and
every copy in README.md and docs/*.md is checked against it. A copy that drifts fails here,
naming the page and the line."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from gws_outbound_plugin import (
    OPERATION_TYPES,
    CancelRequest,
    FailureReason,
    GWSConfig,
    OutboundPlugin,
    close_plugins,
    hookspecs,
    make_plugin_manager,
)
from gws_outbound_plugin._cometd import (
    _CLOSE_TIMEOUT,
    _DEFAULT_TIMEOUT_MS,
    _FIRST_RECONNECT_DELAY,
    _MAX_TIMEOUT_MS,
    START_HANDSHAKES,
)
from gws_outbound_plugin._recent import MAX_NESTING
from gws_outbound_plugin._requests import MAX_TEXT_LENGTH
from gws_outbound_plugin._session import (
    AUTH_FAILURE_HOLD,
    MAX_REQUEST_RETRY_DELAY,
    request_retry_policy,
)
from gws_outbound_plugin.cli._parser import build_parser, command_parsers
from gws_outbound_plugin.simulator import DEFAULT_USERS, GWSSimulator
from gws_outbound_plugin.testing import DEFAULT_CALLBACK_DELAY, FakeGWS, RequestFactory

from .conftest import ROOT

PAGES = ("README.md", *sorted(f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")))
DEFAULTS: dict[str, Any] = {
    spec.name: spec.default
    for spec in dataclasses.fields(GWSConfig)
    if spec.default is not dataclasses.MISSING
}


def text(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def section(page: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of its level
    or a higher one."""
    body = text(page)
    level = heading.split(" ", 1)[0]
    start = body.index("\n" + heading + "\n") + len(heading) + 2
    ends = [
        match.start()
        for match in re.finditer(r"^(#+) ", body[start:], re.MULTILINE)
        if len(match[1]) <= len(level)
    ]
    return body[start : start + ends[0]] if ends else body[start:]


def line_of(page: str, offset: int) -> str:
    return f"{page}:{text(page).count(chr(10), 0, offset) + 1}"


def number(written: str) -> float:
    """A number as the docs write it: ``262,144``, ``0.25``, ``256 KiB``."""
    written = written.strip()
    if written.endswith(" KiB"):
        return float(written.removesuffix(" KiB").replace(",", "")) * 1024
    return float(written.replace(",", ""))


def bound(**settings: Any) -> float:
    config = GWSConfig(base_url="http://127.0.0.1:9", username="agent1", password="-", **settings)
    return OutboundPlugin(make_plugin_manager(load_entrypoints=False), config).outcome_bound


# -- the settings' defaults ----------------------------------------------------------------------


def test_hostings_table_gives_each_settings_default():
    """README's table is checked in tests/unit/test_readme.py; hosting.md has a second one."""
    rows = re.findall(
        r"^\| `(\w+)` \| `GWS_\w+` \| ([^|]+) \|",
        section("docs/hosting.md", "## Configuration"),
        re.MULTILINE,
    )
    assert [name for name, _ in rows] == [spec.name for spec in dataclasses.fields(GWSConfig)]
    for name, written in rows:
        written = written.strip()
        if name not in DEFAULTS:
            assert written == "required", name
        elif isinstance(DEFAULTS[name], bool):
            assert written == str(DEFAULTS[name]).lower(), name
        elif isinstance(DEFAULTS[name], str):
            assert written == f"`{DEFAULTS[name]}`", name
        else:
            assert number(written) == DEFAULTS[name], name


#: A setting named in prose with its default next to it: "`hook_timeout` seconds (default 5,",
#: "`GWSConfig.merge_window`, 0.25 s,", "`max_message_bytes` (256 KiB)".
_QUOTED = re.compile(
    r"`(?:GWSConfig\.)?(?P<name>[a-z_]+)`[^`|\n(]{0,12}"
    r"(?:\((?:default )?|, )(?P<value>\d[\d,.]*(?: KiB)?)(?: s)?[,)]"
)
#: A row of a table of limits: "| `GWSConfig.event_queue_size` / `hook_queue_size` | 1,024 |".
_LIMIT_ROW = re.compile(
    r"^\| `GWSConfig\.(?P<name>\w+)`(?: / `(?P<other>\w+)`)? \| (?P<value>\d[\d,]*)", re.MULTILINE
)


def quoted_defaults() -> list[tuple[str, str, float]]:
    """(where, setting, the default written there) of every default quoted in the docs."""
    found = []
    for page in PAGES:
        body = text(page)
        for match in _QUOTED.finditer(body):
            if match["name"] in DEFAULTS:
                found.append((line_of(page, match.start()), match["name"], number(match["value"])))
        for match in _LIMIT_ROW.finditer(body):
            for name in filter(None, (match["name"], match["other"])):
                found.append((line_of(page, match.start()), name, number(match["value"])))
    return found


def test_every_default_quoted_in_the_docs_is_the_codes():
    found = quoted_defaults()
    wrong = [
        f"{where}: {name} {value:g}, the code says {DEFAULTS[name]}"
        for where, name, value in found
        if value != DEFAULTS[name]
    ]
    assert wrong == []
    # The pattern still finds the copies it was written for (it cannot pass by finding none).
    assert {(where.split(":")[0], name) for where, name, _ in found} >= {
        ("README.md", "merge_window"),
        ("docs/hooks.md", "hook_timeout"),
        ("docs/hooks.md", "slow_hook_warning"),
        ("docs/hooks.md", "merge_window"),
        ("docs/hosting.md", "max_concurrent_requests"),
        ("docs/reliability.md", "retries"),
        ("docs/reliability.md", "max_message_bytes"),
        ("docs/reliability.md", "hook_queue_size"),
        ("docs/security.md", "max_message_bytes"),
        ("docs/security.md", "max_user_data_entries"),
    }


# -- the outcome bound ---------------------------------------------------------------------------

_BOUND_SUM = re.compile(
    r"with\s+(?:the\s+defaults|`(?P<name>\w+)=(?P<value>[\d.]+)`)\s+"
    r"(?P<terms>[\d.]+(?:\s+\+\s+(?:[\d.]+|\([\d.\s+]+\)))+)\s+=\s+(?P<total>[\d.]+)\s+s"
)


def test_the_outcome_bound_sums_in_hosting_are_the_codes():
    """hosting.md spells ``outcome_bound`` out term by term, with the defaults and with
    ``retry_backoff=8``: each term, the sum and the total are what the code computes."""
    sums = list(_BOUND_SUM.finditer(text("docs/hosting.md")))
    assert len(sums) == 2
    for found in sums:
        settings = {found["name"]: float(found["value"])} if found["name"] else {}
        config = GWSConfig(base_url="http://127.0.0.1:9", username="a", password="-", **settings)
        policy = request_retry_policy(config)
        expected = [
            config.request_timeout,  # waiting for a lost CometD session
            config.request_timeout * (config.retries + 1),  # the POST and its retries
            config.request_timeout * 2,  # one re-login and the attempt after it
            [policy.backoff(retry) for retry in range(1, config.retries + 1)],
            config.ack_timeout,
            config.merge_window,
        ]
        terms: list[Any] = [
            [float(t) for t in re.split(r"\s*\+\s*", term.strip("()"))]
            if term.startswith("(")
            else float(term)
            for term in re.findall(r"\([^)]*\)|[\d.]+", found["terms"])
        ]
        assert terms == expected, found[0]
        total = float(found["total"])
        assert sum(sum(t) if isinstance(t, list) else t for t in terms) == pytest.approx(total)
        assert bound(**settings) == pytest.approx(total), found[0]


def test_the_outcome_bound_in_round_figures_is_the_codes():
    stated = re.findall(
        r"outcome_bound`, about (\d+) s\s+with\s+the\s+default", text("docs/reliability.md")
    )
    assert stated == [str(round(bound()))]


CALLBACK_SECONDS = DEFAULT_CALLBACK_DELAY.total_seconds()
#: (page, what it says, with the figure as its group, the figure in the code).
CONSTANTS = [
    ("docs/hosting.md", r"the plugin does not try again for ([\d.]+) s", AUTH_FAILURE_HOLD),
    ("docs/reliability.md", r"logins for ([\d.]+) s \(`AUTH_FAILURE_HOLD`\)", AUTH_FAILURE_HOLD),
    ("docs/hosting.md", r"`max\(retry_backoff, ([\d.]+) s\)`", MAX_REQUEST_RETRY_DELAY),
    ("docs/reliability.md", r"`max\(retry_backoff, ([\d.]+) s\)`", MAX_REQUEST_RETRY_DELAY),
    ("docs/hosting.md", r"reconnection backoff\s+\(([\d.]+) s, doubled", _FIRST_RECONNECT_DELAY),
    (
        "docs/hosting.md",
        r"each bounded by `timeout` \(([\d.]+) s by default\)",
        inspect.signature(close_plugins).parameters["timeout"].default,
    ),
    ("docs/hosting.md", r"at most (\d+) handshakes", START_HANDSHAKES),
    ("docs/hosting.md", r"clean-up waits at most (\d+) s", _CLOSE_TIMEOUT),
    (
        "docs/hosting.md",
        r"advised any\)|\((\d+) s, GWS's, before it advised",
        _DEFAULT_TIMEOUT_MS / 1000,
    ),
    ("docs/hosting.md", r"from 0 to\s+([\d,]+) ms", _MAX_TIMEOUT_MS),
    ("docs/hooks.md", r"at most (\d+)\s+characters", MAX_TEXT_LENGTH),
    ("docs/reliability.md", r"\| (\d+) levels \(the object itself is level 1\)", MAX_NESTING),
    ("docs/security.md", r"nested deeper\s+than (\d+) levels", MAX_NESTING),
    # The kit's reschedule() asks for a callback this long after now on OCS's clock.
    ("docs/writing-a-plugin.md", r"`gws_simulator\.clock\.advance\((\d+)\)`", CALLBACK_SECONDS),
    ("docs/writing-a-plugin.md", r"gws_simulator\.clock\.advance\((\d+)\)\n", CALLBACK_SECONDS),
]


@pytest.mark.parametrize(("page", "pattern", "value"), CONSTANTS)
def test_each_constant_the_docs_quote_is_the_codes(page, pattern, value):
    stated = re.findall(pattern, text(page))
    assert stated, f"{page} no longer says {pattern!r}: update this test's CONSTANTS"
    assert [number(figure) for figure in stated] == [value] * len(stated)


# -- the operations, the commands, the hooks, the failure reasons --------------------------------


def test_the_operations_table_of_hooks_md_is_the_codes():
    """operationName, request type, path and acknowledgement of each operation, as
    ``OPERATION_TYPES``, the requests' ``gws_path()`` and their specs say."""
    rows = re.findall(
        r"^\| `(\w+)` \| \[`(\w+)`\]\(#\w+\) \| `([^`]+)` \| `(\w+)`",
        section("docs/hooks.md", "### Operation requests"),
        re.MULTILINE,
    )
    factory = RequestFactory(FakeGWS())
    requests = [
        factory(),
        factory.reject(),
        factory.complete(),
        factory.do_not_call(),
        factory.reschedule(),
        factory.update(),
        factory.chained(),
        factory.add_record(),
        factory.do_not_call_phone(),
        factory.start_preview(),
        factory.get_preview(),
        factory.end_preview(),
    ]
    assert {type(request) for request in requests} == {
        kind for kinds in OPERATION_TYPES.values() for kind in kinds
    }
    expected = []
    for request in requests:
        path = request.gws_path()
        path = re.sub(r"^(/me/outbound-records/)\d+$", r"\1<handle>", path)
        path = re.sub(r"^(/me/outbound-campaigns/)[^/]+$", r"\1<name>", path)
        expected.append(
            (request.operation_name, type(request).__name__, path, request.spec.acknowledgement)
        )
    assert rows == expected


def test_the_readme_lists_every_command():
    listed = re.findall(r"^\| `gws-outbound ([a-z-]+)", text("README.md"), re.MULTILINE)
    assert listed == list(command_parsers(build_parser()))


def test_which_hooks_may_be_async_is_said_alike_everywhere():
    """Only the hooks the host fires must be plain functions (``HOST_FIRED_HOOKS``)."""
    hooks = [name for name in vars(hookspecs) if name.startswith("on_")]
    readme = dict(
        re.findall(r"^\| `(on_\w+)\([^)]*\)` \|.*\| (yes|no) \|$", text("README.md"), re.MULTILINE)
    )
    assert readme == {hook: "no" if hook in hookspecs.HOST_FIRED_HOOKS else "yes" for hook in hooks}
    reference = text("docs/hooks.md")
    for hook in hooks:
        body = reference.split(f"\n## `{hook}(", 1)[1].split("\n## ", 1)[0]
        (said,) = re.findall(r"^\*\*Async:\*\* (allowed|not allowed)", body, re.MULTILINE)
        assert said == ("not allowed" if hook in hookspecs.HOST_FIRED_HOOKS else "allowed"), hook
    tutorial = section("docs/writing-a-plugin.md", "## 1. What a plugin is")
    plain = re.findall(r"^\| `(on_\w+)\(.*plain function only", tutorial, re.MULTILINE)
    assert sorted(plain) == sorted(hookspecs.HOST_FIRED_HOOKS)


#: Where the docs name a request's failure reason: "reason=ocs_error", "reason `rejected`",
#: "fails as `transport_failure`", "ends `outcome_unknown`", "ends as `timed_out`".
_REASON = re.compile(
    r"(?:\breason[= ]`?|\bfail(?:s|ed)? as `|\bends? (?:as )?`|\bdecided as `)(?P<value>[a-z_]+)`?"
)


def test_every_failure_reason_named_in_the_docs_exists():
    values = {reason.value for reason in FailureReason}
    found = [
        (line_of(page, match.start()), match["value"])
        for page in PAGES
        for match in _REASON.finditer(text(page))
        if match["value"] not in ("is", "that", "why", "the")
    ]
    assert [f"{where}: {value}" for where, value in found if value not in values] == []
    assert {value for _, value in found} >= {"ocs_error", "outcome_unknown", "transport_failure"}


# -- the simulator's defaults --------------------------------------------------------------------


def test_the_simulators_flag_defaults_are_its_own():
    """docs/simulator.md's flag table, the ``--help`` text and ``GWSSimulator``'s keyword
    defaults say the same (the command line starts a ``GWSSimulator``)."""
    from gws_outbound_plugin.simulator._cli import build_parser as simulator_parser

    parser = simulator_parser()
    options = {action.dest: action for action in parser._actions}
    signature = inspect.signature(GWSSimulator).parameters
    same_as = {
        "session_timeout": "session_idle_timeout",
        "connect_timeout": "connect_timeout",
        "cometd_session_timeout": "cometd_session_timeout",
        "host": "host",
    }
    for flag, keyword in same_as.items():
        assert options[flag].default == signature[keyword].default, flag
        default = options[flag].default
        shown = f"{default:g}" if isinstance(default, float) else default
        assert f"(default: {shown})" in str(options[flag].help), flag
    table = section("docs/simulator.md", "### From a shell")
    rows = dict(re.findall(r"^\| `--([a-z-]+)[^`]*` \| `([^`]+)` \|", table, re.MULTILINE))
    for flag, written in rows.items():
        default = options[flag.replace("-", "_")].default
        if isinstance(default, float):
            assert float(written) == default, flag
        elif flag == "user":
            assert written == ", ".join(f"{u}:{p}" for u, p in DEFAULT_USERS.items()), flag
        else:
            assert written == str(default), flag
    assert {"session-timeout", "connect-timeout", "cometd-session-timeout", "port", "host"} <= set(
        rows
    )


def test_the_pages_are_found():
    assert {Path(page).name for page in PAGES} >= {"README.md", "hosting.md", "hooks.md"}


def _setting_docstrings() -> dict[str, str]:
    """Each ``GWSConfig`` field's docstring (the string after it in the class body)."""
    import ast

    source = (ROOT / "gws_outbound_plugin" / "_config.py").read_text(encoding="utf-8")
    (config,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "GWSConfig"
    ]
    found = {}
    for field, after in zip(config.body, config.body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
        ):
            found[field.target.id] = str(after.value.value)
    return found


def test_no_setting_is_described_as_the_cancels_own():
    """Every setting applies to every operation (the engine does not tell a cancel from a
    reject): ``ack_timeout`` and ``max_pending`` were still described, in the README, in
    hosting.md and in their docstrings, as they were before the other operations existed
    ("once GWS accepted a cancel", "cancels awaiting their outcome; beyond it
    on_cancel_requested refuses")."""
    descriptions = {
        f"GWSConfig.{name} docstring": doc for name, doc in _setting_docstrings().items()
    }
    for page, heading in (
        ("README.md", "## Configuration"),
        ("docs/hosting.md", "## Configuration"),
    ):
        for name, meaning in re.findall(
            r"^\| `(\w+)` \|(?: [^|]+ \|)+? ([^|]+) \|$", section(page, heading), re.MULTILINE
        ):
            descriptions[f"{page} {name}"] = meaning
    assert len(descriptions) >= 3 * len(DEFAULTS)
    assert [where for where, said in descriptions.items() if re.search(r"cancel", said, re.I)] == []


@pytest.mark.anyio
async def test_a_reused_reference_id_fails_as_hooks_md_says(gws_plugin_manager):
    """hooks.md said ``rejected`` covers "a second *pending* cancel with the same
    reference_id": a request reusing the id of a *finished* one (of any operation) is
    refused the same way, nothing sent, for as long as that one's answer may still arrive."""
    from gws_outbound_plugin import OperationFailed

    fake = FakeGWS()
    config = GWSConfig(base_url="https://gws.example", username="agent1", password="-")
    async with OutboundPlugin(gws_plugin_manager, config, transport=fake) as plugin:
        factory = RequestFactory(fake)
        await plugin.cancel(factory(reference_id="r-1"))
        with pytest.raises(OperationFailed) as raised:
            await plugin.perform(factory.reject(reference_id="r-1"))
    failure = raised.value.failure
    assert failure.reason is FailureReason.REJECTED
    assert failure.status_code is None and failure.may_have_acted is False
    assert "recent request whose answer may still arrive" in str(failure.message)

    (row,) = re.findall(r"^\| `rejected` \|(.*)\|$", text("docs/hooks.md"), re.MULTILINE)
    assert "a pending request, or of a recent one whose answer may still arrive" in row


def test_a_plugin_requires_the_same_versions_wherever_it_is_written():
    """The tutorial and the reference plugins declare ``gws-outbound-plugin>=0.1,<0.2``;
    ``gws-outbound new-plugin`` wrote ``>=0.1.0``, so a generated plugin would take the next
    0.x release, which may change what it relies on."""
    from gws_outbound_plugin import __version__
    from gws_outbound_plugin._template import compatible_requirement

    def requirement(pyproject: str) -> str:
        (found,) = re.findall(r'"gws-outbound-plugin([^"]+)"', pyproject)
        return found

    major, minor = (int(part) for part in __version__.split(".")[:2])
    assert major == 0  # past 1.0 the range is the major release's: compatible_requirement
    expected = f">=0.{minor},<0.{minor + 1}"
    assert compatible_requirement(__version__) == expected
    tutorial = section("docs/writing-a-plugin.md", "## 3. `pyproject.toml`")
    assert requirement(tutorial) == expected
    for reference in ("gws-outbound-audit", "gws-outbound-webhook"):
        assert requirement(text(f"hooks/{reference}/pyproject.toml")) == expected, reference


def test_new_plugin_writes_the_requirement_of_the_tutorial(tmp_path):
    from gws_outbound_plugin import __version__
    from gws_outbound_plugin._template import write_plugin

    root = write_plugin("tally", tmp_path, version=__version__)
    pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    tutorial = section("docs/writing-a-plugin.md", "## 3. `pyproject.toml`")
    (written,) = re.findall(r'"gws-outbound-plugin[^"]+"', pyproject)
    assert re.findall(r'"gws-outbound-plugin[^"]+"', tutorial) == [written]


@pytest.mark.anyio
async def test_the_kits_short_timeouts_are_the_ones_it_uses(gws_config):
    """The testing kit's ``gws_config`` as its docstring and the tutorial's fixture table say
    (a plugin author's test of ``timed_out`` waits ``ack_timeout``); the table said only
    "short timeouts"."""
    from gws_outbound_plugin import testing

    docstring = str(testing.__doc__).split("``gws_config``", 1)[1].split("\n``", 1)[0]
    said = dict(re.findall(r"``(\w+)``\s+([\d.]+) s", docstring))
    table = section("docs/writing-a-plugin.md", "## 5. The tests")
    (row,) = re.findall(r"^\| `gws_config` \|(.*)$", table, re.MULTILINE)
    listed = dict(re.findall(r"`(\w+)` ([\d.]+) s", row))
    assert said == listed
    assert set(said) >= {"ack_timeout", "hook_timeout", "drain_timeout"}
    shorter = {
        name
        for name in DEFAULTS
        if name.endswith("_timeout") and getattr(gws_config, name) != DEFAULTS[name]
    }
    assert set(said) >= shorter - {"cometd_connection_timeout"}
    for name, seconds in said.items():
        assert getattr(gws_config, name) == float(seconds), name


def test_the_kits_recorder_is_said_to_record_every_hook():
    from gws_outbound_plugin import testing

    docstring = str(testing.__doc__).split("``gws_hook_recorder``", 1)[1].split("\n``", 1)[0]
    hooks = {name for name in vars(hookspecs) if name.startswith("on_")}
    named = set(re.findall(r"``(on_\w+)``", docstring))
    named |= {f"on_operation{suffix}" for suffix in re.findall(r"``(_\w+)``", docstring)}
    named |= {"on_cancel_requested", "on_record_cancel_acknowledged", "on_cancel_failed"}
    assert "the cancel hooks" in docstring
    assert named == hooks


def test_the_connection_states_are_listed_alike_everywhere():
    from gws_outbound_plugin._cometd import CometDState

    states = [state.value for state in CometDState]
    listings = [
        re.findall(r"`(\w+)`", listing)
        for page in ("README.md", "docs/writing-a-plugin.md")
        for listing in re.findall(r"changed state \(((?:`\w+`, )+`\w+`)\)", text(page))
    ]
    listings += [
        re.findall(r'"(\w+)"', listing)
        for listing in re.findall(r"^- `state`: the new state, (.*)$", text("docs/hooks.md"), re.M)
    ]
    assert len(listings) == 3
    assert listings == [states] * 3


def test_hosting_lists_every_public_member_of_the_plugin_and_its_tickets():
    """``plugin.stats``, ``pending_count``, ``devices()``, ``user``, ``refused_channels``,
    ``running`` and ``wait_hooks_idle()`` were public and in no page a host author reads
    (``stats`` only in design-notes.md and reliability.md): the list is now in hosting.md,
    and this test keeps it whole."""
    from gws_outbound_plugin import CancelTicket, OperationTicket

    table = section("docs/hosting.md", "## The plugin and its tickets, member by member")
    rows = re.findall(r"^\| (`[^|]+`) \|", table, re.MULTILINE)
    listed: dict[str, set[str]] = {"plugin": set(), "ticket": set()}
    for row in rows:
        for owner, member in re.findall(r"`(?:await )?(plugin|ticket)\.(\w+)", row):
            listed[owner].add(member)
        if row == "`await ticket`":
            listed["ticket"].add("__await__")
    plugin = OutboundPlugin(
        make_plugin_manager(load_entrypoints=False),
        GWSConfig(base_url="http://127.0.0.1:9", username="agent1", password="-"),
    )
    public = {name for name in dir(plugin) if not name.startswith("_")}
    assert listed["plugin"] == public | {"pm", "config", "name"}
    tickets = {
        name for kind in (OperationTicket, CancelTicket) for name in dir(kind) if name[0] != "_"
    }
    assert listed["ticket"] == tickets | {"__await__"}

    (stats,) = [row for row in table.splitlines() if row.startswith("| `plugin.stats` |")]
    assert set(re.findall(r"`(\w+)`", stats.split("|")[2])) == set(plugin.stats)


_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
#: An id's bound as the docs write it: "1 to 2147483647", "at most 2³¹ minus 1" (with a
#: MINUS SIGN, U+2212, or a hyphen).
_ID_BOUND = re.compile(r"\b1 to (\d{5,})\b|\b2([⁰¹²³⁴⁵⁶⁷⁸⁹]+) ?[\u2212-] ?1\b")


def test_every_id_bound_in_the_docs_is_the_codes():
    """security.md said a record handle may be "at most 2⁵³ minus 1" (the JSON limit),
    where the requests refuse anything above 2147483647, OCS's 32-bit ids (hooks.md said
    so, sixteen times)."""
    from gws_outbound_plugin import InvalidCancelRequest
    from gws_outbound_plugin._coerce import MAX_OCS_ID

    found = []
    for page in PAGES:
        for match in _ID_BOUND.finditer(text(page)):
            written = int(match[1]) if match[1] else 2 ** int(match[2].translate(_SUPERSCRIPT)) - 1
            found.append((line_of(page, match.start()), written))
    assert [f"{where}: {value}" for where, value in found if value != MAX_OCS_ID] == []
    assert {where.split(":")[0] for where, _ in found} >= {"docs/hooks.md", "docs/security.md"}

    fields = {
        "application_id": 134,
        "campaign_name": "Campaign1",
        "calling_list": "CallingList1",
        "device_path": "/devices/0116543c-07ff-5f4b-8cdf-9953cca85d8f",
    }
    assert CancelRequest(record_handle=MAX_OCS_ID, **fields).record_handle == MAX_OCS_ID
    with pytest.raises(InvalidCancelRequest):
        CancelRequest(record_handle=MAX_OCS_ID + 1, **fields)


def test_every_option_the_docs_give_a_command_is_one_it_has():
    """``gws-outbound <command> ... --option`` anywhere in README.md, docs/*.md and the
    reference plugins' READMEs: the command exists and takes the option (``simulate`` is
    the simulator's own parser)."""
    from gws_outbound_plugin.simulator._cli import build_parser as simulator_parser

    top = build_parser()
    options = {
        command: {option for action in parser._actions for option in action.option_strings}
        for command, parser in command_parsers(top).items()
    }
    options["simulate"] = {
        option for action in simulator_parser()._actions for option in action.option_strings
    }
    general = {option for action in top._actions for option in action.option_strings}
    pages = [*PAGES, "hooks/gws-outbound-audit/README.md", "hooks/gws-outbound-webhook/README.md"]
    seen, wrong = 0, []
    for page in pages:
        body = text(page)
        for match in re.finditer(r"\bgws-outbound ([a-z][a-z-]+)((?:[^`\n|]|\\\n)*)", body):
            command, rest = match.groups()
            seen += 1
            if command not in options:
                wrong.append(f"{line_of(page, match.start())}: no command {command!r}")
                continue
            given = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", rest))
            for option in sorted(given - options[command] - general):
                wrong.append(f"{line_of(page, match.start())}: {command} has no {option}")
    assert wrong == []
    assert seen >= 40


@pytest.mark.anyio
async def test_a_cancel_fires_the_request_hooks_the_tutorial_says(
    gws_outbound, gws_request_factory, gws_hook_recorder
):
    """The tutorial's table said ``on_operation_requested`` fires for "any operation (...,
    cancel too)": a plugin written from it to see every request missed every cancel the
    host made with ``cancel()``, ``perform()`` or ``submit()``."""
    await gws_outbound.cancel(gws_request_factory())
    await gws_outbound.perform(gws_request_factory())
    await gws_outbound.submit(gws_request_factory())
    await gws_outbound.perform(gws_request_factory.reject())
    requested = [
        (call.name, call.request.operation_name)
        for call in gws_hook_recorder.calls
        if call.name.endswith("_requested")
    ]
    assert requested == [("on_cancel_requested", "CancelRecord")] * 3 + [
        ("on_operation_requested", "RejectRecord")
    ]

    table = section("docs/writing-a-plugin.md", "## 1. What a plugin is")
    (row,) = re.findall(r"^\| `on_operation_requested\(request\)` \|(.*)$", table, re.MULTILINE)
    assert "cancel too" not in row
    assert "a cancel fires `on_cancel_requested` instead" in row


def test_each_description_of_retries_names_every_status_a_post_is_retried_after():
    """README said ``retries`` are "extra attempts after HTTP 5xx or a connection error": an
    operation is retried only when GWS certainly did not get it, which a 500 does not say;
    and hosting.md and the docstring left out 429, which is retried (``_UNAVAILABLE``)."""
    from gws_outbound_plugin._session import _UNAVAILABLE, UNFINISHED_STATUS_CODES

    readme = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", text("README.md"), re.M))
    hosting = dict(
        re.findall(
            r"^\| `(\w+)` \| `GWS_\w+` \| [^|]+ \| (.+) \|$",
            section("docs/hosting.md", "## Configuration"),
            re.M,
        )
    )
    descriptions = {
        "README.md": readme["retries"],
        "docs/hosting.md": hosting["retries"],
        "GWSConfig.retries": _setting_docstrings()["retries"],
    }
    for where, said in descriptions.items():
        said = " ".join(said.split())
        assert "GWS certainly did not get it" in said, where
        for status in sorted(_UNAVAILABLE):
            assert f"HTTP {status}" in said, (where, status)
        assert "after HTTP 5xx or" not in said, where
    for where in ("docs/hosting.md", "GWSConfig.retries"):
        said = " ".join(descriptions[where].split())
        codes = " or ".join(str(code) for code in sorted(UNFINISHED_STATUS_CODES))
        assert f"other than {codes}" in said, where
