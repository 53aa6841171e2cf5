"""The ``mlstack`` console script: Ctrl-C handling first, then the CLI.

The SIGINT handler (:mod:`mlstack.interrupt`, standard library only) is installed before
anything heavy is imported, so even a Ctrl-C while the CLI's imports load ends with one
line and exit 130 instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    from mlstack import interrupt

    interrupt.install()
    from mlstack.cli import main as cli_main

    sys.exit(cli_main())
