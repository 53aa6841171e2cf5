"""Lifecycle rules: what the engine will do with the graph on update and destroy.

The other rules check what a resource *is*; these check what happens to it over the
stack's life (issue 14, item 2):

* ``lifecycle-destroy-order``: Pulumi deletes a resource before everything it depends
  on (its dependencies, its parent, its provider) and may delete unrelated resources in
  any order. An object a controller finalizes (Ingress, Service of type LoadBalancer,
  TargetGroupBinding, Karpenter NodePool/EC2NodeClass/NodeClaim, PersistentVolumeClaim)
  only disappears once the controller has removed what it stands for (ALB/NLB and
  target groups, instances, EBS volumes). So it must be destroyed before the controller
  and everything the controller needs to finish: its identity (Pod Identity association,
  role, policies), the nodes it runs on, the add-ons its pods need (CoreDNS, VPC CNI,
  kube-proxy, the Pod Identity agent) and every Kubernetes access entry of the stack.
  "Destroyed before" is reachability on the graph's destroy edges. And every Kubernetes
  object is destroyed (or replaced) before the cluster access of the identities that run
  updates (the ``AmazonEKSClusterAdminPolicy`` associations: admins and the CI deploy
  role), or a destroy run by CI removes its own access while deletes are pending.
* ``lifecycle-fixed-name-replace``: a fixed physical name with the default
  create-before-delete replacement fails with "already exists"; such resources need
  ``deleteBeforeReplace`` (replacing properties: :mod:`policy.replacement`), and the
  delete must be able to succeed: not for a retained resource (kept, so the create
  collides with it) nor for an ECR repository without ``forceDelete`` (its delete fails
  once it holds an image). Protected resources are exempt: the engine refuses their
  replacement before any step.
* ``lifecycle-secrets-provider``: ``Pulumi.<stack>.yaml`` carries no ciphertext its own
  stack cannot decrypt: the committed file names the provider only, ``pulumi stack init``
  writes the ``encryptedkey``, ``secure:`` values sit next to it (the config loader's
  rule, :func:`stacks.schema.secrets.stack_file_secrets_problems`).
* ``lifecycle-retained-dependencies``: a protected or retained resource must not depend
  on one that a destroy deletes (a retained cluster whose role is deleted is broken).
* ``lifecycle-crd-order``: a custom resource is applied after (and deleted before) what
  installs its CRD.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from policy.core import (
    Finding,
    Resource,
    Rule,
    Stack,
    as_list,
    get_path,
    is_unknown,
)
from policy.replacement import FIXED_NAME_TYPES, REPLACEMENT_TABLE
from stacks.schema.secrets import secure_paths, stack_file_secrets_problems

# --------------------------------------------------------------------------- type tokens

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART_V4 = "kubernetes:helm.sh/v4:Chart"
HELM_TYPES = (HELM_RELEASE, HELM_CHART_V4)
EKS_ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY_ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
POD_IDENTITY_ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
IAM_ROLE = "aws:iam/role:Role"
ROLE_GRANTS = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/rolePoliciesExclusive:RolePoliciesExclusive",
    "aws:iam/rolePolicyAttachmentsExclusive:RolePolicyAttachmentsExclusive",
)
IDENTITY_TYPES = (POD_IDENTITY_ASSOCIATION, IAM_ROLE, *ROLE_GRANTS)
CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"

RUNTIME_ADDONS = ("coredns", "vpc-cni", "kube-proxy", "eks-pod-identity-agent")
"""EKS add-ons a controller's pods need to run and reach AWS: DNS, pod networking,
Service routing, Pod Identity credentials."""

BUILT_IN_GROUPS = frozenset(
    {
        "core",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
        "certificates.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "resource.k8s.io",
        "events.k8s.io",
    }
)
"""API groups the API server serves without a CRD."""

NOT_OBJECTS = frozenset({"helm.sh", "yaml", "kustomize"})
"""``kubernetes:`` type groups that are Pulumi components, not API objects."""

CRD_INSTALLERS: dict[str, tuple[str, ...]] = {
    # chart (last path segment of the chart reference) -> API groups its crds/ holds
    "karpenter-crd": ("karpenter.sh", "karpenter.k8s.aws"),
    "karpenter": ("karpenter.sh", "karpenter.k8s.aws"),
    # crds/crds.yaml and crds/gateway-crds.yaml of chart 3.5.0
    "aws-load-balancer-controller": ("elbv2.k8s.aws", "aga.k8s.aws", "gateway.k8s.aws"),
    "keda": ("keda.sh", "eventing.keda.sh"),
    "kube-prometheus-stack": ("monitoring.coreos.com",),
    "prometheus-operator-crds": ("monitoring.coreos.com",),
}
"""Helm charts and the CRD groups they install (``crds/`` or templates). A chart
installed with ``skipCrds`` installs none (``CRD_TEMPLATE_CHARTS`` excepted)."""

CRD_MANIFESTS: dict[str, tuple[str, ...]] = {
    "/aws-load-balancer-controller/crds/crds.yaml": ("elbv2.k8s.aws",),
}
"""Manifest files (``kubernetes:yaml/v2:ConfigFile`` ``file``, by path suffix) -> the CRD
groups they hold."""
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"

CRD_TEMPLATE_CHARTS = frozenset({"karpenter-crd", "keda", "prometheus-operator-crds"})
"""Charts that ship their CRDs as templates (installed and upgraded like any object,
regardless of ``skipCrds``): karpenter-crd and prometheus-operator-crds are CRD-only
charts; KEDA renders its CRDs from templates when ``crds.install`` is true."""


def _k8s_type(type_token: str) -> tuple[str, str, str] | None:
    """``kubernetes:<group>/<version>:<Kind>`` -> (group, version, kind)."""
    match = re.fullmatch(r"kubernetes:([^/]+)/([^:]+):(.+)", type_token)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _kind(resource: Resource) -> str | None:
    parsed = _k8s_type(resource.type)
    return parsed[2] if parsed else None


def _group(resource: Resource) -> str | None:
    parsed = _k8s_type(resource.type)
    return parsed[0] if parsed else None


def _chart(resource: Resource) -> str:
    """The chart's short name (``oci://.../karpenter`` -> ``karpenter``)."""
    chart = str(resource.props.get("chart") or "")
    return chart.rstrip("/").rsplit("/", 1)[-1]


