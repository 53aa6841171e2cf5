"""The model-loader image a checkout pins: ``MODEL_LOADER_IMAGE_TAG`` (and the recorded
``MODEL_LOADER_IMAGE_DIGEST``) of its ``components/versions.py``.

Read from the file, not imported, so ``mlstack preflight --root <worktree>`` checks the
tag the rollback target pins (its pods pull that one), not the tag of the running code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from mlstack.errors import UsageError

VERSIONS_FILE = Path("components") / "versions.py"
TAG_NAME = "MODEL_LOADER_IMAGE_TAG"
DIGEST_NAME = "MODEL_LOADER_IMAGE_DIGEST"


@dataclass(frozen=True)
class LoaderPin:
    tag: str
    digest: str | None = None
    """``sha256:<64 hex>`` once recorded; pods then pull ``<repo>:<tag>@<digest>``."""


def read_loader_pin(root: Path) -> LoaderPin:
    """The pin in ``<root>/components/versions.py``; this checkout's when ``root`` has none."""
    path = root / VERSIONS_FILE
    if not path.is_file():
        from components import versions

        return LoaderPin(versions.MODEL_LOADER_IMAGE_TAG, versions.MODEL_LOADER_IMAGE_DIGEST)
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and target.id in (TAG_NAME, DIGEST_NAME) and value:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                found[target.id] = ValueError
    tag, digest = found.get(TAG_NAME), found.get(DIGEST_NAME)
    if not isinstance(tag, str) or not tag:
        raise UsageError(f"{path}: {TAG_NAME} = {tag!r}: allowed a non-empty string literal")
    if digest is not None and not (isinstance(digest, str) and digest.startswith("sha256:")):
        raise UsageError(
            f"{path}: {DIGEST_NAME} = {digest!r}: allowed None or a 'sha256:<64 hex>' literal"
        )
    return LoaderPin(tag, digest)
