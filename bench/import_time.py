"""What ``import framework`` costs: import time, wall time and which heavy packages it loads.

A domain module and its unit tests need attrs and the standard library only; the AWS SDK,
cryptography and the mapping libraries are for the application that stores events. This
benchmark keeps that promise measurable: each statement runs in a fresh interpreter, several
times, rounds interleaved, and the medians are reported beside an empty interpreter's.

``python -m bench.import_time --runs 10`` (run from the repository root, so that its
``framework`` is the one imported); ``--baseline DIR`` measures another revision's tree beside it,
in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine, markdown_table

ROOT = Path(__file__).resolve().parents[1]

#: Packages a domain module does not need; the report says which ones a statement loaded.
HEAVY = (
    "boto3",
    "botocore",
    "cryptography",
    "pynamodb",
    "cattrs",
    "structlog",
    "rich",
    "click",
    "moto",
)

#: The statements measured, by label: an empty interpreter is the baseline of the others.
STATEMENTS = {
    "python -c pass": "pass",
    "import framework": "import framework",
    "import example_app.bank": "import example_app.bank",
}


def run(statement: str, *flags: str, root: Path = ROOT) -> tuple[float, str]:
    """Wall time (ms) of a fresh interpreter running ``statement``, and what it wrote to stderr."""
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, *flags, "-c", statement],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return (time.perf_counter() - started) * 1000, finished.stderr


def import_time_us(stderr: str, package: str) -> int:
    """The microseconds ``-X importtime`` reports for ``package`` and its modules.

    Only lines imported at the top level count (one space before the name): their cumulative
    figures already hold everything imported under them.
    """
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        if name.rstrip() == f" {package}" or name.startswith(f" {package}."):
            total += int(cumulative)
    return total


def heavy_modules(statement: str, root: Path = ROOT) -> list[str]:
    """Which of the heavy packages are in ``sys.modules`` after ``statement``."""
    probe = f"{statement}\nimport sys\nprint(' '.join(sorted(set(sys.modules))))"
    finished = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True
    )
    loaded = set(finished.stdout.split())
    return [name for name in HEAVY if name in loaded]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_time", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="fresh interpreters per statement")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of another revision (git archive REV | tar -x -C DIR) measured side by "
        "side with this one, rounds interleaved and the order rotated",
    )
    arguments = parser.parse_args(argv)
    roots = (
        {"this": ROOT}
        if arguments.baseline is None
        else {
            "baseline": arguments.baseline.resolve(),
            "this": ROOT,
        }
    )

    for root in roots.values():  # compile the bytecode caches before measuring
        for statement in STATEMENTS.values():
            run(statement, root=root)
    wall: dict[tuple[str, str], list[float]] = {}
    cumulative: dict[tuple[str, str], list[int]] = {}
    order = list(roots)
    for _ in range(arguments.runs):
        order = order[1:] + order[:1]  # rotate which side goes first
        for label, statement in STATEMENTS.items():
            for side in order:
                root = roots[side]
                wall.setdefault((side, label), []).append(run(statement, root=root)[0])
                if statement != "pass":
                    _, stderr = run(statement, "-X", "importtime", root=root)
                    top = statement.removeprefix("import ").split(".")[0]
                    cumulative.setdefault((side, label), []).append(import_time_us(stderr, top))

    rows = []
    for label, statement in STATEMENTS.items():
        for side, root in roots.items():
            times = cumulative.get((side, label))
            importtime = f"{statistics.median(times) / 1000:.1f}" if times else "-"
            heavy = ", ".join(heavy_modules(statement, root)) or "none"
            wall_ms = f"{statistics.median(wall[side, label]):.1f}"
            rows.append([f"`{label}`", side, wall_ms, importtime, heavy])
    print(f"\nImport cost, medians of {arguments.runs} fresh interpreters ({machine()}):\n")
    header = ["statement", "tree", "wall ms", "-X importtime ms (cumulative)", "heavy packages"]
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
