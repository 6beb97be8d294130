"""The README's and docs' Python code blocks run, so the documentation cannot rot.

No page may run nothing by accident. Every page is one of two kinds:

- it has Python blocks (fenced as ``python``), and its test runs every one of them, in order, in
  one namespace, as a reader would paste them; the test fails when it ran none, or fewer than
  the page has, whatever the reason (a misspelt fence, a parser change);
- it is declared prose-only in ``PROSE_ONLY`` below, with the reason, and has no Python block.

A page that is neither (a new page, say) fails. A block that must not run (it needs an AWS
account, for instance) is marked by the HTML comment ``<!-- docs-test: not run: REASON -->`` on
the line before its fence: it is reported as a skipped test of its own with that reason, so
the count of blocks not run shows in every test run. A page whose blocks need a fixture (DynamoDB
Local) says so with ``<!-- docs-test: needs FIXTURE -->``; the page then skips or fails exactly
as the tests on that fixture do. Every fence must name its language, so that Python cannot hide
in an unlabelled block.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

PROSE_ONLY: dict[str, str] = {
    "docs/benchmarks.md": "figures and the shell commands that measure them (bench/ runs them)",
    "docs/cli.md": "the command line; tests/test_cli.py runs its commands",
    "docs/deploying-on-aws.md": (
        "shell commands, the SAM template and the IAM policy (JSON); "
        "tests/test_deploy_template.py and tests/test_cli.py check them"
    ),
    "docs/design-decisions.md": "reasons, no code",
    "docs/index.md": "the shell commands of a first run; tests/example/test_demo.py runs the demo",
    "docs/reliability.md": "what tests/reliability/ does and the figures of one run",
}
"""Pages without runnable Python, each with the reason: relative path -> why."""

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
PYTHON_LANGUAGES = frozenset({"python", "py", "python3"})
NOT_RUN = re.compile(r"^\s*<!--\s*docs-test:\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")
NEEDS = re.compile(r"^\s*<!--\s*docs-test:\s*needs\s+(?P<fixture>\w+)\s*-->\s*$", re.MULTILINE)
# Counted without the parser, so that a parser that stops seeing blocks is caught.
PYTHON_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)[ \t]*(?:python3?|py)\b", re.MULTILINE)


class PageError(AssertionError):
    """A page breaks the rules above; the message says how to fix it."""


@attrs.frozen
class Block:
    """One Python block of a page: where it starts, its code, and why it is not run (if not)."""

    line: int
    code: str
    not_run: str | None = None


def python_blocks(path: Path) -> list[Block]:
    """Every Python block of ``path``, in order; refuses a fence that names no language."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if opening is None:
            number += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].split(maxsplit=1)[0].lower() if opening["info"].strip() else ""
        if not language:
            raise PageError(f"{path.name}:{number + 1}: a fence without a language: name it")
        end = number + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence))
            and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        if end == len(lines):
            raise PageError(f"{path.name}:{number + 1}: a fence that is never closed")
        if language in PYTHON_LANGUAGES:
            body = [line.removeprefix(indent) for line in lines[number + 1 : end]]
            previous = next((line for line in reversed(lines[:number]) if line.strip()), "")
            marked = NOT_RUN.match(previous)
            blocks.append(
                Block(number + 2, "\n".join(body) + "\n", marked["reason"] if marked else None)
            )
        number = end + 1
    return blocks


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def run_page(path: Path, root: Path = ROOT, prose_only: Mapping[str, str] = PROSE_ONLY) -> int:
    """Run the page's blocks as the rules above say; return how many ran."""
    name = relative(path, root)
    blocks = python_blocks(path)
    fences = len(PYTHON_FENCE_LINE.findall(path.read_text()))
    if fences != len(blocks):
        raise PageError(f"{name}: {fences} Python fences, but {len(blocks)} blocks were found")
    if name in prose_only:
        if blocks:
            raise PageError(
                f"{name} is declared prose-only but has {len(blocks)} Python block(s): "
                "take it out of PROSE_ONLY"
            )
        return 0
    to_run = [block for block in blocks if block.not_run is None]
    if not to_run:
        raise PageError(
            f"{name} runs no Python block: give it one, or declare it in PROSE_ONLY with the reason"
        )
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for block in to_run:
        code = compile(block.code, f"{path.name}:{block.line}", "exec", dont_inherit=True)
        exec(code, namespace)
    return len(to_run)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: relative(p, ROOT))
