"""Entry point of ``pulumi up``: load this stack's config, then run the one program.

Pulumi puts this directory first on ``sys.path``; ``stacks/platform.py`` would
then shadow the standard library's ``platform`` module for every later import.
The project is installed into the virtualenv, so the directory is not needed there.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import pulumi  # noqa: E402

from stacks.config import load_config  # noqa: E402
from stacks.platform import program  # noqa: E402

program(load_config(pulumi.get_stack()))
