"""Type-check the README's and docs' Python blocks with ``mypy --strict``, as users will.

A reader copies these blocks into their own code and runs their own type checker on it, so the
blocks must pass the strictest setting, not only run (``tests/test_docs.py`` runs them). Each
document becomes one module: its blocks in order (they share one namespace when they run), every
other line left blank, so that an error's line number is the document's own and is reported as
``docs/aggregates.md:123``. Run ``python -m tests.doc_typing`` (exit status 1 on any error).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from mypy import api

from tests.test_docs import DOCUMENTS, ROOT, python_blocks

MODULES = ROOT / ".mypy_cache" / "doc_blocks"
"""Where the modules are written: the same place every run, so that mypy's cache is used."""


def module_text(document: Path) -> str:
    """The Python blocks of ``document`` at their own line numbers, every other line blank.

    The blocks are found as the docs test finds the ones it runs (indented ones in lists
    included, their indent removed); blocks marked not to run are checked too: a reader copies
    them all the same.
    """
    lines = [""] * (document.read_text().count("\n") + 1)
    for block in python_blocks(document):
        for offset, line in enumerate(block.code.splitlines()):
            lines[block.line - 1 + offset] = line
    return "\n".join(lines) + "\n"


def module_name(document: Path) -> str:
    return "doc_" + re.sub(r"\W", "_", document.stem.lower())


def check(documents: Sequence[Path], modules: Path = MODULES) -> tuple[int, str]:
    """Run ``mypy --strict`` on the blocks of ``documents``: (exit status, report)."""
    modules.mkdir(parents=True, exist_ok=True)
    sources: dict[str, Path] = {}
    for document in documents:
        text = module_text(document)
        if not text.strip():
            continue
        path = modules / f"{module_name(document)}.py"
        if not path.exists() or path.read_text() != text:  # unchanged files keep their cache
            path.write_text(text)
        sources[str(path)] = document
    if not sources:
        return 0, "no Python blocks\n"
    stdout, stderr, status = api.run(
        ["--strict", "--config-file", str(ROOT / "pyproject.toml"), *sources]
    )
    report = stdout + stderr
    for module, document in sources.items():
        shown = document.relative_to(ROOT) if document.is_relative_to(ROOT) else document
        # However mypy spells the module's path (absolute, relative), show the document's.
        pattern = re.compile(rf"^[^\n:]*{re.escape(Path(module).name)}:", re.MULTILINE)
        report = pattern.sub(f"{shown}:".replace("\\", "\\\\"), report)
    return status, report


def main() -> int:
    status, report = check(DOCUMENTS)
    sys.stdout.write(report)
    return status


if __name__ == "__main__":
    sys.exit(main())
