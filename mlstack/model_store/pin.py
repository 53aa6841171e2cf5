"""``mlstack model pin <stack> <name> <version>``: set a model's artifactVersion in place.

Edits ``Pulumi.<stack>.yaml`` with ruamel.yaml's round-trip mode, so comments,
key order, quoting, flow lists and indentation stay as they were; only the
``artifactVersion`` of that one entry of ``mlstack:models`` changes. The edited
file is validated with the same loader ``mlstack validate`` uses before it
replaces the original (atomically, through a symlink); a version the schema rejects
leaves the file untouched.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from mlstack.errors import UsageError
from mlstack.files import write_atomic
from stacks.config import ConfigError, load_config_file, stack_file
from stacks.stack_yaml import load_stack_yaml

MODELS_KEY = "mlstack:models"
VERSION_KEY = "artifactVersion"


@dataclass(frozen=True)
class PinResult:
    path: Path
    name: str
    previous: str | None
    version: str

    @property
    def changed(self) -> bool:
        return self.previous != self.version


def _round_trip(text: str) -> tuple[YAML, Any]:
    _, indent, block_seq_indent = load_yaml_guess_indent(text)
    loader = YAML(typ="rt")
    loader.preserve_quotes = True
    loader.width = 4096
    offset = block_seq_indent or 0
    mapping = offset if offset else (indent or 2)
    loader.indent(mapping=mapping, sequence=indent or 2, offset=offset)
    return loader, loader.load(text)


def _scalar(version: str, previous: Any) -> Any:
    """The new value, quoted like the previous one, and always quoted if YAML would
    otherwise read it as something other than this string (``1.10`` -> 1.1)."""
    try:
        plain_reads_back = pyyaml.safe_load(version) == version if version else False
    except pyyaml.YAMLError:  # '*x', '"': not a plain scalar; quoted it is fine (or refused)
        plain_reads_back = False
    if isinstance(previous, SingleQuotedScalarString):
        return SingleQuotedScalarString(version)
    if isinstance(previous, DoubleQuotedScalarString) or not plain_reads_back:
        return DoubleQuotedScalarString(version)
    return version


def pin_version(stack: str, name: str, version: str, root: Path) -> PinResult:
    """Set ``artifactVersion`` of model ``name`` in ``Pulumi.<stack>.yaml`` under ``root``."""
    path = stack_file(stack, root)
    if not path.is_file():
        available = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml")
        )
        raise UsageError(f"no stack file {path}; stacks here: {', '.join(available) or 'none'}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None
    try:
        # The stack-file loader first: one-line errors, duplicate keys refused.
        load_stack_yaml(text)
        loader, document = _round_trip(text)
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path.name} is not valid YAML{where}: {reason}") from None
    config = document.get("config") if isinstance(document, CommentedMap) else None
    models = config.get(MODELS_KEY) if isinstance(config, CommentedMap) else None
    if not isinstance(models, CommentedSeq):
        raise UsageError(f"{path.name} has no {MODELS_KEY} list; add the model there first")
    entry = next((m for m in models if isinstance(m, CommentedMap) and m.get("name") == name), None)
    if entry is None:
        known = ", ".join(str(m.get("name")) for m in models if isinstance(m, CommentedMap))
        raise UsageError(
            f"model {name!r} is not in {MODELS_KEY} of {path.name} (models: {known or 'none'}); "
            "add an entry for it first"
        )
    previous = entry.get(VERSION_KEY)
    value = _scalar(version, previous)
    if VERSION_KEY in entry:
        entry[VERSION_KEY] = value
    else:
        position = list(entry.keys()).index("name") + 1
        entry.insert(position, VERSION_KEY, value)
    buffer = io.StringIO()
    loader.dump(document, buffer)
    updated = buffer.getvalue()

    # Validate exactly the text that would be written, with the normal loader.
    with tempfile.TemporaryDirectory(prefix="mlstack-pin-") as scratch:
        candidate = stack_file(stack, Path(scratch))
        candidate.write_text(updated, encoding="utf-8")
        try:
            load_config_file(stack, Path(scratch))
        except ConfigError as exc:
            raise UsageError(f"not pinned, {path.name} left unchanged: {exc}") from None

    if updated != text:
        _replace(path, updated)
    return PinResult(
        path=path,
        name=name,
        previous=None if previous is None else str(previous),
        version=version,
    )


def _replace(path: Path, text: str) -> None:
    """Write ``text`` over the stack file atomically, keeping its mode; a symlinked stack
    file is edited through its link (the link stays) (``mlstack.files``)."""
    write_atomic(path, text, what="stack file")
