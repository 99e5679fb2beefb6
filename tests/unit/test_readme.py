"""The README's configuration table and public surface stay true to the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gws_outbound_plugin
from gws_outbound_plugin import GWSConfig

ROOT = Path(__file__).resolve().parents[2]


def readme_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_every_config_field_is_in_the_readme_with_its_default() -> None:
    table = readme_table()
    fields = {f.name: f for f in dataclasses.fields(GWSConfig)}
    assert set(table) == set(fields)
    for name, spec in fields.items():
        if spec.default is dataclasses.MISSING:
            assert table[name] == "required", name
        else:
            assert table[name].strip("`") == str(spec.default), name


def test_public_surface_is_importable_from_the_root() -> None:
    for name in gws_outbound_plugin.__all__:
        assert getattr(gws_outbound_plugin, name) is not None, name
    assert gws_outbound_plugin.PROJECT_NAME == "gws_outbound"
    assert gws_outbound_plugin.simulator.GWSSimulator is not None
