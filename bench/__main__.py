"""``python -m bench``: every benchmark, one after the other, each printing its table.

The replay benchmark writes 100,000 events and takes several minutes; ``--quick`` runs every
benchmark at a small size (a smoke run, not figures to report).
"""

from __future__ import annotations

import argparse

from bench import (
    async_commands,
    commands,
    contention,
    deadlines,
    import_time,
    inmemory,
    replay,
    tracing,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        commands.main(["--rounds", "1", "--commands", "40"])
        async_commands.main(["--rounds", "1", "--in-flight", "10", "--commands", "2"])
        inmemory.main(["--rounds", "1", "--accounts", "20"])
        contention.main(["--rounds", "1", "--processes", "2", "--deposits", "20"])
        replay.main(["--events", "2000", "4000", "--rounds", "1"])
        deadlines.main(["--rounds", "1", "--deadlines", "20"])
        import_time.main(["--runs", "2"])
        tracing.main(["--rounds", "1", "--accounts", "20"])
    else:
        commands.main([])
        async_commands.main([])
        inmemory.main([])
        contention.main([])
        replay.main(["--events", "10000", "100000"])
        deadlines.main([])
        import_time.main([])
        tracing.main([])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