def _label(resource: Resource) -> str:
    return f"{resource.type.rsplit(':', 1)[-1]} {resource.name}"


def _component(stack: Stack, resource: Resource) -> str | None:
    """URN of the outermost ``mlstack:`` component holding ``resource``."""
    outer: str | None = None
    seen: set[str] = set()
    current = stack.get(resource.parent)
    while current is not None and current.urn not in seen:
        seen.add(current.urn)
        if current.type.startswith("mlstack:"):
            outer = current.urn
        current = stack.get(current.parent)
    return outer


# --------------------------------------------------------------------------- destroy graph


def destroy_edges(resource: Resource) -> tuple[str, ...]:
    """URNs a destroy deletes only after ``resource``: its dependencies, parent, provider."""
    edges = list(resource.dependencies)
    if resource.parent:
        edges.append(resource.parent)
    if resource.provider:
        edges.append(resource.provider)
    return tuple(edges)


def deleted_after(stack: Stack, start: Resource) -> set[str]:
    """Every URN a destroy deletes after ``start`` (transitively), ``start`` excluded."""
    found: set[str] = set()
    todo = list(destroy_edges(start))
    while todo:
        urn = todo.pop()
        if urn in found:
            continue
        found.add(urn)
        resource = stack.get(urn)
        if resource is not None:
            todo.extend(destroy_edges(resource))
    return found


def destroy_order(stack: Stack) -> list[str]:
    """One order a destroy may take (reverse topological: dependents first)."""
    dependents: dict[str, set[str]] = {r.urn: set() for r in stack.resources}
    blocked: dict[str, int] = {}
    for resource in stack.resources:
        edges = {u for u in destroy_edges(resource) if u in dependents}
        for urn in edges:
            dependents[urn].add(resource.urn)
    for urn, users in dependents.items():
        blocked[urn] = len(users)
    ready = sorted(urn for urn, count in blocked.items() if count == 0)
    order: list[str] = []
    while ready:
        urn = ready.pop(0)
        order.append(urn)
        resource = stack.get(urn)
        assert resource is not None
        for edge in sorted({u for u in destroy_edges(resource) if u in dependents}):
            blocked[edge] -= 1
            if blocked[edge] == 0:
                ready.append(edge)
    return order


# --------------------------------------------------------------------------- controllers

LB_CONTROLLER = "aws-load-balancer-controller"
KARPENTER = "karpenter"
EBS_CSI = "aws-ebs-csi-driver"

