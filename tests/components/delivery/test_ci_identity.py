"""CiIdentity through the synth: exact OIDC ``sub`` conditions, scoped rights, config errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.delivery.ci_identity import (
    SESSION_SECONDS,
    CiIdentity,
    CiIdentityArgs,
    branch_subject,
    deploy_iam_statements,
    environment_subject,
    github_trust,
    pull_request_subject,
    state_statements,
    trust_subjects,
)
from components.iam.scope import RoleScope
from components.validation import ComponentArgsError
from mlstack.synth import ResourceGraph, SynthError, synth_config
from stacks.config import ConfigError, parse_config
from tests.conftest import SynthEdited, raw_stack_config, set_path

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
OIDC = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
GITHUB = "token.actions.githubusercontent.com"
EXISTING_PROVIDER = f"arn:aws:iam::123456789012:oidc-provider/{GITHUB}"


def _trust(graph: ResourceGraph, role: str) -> dict[str, Any]:
    return json.loads(graph.one(ROLE, f"ci-{role}").inputs["assumeRolePolicy"])


def _policy(graph: ResourceGraph, name: str) -> dict[str, Any]:
    return json.loads(graph.one(ROLE_POLICY, name).inputs["policy"])


def test_preview_trusts_exactly_pull_requests(any_graph) -> None:
    [statement] = _trust(any_graph, "preview")["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": EXISTING_PROVIDER}
    assert statement["Condition"] == {
        "StringEquals": {
            f"{GITHUB}:aud": "sts.amazonaws.com",
            f"{GITHUB}:sub": ["repo:example-org/mlstack:pull_request"],
        }
    }


def test_drift_trusts_only_the_default_branchs_drift_workflow(any_graph) -> None:
    [statement] = _trust(any_graph, "drift")["Statement"]
    assert statement["Condition"] == {
        "StringEquals": {
            f"{GITHUB}:aud": "sts.amazonaws.com",
            f"{GITHUB}:sub": ["repo:example-org/mlstack:ref:refs/heads/main"],
            f"{GITHUB}:job_workflow_ref": (
                "example-org/mlstack/.github/workflows/drift.yml@refs/heads/main"
            ),
        }
    }


@pytest.mark.parametrize(("stack", "environment"), [("dev", "dev"), ("prod", "prod")])
def test_deploy_trusts_only_its_protected_environment(
    stack: str, environment: str, dev_graph, prod_graph
) -> None:
    graph = dev_graph if stack == "dev" else prod_graph
    trust = _trust(graph, "deploy")
    # No ref:refs/heads/main: a job without an environment would skip prod's approval.
    assert trust_subjects(json.dumps(trust)) == [
        f"repo:example-org/mlstack:environment:{environment}"
    ]
    condition = trust["Statement"][0]["Condition"]
    assert set(condition) == {"StringEquals"}  # never StringLike: no wildcards
    assert "pull_request" not in json.dumps(trust)


def test_roles_are_named_per_stack_and_get_their_managed_policies(any_graph) -> None:
    stack = any_graph.stack
    for kind in ("preview", "drift", "deploy"):
        role = any_graph.one(ROLE, f"ci-{kind}").inputs
        assert role["name"] == f"mlstack-{stack}-ci-{kind}"
        assert role["path"] == f"/mlstack/{stack}/"
        assert role["maxSessionDuration"] == SESSION_SECONDS[kind]
    readonly = any_graph.one(ATTACHMENT, "ci-preview-readonly").inputs["policyArn"]
    drift = any_graph.one(ATTACHMENT, "ci-drift-readonly").inputs["policyArn"]
    power = any_graph.one(ATTACHMENT, "ci-deploy-poweruser").inputs["policyArn"]
    assert readonly == drift == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert power == "arn:aws:iam::aws:policy/PowerUserAccess"


def test_preview_reads_the_state_and_takes_no_lock(dev_graph) -> None:
    statements = {s["Sid"]: s for s in _policy(dev_graph, "ci-preview-state")["Statement"]}
    bucket = "arn:aws:s3:::mlstack-pulumi-state-123456789012"
    assert statements["StateRead"]["Resource"] == [f"{bucket}/*"]
    assert statements["SecretsProvider"]["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
    assert set(statements) == {"StateList", "StateRead", "SecretsProvider"}


def test_drift_reads_the_state_like_preview_and_writes_no_lock(dev_graph) -> None:
    """``pulumi refresh --preview-only`` takes no DIY lock: in pulumi/pulumi
    ``pkg/backend/diy/backend.go``, ``diyBackend.Refresh`` returns from the
    ``op.Opts.PreviewOnly`` branch (``b.apply`` with ``DryRun: true``) before ``b.Lock``
    since v3.229.0 (v3.228.0 locked first), and ``diyBackend.apply`` builds no snapshot
    manager and writes no history for a dry run. So the drift role writes nothing to the
    state bucket and needs no data key for SSE-KMS writes: exactly the preview grants."""
    drift = _policy(dev_graph, "ci-drift-state")["Statement"]
    preview = _policy(dev_graph, "ci-preview-state")["Statement"]
    assert drift == preview
    statements = {s["Sid"]: s for s in drift}
    assert set(statements) == {"StateList", "StateRead", "SecretsProvider"}
    writes = [
        a
        for s in drift
        for a in s["Action"]
        if a in ("s3:PutObject", "s3:DeleteObject", "kms:GenerateDataKey", "kms:Encrypt")
    ]
    assert writes == []


def test_deploy_iam_rights_are_path_and_tag_scoped(prod_graph) -> None:
    statements = {s["Sid"]: s for s in _policy(prod_graph, "ci-deploy-iam")["Statement"]}
    tagged = {"aws:ResourceTag/project": "mlstack", "aws:ResourceTag/stack": "prod"}
    assert statements["IamManageTagged"]["Condition"] == {"StringEquals": tagged}
    assert statements["IamCreateTagged"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/project": "mlstack", "aws:RequestTag/stack": "prod"}
    }
    assert all(
        "/mlstack/prod/" in r or "oidc-provider/oidc.eks." in r
        for s in statements.values()
        if s["Effect"] == "Allow" and s["Sid"].startswith("Iam") and s["Sid"] != "IamRead"
        for r in s["Resource"]
        if r != "*"
    )
    assert statements["IamList"] == {
        "Sid": "IamList",
        "Effect": "Allow",
        "Action": ["iam:ListOpenIDConnectProviders"],
        "Resource": ["*"],
    }
    assert "iam:ListOpenIDConnectProviders" not in statements["IamRead"]["Action"]
    assert statements["PassStackRoles"]["Condition"]["StringEquals"]["iam:PassedToService"]
    deny = statements["NoSelfEscalation"]
    assert deny["Effect"] == "Deny"
    assert deny["Resource"] == [
        f"arn:aws:iam::123456789012:role/mlstack/prod/mlstack-prod-ci-{kind}"
        for kind in ("deploy", "drift", "preview")
    ]
    assert "iam:PutRolePolicy" in deny["Action"]
    assert statements["StateWrite"]["Action"] == ["s3:DeleteObject", "s3:PutObject"]


def test_ci_roles_get_kubernetes_view_admin_view_and_admin(any_graph) -> None:
    policies = {
        node.name: node.inputs["policyArn"].rsplit("/", 1)[1]
        for node in any_graph.by_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if node.name.startswith("ci-")
    }
    # Preview must never read Kubernetes Secrets; drift's refresh reads Helm's release
    # Secrets and custom resources, which AmazonEKSViewPolicy cannot.
    assert policies == {
        "ci-preview-eks-policy": "AmazonEKSViewPolicy",
        "ci-drift-eks-policy": "AmazonEKSAdminViewPolicy",
        "ci-deploy-eks-policy": "AmazonEKSClusterAdminPolicy",
    }


def test_existing_provider_is_reused_and_creating_one_is_the_default(
    dev_graph, synth_edited: SynthEdited
) -> None:
    # The stack files reuse the account's GitHub provider (the cluster has its own).
    assert [p.name for p in dev_graph.by_type(OIDC)] == ["cluster-oidc"]
    graph = synth_edited("dev", {"delivery.oidcProviderArn": None})
    [provider] = [p for p in graph.by_type(OIDC) if p.name == "ci-github-oidc"]
    assert provider.inputs["url"] == f"https://{GITHUB}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert _trust(graph, "preview")["Statement"][0]["Principal"]["Federated"].endswith(
        f"oidc-provider/{GITHUB}"
    )


def test_disabled_delivery_creates_nothing(synth_edited: SynthEdited) -> None:
    graph = synth_edited("dev", {"delivery.enabled": False})
    assert [r for r in graph.resources if r.name.startswith("ci")] == []
    assert "ciDeployRoleArn" not in graph.outputs


def test_without_state_backend_settings_preview_gets_no_state_policy(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited("dev", {"delivery.stateBucket": None, "delivery.secretsKeyArn": None})
    assert [p for p in graph.by_type(ROLE_POLICY) if p.name == "ci-preview-state"] == []
    sids = {s["Sid"] for s in _policy(graph, "ci-deploy-iam")["Statement"]}
    assert not sids & {"StateList", "StateRead", "StateWrite", "SecretsProvider"}
    assert "NoSelfEscalation" in sids


def test_more_environments_each_get_their_exact_subject(synth_edited: SynthEdited) -> None:
    graph = synth_edited(
        "prod", {"delivery.environments": ["prod", "prod-eu"], "delivery.defaultBranch": "trunk"}
    )
    assert trust_subjects(json.dumps(_trust(graph, "deploy"))) == [
        "repo:example-org/mlstack:environment:prod",
        "repo:example-org/mlstack:environment:prod-eu",
    ]
    assert trust_subjects(json.dumps(_trust(graph, "drift"))) == [
        "repo:example-org/mlstack:ref:refs/heads/trunk"
    ]


def test_dev_without_environments_deploys_from_the_default_branch(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited("dev", {"delivery.environments": []})
    assert trust_subjects(json.dumps(_trust(graph, "deploy"))) == [
        "repo:example-org/mlstack:ref:refs/heads/main"
    ]


# --------------------------------------------------------------------------- pure builders


def test_subject_builders_match_githubs_claim_format() -> None:
    assert pull_request_subject("o/r") == "repo:o/r:pull_request"
    assert branch_subject("o/r", "main") == "repo:o/r:ref:refs/heads/main"
    assert environment_subject("o/r", "prod") == "repo:o/r:environment:prod"
    doc = github_trust("arn:p", ["b", "a"])
    assert doc["Statement"][0]["Condition"]["StringEquals"][f"{GITHUB}:sub"] == ["a", "b"]


def test_state_statements_without_anything_are_empty() -> None:
    assert state_statements(None, None, "aws", kind="deploy") == []


def test_deploy_statements_use_the_partition_and_account() -> None:
    boundary = "arn:aws-us-gov:iam::210987654321:policy/mlstack/dev/b"
    statements = deploy_iam_statements(
        "210987654321",
        "aws-us-gov",
        "mlstack",
        "dev",
        ["r"],
        path="/mlstack/dev/",
        boundary_arn=boundary,
    )
    resources = [r for s in statements for r in s["Resource"]]
    assert all(
        r.startswith(("arn:aws-us-gov:iam::210987654321:", "arn:aws-us-gov:iam::aws:"))
        or r in ("r", "*")
        for r in resources
    )


def test_component_lists_every_bad_arg_at_once(stack_configs) -> None:
    args = CiIdentityArgs(
        repository="not a repo",
        stack="",
        role_name_prefix="bad prefix!",
        role_scope=RoleScope(path="mlstack", permissions_boundary_arn="arn:b"),
        default_branch="refs/heads/main",
        environments=("ok", "no spaces"),
        existing_oidc_provider_arn="arn:aws:iam::1:oidc-provider/example.com",
    )
    with pytest.raises(SynthError) as caught:
        synth_config(stack_configs["dev"], "dev", lambda cfg, stack: CiIdentity("ci", args))
    error = caught.value.__cause__
    assert isinstance(error, ComponentArgsError)
    fields = [problem.split(":", 1)[0] for problem in error.problems]
    assert fields == [
        "repository",
        "default_branch",
        "environments",
        "stack",
        "role_name_prefix",
        "existing_oidc_provider_arn",
        "role_scope.path",
    ]
    assert "'no spaces'" in error.problems[2]


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("edits", "fragment"),
    [
        ({"delivery.githubRepository": "just-a-name"}, "delivery.githubRepository"),
        ({"delivery.githubRepository": None}, "githubRepository is required"),
        ({"delivery.defaultBranch": "refs/heads/main"}, "delivery.defaultBranch"),
        ({"delivery.defaultBranch": "two words"}, "delivery.defaultBranch"),
        ({"delivery.environments": ["prod", "prod"]}, "environment names repeat"),
        ({"delivery.environments": ["bad env"]}, "delivery.environments"),
        ({"delivery.oidcProviderArn": "arn:aws:iam::1:oidc-provider/x"}, "oidcProviderArn"),
        ({"delivery.secretsKeyArn": "alias/pulumi"}, "delivery.secretsKeyArn"),
        ({"delivery.stateBucket": "Bad_Bucket"}, "delivery.stateBucket"),
        ({"delivery.environments": []}, "prod needs at least one protected GitHub environment"),
        ({"delivery.token": "x"}, "unknown key"),
    ],
)
def test_bad_delivery_config_is_rejected_with_its_key(edits: dict[str, Any], fragment: str) -> None:
    raw = raw_stack_config("prod")
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "Pulumi.prod.yaml")
    assert fragment in str(caught.value)


def test_dev_may_deploy_from_the_default_branch_alone() -> None:
    raw = set_path(raw_stack_config("dev"), "delivery.environments", [])
    assert parse_config(raw, "Pulumi.dev.yaml").delivery.environments == []


# --------------------------------------------------------------------------- CI runner (12.5)


@pytest.mark.parametrize(
    ("edits", "path", "fragment"),
    [
        # the old prod: hosted runner against a CIDR-restricted endpoint
        (
            {"delivery.runner": {"labels": ["ubuntu-24.04"], "network": "hosted"}},
            "mlstack:delivery.runner.egressCidrs",
            "a hosted runner needs its documented egress CIDRs",
        ),
        (
            {
                "delivery.runner": {
                    "labels": ["ubuntu-24.04"],
                    "network": "hosted",
                    "egressCidrs": ["198.51.100.0/28"],
                }
            },
            "mlstack:delivery.runner.egressCidrs[0]",
            "not inside cluster.publicAccessCidrs",
        ),
        (
            {
                "cluster.endpointPublicAccess": False,
                "delivery.runner": {"labels": ["ubuntu-24.04"], "network": "hosted"},
            },
            "mlstack:delivery.runner.network",
            "private only",
        ),
        (
            {"delivery.runner": {"labels": ["ubuntu-24.04"], "network": "vpc"}},
            "mlstack:delivery.runner",
            "labels must include self-hosted",
        ),
        # issue 27 item 4 (review): a group made before the VPC this stack creates cannot
        # be referenced by the cluster security group: the first pulumi up would fail
        (
            {
                "delivery.runner": {
                    "labels": ["self-hosted", "mlstack-prod"],
                    "network": "vpc",
                    "securityGroupId": "sg-0a1b2c3d4e5f60718",
                }
            },
            "mlstack:delivery.runner.securityGroupId",
            "creates its VPC",
        ),
        (
            {
                "delivery.runner": {
                    "labels": ["ubuntu-24.04"],
                    "network": "hosted",
                    "egressCidrs": ["203.0.113.16/28"],
                    "securityGroupId": "sg-0a1b2c3d4e5f60718",
                }
            },
            "mlstack:delivery.runner.securityGroupId",
            "only for network vpc",
        ),
        (
            {
                "delivery.runner": {
                    "labels": ["self-hosted"],
                    "network": "vpc",
                    "prefixListId": "sg-0a1b2c3d",
                }
            },
            "mlstack:delivery.runner.prefixListId",
            "pl-",
        ),
        (
            {
                "delivery.runner": {
                    "labels": ["self-hosted"],
                    "network": "vpc",
                    "sourceCidrs": ["10.30.1.0/33"],
                }
            },
            "mlstack:delivery.runner.sourceCidrs",
            "is not a CIDR",
        ),
    ],
)
def test_a_runner_that_cannot_reach_the_endpoint_is_refused(
    edits: dict[str, Any], path: str, fragment: str
) -> None:
    raw = raw_stack_config("prod")
    for dotted, value in edits.items():
        set_path(raw, dotted, value)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "Pulumi.prod.yaml")
    assert any(p.path == path and fragment in p.message for p in caught.value.problems), str(
        caught.value
    )


def test_runners_that_reach_the_endpoint_are_accepted() -> None:
    hosted = set_path(
        raw_stack_config("prod"),
        "delivery.runner",
        {"labels": ["ubuntu-24.04"], "network": "hosted", "egressCidrs": ["203.0.113.16/28"]},
    )
    assert parse_config(hosted, "Pulumi.prod.yaml").delivery.runner.network == "hosted"
    shipped = parse_config(raw_stack_config("prod"), "Pulumi.prod.yaml").delivery.runner
    assert (shipped.network, shipped.labels[0]) == ("vpc", "self-hosted")
    assert shipped.api_sources() == []  # the stack's own ci-runner group is the source
    for source in (
        {"prefixListId": "pl-0a1b2c3d4e5f60718"},
        {"sourceCidrs": ["10.30.8.0/24", "10.30.9.0/24"]},
    ):
        raw = set_path(
            raw_stack_config("prod"),
            "delivery.runner",
            {"labels": ["self-hosted", "mlstack-prod"], "network": "vpc", **source},
        )
        assert parse_config(raw, "Pulumi.prod.yaml").delivery.runner.api_sources()
