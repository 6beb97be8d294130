"""``python -m framework``: see ``framework.cli``."""

from framework.cli import run

run()
