"""``mlstack:delivery``: the CI identities GitHub Actions assumes through OIDC.

When ``enabled``, the stack creates (or reuses) GitHub's OIDC provider and two
roles: ``preview`` (read-only, assumable from the repository's pull requests and
from its default branch for drift checks) and ``deploy`` (what ``pulumi up``
needs, assumable only from the default branch and the named GitHub
environments, which must be protected in the repository settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from pydantic import field_validator, model_validator

from stacks.schema.base import ConfigModel, fixed, knob
from stacks.schema.problems import Problem

_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# git check-ref-format, simplified: no spaces, no "..", no control or special characters.
_BRANCH = re.compile(
    r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*@\{)[^\s~^:?*\[\\\x00-\x1f\x7f]{1,255}(?<![/.])$"
)
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IAM_ARN = (
    r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
)
_KMS_ARN = r"^arn:aws(-cn|-us-gov)?:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$"


_LABEL = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class RunnerConfig(ConfigModel):
    """Where this stack's CI jobs (deploy, rollback, preview, drift) run: the workflows
    read it (``mlstack ci-settings``), and it must reach the cluster's API endpoint."""

    labels: list[str] = knob(
        default_factory=lambda: ["ubuntu-24.04"],
        description="`runs-on` labels: a GitHub-hosted image, or the labels of a self-hosted "
        "runner (e.g. [self-hosted, linux, x64, mlstack-prod]).",
    )
    network: Literal["hosted", "vpc"] = knob(
        "hosted",
        description="hosted: GitHub-hosted (reaches the public endpoint from egressCidrs). "
        "vpc: a self-hosted runner inside the stack's VPC (reaches the private endpoint).",
    )
    egress_cidrs: list[str] = knob(
        default_factory=list,
        description="Documented egress CIDRs of a hosted runner (e.g. a larger runner with "
        "static IP ranges); each must be inside cluster.publicAccessCidrs.",
    )
    security_group_id: str | None = knob(
        None,
        description="network vpc: the runner's security group; the stack allows it on 443 "
        "in the EKS cluster security group (the private endpoint's ENIs carry it).",
        pattern=r"^sg-[0-9a-f]{8,17}$",
    )
    prefix_list_id: str | None = knob(
        None,
        description="network vpc: a managed prefix list of the runners' addresses, allowed "
        "on 443 in the EKS cluster security group.",
        pattern=r"^pl-[0-9a-f]{8,17}$",
    )
    source_cidrs: list[str] = knob(
        default_factory=list,
        description="network vpc: the runners' private CIDRs, allowed on 443 in the EKS "
        "cluster security group.",
    )

    def api_sources(self) -> list[str]:
        """Where the runner's API calls come from (security group, prefix list, CIDRs)."""
        return [
            *([self.security_group_id] if self.security_group_id else []),
            *([self.prefix_list_id] if self.prefix_list_id else []),
            *self.source_cidrs,
        ]

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        bad = [label for label in value if not _LABEL.match(label)]
        if not value or bad:
            raise ValueError(
                f"runner labels {bad or value} invalid; letters, digits, '.', '_', '-'"
            )
        return value

    @field_validator("egress_cidrs", "source_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR ({exc})") from None
        return value

    @model_validator(mode="after")
    def _vpc_runner_is_self_hosted(self) -> RunnerConfig:
        if self.network == "vpc" and "self-hosted" not in self.labels:
            raise ValueError("network vpc is a self-hosted runner: labels must include self-hosted")
        return self