FINALIZED_KINDS: dict[tuple[str, str], str] = {
    ("networking.k8s.io", "Ingress"): LB_CONTROLLER,
    ("core", "Service"): LB_CONTROLLER,  # type LoadBalancer only (see _finalized_by)
    ("elbv2.k8s.aws", "TargetGroupBinding"): LB_CONTROLLER,
    ("karpenter.sh", "NodePool"): KARPENTER,
    ("karpenter.sh", "NodeClaim"): KARPENTER,
    ("karpenter.k8s.aws", "EC2NodeClass"): KARPENTER,
    ("core", "PersistentVolumeClaim"): EBS_CSI,
}
"""(API group, kind) -> the controller whose finalizer removes what the object stands for."""

CONTROLLER_TITLES = {
    LB_CONTROLLER: "the AWS Load Balancer Controller",
    KARPENTER: "Karpenter",
    EBS_CSI: "the EBS CSI driver",
}


def _finalized_by(resource: Resource) -> str | None:
    parsed = _k8s_type(resource.type)
    if parsed is None:
        return None
    controller = FINALIZED_KINDS.get((parsed[0], parsed[2]))
    if controller is None:
        return None
    if parsed[2] == "Service" and get_path(resource.props, "spec", "type") != "LoadBalancer":
        return None
    if (
        parsed[2] == "PersistentVolumeClaim"
        and get_path(resource.props, "spec", "storageClassName") == ""
    ):
        return None  # no class: only a pre-made volume binds it, no driver provisions one
    return controller


def _controllers(stack: Stack, controller: str) -> list[Resource]:
    """The releases (or EKS add-on) that run ``controller``."""
    found = [r for r in stack.of_type(*HELM_TYPES) if _chart(r) == controller]
    found += [r for r in stack.of_type(EKS_ADDON) if r.props.get("addonName") == controller]
    return found


def _identity(stack: Stack, controller: Resource) -> list[Resource]:
    """The controller's identity: the roles it depends on (IRSA annotation, add-on role),
    the Pod Identity associations it depends on or (for a Helm release) that share its
    component, their roles, and every grant of those roles. Other roles of the component
    (e.g. the role of the nodes Karpenter launches) are not the controller's identity."""
    component = _component(stack, controller) if controller.type in HELM_TYPES else None
    direct = set(controller.dependencies)
    seeds = [
        r
        for r in stack.of_type(*IDENTITY_TYPES)
        if r.urn in direct
        or (
            component is not None
            and r.type == POD_IDENTITY_ASSOCIATION
            and _component(stack, r) == component
        )
    ]
    roles = {r.urn for r in seeds if r.type == IAM_ROLE}
    roles |= {
        u
        for r in seeds
        if r.type == POD_IDENTITY_ASSOCIATION
        for u in r.dependencies
        if (dep := stack.get(u)) is not None and dep.type == IAM_ROLE
    }
    grants = [
        r
        for r in stack.of_type(POD_IDENTITY_ASSOCIATION, *ROLE_GRANTS)
        if roles & set(r.dependencies)
    ]
    by_urn = {r.urn: r for r in [*seeds, *grants]}
    by_urn.update({u: r for u in roles if (r := stack.get(u)) is not None})
    return sorted(by_urn.values(), key=lambda r: r.urn)


def _is_gpu_group(group: Resource) -> bool:
    ami = str(group.props.get("amiType") or "")
    types = [str(t) for t in as_list(group.props.get("instanceTypes"))]
    return (
        "NVIDIA" in ami
        or "NEURON" in ami
        or any(re.match(r"(p\d|g\d|inf\d|trn\d|dl\d)", t) for t in types)
    )


def controller_needs(stack: Stack, controller: Resource) -> list[Resource]:
    """What ``controller`` needs to finish its finalizers: itself, its identity, the
    system nodes, the runtime add-ons and every Kubernetes access entry of the stack."""
    needs: dict[str, Resource] = {controller.urn: controller}
    for resource in _identity(stack, controller):
        needs[resource.urn] = resource
    for group in stack.of_type(NODE_GROUP):
        if not _is_gpu_group(group):
            needs[group.urn] = group
    for addon in stack.of_type(EKS_ADDON):
        if addon.props.get("addonName") in RUNTIME_ADDONS and addon.urn != controller.urn:
            needs[addon.urn] = addon
    for entry in stack.of_type(ACCESS_ENTRY, ACCESS_POLICY_ASSOCIATION):
        if str(entry.props.get("type") or "STANDARD") == "STANDARD":
            needs[entry.urn] = entry
    rest = sorted((r for r in needs.values() if r.urn != controller.urn), key=lambda r: r.urn)
    return [controller, *rest]


