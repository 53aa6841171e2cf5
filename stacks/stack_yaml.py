"""Reading ``Pulumi.<stack>.yaml`` text: the one YAML loader for stack files.

PyYAML's ``safe_load`` silently keeps the last of two equal keys (``mlstack:owner``
twice); the Pulumi engine's parser refuses such a file. :func:`load_stack_yaml` refuses
it too, naming the key and both lines, so offline tools never read a file the engine
would not. Every reader of stack files (config loader, tests, benchmarks) uses it;
``mlstack model pin`` edits with ruamel.yaml, which refuses duplicates by default.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node


class DuplicateKeyError(ConstructorError):
    """A mapping holds the same key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first: dict[Any, Node] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)  # type: ignore[arg-type]
                try:
                    earlier = first.get(key)
                except TypeError:
                    continue  # unhashable key: SafeLoader reports it
                if earlier is not None:
                    raise DuplicateKeyError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (first at line {earlier.start_mark.line + 1}); "
                        "the Pulumi engine refuses it: keep one",
                        key_node.start_mark,
                    )
                first[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def load_stack_yaml(text: str) -> Any:
    """Parse stack-file text like ``yaml.safe_load``, refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)
