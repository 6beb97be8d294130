"""``python -m example_app demo``: run the example bank."""

from __future__ import annotations

import argparse
import sys

from example_app.demo import run_demo
from framework.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="play a short banking story and print what happened")
    demo.add_argument("-v", "--verbose", action="store_true", help="show the framework's logs")
    arguments = parser.parse_args(argv)
    configure_logging("INFO" if arguments.verbose else "WARNING")
    if arguments.command == "demo":
        run_demo(sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
