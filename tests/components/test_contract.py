"""The component contract, checked over the source and the synthesized stacks."""

from __future__ import annotations

import re
from pathlib import Path

from mlstack.synth import ResourceGraph

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
CONFIG_READS = re.compile(r"pulumi\.Config\(|pulumi\.runtime\.config|from stacks|import stacks")


def test_components_never_read_config_or_import_stacks() -> None:
    offenders = [
        f"{path.relative_to(COMPONENTS.parent)}:{number}"
        for path in COMPONENTS.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if CONFIG_READS.search(line) and not line.lstrip().startswith(("#", '"""'))
    ]
    assert offenders == []


def test_component_children_are_parented_and_named_after_it(any_graph: ResourceGraph) -> None:
    """Every child of an mlstack component is named `<component name>-<role>`."""
    index = {r.urn: r for r in any_graph.resources}
    bad = []
    for node in any_graph.resources:
        parent = index.get(node.parent or "")
        if parent is None or not parent.type.startswith("mlstack:"):
            continue
        if not node.name.startswith(f"{parent.name}-"):
            bad.append(f"{node.type} {node.name} under {parent.name}")
    assert bad == []


def test_component_type_tokens_follow_mlstack_area_name(any_graph: ResourceGraph) -> None:
    # Provider-implemented components (kubernetes:yaml/v2:ConfigFile) are not ours.
    tokens = {
        r.type for r in any_graph.resources if not r.custom and not r.type.startswith("kubernetes:")
    }
    assert tokens
    assert all(re.fullmatch(r"mlstack:[a-z]+:[A-Z][A-Za-z]+", t) for t in tokens), tokens
