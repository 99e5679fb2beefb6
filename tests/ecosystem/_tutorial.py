"""Extracting the tutorial's files from docs/writing-a-plugin.md.

Every fenced code block whose info string carries ``title="<path>"`` is a file of the
tutorial, written at that path (relative to the empty folder the tutorial starts in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_FENCE = re.compile(r'^```(?P<lang>[\w+-]*)\s+title="(?P<path>[^"]+)"\s*$')

PROJECT_DIR = "gws-outbound-tally"


@dataclass(frozen=True)
class Tutorial:
    root: Path
    files: dict[str, str]

    @property
    def project(self) -> Path:
        return self.root / PROJECT_DIR


def code_files(markdown: str) -> dict[str, str]:
    """``{path: content}`` of the titled code blocks, in document order."""
    files: dict[str, str] = {}
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        index += 1
        if match is None:
            continue
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        if index == len(lines):
            raise ValueError(f"unterminated code block for {match['path']}")
        index += 1
        path = match["path"]
        if path in files:
            raise ValueError(f"{path} appears twice in the tutorial")
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"tutorial path {path!r} must stay inside the folder")
        files[path] = "\n".join(body) + "\n"
    return files


def extract_tutorial(markdown_path: Path, root: Path) -> Tutorial:
    files = code_files(markdown_path.read_text(encoding="utf-8"))
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return Tutorial(root, files)
