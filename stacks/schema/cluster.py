"""``mlstack:cluster``: the EKS control plane, add-ons and system node group."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from stacks.schema import aws_enums
from stacks.schema.base import ConfigModel, fixed, knob

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
SUPPORTED_VERSIONS = ("1.31", "1.32", "1.33", "1.34", "1.35")


class AddonVersions(ConfigModel):
    """Overrides of the pinned EKS add-on versions (defaults in ``components.versions``)."""

    vpc_cni: str | None = fixed(None, description="vpc-cni add-on version.")
    coredns: str | None = fixed(None, description="coredns add-on version.")
    kube_proxy: str | None = fixed(None, description="kube-proxy add-on version.")
    aws_ebs_csi_driver: str | None = fixed(None, description="aws-ebs-csi-driver version.")
    eks_pod_identity_agent: str | None = fixed(None, description="Pod Identity agent version.")
    eks_node_monitoring_agent: str | None = fixed(
        None, description="EKS node monitoring agent version (node health conditions)."
    )


class SystemNodeGroupConfig(ConfigModel):
    """On-demand CPU nodes that run the controllers (Karpenter, LB controller, KEDA...)."""

    instance_types: list[str] = knob(
        default_factory=lambda: ["m6i.large"], description="EC2 instance types, first preferred."
    )
    ami_type: str = fixed(
        "AL2023_x86_64_STANDARD", description="EKS AMI type (botocore's AMITypes)."
    )
    min_size: int = knob(2, ge=1, le=100, description="Minimum nodes.")
    max_size: int = knob(4, ge=1, le=100, description="Maximum nodes.")
    desired_size: int = knob(2, ge=1, le=100, description="Nodes at creation (then autoscaled).")
    disk_size_gib: int = knob(50, ge=20, le=16384, description="gp3 root volume size, GiB.")

    @field_validator("instance_types")
    @classmethod
    def _known_instance_types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one instance type is required")
        known = aws_enums.ec2_instance_types()
        for itype in value:
            if itype not in known:
                raise ValueError(
                    f"{itype!r}: {aws_enums.describe_unknown(itype, known, 'EC2 instance type')}"
                )
        return value

    @field_validator("ami_type")
    @classmethod
    def _known_ami_type(cls, value: str) -> str:
        known = aws_enums.eks_ami_types()
        if value not in known:
            raise ValueError(aws_enums.describe_unknown(value, known, "EKS AMI type"))
        if "NVIDIA" in value or "NEURON" in value:
            raise ValueError("the system node group runs controllers: use a non-accelerated AMI")
        return value

    @model_validator(mode="after")
    def _sizes_ordered(self) -> SystemNodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"need minSize <= desiredSize <= maxSize, got {self.min_size} / "
                f"{self.desired_size} / {self.max_size}"
            )
        return self


class ClusterConfig(ConfigModel):
    """``mode: create`` builds the cluster; ``mode: existing`` looks one up by name."""

    mode: Literal["create", "existing"] = fixed(
        "create", description="create: a new EKS cluster. existing: look up `name`."
    )
    name: str | None = knob(
        None, description="Cluster name. Default mlstack-<stack>. Required in existing mode."
    )
    version: str = fixed(
        "1.35", description=f"Kubernetes minor version, quoted. One of {SUPPORTED_VERSIONS}."
    )
    endpoint_public_access: bool = knob(
        True, description="Expose the API endpoint publicly (restricted by publicAccessCidrs)."
    )
    endpoint_private_access: bool = fixed(True, description="Reach the API from inside the VPC.")
    public_access_cidrs: list[str] = knob(
        default_factory=lambda: ["0.0.0.0/0"],
        description="CIDRs allowed to reach the public endpoint.",
    )
    admin_role_arns: list[str] = knob(
        default_factory=list, description="IAM roles given cluster-admin via access entries."
    )
    log_types: list[str] = fixed(
        default_factory=lambda: ["api", "audit", "authenticator"],
        description="Control-plane log types sent to CloudWatch.",
    )
    log_retention_days: int = knob(
        90, ge=1, le=3653, description="Retention of the control-plane log group, in days."
    )
    addon_versions: AddonVersions = fixed(
        default_factory=AddonVersions, description="Pinned add-on version overrides."
    )
    system_node_group: SystemNodeGroupConfig = knob(
        default_factory=SystemNodeGroupConfig, description="The controllers' node group."
    )
    secrets_key_deletion_days: int = fixed(
        30, ge=7, le=30, description="Waiting period before the secrets KMS key is deleted."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_quoted_string(cls, value: object) -> object:
        if isinstance(value, float | int):
            raise ValueError(
                f'got the number {value}; quote the version in YAML (e.g. "1.33") so 1.30 '
                "is not read as 1.3"
            )
        return value

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported version; allowed: {', '.join(SUPPORTED_VERSIONS)}")
        return value

    @field_validator("name")
    @classmethod
    def _cluster_name_shape(cls, value: str | None) -> str | None:
        if value is not None and not _CLUSTER_NAME.match(value):
            raise ValueError("must be 1-100 letters, digits, '-' or '_', starting alphanumeric")
        return value

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, value: list[str]) -> list[str]:
        bad = [arn for arn in value if not _ROLE_ARN.match(arn)]
        if bad:
            raise ValueError(f"not IAM role ARNs: {bad}")
        return value

    @field_validator("log_types")
    @classmethod
    def _known_log_types(cls, value: list[str]) -> list[str]:
        known = aws_enums.eks_log_types()
        bad = [t for t in value if t not in known]
        if bad:
            raise ValueError(f"unknown log types {bad}; allowed: {', '.join(sorted(known))}")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a CIDR ({exc})") from None
        return value

    def effective_public_cidrs(self) -> list[str]:
        """Who reaches the public endpoint: ``publicAccessCidrs``, or, when it is empty,
        everyone (EKS's default for an empty list is 0.0.0.0/0)."""
        return list(self.public_access_cidrs) or ["0.0.0.0/0"]

    @model_validator(mode="after")
    def _existing_needs_name(self) -> ClusterConfig:
        if self.mode == "existing" and not self.name:
            raise ValueError("mode 'existing' needs the name of the cluster to use")
        if not (self.endpoint_public_access or self.endpoint_private_access):
            raise ValueError("at least one of endpointPublicAccess / endpointPrivateAccess")
        return self