UPDATER_ACCESS_POLICIES = ("AmazonEKSClusterAdminPolicy",)
"""EKS access policies of the identities that run ``pulumi up``/destroy (admins, CI deploy):
reading identities (preview, drift) get view policies."""


def updater_access(stack: Stack) -> list[Resource]:
    """The access policy associations (and their entries) of identities that run updates."""
    found: list[Resource] = []
    for association in stack.of_type(ACCESS_POLICY_ASSOCIATION):
        policy = str(association.props.get("policyArn") or "").rsplit("/", 1)[-1]
        if policy in UPDATER_ACCESS_POLICIES:
            found.append(association)
            found += [
                entry
                for urn in association.dependencies
                if (entry := stack.get(urn)) is not None and entry.type == ACCESS_ENTRY
            ]
    return found


def _kubernetes_outlive_updater_access(stack: Stack) -> Iterator[Finding]:
    access = updater_access(stack)
    if not access:
        return
    for resource in stack.resources:
        if not resource.type.startswith("kubernetes:"):
            continue
        after = deleted_after(stack, resource)
        early = [a for a in access if a.urn not in after]
        if early:
            names = ", ".join(_label(a) for a in early[:4])
            more = f" and {len(early) - 4} more" if len(early) > 4 else ""
            yield (
                resource.urn,
                f"{_label(resource)} does not depend on {names}{more}: a destroy or "
                "replacement run by that identity may remove its cluster access while this "
                "delete is pending; make the Kubernetes provider depend on it "
                "(EksCluster.connect(updater_access))",
            )


def lifecycle_destroy_order(stack: Stack) -> Iterator[Finding]:
    yield from _kubernetes_outlive_updater_access(stack)
    needs_cache: dict[str, list[Resource]] = {}
    for resource in stack.resources:
        controller_name = _finalized_by(resource)
        if controller_name is None:
            continue
        title = CONTROLLER_TITLES[controller_name]
        controllers = _controllers(stack, controller_name)
        if not controllers:
            if resource.type.endswith(":Service"):
                continue  # no LB Controller: EKS's in-control-plane cloud controller serves it
            yield (
                resource.urn,
                f"{_label(resource)} is finalized by {title}, which the stack does not "
                "install: its finalizer would never be removed and a destroy hangs",
            )
            continue
        after = deleted_after(stack, resource)
        for controller in controllers:
            if controller.urn not in needs_cache:
                needs_cache[controller.urn] = controller_needs(stack, controller)
            early = [n for n in needs_cache[controller.urn] if n.urn not in after]
            if early:
                names = ", ".join(_label(n) for n in early[:6])
                more = f" and {len(early) - 6} more" if len(early) > 6 else ""
                yield (
                    resource.urn,
                    f"{_label(resource)} is finalized by {title} ({controller.name}); a "
                    f"destroy may delete {names}{more} before it, and the finalizer hangs: "
                    "make the object (or its controller) depend on them",
                )


# --------------------------------------------------------------------------- fixed names


def _is_set(value: Any) -> bool:
    return is_unknown(value) or (isinstance(value, str) and value != "")


ECR_REPOSITORY = "aws:ecr/repository:Repository"


def _delete_fails(resource: Resource) -> str | None:
    """Why the delete half of a delete-first replacement cannot succeed, or None.

    A protected resource is not asked: the engine refuses to replace it before any step
    (and ``mlstack rollback`` refuses earlier still)."""
    if resource.protect:
        return None
    if resource.retain_on_delete:
        return (
            "it is retained (retainOnDelete): the engine drops it from the state without "
            "deleting it, so the replacement's create meets the kept original under the "
            "same name; protect it (a replacement is then refused up front) or let Pulumi "
            "name it"
        )
    if resource.type == ECR_REPOSITORY and resource.props.get("forceDelete") is not True:
        return (
            "forceDelete is not true: the provider's DeleteRepository (Force=false) fails "
            "with RepositoryNotEmptyException once it holds an image; set forceDelete "
            "(mlstack:serving.loaderRepository.forceDelete) or protect it"
        )
    return None


