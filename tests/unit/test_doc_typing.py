"""The type check of the docs' code blocks (``tests/doc_typing.py``) fails when it should.

It also shows the point of declaring a command's target with a class keyword: the fields stay
plain attrs fields, so ``mypy --strict`` reports a command built without a required argument.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_typing import check, module_text

DOMAIN = """\
from decimal import Decimal

from attrs import frozen

from framework import Command, Event, subject_of


@frozen
class Deposit(Command, target="account_id"):
    account_id: str
    amount: Decimal


@frozen
class Opened(Event, personal={"owner": subject_of("User", field="owner_id")}):
    owner: str
    owner_id: str | None = None
"""


def document(*blocks: str) -> str:
    return "# A page\n\nSome prose.\n\n" + "\nMore prose.\n\n".join(
        f"```python\n{block}```\n" for block in blocks
    )


def test_blocks_keep_their_line_numbers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(document("x = 1\n", "y = x\n") + "\n- in a list:\n\n  ```py\n  z = y\n  ```\n")
    lines = module_text(page).splitlines()
    assert (lines[5], lines[11], lines[17]) == ("x = 1", "y = x", "z = y")  # (counted from 0)
    assert all(not line for number, line in enumerate(lines) if number not in (5, 11, 17))


@pytest.mark.slow
def test_a_block_that_does_not_type_check_fails_with_the_documents_line(tmp_path: Path) -> None:
    good = tmp_path / "good.md"
    good.write_text(document(DOMAIN, 'Deposit(account_id="a", amount=Decimal(1))\n'))
    assert check([good], tmp_path / "modules") == (0, "Success: no issues found in 1 source file\n")

    bad = tmp_path / "bad.md"
    bad.write_text(document(DOMAIN, 'Deposit(account_id="a")\nOpened()\n'))
    status, report = check([bad], tmp_path / "modules")
    assert status == 1
    assert 'bad.md:28: error: Missing positional argument "amount" in call to "Deposit"' in report
    assert 'bad.md:29: error: Missing positional argument "owner" in call to "Opened"' in report
