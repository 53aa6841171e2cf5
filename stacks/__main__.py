"""Entry point of ``pulumi up``: load this stack's config, then run the one program.

Pulumi puts this directory first on ``sys.path``. No module here is named like a
standard-library or installed top-level module (``tests/stacks/test_entry_point.py``
checks), so that needs no ``sys.path`` edit; the project itself is imported as the
``stacks`` package installed into the virtualenv (editable).
"""

import pulumi

from stacks.composition import program
from stacks.config import load_config

program(load_config(pulumi.get_stack()))
