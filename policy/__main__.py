"""Entry point of the CrossGuard pack: the ONLY place that constructs ``PolicyPack``.

``PolicyPack(...)`` starts the analyzer's gRPC server and blocks, so nothing
imports this module; the Pulumi CLI runs it (``pulumi preview --policy-pack
policy``), with either the pack directory or the repository root as the working
directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policy.pack import PACK_NAME, stack_policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=list(stack_policies()),
)
