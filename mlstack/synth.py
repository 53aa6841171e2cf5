"""Offline synth: run the real program under Pulumi's mock monitor, record the graph.

No credentials, no CLI, no network. The same ``stacks.composition.program`` that
``pulumi up`` runs is executed against a recording mock monitor; every resource
registration is captured with its URN, type, name, parent, dependencies,
provider, protect flag and inputs. Secrets are redacted, IDs and ARNs are derived
from names, and the result is sorted, so the same input gives byte-identical
output.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stacks.config import PROJECT_ROOT, StackConfig, load_config_file

PROJECT = "mlstack"
ACCOUNT_ID = "123456789012"
REDACTED = "[secret]"
UNKNOWN = "[unknown]"

_SIG = rpc._special_sig_key
_SECRET_SIG = rpc._special_secret_sig
_RESOURCE_SIG = rpc._special_resource_sig
_ASSET_SIG = rpc._special_asset_sig
_ARCHIVE_SIG = rpc._special_archive_sig
_OUTPUT_SIG = rpc._special_output_value_sig


class SynthError(Exception):
    """The program failed to synthesize (an exception, or an invoke with no offline answer)."""


@dataclass(frozen=True)
class ResourceNode:
    """One registered resource (custom, component or provider) in the graph."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    provider: str | None
    dependencies: tuple[str, ...]
    protect: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    inputs: dict[str, Any]
    delete_before_replace: bool = False
    aliases: tuple[str, ...] = ()
    """Earlier URNs of this resource (``aliases=`` with a new name): the engine matches the
    old state by URN first, then by these (pulumi/pulumi pkg/resource/deploy/
    step_generator.go, ``getOldResource``)."""

    def to_json(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"aliases": list(self.aliases)} if self.aliases else {}
        return extra | {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "provider": self.provider,
            "dependencies": list(self.dependencies),
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "ignoreChanges": list(self.ignore_changes),
            "deleteBeforeReplace": self.delete_before_replace,
            "inputs": self.inputs,
        }


@dataclass(frozen=True)
class InvokeRecord:
    """One data-source call the program made: its token, arguments and provider URN."""

    token: str
    args: dict[str, Any]
    provider: str | None