def test_code_blocks_run(path: Path, request: pytest.FixtureRequest) -> None:
    """Each page runs all its Python blocks, or is declared prose-only."""
    for fixture in NEEDS.findall(path.read_text()):
        request.getfixturevalue(fixture)
    ran = run_page(path)
    assert ran or relative(path, ROOT) in PROSE_ONLY


NOT_RUN_BLOCKS = [
    pytest.param(block.not_run, id=f"{relative(path, ROOT)}:{block.line}")
    for path in DOCUMENTS
    for block in python_blocks(path)
    if block.not_run is not None
] or [pytest.param(None, id="none")]


@pytest.mark.parametrize("reason", NOT_RUN_BLOCKS)
def test_blocks_not_run(reason: str | None) -> None:
    """One skipped test per block marked not to run, so that each shows, with its reason."""
    if reason is None:
        return  # every block of every page runs
    assert reason.strip(), "a block not run must say why"
    pytest.skip(f"not run: {reason}")


def test_every_prose_only_page_exists() -> None:
    assert {relative(path, ROOT) for path in DOCUMENTS} >= set(PROSE_ONLY)


def test_the_readme_has_code_to_run() -> None:
    assert run_page(ROOT / "README.md") >= 1


# -- the checker itself ------------------------------------------------------------------------


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def test_a_page_that_runs_nothing_fails(tmp_path: Path) -> None:
    path = page(tmp_path, "# A new page\n\nProse, and a shell command:\n\n```bash\nls\n```\n")
    with pytest.raises(PageError, match="runs no Python block"):
        run_page(path, tmp_path, prose_only={})


def test_a_page_whose_only_block_is_not_run_fails(tmp_path: Path) -> None:
    text = "<!-- docs-test: not run: needs AWS -->\n```python\nraise SystemExit\n```\n"
    with pytest.raises(PageError, match="runs no Python block"):
        run_page(page(tmp_path, text), tmp_path, prose_only={})


def test_a_page_declared_prose_only_passes_and_may_not_hold_python(tmp_path: Path) -> None:
    path = page(tmp_path, "# Prose\n\nNothing to run.\n")
    assert run_page(path, tmp_path, prose_only={"page.md": "prose"}) == 0
    path.write_text("```python\nx = 1\n```\n")
    with pytest.raises(PageError, match="declared prose-only but has 1 Python block"):
        run_page(path, tmp_path, prose_only={"page.md": "prose"})


def test_python_in_a_fence_without_a_language_fails(tmp_path: Path) -> None:
    path = page(tmp_path, "```\nimport framework\n```\n")
    with pytest.raises(PageError, match="without a language"):
        run_page(path, tmp_path, prose_only={})


def test_blocks_run_in_order_in_one_namespace_and_a_failing_block_fails(tmp_path: Path) -> None:
    text = (
        "```python\nx = 1\n```\n\n"
        "- in a list:\n\n  ```py\n  x += 1\n  ```\n\n"
        "<!-- docs-test: not run: would fail -->\n```python\nraise SystemExit\n```\n\n"
        "```python\nassert x == 2, x\n```\n"
    )
    path = page(tmp_path, text)
    assert [block.not_run for block in python_blocks(path)] == [None, None, "would fail", None]
    assert run_page(path, tmp_path, prose_only={}) == 3
    path.write_text(text.replace("x == 2", "x == 3"))
    with pytest.raises(AssertionError, match=r"^2$"):
        run_page(path, tmp_path, prose_only={})


def test_a_block_the_parser_misses_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the parser stopped seeing blocks, the independent count of fences catches it."""
    path = page(tmp_path, "```python\nx = 1\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "PYTHON_LANGUAGES", frozenset())
    with pytest.raises(PageError, match="1 Python fences, but 0 blocks"):
        run_page(path, tmp_path, prose_only={})
