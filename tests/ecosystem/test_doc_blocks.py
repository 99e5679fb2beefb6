"""Every Python block of the README and docs/*.md runs as pasted.

A block runs as a program of its own (``python block.py``, against the simulator through
``GWS_BASE_URL`` / ``GWS_USERNAME`` / ``GWS_PASSWORD``) unless the comment line right above
its fence says where it is meant to be pasted, which the text around it says too:

* ``<!-- doc-test: plugin -->``: inside the README quick-start's ``async with`` block (``pm``,
  ``plugin`` and a cancel ``request`` exist; top-level ``await`` works there);
* ``<!-- doc-test: plugin-thread -->``: the same names, on a thread other than the loop's;
* ``<!-- doc-test: asyncio -->``: ``python -m asyncio`` (top-level ``await``, nothing else).

Blocks with a ``title="path"`` are files of the tutorial and the hosting examples, which
tests/ecosystem/test_docs.py builds and runs.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from gws_outbound_plugin import CancelRequest, GWSConfig, OutboundPlugin, make_plugin_manager
from gws_outbound_plugin.simulator import GWSSimulator

from .conftest import ROOT

pytestmark = pytest.mark.anyio

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"(?:^<!-- doc-test: (?P<context>[\w-]+) -->\n)?^```python(?P<title>[^\n]*)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
CONTEXTS = {"program", "plugin", "plugin-thread", "asyncio"}


def blocks() -> Iterator[Any]:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            if "title=" in match["title"]:
                continue
            line = text[: match.start("code")].count("\n")
            name = f"{page.relative_to(ROOT)}:{line}"
            yield pytest.param(match["context"] or "program", match["code"], name, id=name)


ALL_BLOCKS = list(blocks())


def test_the_blocks_are_found():
    names = [param.values[2] for param in ALL_BLOCKS]
    assert sum(name.startswith("README.md") for name in names) == 4
    assert {param.values[0] for param in ALL_BLOCKS} == CONTEXTS


def compiled(code: str, name: str) -> Any:
    return compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def env(simulator: GWSSimulator) -> dict[str, str]:
    from .conftest import base_env

    return base_env(
        {
            "GWS_BASE_URL": simulator.base_url,
            "GWS_USERNAME": "agent1",
            "GWS_PASSWORD": "secret",
            "GWS_ACK_TIMEOUT": "3",
        }
    )


async def run_program(code: str, name: str, simulator: GWSSimulator, tmp_path: Path) -> None:
    path = tmp_path / "block.py"
    path.write_text(code, encoding="utf-8")
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, str(path)], env=env(simulator), cwd=tmp_path, check=False
        )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, f"{name}:\n{output}"
    assert "Traceback" not in output, f"{name}:\n{output}"


async def run_in_plugin(code: str, name: str, simulator: GWSSimulator, *, thread: bool) -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    config = GWSConfig(base_url=simulator.base_url, username="agent1", password="secret")
    async with OutboundPlugin(pm, config) as plugin:
        request = CancelRequest(
            record_handle=16,
            application_id=134,
            campaign_name="Campaign1",
            calling_list="CallingList1",
            device_path=await plugin.device_path(),
        )
        namespace: dict[str, Any] = {
            "__name__": "__doc_block__",
            "pm": pm,
            "plugin": plugin,
            "request": request,
        }
        code_object = compiled(code, name)
        with anyio.fail_after(30):
            if thread:
                await anyio.to_thread.run_sync(exec, code_object, namespace)
            else:
                result = eval(code_object, namespace)
                if inspect.iscoroutine(result):
                    await result


async def run_top_level_await(code: str, name: str) -> None:
    result = eval(compiled(code, name), {"__name__": "__doc_block__"})
    with anyio.fail_after(30):
        if inspect.iscoroutine(result):
            await result


@pytest.mark.parametrize(("context", "code", "name"), ALL_BLOCKS)
async def test_the_block_runs_as_pasted(context, code, name, gws_simulator, tmp_path):
    if context == "program":
        await run_program(code, name, gws_simulator, tmp_path)
    elif context == "asyncio":
        await run_top_level_await(code, name)
    else:
        await run_in_plugin(code, name, gws_simulator, thread=context == "plugin-thread")