@dataclass
class ResourceGraph:
    """The synthesized stack: resources sorted by URN, stack outputs, warnings."""

    stack: str
    environment: str
    region: str
    resources: list[ResourceNode]
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    invokes: list[InvokeRecord] = field(default_factory=list)
    """Invokes in call order (not part of the plan JSON)."""
    _index: dict[str, ResourceNode] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _indexed: list[ResourceNode] | None = field(default=None, init=False, repr=False, compare=False)

    def by_type(self, type_token: str) -> list[ResourceNode]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> ResourceNode:
        """The single resource of a type (and name); raises if there is not exactly one."""
        found = [r for r in self.by_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            raise KeyError(f"expected one {type_token} {name or ''}, found {len(found)}")
        return found[0]

    def children(self, urn: str) -> list[ResourceNode]:
        return [r for r in self.resources if r.parent == urn]

    def by_urn(self) -> dict[str, ResourceNode]:
        """The resources by URN, built once per ``resources`` list (a caller that replaces
        or grows the list gets a fresh index), so per-resource lookups stay O(1)."""
        if self._indexed is not self.resources or len(self._index) != len(self.resources):
            self._index = {r.urn: r for r in self.resources}
            self._indexed = self.resources
        return self._index

    def component_of(self, node: ResourceNode) -> ResourceNode | None:
        """The outermost mlstack component that contains ``node`` (None for top level)."""
        index = self.by_urn()
        outer: ResourceNode | None = None
        current = node
        while current.parent and current.parent in index:
            current = index[current.parent]
            if current.type.startswith("mlstack:"):
                outer = current
        return outer

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": 1,
            "project": PROJECT,
            "stack": self.stack,
            "environment": self.environment,
            "region": self.region,
            "resources": [r.to_json() for r in self.resources],
            "outputs": self.outputs,
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------- value cleaning


def clean(value: Any) -> Any:
    """A wire value as plain, stable JSON: secrets redacted, references by URN,
    unknowns marked, whole floats as ints, object keys sorted."""
    if isinstance(value, dict):
        sig = value.get(_SIG)
        if sig == _SECRET_SIG:
            return REDACTED
        if sig == _RESOURCE_SIG:
            return {"$resource": value.get("urn", "")}
        if sig == _OUTPUT_SIG:
            if value.get("secret"):
                return REDACTED
            return clean(value["value"]) if "value" in value else UNKNOWN
        if sig in (_ASSET_SIG, _ARCHIVE_SIG):
            return {"$asset": value.get("path") or value.get("uri") or value.get("hash") or ""}
        return {k: clean(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == rpc.UNKNOWN:
        return UNKNOWN
    return value


def _provider_urn(reference: str) -> str | None:
    """``urn::id`` provider references -> the provider's URN (None for default providers)."""
    return reference.rsplit("::", 1)[0] if reference else None


# --------------------------------------------------------------------------- offline answers

InvokeAnswer = Callable[[Mapping[str, Any], str], dict[str, Any]]


def _answer_get_cluster(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    name = str(args.get("name", "cluster"))
    issuer = f"https://oidc.eks.{region}.amazonaws.com/id/{name.upper().replace('-', '')}"
    return {
        "id": name,
        "name": name,
        "arn": f"arn:aws:eks:{region}:{ACCOUNT_ID}:cluster/{name}",
        "endpoint": f"https://{name}.gr7.{region}.eks.amazonaws.com",
        "version": "1.33",
        "certificateAuthorities": [{"data": "T0ZGTElORS1DQQ=="}],
        "identities": [{"oidcs": [{"issuer": issuer}]}],
        "vpcConfig": {
            "clusterSecurityGroupId": f"sg-{name}-cluster",
            "vpcId": f"vpc-{name}",
            "subnetIds": [],
            "securityGroupIds": [],
            "endpointPrivateAccess": True,
            "endpointPublicAccess": True,
            "publicAccessCidrs": [],
        },
    }


def _answer_get_oidc_provider(args: Mapping[str, Any], region: str) -> dict[str, Any]:
    url = str(args.get("url", "")).removeprefix("https://")
    return {
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{url}",
        "url": url,
        "id": url,
        "clientIdLists": ["sts.amazonaws.com"],
        "thumbprintLists": [],
        "tags": {},
    }


def _lb_id(name: str) -> str:
    """A 16-hex-digit id derived from a resource name (AWS puts a random one there)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


INVOKE_ANSWERS: dict[str, InvokeAnswer] = {
    "aws:eks/getCluster:getCluster": _answer_get_cluster,
    "aws:iam/getOpenIdConnectProvider:getOpenIdConnectProvider": _answer_get_oidc_provider,
}
"""Deterministic offline answers for the invokes the program makes; any other
invoke fails the synth so a new data-source call cannot slip in unanswered."""


def _service_of(type_token: str) -> str:
    module = type_token.split(":")[1].split("/", maxsplit=1)[0] if ":" in type_token else "x"
    return {"cloudwatch": "logs", "ec2": "ec2"}.get(module, module)


def mock_outputs(type_token: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """Deterministic outputs a provider would compute, derived from the resource name."""
    physical = str(inputs.get("name") or name)
    if type_token.startswith("kubernetes:"):
        # Kubernetes objects: nothing in the program reads back their (large) specs; echo
        # only identity fields, so the SDK does not deserialize every pod spec twice.
        keep = ("apiVersion", "kind", "metadata", "namespace", "chart", "version")
        return {"name": physical, **{k: inputs[k] for k in keep if k in inputs}}
    arn = f"arn:aws:{_service_of(type_token)}:{region}:{ACCOUNT_ID}:{physical}"
    state: dict[str, Any] = {"arn": arn, "name": physical, **inputs}
    if type_token == "aws:eks/cluster:Cluster":
        state.update(_answer_get_cluster({"name": physical}, region))
        # A created cluster runs the version it was asked for (the lookup answer is 1.33).
        if inputs.get("version"):
            state["version"] = inputs["version"]
        state["certificateAuthority"] = {"data": "T0ZGTElORS1DQQ=="}
        state["vpcConfig"] = {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": "sg-cluster"}
    elif type_token == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        url = str(inputs.get("url", "")).removeprefix("https://")
        state["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{url}"
    elif type_token in ("aws:iam/role:Role", "aws:iam/policy:Policy"):
        # IAM ARNs carry the path: arn:aws:iam::<account>:role/mlstack/dev/<name>.
        kind = "role" if type_token.endswith(":Role") else "policy"
        path = str(inputs.get("path") or "/")
        state["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:{kind}{path}{physical}"
    elif type_token == "random:index/randomPassword:RandomPassword":
        # Generated by the provider at deploy time; offline a fixed stand-in (secret).
        state["result"] = "[generated at deploy]"
        state["bcryptHash"] = "[generated at deploy]"
    elif type_token == "aws:kms/key:Key":
        state["keyId"] = f"key-{name}"
        state["arn"] = f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/key-{name}"
    elif type_token == "aws:ec2/launchTemplate:LaunchTemplate":
        state["latestVersion"] = 1
    elif type_token == "aws:eks/nodeGroup:NodeGroup":
        # EKS names the node group's Auto Scaling group itself; the program reads it back.
        group = str(inputs.get("nodeGroupName") or name)
        state["resources"] = [{"autoscalingGroups": [{"name": f"eks-{group}-asg"}]}]
    elif type_token == "aws:ecr/repository:Repository":
        state["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{region}.amazonaws.com/{physical}"
        state["arn"] = f"arn:aws:ecr:{region}:{ACCOUNT_ID}:repository/{physical}"
    elif type_token == "aws:ecr/pullThroughCacheRule:PullThroughCacheRule":
        state["registryId"] = ACCOUNT_ID
    elif type_token == "aws:cloudwatch/logGroup:LogGroup":
        state["arn"] = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{physical}"
    elif type_token in ("aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"):
        # ELB names: the name prefix plus a unique suffix; the ARN suffixes are the
        # CloudWatch dimensions (app|net/<name>/<id>, targetgroup/<name>/<id>).
        unique = _lb_id(name)
        lb_name = f"{inputs.get('namePrefix', '')}{unique[:10]}"
        if type_token == "aws:lb/targetGroup:TargetGroup":
            suffix = f"targetgroup/{lb_name}/{unique}"
            resource = suffix
        else:
            kind = "net" if inputs.get("loadBalancerType") == "network" else "app"
            suffix = f"{kind}/{lb_name}/{unique}"
            resource = f"loadbalancer/{suffix}"
            internal = "internal-" if inputs.get("internal") else ""
            state["dnsName"] = f"{internal}{lb_name}-{unique[:8]}.{region}.elb.amazonaws.com"
        state |= {
            "name": lb_name,
            "arn": f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT_ID}:{resource}",
            "arnSuffix": suffix,
        }
    elif type_token in ("aws:lb/listener:Listener", "aws:lb/listenerRule:ListenerRule"):
        kind = "listener-rule" if type_token.endswith("ListenerRule") else "listener"
        state["arn"] = (
            f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT_ID}:{kind}/app/{_lb_id(name)}"
        )
    return state


class _OfflineMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str, errors: list[str]) -> None:
        self.region = region
        self.errors = errors
        self.invokes: list[InvokeRecord] = []

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider-id", dict(args.inputs)
        return f"{args.name}-id", mock_outputs(args.typ, args.name, dict(args.inputs), self.region)

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append(
            InvokeRecord(args.token, clean(dict(args.args)), _provider_urn(args.provider or ""))
        )
        answer = INVOKE_ANSWERS.get(args.token)
        if answer is None:
            self.errors.append(
                f"invoke {args.token} has no offline answer; add one to "
                "mlstack.synth.INVOKE_ANSWERS or avoid the invoke"
            )
            return {}, []
        return answer(dict(args.args), self.region), []


def _alias_urns(urn: str, request: Any) -> tuple[str, ...]:
    """The URNs of the name-only aliases of a registration (the resource's earlier names
    under the same type and parent); other alias forms are not recorded."""
    found: list[str] = []
    for alias in getattr(request, "aliases", ()):
        spec = alias.spec if alias.HasField("spec") else None
        if spec is None or not spec.name or spec.noParent:
            continue
        if spec.type not in ("", request.type) or spec.parentUrn not in ("", request.parent):
            continue
        found.append(f"{urn.rsplit('::', 1)[0]}::{spec.name}")
    return tuple(sorted(set(found)))


class _RecordingMonitor(mocks.MockMonitor):
    def __init__(self, mock: pulumi.runtime.Mocks) -> None:
        super().__init__(mock)
        self.nodes: list[ResourceNode] = []
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the stack out of its children's qualified types; match it so
        # offline URNs equal the ones `pulumi preview` and the stack state show.
        if parent and parent.split("::")[2].rsplit("$", maxsplit=1)[-1] == "pulumi:pulumi:Stack":
            parent = ""
        return super().make_urn(parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
        node = ResourceNode(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent or None,
            custom=bool(request.custom),
            provider=_provider_urn(request.provider),
            dependencies=tuple(sorted(set(request.dependencies))),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            ignore_changes=tuple(request.ignoreChanges),
            inputs=clean(raw),
            delete_before_replace=bool(request.deleteBeforeReplace),
            aliases=_alias_urns(response.urn, request),
        )
        with self._lock:
            self.nodes.append(node)
        return response


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _stack_outputs(exports: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve ``pulumi.export`` values; secret ones are redacted."""
    resolved: dict[str, Any] = {}
    for key, value in sorted(exports.items()):
        output = pulumi.Output.from_input(value)
        if _sync_await(output.is_secret()):
            resolved[key] = REDACTED
            continue
        plain = _sync_await(output.future(with_unknowns=True))
        resolved[key] = clean(json_format.MessageToDict(_to_struct(plain))["v"])
    return resolved


def _to_struct(value: Any) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update({"v": value})
    return struct


ProgramFn = Callable[[StackConfig, str], object]


def _default_program(cfg: StackConfig, stack: str) -> object:
    from stacks.composition import program

    return program(cfg, stack)


@contextlib.contextmanager
def _no_source_positions() -> Iterator[None]:
    """Skip the SDK's per-resource stack walk (it turns every frame into a file URI, ~15 %
    of synth time): source positions are for the engine's diagnostics, and the graph
    records none of them. Restored on exit, so a real ``pulumi up`` is unaffected."""
    from pulumi.runtime import resource as runtime_resource
    from pulumi.runtime.proto import source_pb2

    original = runtime_resource._get_stack_trace
    runtime_resource._get_stack_trace = source_pb2.StackTrace  # type: ignore[assignment]
    try:
        yield
    finally:
        runtime_resource._get_stack_trace = original  # type: ignore[assignment]


def synth_config(
    cfg: StackConfig, stack: str, program_fn: ProgramFn = _default_program
) -> ResourceGraph:
    """Synthesize an already-validated config (tests use this with edited configs)."""
    errors: list[str] = []
    mock = _OfflineMocks(cfg.region, errors)
    monitor = _RecordingMonitor(mock)
    logger = logging.getLogger(f"mlstack.synth.{stack}")
    logger.propagate = False
    collector = _WarningCollector()
    logger.handlers = [collector]

    settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(
        mock, project=PROJECT, stack=stack, preview=False, logger=logger, monitor=monitor
    )
    try:

        def run() -> None:
            program_fn(cfg, stack)

        with _no_source_positions():
            _sync_await(run_pulumi_func(run))
    except Exception as exc:
        raise SynthError(f"stack {stack!r} failed to synthesize: {exc}") from exc
    if errors:
        raise SynthError(f"stack {stack!r}: " + "; ".join(sorted(set(errors))))
    nodes = sorted(monitor.nodes, key=lambda n: n.urn)
    root = settings.get_root_resource()
    outputs = _stack_outputs(getattr(root, "outputs", {}) or {})
    return ResourceGraph(
        stack=stack,
        environment=cfg.environment,
        region=cfg.region,
        resources=nodes,
        outputs=outputs,
        warnings=sorted(set(collector.messages)),
        invokes=list(mock.invokes),
    )


def synth(stack: str, root: Path = PROJECT_ROOT) -> ResourceGraph:
    """Load ``Pulumi.<stack>.yaml`` under ``root`` and synthesize it offline."""
    return synth_config(load_config_file(stack, root), stack)