def lifecycle_fixed_name_replace(stack: Stack) -> Iterator[Finding]:
    for resource in stack.of_type(*FIXED_NAME_TYPES):
        entry = REPLACEMENT_TABLE[resource.type]
        fixed = [p for p in entry.name_props if _is_set(resource.props.get(p))]
        colliding = entry.collision_props()
        if not fixed or not colliding:
            continue
        named = f"{_label(resource)} has a fixed name ({fixed[0]}={resource.props.get(fixed[0])!r})"
        if not resource.delete_before_replace:
            yield (
                resource.urn,
                f"{named} and a change to any of {', '.join(colliding)} replaces it: "
                "create-before-delete fails with 'already exists'; set deleteBeforeReplace "
                "or let Pulumi name it",
            )
            continue
        reason = _delete_fails(resource)
        if reason:
            yield (
                resource.urn,
                f"{named} and replaces delete-first, but the delete cannot succeed: {reason}",
            )


# --------------------------------------------------------------------------- secrets provider

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def stack_name(stack: Stack) -> str | None:
    """The stack name from the URNs (``urn:pulumi:<stack>::<project>::...``)."""
    for resource in stack.resources:
        parts = resource.urn.split(":", 3)
        if len(parts) == 4 and parts[0] == "urn" and parts[1] == "pulumi":
            return parts[2].split("::", 1)[0]
    return None


def _load_stack_file(stack: Stack) -> tuple[str, Mapping[str, Any]] | None:
    if stack.stack_file is not None:
        return stack.stack_file_path or "Pulumi.<stack>.yaml", stack.stack_file
    name = stack_name(stack)
    if not name:
        return None
    path = PROJECT_ROOT / f"Pulumi.{name}.yaml"
    if not path.is_file():
        return None
    from stacks.stack_yaml import load_stack_yaml

    data = load_stack_yaml(path.read_text(encoding="utf-8")) or {}
    return (path.name, data) if isinstance(data, Mapping) else None


def secure_keys(stack_file: Mapping[str, Any]) -> list[str]:
    """Config keys of a stack file that hold ``secure:`` values."""
    return secure_paths(stack_file)


def _stack_file_known(stack: Stack) -> str | None:
    return None if _load_stack_file(stack) is not None else "no Pulumi.<stack>.yaml found"


def lifecycle_secrets_provider(stack: Stack) -> Iterator[Finding]:
    loaded = _load_stack_file(stack)
    if loaded is None:
        return
    path, data = loaded
    from_path = re.fullmatch(r"Pulumi\.(.+)\.yaml", Path(path).name)
    name = from_path.group(1) if from_path else stack_name(stack) or "<stack>"
    for problem in stack_file_secrets_problems(data, name):
        yield None, f"{path}: {problem.render()}"


# --------------------------------------------------------------------------- retained


def _kept(resource: Resource) -> bool:
    return resource.protect or resource.retain_on_delete


def lifecycle_retained_dependencies(stack: Stack) -> Iterator[Finding]:
    for resource in stack.resources:
        if not resource.custom or not _kept(resource):
            continue
        deleted = [
            dep
            for urn in resource.dependencies
            if (dep := stack.get(urn)) is not None
            and dep.custom
            and not dep.type.startswith("pulumi:providers:")
            and not _kept(dep)
        ]
        if deleted:
            yield (
                resource.urn,
                f"{_label(resource)} is kept on destroy (protect/retainOnDelete) but depends "
                f"on {', '.join(_label(d) for d in deleted[:6])}, which a destroy deletes: "
                "retain those too (or stop depending on them)",
            )


# --------------------------------------------------------------------------- CRD order


def crd_installers(stack: Stack, group: str) -> list[Resource]:
    """Resources in the stack that install the CRDs of API ``group``."""
    found: list[Resource] = []
    for resource in stack.of_type(*HELM_TYPES):
        chart = _chart(resource)
        if group not in CRD_INSTALLERS.get(chart, ()):
            continue
        skips = resource.props.get("skipCrds") is True or resource.props.get("skipCrds") == "true"
        if skips and chart not in CRD_TEMPLATE_CHARTS:
            continue
        if chart == "keda" and get_path(resource.props, "values", "crds", "install") is False:
            continue
        found.append(resource)
    for crd in stack.of_type(CRD_TYPE):
        if get_path(crd.props, "spec", "group") == group:
            found.append(crd)
    for manifest in stack.of_type(CONFIG_FILE):
        path = str(manifest.props.get("file") or "")
        if any(path.endswith(k) and group in v for k, v in CRD_MANIFESTS.items()):
            found.append(manifest)
    return found


