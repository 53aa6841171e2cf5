"""``stacks/__main__.py`` runs the way the engine runs it: ``stacks/`` first on ``sys.path``.

The engine's Python host puts the program directory (``main: stacks/``) first on
``sys.path``, so every module in ``stacks/`` is also importable as a top-level name.
No such name may shadow a standard-library or installed module (``stacks/platform.py``
once shadowed ``platform``), and the entry point must not need a ``sys.path`` edit.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from stacks.config import PROJECT_ROOT

STACKS = PROJECT_ROOT / "stacks"
ENTRY = STACKS / "__main__.py"

# Runs __main__.py exactly as the engine would (runpy, stacks/ first on sys.path), under
# the offline mocks, with the engine's config read replaced by the stack file.
_ENGINE_LIKE = """
import json, runpy, sys
sys.path.insert(0, {stacks!r})
import stacks.config
from mlstack.synth import synth_config
cfg = stacks.config.load_config_file("dev")
stacks.config.load_config = lambda stack: cfg
graph = synth_config(cfg, "dev", lambda c, s: runpy.run_path({entry!r}, run_name="__main__"))
import platform, importlib
shadowed = sorted(
    name for name, module in list(sys.modules.items())
    if "." not in name and not name.startswith("stacks")
    and str(getattr(module, "__file__", None) or "").startswith({stacks!r} + "/")
)
print(json.dumps({{
    "platform": platform.__file__,
    "machine": platform.machine(),
    "resources": len(graph.resources),
    "composition": importlib.import_module("stacks.composition").__file__,
    "shadowed": shadowed,
}}))
"""

INSTALLED_CLASHES = {"schema": "the `schema` distribution (a dependency of policy_sentry)"}
"""Top-level names of ``stacks/`` that an installed distribution also uses. The program
never imports those distributions under the engine (the engine-like run below proves
nothing is loaded from ``stacks/`` under a top-level name); do not add to this list."""


def _top_level_names(directory: Path) -> set[str]:
    names = {p.stem for p in directory.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in directory.iterdir() if (p / "__init__.py").is_file()}
    return names - {"__main__"}


def test_no_module_in_stacks_shadows_a_stdlib_or_installed_module() -> None:
    names = _top_level_names(STACKS)
    assert "composition" in names
    shadowing = sorted(names & set(sys.stdlib_module_names))
    assert shadowing == [], f"stacks/ modules named like stdlib modules: {shadowing}"
    for name in sorted(names - set(INSTALLED_CLASHES)):
        spec = importlib.util.find_spec(name)
        # Found at all (stacks/ is not on this process's path) means something else owns it.
        assert spec is None, f"stacks/{name} shadows an installed module at {spec.origin}"
    for name in INSTALLED_CLASHES:
        assert importlib.util.find_spec(name) is not None, f"{name}: clash gone, drop the entry"


def test_entry_point_does_not_edit_sys_path() -> None:
    tree = ast.parse(ENTRY.read_text(encoding="utf-8"))
    touched = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "path"
        if isinstance(node.value, ast.Name) and node.value.id == "sys"
    ]
    assert touched == []


def test_entry_point_runs_with_stacks_first_on_sys_path(dev_graph) -> None:
    script = _ENGINE_LIKE.format(stacks=str(STACKS), entry=str(ENTRY))
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(found["platform"]).parent == Path(json.__file__).parent.parent
    assert found["machine"]
    assert found["composition"] == str(STACKS / "composition.py")
    assert found["resources"] == len(dev_graph.resources)
    assert found["shadowed"] == []
