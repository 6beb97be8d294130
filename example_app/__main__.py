"""``python -m example_app demo|serve``: run the example bank, as a story or over HTTP."""

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
    serve = commands.add_parser("serve", help="serve the example app over HTTP (FastAPI)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1); any other needs EXAMPLE_API_TOKEN",
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.add_argument("-v", "--verbose", action="store_true", help="show the framework's logs")
    arguments = parser.parse_args(argv)
    configure_logging("INFO" if arguments.verbose else "WARNING")
    if arguments.command == "demo":
        run_demo(sys.stdout)
    else:
        from example_app.http_api import UnsafeServing
        from example_app.http_api import serve as serve_http

        try:
            serve_http(arguments.host, arguments.port)
        except UnsafeServing as refused:
            print(f"{parser.prog} serve: error: {refused}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