def _custom_resources(stack: Stack) -> Iterable[tuple[Resource, str]]:
    for resource in stack.resources:
        parsed = _k8s_type(resource.type)
        if parsed is None:
            continue
        group = parsed[0]
        if group in BUILT_IN_GROUPS or group in NOT_OBJECTS:
            continue
        yield resource, group


def lifecycle_crd_order(stack: Stack) -> Iterator[Finding]:
    for resource, group in _custom_resources(stack):
        installers = crd_installers(stack, group)
        if not installers:
            yield (
                resource.urn,
                f"{_label(resource)} ({group}): nothing in the stack installs its CRD",
            )
            continue
        after = deleted_after(stack, resource)
        if not any(i.urn in after for i in installers):
            yield (
                resource.urn,
                f"{_label(resource)} ({group}) does not depend on "
                f"{' or '.join(_label(i) for i in installers)}, which installs its CRD: "
                "the apply can race the CRD and a destroy can remove the CRD first",
            )


def _has_custom_resources(stack: Stack) -> str | None:
    return None if any(True for _ in _custom_resources(stack)) else "no custom resources"


def _has_finalized(stack: Stack) -> str | None:
    found = any(_finalized_by(r) for r in stack.resources) or (
        any(r.type.startswith("kubernetes:") for r in stack.resources)
        and bool(updater_access(stack))
    )
    return None if found else "no object a controller finalizes, no updater's cluster access"


def _has_kept(stack: Stack) -> str | None:
    return None if any(_kept(r) for r in stack.resources) else "nothing protected or retained"


LIFECYCLE_RULES: list[Rule] = [
    Rule(
        "lifecycle-destroy-order",
        "Objects a controller finalizes are destroyed before that controller, its identity, "
        "its nodes, CoreDNS and the stack's Kubernetes access entries; every Kubernetes "
        "object before the cluster access of the identities that run updates.",
        "high",
        "mandatory",
        (),
        lifecycle_destroy_order,
        remediation="Depend the object on its controller and the controller on what it "
        "needs (EksCluster.workload_ready, the CI access entries); the Kubernetes provider "
        "on the updaters' access (EksCluster.connect).",
        precondition=_has_finalized,
    ),
    Rule(
        "lifecycle-fixed-name-replace",
        "Resources with a fixed physical name replace delete-first (deleteBeforeReplace), "
        "and only where that delete can succeed.",
        "high",
        "mandatory",
        FIXED_NAME_TYPES,
        lifecycle_fixed_name_replace,
        remediation="Set ResourceOptions(delete_before_replace=True) or drop the fixed name; "
        "a retained fixed name needs protect, an ECR repository force_delete.",
    ),
    Rule(
        "lifecycle-secrets-provider",
        "A stack file carries no ciphertext its stack cannot decrypt: the committed file names "
        "its secrets provider only; secure: values only next to the encryptedkey stack init "
        "wrote.",
        "critical",
        "mandatory",
        (),
        lifecycle_secrets_provider,
        remediation="Delete foreign encryptedkey and secure: lines, run the `pulumi stack init "
        "<stack> --secrets-provider=...` line `mlstack bootstrap` prints, then set secrets with "
        "`pulumi config set --secret` and commit the file.",
        precondition=_stack_file_known,
    ),
    Rule(
        "lifecycle-retained-dependencies",
        "A protected or retained resource depends only on resources a destroy keeps too.",
        "high",
        "mandatory",
        (),
        lifecycle_retained_dependencies,
        remediation="Give the dependency retainOnDelete (and protect where it holds state).",
        precondition=_has_kept,
    ),
    Rule(
        "lifecycle-crd-order",
        "Every custom resource depends on the release or resource that installs its CRD.",
        "high",
        "mandatory",
        (),
        lifecycle_crd_order,
        remediation="depends_on the CRD chart (or CustomResourceDefinition) release.",
        precondition=_has_custom_resources,
    ),
]
"""The lifecycle-* family."""

RULES = LIFECYCLE_RULES
"""This area's rules, for the registry (:data:`policy.rules.AREAS`)."""
