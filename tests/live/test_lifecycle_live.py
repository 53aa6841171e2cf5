"""Lifecycle against a real account (issue 12 items 2, 9, 10, 11, 20): what only the engine,
AWS and Kubernetes can show. These CREATE and DESTROY a whole stack (an EKS cluster, GPU
capacity): besides the Pulumi CLI and credentials they need ``MLSTACK_LIVE_STACK`` naming
a scratch stack whose ``Pulumi.<stack>.yaml`` exists (a copy of dev in a sandbox account);
skipped otherwise. Run one at a time: ``pytest tests/live/test_lifecycle_live.py -x``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from stacks.config import PROJECT_ROOT

pytestmark = [pytest.mark.aws, pytest.mark.pulumi_cli, pytest.mark.slow]

STACK = os.environ.get("MLSTACK_LIVE_STACK", "")
FIRST_PHASE_LIMIT_S = 60 * 60
"""The bucket phase creates a cluster (~15 min), nodes and Helm releases; an hour is the
budget, far from the 1.5 h that waiting on an unpushed model could take."""


@pytest.fixture(scope="module")
def live_stack() -> str:
    if not STACK:
        pytest.skip("set MLSTACK_LIVE_STACK to a scratch stack to run create/destroy tests")
    if not (PROJECT_ROOT / f"Pulumi.{STACK}.yaml").is_file():
        pytest.skip(f"Pulumi.{STACK}.yaml not found")
    return STACK


def pulumi(*args: str, timeout: int = FIRST_PHASE_LIMIT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pulumi", *args, "--stack", STACK, "--non-interactive"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def config_set(key: str, value: str) -> None:
    result = pulumi("config", "set", "--path", key, value, timeout=60)
    assert result.returncode == 0, result.stderr


def output(name: str) -> object:
    result = pulumi("stack", "output", name, "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_first_deploy_bucket_phase_then_serving_then_destroy(
    live_stack: str, tmp_path: Path
) -> None:
    """First deploy (item 2): the bucket phase finishes; the push works against its
    output; the serving phase gets ready; destroy (item 20) finishes and leaves no load
    balancer behind."""
    import boto3

    config_set("mlstack:serving.deployModels", "false")
    started = time.monotonic()
    up = pulumi("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
    assert time.monotonic() - started < FIRST_PHASE_LIMIT_S
    bucket = str(output("modelBucketName"))
    assert bucket

    # A tiny artifact for every pinned model version (mlstack model push, real S3).
    from stacks.config import load_config_file

    cfg = load_config_file(live_stack)
    artifact = tmp_path / "model"
    artifact.mkdir()
    (artifact / "weights.bin").write_bytes(os.urandom(1024))
    for model in cfg.models:
        version = model.artifact_version
        if version is None:
            continue
        push = subprocess.run(
            [str(PROJECT_ROOT / ".venv/bin/mlstack"), "model", "push", str(artifact),
             "--name", model.name, "--version", str(version), "--stack", live_stack],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert push.returncode == 0, push.stderr

    config_set("mlstack:serving.deployModels", "true")
    up = pulumi("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
    endpoints = output("inferenceEndpoints")
    assert isinstance(endpoints, dict) and endpoints

    vpc_id = str(output("vpcId"))
    destroy = pulumi("destroy", "--yes", "--skip-preview")
    assert destroy.returncode == 0, destroy.stdout[-4000:] + destroy.stderr[-4000:]
    elbv2 = boto3.client("elbv2", region_name=cfg.region)
    left = [b for b in elbv2.describe_load_balancers()["LoadBalancers"] if b["VpcId"] == vpc_id]
    assert left == [], "a load balancer outlived its controller"


def test_system_node_group_size_change_reaches_eks(live_stack: str) -> None:
    """Item 9: without cluster-autoscaler a desiredSize change is applied, not dropped."""
    import boto3

    from stacks.config import load_config_file

    cfg = load_config_file(live_stack)
    wanted = cfg.cluster.system_node_group.desired_size + 1
    config_set("mlstack:cluster.systemNodeGroup.desiredSize", str(wanted))
    up = pulumi("up", "--yes", "--skip-preview", "--target-dependents")
    assert up.returncode == 0, up.stderr[-4000:]
    eks = boto3.client("eks", region_name=cfg.region)
    name = str(output("clusterName"))
    groups = eks.list_nodegroups(clusterName=name)["nodegroups"]
    sizes = [
        eks.describe_nodegroup(clusterName=name, nodegroupName=g)["nodegroup"]["scalingConfig"]
        for g in groups
        if not g.startswith("gpu-")
    ]
    assert any(s["desiredSize"] == wanted for s in sizes)


def test_a_replacing_change_of_a_fixed_name_resource_succeeds(live_stack: str) -> None:
    """Item 11: changing a managed pool's instance types replaces node group gpu-<pool>
    (fixed name): delete-first, so no "already exists"."""
    from stacks.config import load_config_file

    cfg = load_config_file(live_stack)
    managed = [i for i, p in enumerate(cfg.gpu_pools) if p.provisioner == "managed"]
    if not managed:
        pytest.skip("the scratch stack has no managed GPU pool")
    index = managed[0]
    types = list(cfg.gpu_pools[index].allowed_instance_types())
    if len(types) < 2:
        pytest.skip("the managed pool allows one instance type only")
    config_set(f"mlstack:gpuPools[{index}].instanceTypes[0]", types[-1])
    up = pulumi("up", "--yes", "--skip-preview")
    assert up.returncode == 0, up.stderr[-4000:]
    assert "already exists" not in up.stdout + up.stderr


def test_crds_follow_their_chart_versions(live_stack: str) -> None:
    """Item 10: the installed CRDs carry the pinned charts' versions."""
    result = subprocess.run(
        ["kubectl", "get", "crd", "-o", "json"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip("kubectl with this stack's kubeconfig is needed")
    crds = json.loads(result.stdout)["items"]
    monitoring = [c for c in crds if c["spec"]["group"] == "monitoring.coreos.com"]
    assert monitoring
    owners = {
        c["metadata"].get("annotations", {}).get("meta.helm.sh/release-name") for c in monitoring
    }
    assert owners == {"prometheus-operator-crds"}
