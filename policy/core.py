"""The rule engine shared by the CrossGuard pack and ``mlstack policy``.

Plain Python, no Pulumi import: a rule is a function over a :class:`Stack` (a
list of :class:`Resource` views) that yields ``(urn, message)`` pairs, one per
violation. The pack adapts CrossGuard's ``StackValidationArgs`` to a
:class:`Stack`; ``mlstack policy`` adapts the offline synth graph. Both run the
very same functions.

Results are explicit: ``pass`` (applicable, no violation), ``fail``, ``n/a``
(nothing of the rule's resource types in the stack, or a prod-only rule on a
dev stack) and ``error`` (the rule raised). A crashing rule is never a pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["low", "medium", "high", "critical"]
Enforcement = Literal["mandatory", "advisory"]
Status = Literal["pass", "fail", "n/a", "error"]

UNKNOWN = "[unknown]"
"""How the offline synth marks a value only known after deployment."""

AWS_PROVIDER = "pulumi:providers:aws"
ENVIRONMENT_TAG = "environment"


@dataclass(frozen=True)
class Resource:
    """One resource as the rules see it: type, name, camelCase properties and options."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    provider: str | None = None
    """URN of the resource's explicit provider (None: default provider)."""
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    custom: bool = True
    retain_on_delete: bool = False
    delete_before_replace: bool = False


@dataclass
class Stack:
    """The resources of one stack, with the lookups rules need."""

    resources: list[Resource]
    environment: str | None = None
    """dev / prod; derived from the AWS provider's default tags when not given."""
    stack_file: Mapping[str, Any] | None = None
    """The parsed ``Pulumi.<stack>.yaml`` when the caller knows it (rules on the file)."""
    stack_file_path: str | None = None
    _by_urn: dict[str, Resource] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_urn = {r.urn: r for r in self.resources}
        if self.environment is None:
            self.environment = environment_of(self.resources)

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r.type in types]

    def get(self, urn: str | None) -> Resource | None:
        return self._by_urn.get(urn) if urn else None

    def dependents(self, target: Resource, *types: str) -> list[Resource]:
        """Resources (of ``types``, when given) that depend on ``target``."""
        return [
            r
            for r in self.resources
            if target.urn in r.dependencies and (not types or r.type in types)
        ]

    def dependencies_of(self, source: Resource, *types: str) -> list[Resource]:
        found = [self._by_urn[u] for u in source.dependencies if u in self._by_urn]
        return [r for r in found if not types or r.type in types]

    @property
    def is_prod(self) -> bool:
        """Prod, or unknown (prod rules then apply: unknown is treated strictly)."""
        return self.environment != "dev"


def parse_json(value: Any) -> Any:
    """A JSON document given as text (IAM policies, provider config) as data; else as is."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def provider_tags(provider: Resource) -> dict[str, str]:
    """The ``defaultTags.tags`` of an AWS provider (state keeps it as JSON text)."""
    default_tags = parse_json(provider.props.get("defaultTags"))
    if not isinstance(default_tags, Mapping):
        return {}
    tags = default_tags.get("tags")
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


def environment_of(resources: Iterable[Resource]) -> str | None:
    """The ``environment`` default tag shared by the stack's AWS providers (None if unclear)."""
    found = {provider_tags(r).get(ENVIRONMENT_TAG) for r in resources if r.type == AWS_PROVIDER} - {
        None
    }
    return found.pop() if len(found) == 1 else None


def is_unknown(value: Any) -> bool:
    return value == UNKNOWN


def get_path(value: Any, *path: str | int, default: Any = None) -> Any:
    """``value[path[0]][path[1]]...`` through dicts and lists; ``default`` when missing."""
    current = value
    for part in path:
        if isinstance(part, int):
            if not is_sequence(current) or not -len(current) <= part < len(current):
                return default
            current = current[part]
        else:
            if not isinstance(current, Mapping) or part not in current:
                return default
            current = current[part]
    return current


def is_sequence(value: Any) -> bool:
    """A list-like value (also CrossGuard's list proxies), not a string."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def as_list(value: Any) -> list[Any]:
    """``value`` as a list: None -> [], a list-like -> its items, anything else -> [value]."""
    if value is None:
        return []
    if is_sequence(value):
        return list(value)
    return [value]


def truthy(value: Any) -> bool:
    """Booleans as the providers spell them: True, "true"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


Finding = tuple[str | None, str]
"""(URN of the offending resource or None for the whole stack, message)."""

CheckFn = Callable[[Stack], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A policy: id, what it checks, how bad a violation is and whether it blocks."""

    id: str
    description: str
    severity: Severity
    enforcement: Enforcement
    resource_types: tuple[str, ...]
    """Types the rule inspects; the rule is n/a for a stack holding none of them."""
    check: CheckFn
    prod_only: bool = False
    remediation: str = ""
    precondition: Callable[[Stack], str | None] | None = None
    """Extra applicability test: returns why the rule is n/a, or None (it applies)."""

    def applies_to(self, stack: Stack) -> str | None:
        """None if the rule applies, else the reason it does not."""
        if self.prod_only and not stack.is_prod:
            return "prod only"
        if self.resource_types and not stack.of_type(*self.resource_types):
            return "no " + ", ".join(t.rsplit(":", 1)[-1] for t in self.resource_types)
        if self.precondition is not None:
            return self.precondition(stack)
        return None


@dataclass(frozen=True)
class Violation:
    rule_id: str
    urn: str | None
    message: str

    @property
    def resource_name(self) -> str:
        return self.urn.rsplit("::", 1)[-1] if self.urn else "(stack)"


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    status: Status
    violations: tuple[Violation, ...] = ()
    detail: str = ""
    """Why n/a, or the error text."""

    @property
    def blocking(self) -> bool:
        """A mandatory failure, or any rule error (an error is never a pass)."""
        return self.status == "error" or (
            self.status == "fail" and self.rule.enforcement == "mandatory"
        )


def run_rule(rule: Rule, stack: Stack) -> RuleResult:
    """Run one rule; exceptions become an ``error`` result."""
    reason = rule.applies_to(stack)
    if reason is not None:
        return RuleResult(rule, "n/a", detail=reason)
    try:
        findings = list(rule.check(stack))
    except Exception as exc:
        return RuleResult(rule, "error", detail=f"{type(exc).__name__}: {exc}")
    violations = tuple(Violation(rule.id, urn, message) for urn, message in findings)
    return RuleResult(rule, "fail" if violations else "pass", violations)


def run_rules(stack: Stack, rules: Iterable[Rule]) -> list[RuleResult]:
    return [run_rule(rule, stack) for rule in rules]


def iter_statements(document: Any) -> Iterator[Mapping[str, Any]]:
    """Statements of an IAM policy document (JSON text or data)."""
    doc = parse_json(document)
    if not isinstance(doc, Mapping):
        return
    for statement in as_list(doc.get("Statement")):
        if isinstance(statement, Mapping):
            yield statement
