"""What a newcomer trips over on a fresh clone, found by walking the README, the tutorial and
the example host as written: each mistake is one line saying what to do, no traceback."""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from gws_outbound_plugin import hookimpl, hookspecs

from .conftest import ROOT, Cli, ThreadedSimulator

PLUGIN = (
    "from gws_outbound_plugin import hookimpl\n\n@hookimpl\ndef on_cancel_failed(failure):\n"
    "    pass\n"
)
CANCEL = (
    "cancel",
    "--record-handle",
    "11",
    "--application-id",
    "134",
    "--campaign",
    "Campaign1",
    "--calling-list",
    "CallingList1",
)
NAME = "newcomer_plugin"  # a module name no test installs


@pytest.fixture
def folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[object]:
    """The plugin author's folder as the current one, and not on the Python path (as for the
    ``gws-outbound`` script, which, unlike ``python -m``, does not add it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    yield tmp_path
    sys.modules.pop(NAME, None)


# -- `--plugin my_plugin` with ./my_plugin.py right there ----------------------------------------


def test_a_plugin_module_in_this_folder_says_how_to_load_it(cli: Cli, folder):
    (folder / f"{NAME}.py").write_text(PLUGIN, encoding="utf-8")
    result = cli("plugins", "--plugin", NAME)

    assert result.status == 2
    (line,) = result.err.splitlines()
    assert line.startswith(f"gws-outbound plugins: error: --plugin {NAME}: cannot load it: ")
    assert f"./{NAME}.py is in this folder" in line
    assert "PYTHONPATH=." in line
    assert f"--plugin ./{NAME}.py" in line
    # ... and what it says works:
    assert cli("plugins", "--plugin", f"./{NAME}.py").status == 0


def test_a_src_layout_plugin_says_to_set_pythonpath_to_src(cli: Cli, folder):
    package = folder / "src" / NAME
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN + "\nplugin = object()\n", encoding="utf-8")
    result = cli("plugins", "--plugin", f"{NAME}:plugin")

    assert result.status == 2
    (line,) = result.err.splitlines()
    assert f"src/{NAME} is in this folder but not on the Python path" in line
    assert "PYTHONPATH=src" in line


def test_a_missing_module_elsewhere_gets_no_made_up_hint(cli: Cli, folder):
    result = cli("plugins", "--plugin", NAME)

    assert result.status == 2
    assert result.err.strip().endswith(f"ModuleNotFoundError: No module named '{NAME}'")


# -- the example host's --plugin -----------------------------------------------------------------


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_host", ROOT / "examples" / "host.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "example_host", module)
    spec.loader.exec_module(module)
    return module


def load(host: ModuleType, spec: str) -> tuple[str, list[str]]:
    """``load_extra_plugins`` as ``--plugin spec`` calls it: the message it stops with, if
    any (as one line on stderr, exit 1), and the names registered."""
    from gws_outbound_plugin import make_plugin_manager

    pm = make_plugin_manager(load_entrypoints=False)
    try:
        host.load_extra_plugins(pm, [spec])
    except SystemExit as exit_:  # a message (a str), not a status: printed, exit 1
        return str(exit_.code) if isinstance(exit_.code, str) else f"status {exit_.code}", []
    return "", [name for name, _ in pm.list_name_plugin() if name == spec]


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, NAME, f"--plugin {NAME}: cannot load it: ModuleNotFoundError: "),
        (PLUGIN, NAME, f"(./{NAME}.py is here but not on the Python path: --plugin ./{NAME}.py)"),
        ("raise ValueError('bad setting')\n", f"./{NAME}.py", "ValueError: bad setting"),
        (
            "from gws_outbound_plugin import hookimpl\n\n@hookimpl\ndef on_cancel_acked(ack):\n"
            "    pass\n",
            f"./{NAME}.py",
            "unknown hook 'on_cancel_acked'",
        ),
    ],
    ids=["no-such-module", "module-here", "raises", "misspelt-hook"],
)
def test_the_example_hosts_plugin_that_cannot_load_is_one_line(host, folder, source, spec, message):
    if source is not None:
        (folder / f"{NAME}.py").write_text(source, encoding="utf-8")
    error, _ = load(host, spec)

    assert message in error
    assert "\n" not in error


def test_the_example_host_loads_an_object_as_in_an_entry_point(host, folder):
    (folder / f"{NAME}.py").write_text(
        "from gws_outbound_plugin import hookimpl\n\nclass P:\n    @hookimpl\n"
        "    def on_cancel_failed(self, failure):\n        pass\n\nplugin = P()\n",
        encoding="utf-8",
    )
    sys.path.insert(0, str(folder))
    assert load(host, f"{NAME}:plugin") == ("", [f"{NAME}:plugin"])
    error, _ = load(host, f"{NAME}:nothing")
    assert error == f"--plugin {NAME}:nothing: {NAME} has no attribute 'nothing'"


# -- the tutorial's table of hooks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "section"),
    [("docs/writing-a-plugin.md", "## 1. What a plugin is"), ("README.md", "## Hook-author")],
)
def test_each_table_of_hooks_lists_every_hook_with_its_arguments(page, section):
    text = (ROOT / page).read_text(encoding="utf-8")
    table = text.split(section, 1)[1].split("\n## ", 1)[0]
    listed = dict(re.findall(r"^\| `(on_\w+)\(([\w, ]*)\)`", table, re.MULTILINE))
    specs = {
        name: ", ".join(inspect.signature(spec).parameters)
        for name, spec in vars(hookspecs).items()
        if name.startswith("on_")
    }
    assert listed == specs


# -- the simulator's --fault and --port ---------------------------------------------------------


def simulator(
    capsys: pytest.CaptureFixture[str], *argv: str, prog: str | None = None
) -> tuple[int, str]:
    from gws_outbound_plugin.simulator._cli import main

    capsys.readouterr()
    try:
        status = main(list(argv), prog=prog)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code if isinstance(exit_.code, int) else 2
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "delay_notifications",
            "its arguments are delay_notifications(seconds, count=1, operation=None): seconds "
            "is required (e.g. --fault delay_notifications:seconds=1)",
        ),
        (
            "delay_notifications:secs=2",
            "its arguments are delay_notifications(seconds, count=1, operation=None): 'secs' is "
            "not one of them",
        ),
        ("hold_notifications:count=2", "hold_notifications takes no arguments"),
    ],
    ids=["missing", "misspelt", "none-taken"],
)
def test_a_fault_with_wrong_arguments_says_which_it_takes(capsys, spec, message):
    status, err = simulator(capsys, "--port", "0", "--fault", spec)

    assert status == 2
    assert message in err.splitlines()[-1]
    assert "positional argument" not in err and "keyword argument" not in err


@pytest.mark.parametrize("prog", [None, "gws-outbound simulate"])
def test_a_port_in_use_says_to_pick_another(capsys, prog):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = simulator(capsys, "--port", str(port), "--quiet", prog=prog)
    prog = prog or "python -m gws_outbound_plugin.simulator"

    assert status == 1
    (line,) = err.splitlines()
    # Prefixed by the program, as its other errors are (it began with a bare 'error:').
    assert line.startswith(f"{prog}: error: cannot listen on 127.0.0.1:{port}: ")
    assert line.endswith("pick another --port, or --port 0 for a free one)")


# -- a wrong GWS_BASE_URL says which part to check -------------------------------------------


def test_https_to_a_plain_http_server_says_to_check_the_scheme(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws, GWS_BASE_URL=threaded_gws.base_url.replace("http://", "https://"))
    result = cli(*CANCEL)

    assert result.status == 1
    (line,) = result.err.splitlines()
    assert "TLS error: WRONG_VERSION_NUMBER" in line
    assert line.endswith(
        "(the server at that address does not speak TLS: is it an http:// "
        "address, such as the simulator's?)"
    )
    assert threaded_gws.call(lambda: threaded_gws.simulator.cancels) == []


def test_a_base_url_with_a_wrong_path_says_what_the_base_url_is(
    cli: Cli, threaded_gws: ThreadedSimulator
):
    cli.connect(threaded_gws, GWS_BASE_URL=threaded_gws.base_url + "/gws")
    result = cli(*CANCEL)

    assert result.status == 1
    (line,) = result.err.splitlines()
    assert "GET /gws/api/v2/me: " in line and "answered HTTP 404" in line
    assert line.endswith(
        "(no GWS API at that path: GWS_BASE_URL or --base-url is the address "
        "/api/v2 hangs from, usually the node's root, e.g. https://gws.example.com)"
    )
    assert threaded_gws.call(lambda: threaded_gws.simulator.cancels) == []


def _fault_examples() -> list[str]:
    """The simulator's ``--fault`` examples as shown: its ``--help`` example lines and the
    command-line block of docs/simulator.md."""
    from gws_outbound_plugin.simulator._cli import build_parser

    help_text = build_parser().format_help()
    block = help_text.split("\nexample: ", 1)[1].split("\n\n", 1)[0]
    page = (ROOT / "docs" / "simulator.md").read_text(encoding="utf-8")
    doc = page.split("From the command line, `--fault", 1)[1].split("```\n", 2)[1]
    return [line.strip() for line in (block + "\n" + doc).splitlines() if line.strip()]


@pytest.mark.parametrize("example", _fault_examples())
def test_every_fault_example_parses_as_pasted_into_a_shell(example):
    import shlex

    from gws_outbound_plugin.simulator._cli import build_parser, parse_fault_spec
    from gws_outbound_plugin.simulator._faults import Faults

    args = build_parser().parse_args(shlex.split(example))  # argparse exits on a stray word
    assert args.fault
    for spec in args.fault:
        name, arguments = parse_fault_spec(spec)
        getattr(Faults(), name)(**arguments)


# -- a hook argument under another name -----------------------------------------------------------


class _MisnamedArgument:
    @hookimpl
    def on_user_event(self, evt):
        pass


class _ArgumentOfAnotherHook:
    @hookimpl
    def on_record_cancel_acknowledged(self, ack, failure):
        pass


@pytest.mark.parametrize(
    ("plugin", "says"),
    [
        (
            _MisnamedArgument(),
            "on_user_event(evt) asks for {'evt'}, which the hook on_user_event does not pass "
            "(did you mean 'event'?): it passes event",
        ),
        (
            _ArgumentOfAnotherHook(),
            "on_record_cancel_acknowledged(ack, failure) asks for {'failure'}, which the hook "
            "on_record_cancel_acknowledged does not pass: it passes ack",
        ),
    ],
    ids=["misspelt", "another-hooks"],
)
def test_an_argument_the_hook_does_not_pass_names_the_ones_it_does(plugin, says):
    """``def on_user_event(evt)``: the refusal said the hook does not pass ``evt`` but not
    what it passes, so the author had to open docs/hooks.md to find ``event``."""
    import pluggy

    from gws_outbound_plugin import make_plugin_manager

    pm = make_plugin_manager(load_entrypoints=False)
    with pytest.raises(pluggy.PluginValidationError) as raised:
        pm.register(plugin, name="mine")

    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"plugin 'mine': {says} (an implementation may take any subset")
    assert not pm.is_registered(plugin)
