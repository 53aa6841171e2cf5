"""Single checks with their AWS side stubbed (botocore ``Stubber``, whose responses are
validated against botocore's service models): wildcards, AMI parameter paths,
existing-cluster mode, and an AWS error turning into a FAIL that names the call."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mlstack.preflight.checks import (
    Context,
    alb_quota_checks,
    ami_checks,
    ami_parameter,
    eks_checks,
    host_covered,
)
from mlstack.preflight.facts import AmiPin, PlanFacts
from mlstack.preflight.report import Status


@pytest.mark.parametrize(
    ("host", "names", "covered"),
    [
        ("llm.ml.example.com", ["*.ml.example.com"], True),
        ("LLM.ml.example.com.", ["*.ML.example.com"], True),
        ("llm.ml.example.com", ["llm.ml.example.com"], True),
        ("a.b.ml.example.com", ["*.ml.example.com"], False),  # one label only
        ("ml.example.com", ["*.ml.example.com"], False),  # not the apex
        ("llm.ml.example.com", ["*.example.com"], False),
        ("llm.ml.example.com", ["example.com", "ml.example.com"], False),
    ],
)
def test_host_coverage_follows_the_one_label_wildcard_rule(
    host: str, names: list[str], covered: bool
) -> None:
    assert host_covered(host, names) is covered


@pytest.mark.parametrize(
    ("pin", "path"),
    [
        (
            AmiPin("p", "karpenter", "al2023", "x86_64", "v20260714"),
            "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/nvidia/"
            "amazon-eks-node-al2023-x86_64-nvidia-1.33-v20260714/image_id",
        ),
        (
            AmiPin("p", "managed", "al2023", "arm64", "1.33.13-20260714"),
            "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/arm64/nvidia/"
            "amazon-eks-node-al2023-arm64-nvidia-1.33-v20260714/image_id",
        ),
        (
            AmiPin("p", "karpenter", "bottlerocket", "x86_64", "v1.46.0"),
            "/aws/service/bottlerocket/aws-k8s-1.33-nvidia/x86_64/1.46.0/image_id",
        ),
        (
            AmiPin("p", "managed", "bottlerocket", "arm64", "1.46.0-5d6f9a4e"),
            "/aws/service/bottlerocket/aws-k8s-1.33-nvidia/arm64/1.46.0/image_id",
        ),
    ],
)
def test_ami_parameter_is_the_path_eks_and_bottlerocket_publish(pin: AmiPin, path: str) -> None:
    assert ami_parameter(pin, "1.33") == path


class _Clients:
    def __init__(self, **clients: Any) -> None:
        self.clients = clients

    def get(self, service: str, region: str | None = None) -> Any:
        return self.clients[service]


def _context(facts: PlanFacts, **clients: Any) -> Context:
    return Context(facts=facts, clients=_Clients(**clients), today=dt.date(2026, 6, 1))  # type: ignore[arg-type]


def _existing(status: str, version: str = "1.33") -> list[Any]:
    facts = PlanFacts(
        stack="dev",
        region="us-west-2",
        cluster_mode="existing",
        cluster_name="shared",
        cluster_version="1.33",
    )
    eks = boto3.client("eks", region_name="us-west-2")
    with Stubber(eks) as stub:
        stub.add_response(
            "describe_cluster",
            {"cluster": {"name": "shared", "status": status, "version": version}},
            {"name": "shared"},
        )
        checks = eks_checks(_context(facts, eks=eks))
        stub.assert_no_pending_responses()
    return [c for c in checks if c.id == "eks.existing-cluster"]


def test_existing_cluster_active_passes(aws_env: None) -> None:
    [check] = _existing("ACTIVE")
    assert check.status is Status.ok


@pytest.mark.parametrize("status", ["CREATING", "UPDATING", "FAILED", "DELETING"])
def test_existing_cluster_not_active_fails(aws_env: None, status: str) -> None:
    [check] = _existing(status)
    assert check.status is Status.fail and f"is {status}, not ACTIVE" in check.detail


def test_existing_cluster_on_another_version_fails(aws_env: None) -> None:
    [check] = _existing("ACTIVE", version="1.32")
    assert check.status is Status.fail and "runs 1.32, the stack pins 1.33" in check.detail


def test_missing_existing_cluster_fails(aws_env: None) -> None:
    facts = PlanFacts(
        stack="dev",
        region="us-west-2",
        cluster_mode="existing",
        cluster_name="gone",
        cluster_version="1.33",
    )
    eks = boto3.client("eks", region_name="us-west-2")
    with Stubber(eks) as stub:
        stub.add_client_error("describe_cluster", "ResourceNotFoundException", "No cluster")
        [check] = [
            c for c in eks_checks(_context(facts, eks=eks)) if c.id == "eks.existing-cluster"
        ]
    assert check.status is Status.fail and "does not exist" in check.detail


def test_access_denied_is_a_fail_naming_the_call_not_a_crash(aws_env: None) -> None:
    facts = PlanFacts(
        stack="dev",
        region="us-west-2",
        cluster_version="1.33",
        amis=[AmiPin("inference", "karpenter", "al2023", "x86_64", "v20260714")],
    )
    ssm = boto3.client("ssm", region_name="us-west-2")
    with Stubber(ssm) as stub:
        stub.add_client_error("get_parameters", "AccessDeniedException", "not authorized", 400)
        [check] = ami_checks(_context(facts, ssm=ssm))
    assert check.status is Status.fail
    assert check.detail == "could not check: GetParameters: AccessDeniedException: not authorized"


def test_region_not_opted_in_fails(aws_env: None) -> None:
    from mlstack.preflight.checks import identity_checks

    facts = PlanFacts(stack="prod", region="ap-east-1", account_ids={"123456789012": "k"})
    sts = boto3.client("sts", region_name="ap-east-1")
    ec2 = boto3.client("ec2", region_name="ap-east-1")
    with Stubber(sts) as sts_stub, Stubber(ec2) as ec2_stub:
        sts_stub.add_response(
            "get_caller_identity",
            {"Account": "123456789012", "Arn": "arn:aws:sts::123456789012:assumed-role/x/y"},
        )
        ec2_stub.add_response(
            "describe_regions",
            {"Regions": [{"RegionName": "ap-east-1", "OptInStatus": "not-opted-in"}]},
            {"AllRegions": True, "RegionNames": ["ap-east-1"]},
        )
        checks = {c.id: c for c in identity_checks(_context(facts, sts=sts, ec2=ec2))}
    assert checks["identity.account"].status is Status.ok
    assert checks["identity.region"].status is Status.fail
    assert "not enabled for the account (not-opted-in)" in checks["identity.region"].detail


def test_a_configured_model_missing_from_the_plan_is_a_fail_not_a_skip() -> None:
    from mlstack.preflight.checks import model_checks

    facts = PlanFacts(stack="dev", region="us-west-2", configured_models=("resnet50",))
    [check] = model_checks(_context(facts))
    assert check.status is Status.fail and check.id == "models.plan"


def test_without_delivery_the_ci_prerequisites_are_skipped_with_why() -> None:
    from mlstack.preflight.checks import prerequisite_checks

    facts = PlanFacts(stack="dev", region="us-west-2", delivery_enabled=False)
    checks = {c.id: c for c in prerequisite_checks(_context(facts, iam=None))}
    assert {c.status for c in checks.values()} == {Status.skipped}
    assert "delivery.enabled is false" in checks["prerequisites.github-oidc-provider"].detail
    assert set(checks) == {
        "prerequisites.github-oidc-provider",
        "prerequisites.state-bucket",
        "prerequisites.secrets-key",
    }


def test_bucket_phase_of_the_first_deploy_skips_the_models_with_the_next_step() -> None:
    from mlstack.preflight.checks import model_checks

    facts = PlanFacts(stack="dev", region="us-west-2", deploy_models=False)
    [check] = model_checks(_context(facts))
    assert check.status is Status.skipped
    assert "deployModels is false" in check.detail and "First deploy" in check.detail


def test_quotas_sum_pools_per_capacity_and_class_and_skip_reservations(aws_env: None) -> None:
    from mlstack.preflight.checks import capacity_checks
    from mlstack.preflight.facts import PoolCapacity

    facts = PlanFacts(
        stack="prod",
        region="us-east-1",
        pools=[
            PoolCapacity("a", ("g6.xlarge", "g6.2xlarge"), ("on-demand",), 3),  # 3 x 8
            PoolCapacity("b", ("g6.12xlarge", "p5.48xlarge"), ("on-demand", "reserved"), 2),
        ],
    )
    quotas = boto3.client("service-quotas", region_name="us-east-1")
    with Stubber(quotas) as stub:
        for code, value in (("L-DB2E81BA", 120.0), ("L-417A185B", 383.0)):
            stub.add_response(
                "get_service_quota",
                {"Quota": {"QuotaCode": code, "Value": value}},
                {"ServiceCode": "ec2", "QuotaCode": code},
            )
        checks = {c.id: c for c in capacity_checks(_context(facts, **{"service-quotas": quotas}))}
        stub.assert_no_pending_responses()
    g, p = checks["capacity.quota[on-demand G and VT]"], checks["capacity.quota[on-demand P]"]
    # G and VT: 3 x 8 (pool a) + 2 x 48 (pool b) = 120; P: 2 x 192 = 384 > 383.
    assert g.status is Status.ok and ">= 120 vCPU" in g.detail
    assert (
        p.status is Status.fail and "the pools need 384 at max size: b (2 x 192 vCPU)" in p.detail
    )
    assert not any("reserved" in check_id for check_id in checks)
    assert checks["capacity.offered"].status is Status.skipped  # no zones configured


def test_a_node_cache_on_nvme_must_fit_each_types_instance_store(
    moto_reset: str, aws_env: None
) -> None:
    from mlstack.preflight.checks import capacity_checks
    from mlstack.preflight.facts import PoolCapacity

    facts = PlanFacts(
        stack="dev",
        region="us-east-1",
        pools=[
            # Room = NVMe x 0.9 - 60 GiB of images - 30 GiB of scratch per GPU:
            # g4dn.xlarge 116 GiB -> 14.8 (too small for 100), g6.xlarge 233 GiB -> 119.5.
            PoolCapacity("small", ("g4dn.xlarge", "g6.xlarge"), ("spot",), 1, 100,
                         ("g4dn.xlarge", "g6.xlarge")),
            PoolCapacity("big", ("g6.2xlarge",), ("spot",), 1, 100, ("g6.2xlarge",)),
            PoolCapacity("per-pod", ("g4dn.xlarge",), ("spot",), 1, None, ("g4dn.xlarge",)),
        ],
    )  # fmt: skip
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_reset)
    quotas = boto3.client("service-quotas", region_name="us-east-1", endpoint_url=moto_reset)
    checks = {
        c.id: c
        for c in capacity_checks(_context(facts, ec2=ec2, **{"service-quotas": quotas}))
        if c.id.startswith("capacity.model-cache")
    }
    assert set(checks) == {"capacity.model-cache[small]", "capacity.model-cache[big]"}
    small = checks["capacity.model-cache[small]"]
    assert small.status is Status.fail
    assert "g4dn.xlarge (116 GiB)" in small.detail and "g6.xlarge" not in small.detail
    assert "at most 14" in small.fix
    assert checks["capacity.model-cache[big]"].status is Status.ok


def test_the_plan_facts_name_the_pools_nvme_cache_types() -> None:
    from mlstack.preflight.facts import plan_facts
    from stacks.config import load_config_file
    from tests.conftest import graph_for

    cfg = load_config_file("dev")
    (pool,) = plan_facts(cfg, graph_for("dev")).pools
    assert pool.model_cache_gib == 100
    assert set(pool.nvme_types) == {"g6.xlarge", "g6.2xlarge", "g5.xlarge"}


def test_a_stack_file_without_a_secrets_provider_fails_and_a_passphrase_one_is_skipped() -> None:
    from mlstack.preflight.checks import secrets_provider_checks

    facts = PlanFacts(stack="dev", region="us-west-2")
    [check] = secrets_provider_checks(_context(facts))
    assert check.status is Status.fail and check.id == "secrets.provider"
    assert 'pulumi stack init dev --secrets-provider="awskms://' in check.fix
    facts.encryption_salt = True
    [check] = secrets_provider_checks(_context(facts))
    assert check.status is Status.skipped and "passphrase" in check.detail


def test_the_secrets_check_opens_the_awskms_url_as_gocloud_does() -> None:
    """gocloud.dev secrets/awskms/kms.go OpenKeeperURL: key id = host + path (``awskms:///``
    + ARN for ARNs), ``region`` and ``context_<k>`` query parameters."""
    from mlstack.preflight.checks import awskms_keeper

    assert awskms_keeper("awskms://alias/mlstack-pulumi-secrets?region=us-west-2") == (
        "alias/mlstack-pulumi-secrets",
        "us-west-2",
        {},
    )
    arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd"
    assert awskms_keeper(f"awskms:///{arn}?context_stack=dev") == (arn, None, {"stack": "dev"})


def test_alb_usage_is_checked_against_the_accounts_applied_quotas() -> None:
    """Service Quotas ``GetServiceQuota`` answers a quota's applied value and raises
    NoSuchResourceException for one never changed (botocore's service model); then the
    AWS default (``GetAWSDefaultServiceQuota``) applies. Target groups per ALB are fixed."""
    facts = PlanFacts(
        stack="prod",
        region="us-east-1",
        alb_usage={"load-balancer-alb": {"rules": 120, "targetGroups": 101, "certificates": 3}},
    )
    quotas = boto3.client("service-quotas", region_name="us-east-1")
    rules = {"ServiceCode": "elasticloadbalancing", "QuotaCode": "L-7EED9B64"}
    certs = {"ServiceCode": "elasticloadbalancing", "QuotaCode": "L-9365A611"}
    with Stubber(quotas) as stub:
        stub.add_response("get_service_quota", {"Quota": {**rules, "Value": 150.0}}, rules)
        stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=certs)
        stub.add_response(
            "get_aws_default_service_quota", {"Quota": {**certs, "Value": 25.0}}, certs
        )
        checks = {c.id: c for c in alb_quota_checks(_context(facts, **{"service-quotas": quotas}))}
        stub.assert_no_pending_responses()
    assert checks["capacity.alb-quota[rules]"].status is Status.ok
    assert (
        "(L-7EED9B64): 150 >= load-balancer-alb 120" in checks["capacity.alb-quota[rules]"].detail
    )
    groups = checks["capacity.alb-quota[targetGroups]"]
    assert groups.status is Status.fail
    assert "is 100; load-balancer-alb needs 101" in groups.detail
    assert checks["capacity.alb-quota[certificates]"].status is Status.ok
    # A raised rules quota no longer covers a larger plan: the increase to ask for is named.
    facts.alb_usage["load-balancer-alb"]["rules"] = 151
    with Stubber(quotas) as stub:
        stub.add_response("get_service_quota", {"Quota": {**rules, "Value": 150.0}}, rules)
        stub.add_response("get_service_quota", {"Quota": {**certs, "Value": 25.0}}, certs)
        check = alb_quota_checks(_context(facts, **{"service-quotas": quotas}))[0]
    assert check.status is Status.fail and "at least 151" in check.fix