class DeliveryConfig(ConfigModel):
    """GitHub repository, branch and environments trusted by the CI roles."""

    enabled: bool = fixed(
        False, description="Create the GitHub OIDC provider and the preview and deploy roles."
    )
    github_repository: str | None = fixed(
        None,
        description="GitHub repository `owner/name` whose workflows may assume the roles.",
    )
    default_branch: str = fixed(
        "main", description="Branch whose pushes may deploy (and run drift checks)."
    )
    environments: list[str] = knob(
        default_factory=list,
        description="GitHub environments (protected in the repository settings) whose jobs "
        "may assume the deploy role, e.g. [prod].",
    )
    oidc_provider_arn: str | None = knob(
        None,
        description="Reuse this account's existing GitHub OIDC provider (there is one per "
        "account) instead of creating it.",
        pattern=_IAM_ARN,
    )
    state_bucket: str | None = knob(
        None,
        description="S3 bucket of the Pulumi state (from `mlstack bootstrap`); both roles may "
        "read it, deploy may write it. Unset for other backends.",
    )
    bake_minutes: int = knob(
        10,
        ge=1,
        le=180,
        description="Minutes `mlstack bake` watches the stack's alarms and rollouts after an "
        "update (the deploy workflow's guard), e.g. 5 in dev, 20 in prod.",
    )
    secrets_key_arn: str | None = knob(
        None,
        description="KMS key ARN (not an alias) of the Pulumi secrets provider; both roles may "
        "decrypt with it, deploy may encrypt.",
        pattern=_KMS_ARN,
    )

    runner: RunnerConfig = knob(
        default_factory=RunnerConfig, description="Where this stack's CI jobs run."
    )

    @field_validator("github_repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not _REPOSITORY.match(value):
            raise ValueError(f"{value!r} is not a GitHub repository; expected owner/name")
        return value

    @field_validator("default_branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if not _BRANCH.match(value) or value.startswith("refs/"):
            raise ValueError(f"{value!r} is not a branch name (give it without refs/heads/)")
        return value

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: list[str]) -> list[str]:
        bad = [env for env in value if not _ENVIRONMENT.match(env)]
        if bad:
            raise ValueError(
                f"environment names {bad} are invalid; allowed: letters, digits, '.', '_', '-'"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"environment names repeat: {value}")
        return value

    @field_validator("state_bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET.match(value):
            raise ValueError(f"{value!r} is not a valid S3 bucket name")
        return value

    @model_validator(mode="after")
    def _needs_repository(self) -> DeliveryConfig:
        if self.enabled and self.github_repository is None:
            raise ValueError("githubRepository is required when delivery is enabled")
        return self


def runner_reaches_endpoint(
    delivery: DeliveryConfig,
    *,
    public_access: bool,
    private_access: bool,
    public_cidrs: list[str],
    endpoint_open: bool,
    vpc_created: bool = True,
) -> Iterable[Problem]:
    """The CI runner must reach the API endpoint. A runner inside the VPC reaches the private
    endpoint, whose ENIs carry the EKS cluster security group (by default it admits only
    itself): the stack creates a runner security group in its VPC and allows it on 443
    (launch the runner with it); other sources (prefix list, CIDRs, or a group of an
    existing VPC) may be added. A private-only or CIDR-restricted endpoint needs such a runner,
    or a hosted runner whose egress CIDRs are allowed."""
    import ipaddress

    if not delivery.enabled:
        return
    runner = delivery.runner
    path = "mlstack:delivery.runner"
    if runner.network == "vpc":
        if not private_access:
            yield Problem(
                f"{path}.network",
                runner.network,
                "a runner inside the VPC needs cluster.endpointPrivateAccess: true",
            )
        elif runner.security_group_id and vpc_created:
            yield Problem(
                f"{path}.securityGroupId",
                runner.security_group_id,
                "this stack creates its VPC (network.mode: create), and a security group made "
                "before it cannot be in it (the cluster security group references only groups "
                "of its VPC or a peered one), so the first pulumi up would fail on the rule: "
                "remove it and launch the runner with the stack's own group (stack output "
                "ciRunnerSecurityGroupId), or use prefixListId / sourceCidrs",
            )
        return
    declared = {
        "securityGroupId": runner.security_group_id,
        "prefixListId": runner.prefix_list_id,
        "sourceCidrs": runner.source_cidrs or None,
    }
    for key, value in declared.items():
        if value is not None:
            yield Problem(
                f"{path}.{key}",
                value,
                "only for network vpc (a runner inside the VPC); a hosted runner reaches the "
                "public endpoint from egressCidrs",
            )
    if public_access and endpoint_open:
        return
    if not public_access:
        yield Problem(
            f"{path}.network",
            runner.network,
            "the API endpoint is private only (endpointPublicAccess: false): a GitHub-hosted "
            "runner cannot reach it; allowed: network vpc with a self-hosted runner label",
        )
        return
    allowed = [ipaddress.ip_network(c) for c in public_cidrs]
    if not runner.egress_cidrs:
        yield Problem(
            f"{path}.egressCidrs",
            [],
            f"the API endpoint accepts only {public_cidrs}: a hosted runner needs its documented "
            "egress CIDRs here (each inside cluster.publicAccessCidrs), or use network vpc "
            "with a self-hosted runner",
        )
    for i, cidr in enumerate(runner.egress_cidrs):
        net = ipaddress.ip_network(cidr)
        if not any(
            net.version == a.version and net.subnet_of(a)  # type: ignore[arg-type]
            for a in allowed
        ):
            yield Problem(
                f"{path}.egressCidrs[{i}]",
                cidr,
                f"not inside cluster.publicAccessCidrs {public_cidrs}: the runner could not "
                "reach the API endpoint; add it there",
            )


def prod_deploys_from_environments(delivery: DeliveryConfig, *, is_prod: bool) -> Iterable[Problem]:
    """Prod deploys must go through at least one protected GitHub environment."""
    if is_prod and delivery.enabled and not delivery.environments:
        yield Problem(
            "mlstack:delivery.environments",
            delivery.environments,
            "prod needs at least one protected GitHub environment for the deploy role",
        )
