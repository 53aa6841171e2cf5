"""``mlstack plan``: synthesize a stack offline and write its plan JSON.

Plan JSON contract (``schemaVersion`` 1): a top-level object with ``stack``,
``project``, ``environment``, ``region``, ``resources``, ``outputs`` and
``warnings``. ``resources`` is sorted by URN; each entry has ``urn``, ``type``,
``name``, ``parent`` (URN or null), ``custom``, ``provider``, ``dependencies``,
``protect``, ``retainOnDelete``, ``ignoreChanges`` and ``inputs`` (camelCase keys,
secrets shown as ``"[secret]"``, values unknown offline as ``"[unknown]"``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from mlstack.synth import ResourceGraph

DEFAULT_PLAN_DIR = Path("build/plan")


def plan_json(graph: ResourceGraph) -> str:
    """The plan document as stable text (sorted keys, two-space indent, final newline)."""
    return json.dumps(graph.to_json(), indent=2, sort_keys=True) + "\n"


def write_plan(graph: ResourceGraph, out: Path) -> Path:
    """Write the plan atomically (``mlstack.files``): a reader, a full disk or a Ctrl-C
    never leaves half a file, and only a regular file is written."""
    from mlstack.files import write_atomic

    write_atomic(out, plan_json(graph))
    return out


def summary(graph: ResourceGraph) -> dict[str, Any]:
    """Counts of cloud resources (``custom``: what AWS/Kubernetes hold) by top-level
    component and by type; ``components`` counts the component resources (``mlstack:*``
    and the stack) that group them, which ``mlstack diff`` lists too."""
    by_component: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    components = 0
    for node in graph.resources:
        if not node.custom:
            components += 1
            continue
        component = graph.component_of(node)
        by_component[component.name if component else "(stack)"] += 1
        by_type[node.type] += 1
    return {
        "resources": sum(by_type.values()),
        "components": components,
        "byComponent": dict(sorted(by_component.items())),
        "byType": dict(sorted(by_type.items())),
    }
