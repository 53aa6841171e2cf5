"""A small serving-only program for component tests, with stand-ins for its neighbours.

The real GPU pools and artifact bucket are other components; here ``FakePool`` and
``FakeBucket`` stand in for them with the same contract (``scheduling()``,
``grant_read``), so these tests control exactly what the InferenceService gets and
check what it does with it. The whole stack, with the real neighbours, is tested in
``tests/stacks/test_serving_stack.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from components.serving import runtimes
from components.serving.identity import WorkloadIdentity
from components.serving.inference_service import (
    InferenceService,
    InferenceServiceArgs,
    TrackVersion,
)
from components.serving.keda import Keda, KedaArgs
from components.serving.load_balancer import LoadBalancer, LoadBalancerArgs
from components.serving.namespace import InferenceNamespace, InferenceNamespaceArgs
from components.serving.rollout import derived_rule_slot
from mlstack.synth import ResourceGraph, synth_config
from stacks.config import StackConfig, load_config_file

CLUSTER = "mlstack-test"
REGION = "us-west-2"
ACCOUNT = "123456789012"
ISSUER = f"https://oidc.eks.{REGION}.amazonaws.com/id/TESTCLUSTER"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER.removeprefix('https://')}"
BUCKET = "test-model-artifacts"
NAMESPACE = "inference"
CERT = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/11111111-2222-3333-4444-555555555555"
VPC = "vpc-0123456789abcdef0"
VPC_CIDR = "10.20.0.0/16"
NODE_SG = "sg-0nodes0000000000"

GPU_TOLERATIONS = (
    k8s.core.v1.TolerationArgs(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule"),
    k8s.core.v1.TolerationArgs(
        key="example.com/team", operator="Equal", value="ml", effect="NoSchedule"
    ),
)
GPU_SELECTOR = {"mlstack.io/gpu-pool": "inference", "kubernetes.io/arch": "amd64"}


@dataclass(frozen=True)
class FakeScheduling:
    tolerations: tuple[k8s.core.v1.TolerationArgs, ...] = GPU_TOLERATIONS
    node_selector: dict[str, str] = field(default_factory=lambda: dict(GPU_SELECTOR))
    gpus_per_node: int = 4


@dataclass(frozen=True)
class FakePool:
    """Stand-in for GpuNodePool: a name and its scheduling contract."""

    pool_name: str = "inference"
    gpus: int = 4

    def scheduling(self) -> FakeScheduling:
        return FakeScheduling(gpus_per_node=self.gpus)


class FakeBucket:
    """Stand-in for ModelArtifactBucket.grant_read: GetObject on exactly ``prefix``."""

    def __init__(self) -> None:
        self.bucket_name = pulumi.Output.from_input(BUCKET)
        self.grants: list[str] = []

    def grant_read(self, role: aws.iam.Role, prefix: str, name: str) -> aws.iam.RolePolicy:
        self.grants.append(prefix)
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{BUCKET}/{prefix}*"],
                }
            ],
        }
        return aws.iam.RolePolicy(
            name,
            aws.iam.RolePolicyArgs(role=role.name, policy=json.dumps(policy)),
            opts=pulumi.ResourceOptions(parent=role),
        )


LOADER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlstack-test-model-loader:t1"


def tracks_for(
    model: str, strategy: str, versions: dict[str, str], image: str | None = None
) -> tuple[TrackVersion, ...]:
    names = {"rolling": ("stable",), "canary": ("stable", "canary"), "blueGreen": ("blue", "green")}
    return tuple(
        TrackVersion(
            track=t,
            artifact_version=versions[t],
            image=image or runtimes.VLLM.default_image or "",
            manifest_key=f"models/{model}/manifests/{versions[t]}.json",
        )
        for t in names[strategy]
    )


@dataclass(frozen=True)
class ServiceSpec:
    """One InferenceService in the test program: overrides of the defaults below."""

    model: str = "llm"
    runtime: runtimes.RuntimePreset = runtimes.VLLM
    strategy: str = "rolling"
    versions: dict[str, str] = field(default_factory=lambda: {"stable": "v1"})
    pool: FakePool = field(default_factory=FakePool)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Built:
    graph: ResourceGraph
    bucket_grants: list[str]


def default_args(
    spec: ServiceSpec,
    *,
    bucket: FakeBucket,
    identity: WorkloadIdentity,
    lb: LoadBalancer,
    ns: InferenceNamespace,
    keda: Keda,
) -> InferenceServiceArgs:
    args = InferenceServiceArgs(
        model_name=spec.model,
        namespace=ns.namespace,
        runtime=spec.runtime,
        tracks=tracks_for(spec.model, spec.strategy, spec.versions, spec.runtime.default_image),
        pool_name=spec.pool.pool_name,
        scheduling=spec.pool.scheduling(),
        artifacts=bucket,
        identity=identity,
        region=REGION,
        gpus=1,
        cpu="6",
        memory="48Gi",
        shm_size="8Gi",
        model_disk_gib=40,
        min_replicas=2,
        max_replicas=6,
        prometheus_address="http://prometheus.monitoring.svc:9090",
        strategy=spec.strategy,  # type: ignore[arg-type]
        exposure="alb",
        host=f"{spec.model}.example.com",
        frontend=lb.frontend,
        rule_slot=derived_rule_slot(spec.model),
        preview_source_cidrs=(VPC_CIDR,),
        pdb_min_available=1,
        loader_image=LOADER_IMAGE,
        scaler_depends_on=(keda.release,),
    )
    return replace(args, **spec.overrides)


def build_serving_program(
    specs: list[ServiceSpec],
    *,
    identity_mode: str = "podIdentity",
    lb_overrides: dict[str, Any] | None = None,
    bucket: FakeBucket | None = None,
) -> Callable[[StackConfig, str], object]:
    def program(cfg: StackConfig, stack: str) -> object:
        aws_provider = aws.Provider("aws", aws.ProviderArgs(region=REGION))
        k8s_provider = k8s.Provider("k8s", k8s.ProviderArgs(kubeconfig="{}"))
        opts = pulumi.ResourceOptions(providers={"aws": aws_provider, "kubernetes": k8s_provider})
        fake_bucket = bucket or FakeBucket()
        identity = WorkloadIdentity(
            mode=identity_mode,  # type: ignore[arg-type]
            cluster_name=CLUSTER,
            oidc_provider_arn=OIDC_ARN,
            oidc_issuer_url=ISSUER,
        )
        ns = InferenceNamespace("serving", InferenceNamespaceArgs(namespace=NAMESPACE), opts=opts)
        keda = Keda("keda", KedaArgs(), opts=opts)
        lb_args = LoadBalancerArgs(
            cluster_name=CLUSTER,
            region=REGION,
            vpc_id=VPC,
            vpc_cidr=VPC_CIDR,
            subnet_ids=["subnet-a", "subnet-b"],
            target_security_group_id=NODE_SG,
            identity=identity,
            alb_target_ports=(8000,),
            nlb_ports=(8000, 8001),
            certificate_arn=CERT,
        )
        lb = LoadBalancer("load-balancer", replace(lb_args, **(lb_overrides or {})), opts=opts)
        for spec in specs:
            InferenceService(
                f"model-{spec.model}",
                default_args(spec, bucket=fake_bucket, identity=identity, lb=lb, ns=ns, keda=keda),
                opts=opts,
            )
        return None

    return program


_CFG: dict[str, StackConfig] = {}


def synth_serving(specs: list[ServiceSpec], **kwargs: Any) -> ResourceGraph:
    """Synthesize the serving-only program (no network/cluster) for ``specs``."""
    if "dev" not in _CFG:
        _CFG["dev"] = load_config_file("dev")
    return synth_config(_CFG["dev"], "dev", build_serving_program(specs, **kwargs))


@pytest.fixture(scope="module")
def mixed_graph() -> ResourceGraph:
    """One service per strategy/runtime/exposure: rolling vLLM on the ALB, canary vLLM,
    rolling Triton on an NLB (blueGreen needs the ALB: an NLB's idle color would sit
    behind no listener; ``test_blue_green_routes_active_and_previews_idle_color``)."""
    return synth_serving(
        [
            ServiceSpec(model="llm"),
            ServiceSpec(
                model="chat",
                strategy="canary",
                versions={"stable": "v1", "canary": "v2"},
                overrides={"canary_weight": 10},
            ),
            ServiceSpec(
                model="vision",
                runtime=runtimes.TRITON,
                versions={"stable": "v3"},
                overrides={"exposure": "nlb", "host": None},
            ),
        ]
    )
