"""Reading ``Pulumi.<stack>.yaml`` text: the one YAML loader for stack files.

The Pulumi engine reads a stack file with go-yaml v3 (``sdk/go/common/encoding/marshal.go``
``yamlMarshaler.Unmarshal``). :func:`load_stack_yaml` refuses what go-yaml refuses and
resolves what it resolves, so offline tools never read a file the engine would not, nor
read it differently:

* the same key twice in one mapping (PyYAML's ``safe_load`` silently keeps the last),
  named with both lines;
* excessive aliasing (the "billion laughs" shape): counted while reading, by go-yaml's
  own rule, before anything walks the alias-expanded tree;
* an anchor whose value contains its own alias;
* merge keys (``<<: *defaults``) are resolved as go-yaml does: the mapping's own keys
  win, then the first merged mapping that has the key.

Every reader of stack files (config loader, parity, policy, ``mlstack model pin``,
tests, benchmarks) uses it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MERGE_TAG = "tag:yaml.org,2002:merge"

# go-yaml v3.0.1 decode.go, allowedAliasRatio and decoder.unmarshal: past 1000 values read
# and 100 read through aliases, the share read through aliases may be at most 99% up to
# 400,000 values, falling linearly to 10% at 4,000,000.
ALIAS_MIN_COUNT = 100
ALIAS_MIN_DECODES = 1000
ALIAS_RANGE_LOW = 400_000
ALIAS_RANGE_HIGH = 4_000_000


class DuplicateKeyError(ConstructorError):
    """A mapping holds the same key twice."""


class ExcessiveAliasingError(ComposerError):
    """Aliases expand the document far beyond what is written (or into itself)."""


def allowed_alias_ratio(decode_count: int) -> float:
    """The share of values go-yaml lets come from aliases after ``decode_count`` values."""
    if decode_count <= ALIAS_RANGE_LOW:
        return 0.99
    if decode_count >= ALIAS_RANGE_HIGH:
        return 0.10
    span = ALIAS_RANGE_HIGH - ALIAS_RANGE_LOW
    return 0.99 - 0.89 * ((decode_count - ALIAS_RANGE_LOW) / span)


class _Alias:
    """Where the text says ``*name``: the anchored node, kept apart until checked."""

    __slots__ = ("mark", "name", "target")

    def __init__(self, target: Node, name: str, mark: Mark) -> None:
        self.target = target
        self.name = name
        self.mark = mark


def _is_merge(node: object) -> bool:
    return isinstance(node, ScalarNode) and node.tag == MERGE_TAG


def _check_aliasing(root: Node) -> None:
    """Count the values go-yaml would read, as it reads them; refuse what it refuses.

    Follows go-yaml v3.0.1 decode.go: ``unmarshal`` counts every node it reads (aliases
    and the nodes read through them count as aliased), ``alias`` refuses an anchor inside
    its own value, ``mapping`` skips ``<<`` and ``merge`` then reads the parent's keys
    (unless already merging) and the merged value (a sequence's items, not the sequence).
    """
    decodes = 1  # the document node
    aliased = 0
    active: set[int] = set()
    outer: list[_Alias] = []
    # (node or alias, alias depth, merging) to read, or ("exit", alias) after an alias.
    todo: list[tuple[Any, int, bool]] = [(root, 0, False)]
    while todo:
        item, depth, merging = todo.pop()
        if isinstance(item, str):  # leaving an alias
            active.discard(id(outer.pop()))
            continue
        decodes += 1
        if depth:
            aliased += 1
        if (
            aliased > ALIAS_MIN_COUNT
            and decodes > ALIAS_MIN_DECODES
            and aliased / decodes > allowed_alias_ratio(decodes)
        ):
            culprit = outer[0] if outer else item
            _refuse_aliasing(culprit, decodes, aliased)
        if isinstance(item, _Alias):
            if id(item) in active:
                raise ExcessiveAliasingError(
                    None,
                    None,
                    f"anchor &{item.name} contains its own alias *{item.name}, so it never "
                    "ends; the Pulumi engine's YAML parser refuses it too: remove the alias",
                    item.mark,
                )
            active.add(id(item))
            outer.append(item)
            todo.append(("exit", depth, merging))
            todo.append((item.target, depth + 1, merging))
        elif isinstance(item, SequenceNode):
            todo.extend((child, depth, False) for child in reversed(item.value))
        elif isinstance(item, MappingNode):
            merge = next((v for k, v in item.value if _is_merge(k)), None)
            later: list[tuple[Any, int, bool]] = []
            if merge is not None:
                if not merging:
                    later += [(key, depth, False) for key, _ in item.value]
                merged = merge.value if isinstance(merge, SequenceNode) else [merge]
                later += [(m, depth, True) for m in merged]
            pairs = [(x, depth, False) for k, v in item.value if not _is_merge(k) for x in (k, v)]
            todo.extend(reversed(pairs + later))


def _refuse_aliasing(culprit: Any, decodes: int, aliased: int) -> None:
    if isinstance(culprit, _Alias):
        where = f"expanding *{culprit.name} (anchor &{culprit.name} at line "
        where += f"{culprit.target.start_mark.line + 1})"
        mark = culprit.mark
    else:
        where, mark = "here", culprit.start_mark
    raise ExcessiveAliasingError(
        None,
        None,
        f"excessive aliasing: {where} makes {aliased} of the first {decodes} values come from "
        f"aliases (allowed: at most {allowed_alias_ratio(decodes):.0%} once past "
        f"{ALIAS_MIN_DECODES} values); the Pulumi engine's YAML parser (go-yaml) refuses it "
        "('document contains excessive aliasing'): write the values out, or alias less",
        mark,
    )


def _target(node: Any) -> Node:
    return node.target if isinstance(node, _Alias) else node


def _resolve_aliases(root: Node) -> None:
    """Put each alias's node in its place and refuse duplicate keys (go-yaml's rule:
    two scalar keys with the same text, ``<<`` included), once per distinct node."""
    seen: set[int] = set()
    todo: list[Node] = [root]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            node.value = [_target(v) for v in node.value]
            todo.extend(node.value)
        elif isinstance(node, MappingNode):
            first: dict[str, Node] = {}
            pairs: list[tuple[Node, Node]] = []
            for written_key, written_value in node.value:
                key = _target(written_key)
                value = _target(written_value)
                if isinstance(key, ScalarNode):
                    text = "<<" if _is_merge(key) else str(key.value)
                    earlier = first.setdefault(text, key)
                    if earlier is not key:
                        raise DuplicateKeyError(
                            "while reading a mapping",
                            node.start_mark,
                            f"duplicate key {text!r} (first at line "
                            f"{earlier.start_mark.line + 1}); the Pulumi engine refuses it: "
                            "keep one",
                            key.start_mark,
                        )
                pairs.append((key, value))
                todo += [key, value]
            node.value = pairs


class _StackLoader(yaml.SafeLoader):
    """SafeLoader that reads a stack file as the Pulumi engine's go-yaml does."""

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        if self.check_event(AliasEvent):
            event = self.get_event()
            anchor = str(event.anchor)
            if anchor not in self.anchors:
                raise ComposerError(
                    None, None, f"found undefined alias *{anchor}", event.start_mark
                )
            return _Alias(self.anchors[anchor], anchor, event.start_mark)  # type: ignore[return-value]
        return super().compose_node(parent, index)  # type: ignore[no-any-return]

    def get_single_node(self) -> Node | None:  # type: ignore[override]
        node: Node | None = super().get_single_node()  # type: ignore[no-untyped-call]
        if node is not None:
            _check_aliasing(node)
            _resolve_aliases(node)
        return node


def load_stack_yaml(text: str) -> Any:
    """Parse stack-file text like ``yaml.safe_load``, refusing what the engine refuses
    (duplicate keys, excessive or self-containing aliases, nesting deeper than Python
    reads); merge keys resolve as the engine resolves them."""
    try:
        return yaml.load(text, Loader=_StackLoader)
    except RecursionError:
        raise ComposerError(
            None, None, "nested too deeply to read (thousands of levels); flatten it", None
        ) from None
