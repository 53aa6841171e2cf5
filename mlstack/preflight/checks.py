"""The preflight checks, one function per group; each returns one ``Check`` per item.

Every AWS call here is a read (Describe/Get/List), except the secrets provider check's
KMS Decrypt and Encrypt, which change nothing either. A call that fails for lack of
permission turns its check into a FAIL naming the call (an unverifiable
prerequisite is not a passing one); unusable credentials stop the run (exit 2).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from components.serving import alb_quotas
from mlstack.aws import error_code
from mlstack.errors import MlstackError
from mlstack.preflight.aws import (
    CREDENTIAL_ERRORS,
    CREDENTIALS_HOWTO,
    Clients,
    arn_region,
    describe_error,
)
from mlstack.preflight.facts import AmiPin, PlanFacts
from mlstack.preflight.report import Check, fail, ok, skipped

FIRST_DEPLOY = 'docs/operations.md, section "First deploy"'
BUCKET_PHASE = (
    f"next: step 4 of the first deploy, the bucket phase (mlstack:serving.deployModels: "
    f"false, then pulumi up), then step 5, push every pinned version ({FIRST_DEPLOY})"
)
EXPIRY_WARNING_DAYS = 30
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
SPOT_SERVICE_LINKED_ROLE = "AWSServiceRoleForEC2Spot"
SPOT_SERVICE_ROLE_PATH = "/aws-service-role/spot.amazonaws.com/"

# Service Quotas codes (service ec2), vCPU based, per instance family class.
QUOTAS: dict[tuple[str, str], tuple[str, str]] = {
    ("on-demand", "G and VT"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("on-demand", "P"): ("L-417A185B", "Running On-Demand P instances"),
    ("spot", "G and VT"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("spot", "P"): ("L-7212CCBC", "All P Spot Instance Requests"),
}


class CredentialsUnusableError(Exception):
    """AWS rejected the credentials: preflight stops with exit 2."""


@dataclass
class Context:
    facts: PlanFacts
    clients: Clients
    today: dt.date
    model_bucket: str | None = None
    caller_account: str | None = None


def _guard(ctx_group: str, check_id: str, call: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; an AWS error becomes a FAIL naming the call (credentials: stop)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        result = call()
    except NoCredentialsError:
        raise CredentialsUnusableError(CREDENTIALS_HOWTO) from None
    except ClientError as exc:
        if error_code(exc) in CREDENTIAL_ERRORS:
            raise CredentialsUnusableError(
                f"AWS rejected the credentials ({describe_error(exc)}); {CREDENTIALS_HOWTO}"
            ) from None
        return [
            fail(
                ctx_group,
                check_id,
                f"could not check: {describe_error(exc)}",
                "give the preflight credentials read access to this call (the CI deploy and "
                "preview roles have it), then rerun",
            )
        ]
    except BotoCoreError as exc:
        return [fail(ctx_group, check_id, f"could not check: {exc}", "check the network/endpoint")]
    return result if isinstance(result, list) else [result]


# --------------------------------------------------------------------------- identity


def identity_checks(ctx: Context) -> list[Check]:
    group = "identity"
    sts = ctx.clients.get("sts")
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        caller = sts.get_caller_identity()
    except NoCredentialsError:
        raise CredentialsUnusableError(CREDENTIALS_HOWTO) from None
    except ClientError as exc:
        raise CredentialsUnusableError(
            f"AWS rejected the credentials ({describe_error(exc)}); {CREDENTIALS_HOWTO}"
        ) from None
    except BotoCoreError as exc:
        raise MlstackError(f"cannot reach AWS STS to identify the caller: {exc}") from None
    account = str(caller["Account"])
    ctx.caller_account = account
    checks: list[Check] = []
    wanted = ctx.facts.account_ids
    if not wanted:
        checks.append(skipped(group, "identity.account", "the stack file names no account ARN"))
    elif set(wanted) == {account}:
        checks.append(
            ok(group, "identity.account", f"caller {caller['Arn']} is in account {account}")
        )
    else:
        others = ", ".join(f"{a} ({key})" for a, key in sorted(wanted.items()) if a != account)
        checks.append(
            fail(
                group,
                "identity.account",
                f"caller account {account} is not the stack's account: {others}",
                "use credentials of the stack's account (AWS_PROFILE), or fix the ARNs in "
                f"Pulumi.{ctx.facts.stack}.yaml",
            )
        )

    def region() -> Check:
        ec2 = ctx.clients.get("ec2")
        found = ec2.describe_regions(AllRegions=True, RegionNames=[ctx.facts.region])["Regions"]
        status = found[0].get("OptInStatus", "opt-in-not-required") if found else "unknown"
        if status in ("opt-in-not-required", "opted-in"):
            return ok(group, "identity.region", f"{ctx.facts.region} is enabled ({status})")
        return fail(
            group,
            "identity.region",
            f"{ctx.facts.region} is not enabled for the account ({status})",
            "enable the region (Account settings > AWS Regions) and wait until it is opted-in",
        )

    checks += _guard(group, "identity.region", region)
    return checks


# --------------------------------------------------------------------------- EKS


def eks_checks(ctx: Context) -> list[Check]:
    from components.versions import EKS_STANDARD_SUPPORT_END, EKS_SUPPORT_SOURCE

    group = "eks"
    facts = ctx.facts
    version = facts.cluster_version
    checks: list[Check] = []
    end = EKS_STANDARD_SUPPORT_END.get(version)
    if end is None:
        checks.append(
            fail(
                group,
                "eks.standard-support",
                f"Kubernetes {version} has no standard-support date in components/versions.py",
                "add its end-of-standard-support date (source: " + EKS_SUPPORT_SOURCE + ")",
            )
        )
    elif ctx.today > end:
        checks.append(
            fail(
                group,
                "eks.standard-support",
                f"Kubernetes {version} left EKS standard support on {end.isoformat()} "
                f"(source: {EKS_SUPPORT_SOURCE}); extended support costs 6x per cluster hour",
                "upgrade mlstack:cluster.version one minor version at a time",
            )
        )
    else:
        left = (end - ctx.today).days
        checks.append(
            ok(
                group,
                "eks.standard-support",
                f"Kubernetes {version} is in standard support until {end.isoformat()} "
                f"({left} days; source: {EKS_SUPPORT_SOURCE})",
            )
        )
    eks = ctx.clients.get("eks")
    for name, pinned in sorted(facts.addons.items()):
        check_id = f"eks.addon-version[{name}]"

        def addon(name: str = name, pinned: str = pinned, check_id: str = check_id) -> Check:
            offered = _addon_versions(eks, name, version)
            if pinned in offered:
                return ok(group, check_id, f"{pinned} is offered for Kubernetes {version}")
            newest = ", ".join(sorted(offered, reverse=True)[:3]) or "none"
            return fail(
                group,
                check_id,
                f"{pinned} is not offered for Kubernetes {version} (offered, newest: {newest})",
                "pin an offered version in components/versions.py (EKS_ADDONS) or "
                "mlstack:cluster.addonVersions",
            )

        checks += _guard(group, check_id, addon)
        if name in facts.addon_configurations:
            checks += _addon_configuration_check(
                eks, name, pinned, facts.addon_configurations[name]
            )
    if facts.cluster_mode == "existing":

        def existing() -> Check:
            try:
                cluster = eks.describe_cluster(name=facts.cluster_name)["cluster"]
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return fail(
                        group,
                        "eks.existing-cluster",
                        f"cluster {facts.cluster_name} does not exist in {facts.region}",
                        "fix mlstack:cluster.name, or use mode: create",
                    )
                raise
            status, found_version = cluster.get("status"), cluster.get("version")
            if status != "ACTIVE":
                return fail(
                    group,
                    "eks.existing-cluster",
                    f"cluster {facts.cluster_name} is {status}, not ACTIVE",
                    "wait until the cluster is ACTIVE (an update or creation is running)",
                )
            if found_version != version:
                return fail(
                    group,
                    "eks.existing-cluster",
                    f"cluster {facts.cluster_name} runs {found_version}, the stack pins {version}",
                    "set mlstack:cluster.version to the cluster's version",
                )
            return ok(group, "eks.existing-cluster", f"{facts.cluster_name} is ACTIVE ({version})")

        checks += _guard(group, "eks.existing-cluster", existing)
    else:
        checks.append(
            skipped(group, "eks.existing-cluster", "mode create: the stack creates the cluster")
        )
    return checks


def _addon_configuration_check(eks: Any, name: str, version: str, values: str) -> list[Check]:
    """The plan's ``configurationValues`` validate against the add-on version's schema
    (``eks:DescribeAddonConfiguration``), as ``CreateAddon`` validates them: a value the
    schema refuses fails ``pulumi up`` late, after the cluster and its nodes exist."""
    import json

    import jsonschema

    group, check_id = "eks", f"eks.addon-configuration[{name}]"

    def run() -> Check:
        answer = eks.describe_addon_configuration(addonName=name, addonVersion=version)
        schema = json.loads(answer.get("configurationSchema") or "{}")
        problems = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(json.loads(values)), key=str
        )
        if problems:
            first = problems[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
            return fail(
                group,
                check_id,
                f"{version}'s configuration schema refuses the plan's values at {where}: "
                f"{first.message}",
                "pin a version whose schema has that key, or drop the value "
                "(components/cluster/eks.py)",
            )
        return ok(group, check_id, f"the plan's values validate against {version}'s schema")

    return _guard(group, check_id, run)


def _addon_versions(eks: Any, name: str, kubernetes_version: str) -> set[str]:
    found: set[str] = set()
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"addonName": name, "kubernetesVersion": kubernetes_version}
        if token:
            kwargs["nextToken"] = token
        page = eks.describe_addon_versions(**kwargs)
        for addon in page.get("addons", []):
            found |= {v["addonVersion"] for v in addon.get("addonVersions", [])}
        token = page.get("nextToken")
        if not token:
            return found


# --------------------------------------------------------------------------- AMIs


def ami_parameter(pin: AmiPin, kubernetes_version: str) -> str:
    """The public SSM parameter EKS / Bottlerocket publish for one pinned GPU AMI release.

    The same paths Karpenter resolves an ``amiSelectorTerms`` alias with
    (karpenter-provider-aws ``pkg/providers/amifamily``): AL2023 NVIDIA
    ``/aws/service/eks/optimized-ami/<k8s>/amazon-linux-2023/<arch>/nvidia/
    amazon-eks-node-al2023-<arch>-nvidia-<k8s>-v<date>/image_id``, Bottlerocket NVIDIA
    ``/aws/service/bottlerocket/aws-k8s-<k8s>-nvidia/<arch>/<version>/image_id``.
    Managed node group releases (``1.33.13-20260714``, ``1.46.0-<hash>``) map to the
    same AMI release (date, or Bottlerocket version).
    """
    arch = pin.architecture
    k8s = kubernetes_version
    if pin.family == "al2023":
        release = pin.release
        if pin.provisioner == "managed":
            release = "v" + release.rsplit("-", 1)[-1]
        name = f"amazon-eks-node-al2023-{arch}-nvidia-{k8s}-{release}"
        return (
            f"/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/nvidia/{name}/image_id"
        )
    version = pin.release.lstrip("v")
    if pin.provisioner == "managed":
        version = version.split("-", 1)[0]
    return f"/aws/service/bottlerocket/aws-k8s-{k8s}-nvidia/{arch}/{version}/image_id"


def ami_checks(ctx: Context) -> list[Check]:
    group = "amis"
    facts = ctx.facts
    if not facts.amis:
        return [skipped(group, "amis.gpu-release", "the stack has no GPU pools")]
    paths = {pin: ami_parameter(pin, facts.cluster_version) for pin in facts.amis}

    def lookup() -> list[Check]:
        ssm = ctx.clients.get("ssm")
        names = sorted(set(paths.values()))
        found: dict[str, str] = {}
        for start in range(0, len(names), 10):  # GetParameters takes at most 10 names
            answer = ssm.get_parameters(Names=names[start : start + 10])
            found |= {p["Name"]: p.get("Value", "") for p in answer.get("Parameters", [])}
        out: list[Check] = []
        for pin, path in paths.items():
            check_id = f"amis.gpu-release[{pin.pool}]"
            what = f"{pin.family} NVIDIA {pin.architecture} {pin.release}"
            if path in found:
                out.append(ok(group, check_id, f"{what}: {found[path]} ({path})"))
            else:
                out.append(
                    fail(
                        group,
                        check_id,
                        f"{what} for Kubernetes {facts.cluster_version} is not published in "
                        f"{facts.region} (no SSM parameter {path})",
                        f"pin a published release in mlstack:gpuPools (ami.release); list them "
                        f"with aws ssm get-parameters-by-path --path {path.rsplit('/', 2)[0]}",
                    )
                )
        return out

    return _guard(group, "amis.gpu-release", lookup)


# --------------------------------------------------------------------------- certificates


def host_covered(host: str, names: Iterable[str]) -> bool:
    """Whether a certificate name covers ``host``: exact, or a ``*.`` wildcard of ONE label."""
    host = host.lower().rstrip(".")
    label, _, parent = host.partition(".")
    for raw in names:
        name = raw.lower().rstrip(".")
        if name == host:
            return True
        # RFC 6125: the wildcard stands for exactly one whole left-most label.
        if name.startswith("*.") and label and parent and name[2:] == parent:
            return True
    return False


def certificate_checks(ctx: Context) -> list[Check]:
    group = "certificates"
    facts = ctx.facts
    if not facts.certificates:
        return [skipped(group, "certificates", "no listener presents a certificate (no HTTPS)")]
    checks: list[Check] = []
    for arn, hosts in sorted(facts.certificates.items()):
        check_id = f"certificates.certificate[{arn.rsplit('/', 1)[-1]}]"

        def one(arn: str = arn, hosts: list[str] = hosts, check_id: str = check_id) -> list[Check]:
            acm = ctx.clients.get("acm", arn_region(arn))
            try:
                cert = acm.describe_certificate(CertificateArn=arn)["Certificate"]
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return [
                        fail(
                            group,
                            check_id,
                            f"{arn} does not exist",
                            "request or import the certificate in ACM in the stack's region "
                            "and set mlstack:serving.loadBalancer.certificateArn",
                        )
                    ]
                raise
            out: list[Check] = []
            status = cert.get("Status")
            not_after = _as_utc(cert.get("NotAfter"))
            if status != "ISSUED":
                out.append(
                    fail(
                        group,
                        check_id,
                        f"{arn} is {status}, not ISSUED",
                        "complete the certificate's DNS validation (ACM console shows the "
                        "CNAME records) and wait for ISSUED",
                    )
                )
            elif not_after is not None and _days_left(not_after, ctx.today) < EXPIRY_WARNING_DAYS:
                out.append(
                    fail(
                        group,
                        check_id,
                        f"{arn} expires on {not_after:%Y-%m-%d} (in "
                        f"{_days_left(not_after, ctx.today)} days, less than "
                        f"{EXPIRY_WARNING_DAYS})",
                        "renew it (DNS-validated ACM certificates renew themselves once the "
                        "validation records resolve) or import a renewed one",
                    )
                )
            else:
                until = f" until {not_after:%Y-%m-%d}" if not_after is not None else ""
                out.append(ok(group, check_id, f"ISSUED{until}"))
            names = [str(n) for n in cert.get("SubjectAlternativeNames") or []]
            if cert.get("DomainName"):
                names.append(str(cert["DomainName"]))
            for host in hosts:
                host_id = f"certificates.covers[{host}]"
                if host_covered(host, names):
                    out.append(ok(group, host_id, f"covered by {arn.rsplit('/', 1)[-1]}"))
                else:
                    out.append(
                        fail(
                            group,
                            host_id,
                            f"{host} is routed to the ALB but {arn} covers only "
                            f"{', '.join(sorted(set(names))) or 'no names'}",
                            "add the host (or a *.<parent> wildcard) to the certificate, or "
                            "change the model's exposure.host",
                        )
                    )
            return out

        checks += _guard(group, check_id, one)
    return checks


def _as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """``moment`` in UTC: botocore gives timestamps in the machine's local zone, and
    ``today`` is a UTC date (a local date would be a day off for hours each day)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _days_left(not_after: dt.datetime, today: dt.date) -> int:
    return (not_after.date() - today).days


# --------------------------------------------------------------------------- models


def model_checks(ctx: Context) -> list[Check]:
    from components.storage.layout import manifest_key

    group = "models"
    facts = ctx.facts
    unseen = sorted(set(facts.configured_models) - {m.model for m in facts.models})
    if unseen:
        return [
            fail(
                group,
                "models.plan",
                f"the plan shows no model-loader container for {', '.join(unseen)}: preflight "
                "cannot tell which versions they load",
                "a bug in mlstack.preflight.facts (the Deployment shape changed); report it",
            )
        ]
    if not facts.deploy_models:
        return [
            skipped(
                group,
                "models",
                "mlstack:serving.deployModels is false (first deploy, bucket phase): no model "
                "is deployed; push the pinned versions and the loader image, then set it "
                f"true (steps 5-7 of the first deploy, {FIRST_DEPLOY})",
            )
        ]
    if not facts.models:
        return [skipped(group, "models", "the stack serves no models")]

    def run() -> list[Check]:
        bucket = ctx.model_bucket or find_model_bucket(ctx)
        if bucket is None:
            return [
                fail(
                    group,
                    "models.bucket",
                    "the model bucket does not exist yet (first deploy): no bucket tagged "
                    f"stack={facts.stack} with prefix {facts.model_bucket_prefix}",
                    BUCKET_PHASE,
                )
            ]
        s3 = ctx.clients.get("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return [
                    fail(
                        group,
                        "models.bucket",
                        f"bucket {bucket} does not exist (first deploy?)",
                        BUCKET_PHASE,
                    )
                ]
            if error_code(exc) not in ("403", "AccessDenied"):
                raise
        out = [ok(group, "models.bucket", f"s3://{bucket}")]
        for model in facts.models:
            key = manifest_key(model.model, model.version)
            check_id = f"models.manifest[{model.model}@{model.version}]"
            # Decide by listing: with prefix-scoped s3:ListBucket a HEAD of a missing key is 403.
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
            if any(item.get("Key") == key for item in listed):
                out.append(ok(group, check_id, f"{model.track}: s3://{bucket}/{key}"))
            else:
                out.append(
                    fail(
                        group,
                        check_id,
                        f"{model.track} track loads {model.model} {model.version}, but "
                        f"s3://{bucket}/{key} does not exist (never pushed, or incomplete)",
                        f"mlstack model push <dir> --name {model.model} --version "
                        f"{model.version} --stack {facts.stack} (first deploy: step 5, "
                        f"{FIRST_DEPLOY}), or pin a pushed version (mlstack model list)",
                    )
                )
        return out

    return _guard(group, "models.bucket", run)


def find_model_bucket(ctx: Context) -> str | None:
    """The stack's model bucket: by its fixed name, else by its tags and generated prefix."""
    facts = ctx.facts
    if facts.model_bucket_name:
        return facts.model_bucket_name
    tagging = ctx.clients.get("resourcegroupstaggingapi")
    filters = [
        {"Key": "project", "Values": ["mlstack"]},
        {"Key": "stack", "Values": [facts.stack]},
    ]
    # The provider names a bucket <bucketPrefix><26 characters: time stamp + counter>; the
    # exact shape tells the model bucket from its log bucket (<prefix>logs-<26>).
    generated = re.compile(re.escape(facts.model_bucket_prefix or "") + "[0-9a-f]{26}")
    candidates: list[str] = []
    paginator = tagging.get_paginator("get_resources")
    for page in paginator.paginate(TagFilters=filters, ResourceTypeFilters=["s3"]):
        for item in page.get("ResourceTagMappingList", []):
            name = str(item["ResourceARN"]).rsplit(":", 1)[-1]
            if generated.fullmatch(name):
                candidates.append(name)
    return sorted(candidates)[0] if candidates else None


# --------------------------------------------------------------------------- loader image


def loader_checks(ctx: Context) -> list[Check]:
    """The model-loader tag the pods pull is in the stack's ECR repository (else every
    serving pod waits in ImagePullBackOff until the rollout deadline fails ``pulumi up``)."""
    group = "loader"
    facts = ctx.facts
    push = f"mlstack loader push {facts.stack}"
    if facts.loader_tag is None or facts.loader_repository is None:
        why = (
            "mlstack:serving.deployModels is false (first deploy, bucket phase): no pod pulls "
            f"the loader image yet; run `{push}` before setting it true ({FIRST_DEPLOY})"
            if not facts.deploy_models
            else "no pod runs the model loader"
        )
        return [skipped(group, "loader.image", why)]
    repository, tag = facts.loader_repository, facts.loader_tag
    check_id = f"loader.image[{repository}:{tag}]"

    def run() -> Check:
        ecr = ctx.clients.get("ecr")
        try:
            found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        except Exception as exc:
            code = error_code(exc)
            if code == "RepositoryNotFoundException":
                return fail(
                    group,
                    check_id,
                    f"ECR repository {repository} does not exist: the serving pods' loader "
                    "image has nowhere to come from",
                    "run the platform phase of the first deploy (mlstack:serving.deployModels: "
                    f"false, then pulumi up), then `{push}` ({FIRST_DEPLOY})",
                )
            if code == "ImageNotFoundException":
                return fail(
                    group,
                    check_id,
                    f"{repository} has no image tagged {tag}: every serving pod would wait on "
                    "its loader image until the rollout deadline fails pulumi up",
                    f"`{push}` (builds loader/Dockerfile and pushes {tag}; needs docker)",
                )
            raise
        digest = str((found.get("imageDetails") or [{}])[0].get("imageDigest", ""))
        if facts.loader_digest and digest != facts.loader_digest:
            return fail(
                group,
                check_id,
                f"{repository}:{tag} is {digest}, but the pods pin {facts.loader_digest} "
                "(MODEL_LOADER_IMAGE_DIGEST): the pull would fail",
                "record the repository's digest in components/versions.py, or bump the tag",
            )
        return ok(group, check_id, f"{digest}")

    return _guard(group, check_id, run)


# --------------------------------------------------------------------------- capacity


def quota_class(instance_type: str) -> str | None:
    family = instance_type.split(".", 1)[0]
    if family.startswith(("g", "vt")):
        return "G and VT"
    if family.startswith("p"):
        return "P"
    return None


def capacity_checks(ctx: Context) -> list[Check]:
    from components.compute.gpu_instances import load_gpu_instances

    group = "capacity"
    facts = ctx.facts
    if not facts.pools:
        return [skipped(group, "capacity", "the stack has no GPU pools")]
    instances = load_gpu_instances()
    need: dict[tuple[str, str], int] = {}
    users: dict[tuple[str, str], list[str]] = {}
    checks: list[Check] = []
    for pool in facts.pools:
        for capacity in pool.capacity_types:
            if capacity == "reserved":
                continue  # capacity reservations carry their own capacity
            by_class: dict[str, int] = {}
            for itype in pool.instance_types:
                cls = quota_class(itype)
                if cls is not None:
                    by_class[cls] = max(by_class.get(cls, 0), instances[itype].vcpu)
            for cls, vcpu in by_class.items():
                need[(capacity, cls)] = need.get((capacity, cls), 0) + vcpu * pool.max_nodes
                users.setdefault((capacity, cls), []).append(
                    f"{pool.pool} ({pool.max_nodes} x {vcpu} vCPU)"
                )
    quotas = ctx.clients.get("service-quotas")
    for key, vcpus in sorted(need.items()):
        check_id = f"capacity.quota[{key[0]} {key[1]}]"
        call = functools.partial(_quota_check, quotas, check_id, key, vcpus, users[key])
        checks += _guard(group, check_id, call)
    if not facts.availability_zones:
        checks.append(
            skipped(group, "capacity.offered", "no availabilityZones configured (existing VPC)")
        )
        return checks + _model_cache_checks(ctx)
    types = sorted({t for pool in facts.pools for t in pool.instance_types})

    def offered() -> list[Check]:
        ec2 = ctx.clients.get("ec2")
        pairs: set[tuple[str, str]] = set()
        paginator = ec2.get_paginator("describe_instance_type_offerings")
        for page in paginator.paginate(
            LocationType="availability-zone",
            Filters=[
                {"Name": "instance-type", "Values": types},
                {"Name": "location", "Values": list(facts.availability_zones)},
            ],
        ):
            pairs |= {(o["InstanceType"], o["Location"]) for o in page["InstanceTypeOfferings"]}
        out: list[Check] = []
        for pool in facts.pools:
            missing = [
                f"{t} in {az}"
                for t in pool.instance_types
                for az in facts.availability_zones
                if (t, az) not in pairs
            ]
            check_id = f"capacity.offered[{pool.pool}]"
            if missing:
                out.append(
                    fail(
                        group,
                        check_id,
                        "not offered: " + ", ".join(missing),
                        "drop those instance types from the pool, or pick zones that offer "
                        "them (mlstack:network.availabilityZones)",
                    )
                )
            else:
                zones = ", ".join(facts.availability_zones)
                out.append(ok(group, check_id, f"{len(pool.instance_types)} types in {zones}"))
        return out

    return checks + _guard(group, "capacity.offered", offered) + _model_cache_checks(ctx)


def _model_cache_checks(ctx: Context) -> list[Check]:
    """A node-shared model cache on the instance-store RAID0 fits the NVMe of each of the
    pool's types, beside the images, a pod's scratch per GPU and the kubelet's eviction
    headroom (offline rules only size caches on EBS: the data has no NVMe sizes)."""
    from components.compute.capacity import (
        IMAGE_RESERVE_GIB,
        KUBELET_EVICTION_HEADROOM,
        POD_SCRATCH_GIB,
    )
    from components.compute.gpu_instances import load_gpu_instances

    group = "capacity"
    pools = [p for p in ctx.facts.pools if p.model_cache_gib is not None and p.nvme_types]
    if not pools:
        return []
    types = sorted({t for p in pools for t in p.nvme_types})
    gpus = {t: f.gpu_count for t, f in load_gpu_instances().items()}

    def room(nvme_gib: float, instance_type: str) -> float:
        scratch = POD_SCRATCH_GIB * max(gpus.get(instance_type, 1), 1)
        return nvme_gib * (1 - KUBELET_EVICTION_HEADROOM) - IMAGE_RESERVE_GIB - scratch

    def sized() -> list[Check]:
        ec2 = ctx.clients.get("ec2")
        response = ec2.describe_instance_types(InstanceTypes=types)
        nvme = {
            i["InstanceType"]: i.get("InstanceStorageInfo", {}).get("TotalSizeInGB", 0)
            * 1e9
            / 2**30
            for i in response["InstanceTypes"]
        }
        out: list[Check] = []
        for pool in pools:
            check_id = f"capacity.model-cache[{pool.pool}]"
            cache = pool.model_cache_gib
            assert cache is not None
            fits = {t: room(nvme.get(t, 0.0), t) for t in pool.nvme_types}
            small = [f"{t} ({nvme.get(t, 0.0):.0f} GiB)" for t, r in fits.items() if r < cache]
            if small:
                out.append(
                    fail(
                        group,
                        check_id,
                        f"the node cache of {cache} GiB does not fit the instance store of "
                        f"{', '.join(small)} beside {IMAGE_RESERVE_GIB} GiB of images, "
                        f"{POD_SCRATCH_GIB} GiB of scratch per GPU and the kubelet's "
                        f"{KUBELET_EVICTION_HEADROOM:.0%} headroom",
                        f"lower gpuPools[].modelCache.sizeGib to at most "
                        f"{max(int(min(fits.values())), 0)}, or drop those types",
                    )
                )
            else:
                out.append(
                    ok(
                        group,
                        check_id,
                        f"{cache} GiB cache fits every type's instance store beside images, "
                        f"scratch and headroom (tightest: {min(fits.values()):.0f} GiB of room)",
                    )
                )
        return out

    return _guard(group, "capacity.model-cache", sized)


def alb_quota_checks(ctx: Context) -> list[Check]:
    """What the plan attaches to each ALB against the account's applied quotas (Service
    Quotas, service ``elasticloadbalancing``; a quota never changed is answered from the
    AWS defaults). Target groups per ALB (100) are fixed, not in Service Quotas."""
    usage = ctx.facts.alb_usage
    if not usage:
        return [skipped("capacity", "capacity.alb-quotas", "the plan has no ALB")]
    quotas = ctx.clients.get("service-quotas")
    checks: list[Check] = []
    for quota in alb_quotas.QUOTAS:
        check_id = f"capacity.alb-quota[{quota.key}]"
        call = functools.partial(_alb_quota_check, quotas, check_id, quota, usage)
        checks += _guard("capacity", check_id, call)
    return checks


def _alb_quota_value(quotas: Any, quota: alb_quotas.AlbQuota) -> float:
    from botocore.exceptions import ClientError

    if quota.code is None:
        return float(quota.default)
    key = {"ServiceCode": alb_quotas.SERVICE_CODE, "QuotaCode": quota.code}
    try:
        return float(quotas.get_service_quota(**key)["Quota"]["Value"])
    except ClientError as exc:
        if error_code(exc) != "NoSuchResourceException":
            raise
    return float(quotas.get_aws_default_service_quota(**key)["Quota"]["Value"])


def _alb_quota_check(
    quotas: Any, check_id: str, quota: alb_quotas.AlbQuota, usage: dict[str, dict[str, int]]
) -> Check:
    value = _alb_quota_value(quotas, quota)
    name = f"{quota.name} ({quota.code})" if quota.code else f"{quota.name} (fixed)"
    over = {alb: u[quota.key] for alb, u in sorted(usage.items()) if u[quota.key] > value}
    if not over:
        used = ", ".join(f"{alb} {u[quota.key]}" for alb, u in sorted(usage.items()))
        return ok("capacity", check_id, f"{name}: {value:g} >= {used}")
    found = ", ".join(f"{alb} needs {n}" for alb, n in over.items())
    how = (
        f"request an increase to at least {max(over.values())} (Service Quotas > Elastic "
        f"Load Balancing > {quota.name}), or route fewer models through the ALB"
        if quota.code
        else "not adjustable: route fewer models through the ALB"
    )
    return fail("capacity", check_id, f"{name} is {value:g}; {found}", how)


def _quota_check(
    quotas: Any, check_id: str, key: tuple[str, str], vcpus: int, pools: list[str]
) -> Check:
    code, name = QUOTAS[key]
    value = float(quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
    who = ", ".join(pools)
    if value >= vcpus:
        return ok("capacity", check_id, f"{name} ({code}): {value:g} >= {vcpus} vCPU for {who}")
    return fail(
        "capacity",
        check_id,
        f"{name} ({code}) is {value:g} vCPU; the pools need {vcpus} at max size: {who}",
        f"request an increase to at least {vcpus} (Service Quotas > Amazon EC2 > {name}), or "
        "lower maxNodes",
    )


# --------------------------------------------------------------------------- prerequisites


def prerequisite_checks(ctx: Context) -> list[Check]:
    group = "prerequisites"
    facts = ctx.facts
    iam = ctx.clients.get("iam")
    checks: list[Check] = []
    for arn in facts.admin_roles:
        check_id = f"prerequisites.admin-role[{arn.rsplit('/', 1)[-1]}]"

        def role(arn: str = arn, check_id: str = check_id) -> Check:
            name = arn.rsplit("/", 1)[-1]
            try:
                found = iam.get_role(RoleName=name)["Role"]
            except Exception as exc:
                if error_code(exc) == "NoSuchEntity":
                    return fail(
                        group,
                        check_id,
                        f"{arn} does not exist: the cluster would have no administrator",
                        "create the role (trusted by your SSO/admin principals) or fix "
                        "mlstack:cluster.adminRoleArns",
                    )
                raise
            if found.get("Arn") != arn:
                return fail(
                    group,
                    check_id,
                    f"role {name} exists as {found.get('Arn')}, not {arn} (path differs)",
                    "use the role's exact ARN in mlstack:cluster.adminRoleArns",
                )
            return ok(group, check_id, arn)

        checks += _guard(group, check_id, role)
    if facts.uses_spot:

        def spot_role() -> Check:
            check_id = "prerequisites.spot-service-linked-role"
            # Service-linked roles live under /aws-service-role/<service>/ (by path, not name).
            paginator = iam.get_paginator("list_roles")
            found = [
                role["RoleName"]
                for page in paginator.paginate(PathPrefix=SPOT_SERVICE_ROLE_PATH)
                for role in page.get("Roles", [])
            ]
            if not found:
                return fail(
                    group,
                    check_id,
                    f"the Spot service-linked role ({SPOT_SERVICE_LINKED_ROLE}) does not exist: "
                    "spot instances cannot be launched for the pools with capacityTypes: spot",
                    "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com",
                )
            return ok(group, check_id, f"{', '.join(found)} ({SPOT_SERVICE_ROLE_PATH})")

        checks += _guard(group, "prerequisites.spot-service-linked-role", spot_role)
    checks += _registry_credential_checks(ctx)
    checks += _oidc_check(ctx, iam)
    checks += _state_checks(ctx)
    return checks


def _registry_credential_checks(ctx: Context) -> list[Check]:
    """ECR pull-through cache rules with credentials need their secret (ECR reads it)."""
    group = "prerequisites"
    checks: list[Check] = []
    for registry, arn in sorted(ctx.facts.registry_credentials.items()):
        check_id = f"prerequisites.registry-credential[{registry}]"

        def one(arn: str = arn, check_id: str = check_id, registry: str = registry) -> Check:
            secrets = ctx.clients.get("secretsmanager", arn_region(arn))
            try:
                found = secrets.describe_secret(SecretId=arn)
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return fail(
                        group,
                        check_id,
                        f"{arn} does not exist: the pull-through cache rule for {registry} "
                        "cannot be created and no image from it can be pulled",
                        "create the secret (name prefix ecr-pullthroughcache/, keys username "
                        "and accessToken) and set mlstack:serving.imageCache.credentialArns",
                    )
                raise
            if found.get("DeletedDate"):
                return fail(
                    group,
                    check_id,
                    f"{arn} is scheduled for deletion",
                    "aws secretsmanager restore-secret --secret-id <arn>",
                )
            return ok(group, check_id, f"{found.get('Name')} for {registry}")

        checks += _guard(group, check_id, one)
    return checks


def _oidc_check(ctx: Context, iam: Any) -> list[Check]:
    group = "prerequisites"
    check_id = "prerequisites.github-oidc-provider"
    arn = ctx.facts.oidc_provider_arn
    if not ctx.facts.delivery_enabled:
        return [skipped(group, check_id, "mlstack:delivery.enabled is false (no CI identities)")]
    if arn is None:
        return [
            skipped(group, check_id, "no mlstack:delivery.oidcProviderArn: the stack creates it")
        ]

    def run() -> Check:
        try:
            found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        except Exception as exc:
            if error_code(exc) == "NoSuchEntity":
                return fail(
                    group,
                    check_id,
                    f"{arn} does not exist",
                    "mlstack bootstrap --github-oidc (or remove oidcProviderArn so the stack "
                    "creates it)",
                )
            raise
        url = str(found.get("Url", "")).removeprefix("https://")
        clients = found.get("ClientIDList", [])
        if url != GITHUB_OIDC_HOST:
            return fail(
                group, check_id, f"{arn} is for {url}, not {GITHUB_OIDC_HOST}", "fix the ARN"
            )
        if STS_AUDIENCE not in clients:
            return fail(
                group,
                check_id,
                f"{arn} lacks the {STS_AUDIENCE} audience (has {clients})",
                f"aws iam add-client-id-to-open-id-connect-provider --client-id {STS_AUDIENCE} "
                f"--open-id-connect-provider-arn {arn}",
            )
        return ok(group, check_id, f"{arn} (audience {STS_AUDIENCE})")

    return _guard(group, check_id, run)


def _state_checks(ctx: Context) -> list[Check]:
    from mlstack.delivery.bootstrap import bucket_problems

    group = "prerequisites"
    facts = ctx.facts
    out: list[Check] = []
    key_arn = facts.secrets_key_arn
    key_region = arn_region(key_arn) if key_arn else None
    if facts.state_bucket is None:
        out.append(skipped(group, "prerequisites.state-bucket", "no mlstack:delivery.stateBucket"))
    else:
        bucket = facts.state_bucket

        def state_bucket() -> Check:
            check_id = "prerequisites.state-bucket"
            s3 = ctx.clients.get("s3", key_region)
            try:
                location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
            except Exception as exc:
                if error_code(exc) in ("NoSuchBucket", "404", "NotFound"):
                    return fail(
                        group,
                        check_id,
                        f"s3://{bucket} does not exist",
                        f"mlstack bootstrap --bucket {bucket} --region <region>",
                    )
                raise
            regional = ctx.clients.get("s3", location or "us-east-1")
            problems = bucket_problems(regional, bucket)
            if key_arn:
                problems += _state_key_problems(ctx, regional, bucket, key_arn)
            if problems:
                return fail(
                    group,
                    check_id,
                    f"s3://{bucket}: " + "; ".join(problems),
                    "fix the bucket settings (docs/operations.md, State backend), or create "
                    "a new one with mlstack bootstrap",
                )
            return ok(
                group,
                check_id,
                f"s3://{bucket} ({location or 'us-east-1'}): versioned, SSE-KMS, private",
            )

        out += _guard(group, "prerequisites.state-bucket", state_bucket)
    if key_arn is None:
        out.append(skipped(group, "prerequisites.secrets-key", "no mlstack:delivery.secretsKeyArn"))
        return out

    def key() -> Check:
        check_id = "prerequisites.secrets-key"
        kms = ctx.clients.get("kms", key_region)
        try:
            meta = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return fail(
                    group,
                    check_id,
                    f"{key_arn} does not exist",
                    "mlstack bootstrap creates it; put its ARN in mlstack:delivery.secretsKeyArn",
                )
            raise
        problems = []
        if meta.get("KeyState") != "Enabled":
            problems.append(f"state {meta.get('KeyState')}, need Enabled")
        if meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
            problems.append(f"usage {meta.get('KeyUsage')}, need ENCRYPT_DECRYPT")
        if meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            problems.append(f"spec {meta.get('KeySpec')}, need SYMMETRIC_DEFAULT")
        if problems:
            return fail(
                group,
                check_id,
                f"{key_arn}: " + "; ".join(problems),
                "enable the key (or cancel its deletion): Pulumi cannot decrypt the stack's "
                "secrets without it",
            )
        return ok(group, check_id, f"{key_arn}: Enabled, symmetric")

    return out + _guard(group, "prerequisites.secrets-key", key)


def _state_key_problems(ctx: Context, s3: Any, bucket: str, key_arn: str) -> list[str]:
    """The state bucket's default key must be the secrets key the CI roles may use."""
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
    except Exception as exc:
        if error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return []  # bucket_problems already says "no default encryption"
        raise
    keys = [
        r.get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
        for r in rules
        if r.get("ApplyServerSideEncryptionByDefault", {})
        .get("SSEAlgorithm", "")
        .startswith("aws:kms")
    ]
    if not keys:
        return ["default encryption is not SSE-KMS with the secrets key"]
    kms = ctx.clients.get("kms", arn_region(key_arn))
    wanted = kms.describe_key(KeyId=key_arn)["KeyMetadata"]["Arn"]
    for key in keys:
        if key and kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"] == wanted:
            return []
    return [f"default encryption key {keys[0]} is not mlstack:delivery.secretsKeyArn {key_arn}"]


# --------------------------------------------------------------------------- secrets provider

DECRYPT_REFUSALS = frozenset(
    {
        "InvalidCiphertextException",
        "AccessDeniedException",
        "NotFoundException",
        "IncorrectKeyException",
        "DisabledException",
        "KMSInvalidStateException",
    }
)
"""KMS Decrypt errors meaning "this caller cannot turn this encryptedkey into a data key"."""


def awskms_keeper(url: str) -> tuple[str, str | None, dict[str, str]]:
    """(key id, region, encryption context) of an ``awskms://`` URL as gocloud.dev opens it
    (``secrets/awskms/kms.go`` ``OpenKeeperURL``: host + path, ``region``, ``context_*``)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    context = {k[len("context_") :]: v for k, v in query.items() if k.startswith("context_")}
    return f"{parts.netloc}{parts.path}".lstrip("/"), query.get("region"), context


def secrets_provider_checks(ctx: Context) -> list[Check]:
    """The stack file's secrets provider works for this caller, as the engine uses it.

    With an ``encryptedkey``: KMS Decrypt of it (``newCloudSecretsManager`` in pulumi's
    ``pkg/secrets/cloud/manager.go``, run by ``stack init``, ``config set --secret`` and
    ``up``). Without: the key exists and Encrypt then Decrypt of a 32-byte key succeed
    (``generateNewDataKey``, what ``stack init`` does). Neither call changes anything.
    """
    import base64
    import binascii
    import os

    from stacks.schema.secrets import init_command

    group, check_id = "secrets", "secrets.provider"
    facts = ctx.facts
    source = f"Pulumi.{facts.stack}.yaml"
    provider = facts.secrets_provider
    init = init_command(facts.stack, arn_region(facts.secrets_key_arn or "") or facts.region)
    if not provider:
        if facts.encryption_salt:
            return [skipped(group, check_id, f"{source}: passphrase provider (no KMS key)")]
        return [
            fail(
                group,
                check_id,
                f"{source} names no secretsprovider: `pulumi stack init` would choose the "
                "passphrase provider, which CI cannot use",
                f"{init} (the line `mlstack bootstrap` prints)",
            )
        ]
    if not provider.startswith("awskms://"):
        return [skipped(group, check_id, f"{source}: {provider} is not an awskms:// provider")]
    key_id, region, context = awskms_keeper(provider)
    kms = ctx.clients.get("kms", region)
    encrypted = facts.encrypted_key

    def decrypts(blob: bytes) -> bytes | Check:
        try:
            out = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
        except Exception as exc:
            if error_code(exc) not in DECRYPT_REFUSALS:
                raise
            return fail(
                group,
                check_id,
                f"{source}: KMS cannot decrypt its encryptedkey for this caller "
                f"({describe_error(exc)}): another account's or key's `pulumi stack init` "
                "wrote it, or these credentials may not kms:Decrypt with it; `pulumi stack "
                "init`, `config set --secret` and `up` all fail on it",
                "if it is not this account's: delete the encryptedkey line and every secure: "
                f"value, run `{init}`, set the secrets again and commit the file; else grant "
                "kms:Decrypt on the key",
            )
        return bytes(out["Plaintext"])

    def run() -> Check:
        if encrypted:
            try:
                blob = base64.b64decode(encrypted, validate=True)
            except (binascii.Error, ValueError):
                return fail(
                    group,
                    check_id,
                    f"{source}: encryptedkey is not base64",
                    f"delete the line and run `{init}`",
                )
            plain = decrypts(blob)
            if isinstance(plain, Check):
                return plain
            if len(plain) != 32:
                return fail(
                    group,
                    check_id,
                    f"{source}: encryptedkey decrypts to {len(plain)} bytes, not the 32-byte "
                    "AES-256 data key Pulumi writes",
                    f"delete the line and every secure: value, then run `{init}`",
                )
            return ok(group, check_id, f"{source}: encryptedkey decrypts with {key_id}")
        try:
            meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) != "NotFoundException":
                raise
            return fail(
                group,
                check_id,
                f"{source}: {key_id} (secretsprovider {provider}) does not exist in "
                f"{region or ctx.clients.region}: `pulumi stack init` cannot make a data key",
                "mlstack bootstrap --bucket <state bucket> --region <region> creates it",
            )
        if meta.get("KeyState") != "Enabled":
            return fail(
                group,
                check_id,
                f"{source}: {key_id} is {meta.get('KeyState')}: `pulumi stack init` cannot "
                "make a data key with it",
                "enable the key (or cancel its deletion)",
            )
        sealed = kms.encrypt(KeyId=key_id, Plaintext=os.urandom(32), EncryptionContext=context)
        plain = decrypts(bytes(sealed["CiphertextBlob"]))
        if isinstance(plain, Check):
            return plain
        return ok(
            group,
            check_id,
            f"{source}: no encryptedkey yet; `pulumi stack init` can make one with {key_id} "
            f"({meta.get('Arn')})",
        )

    return _guard(group, check_id, run)


def chart_crd_checks(ctx: Context) -> list[Check]:
    """The CRDs a release installs from its chart's crds/ are the pinned bytes: the
    package Helm will download matches its repository's digest, and its crds/ files match
    ``components.versions`` (a moved tag or a tampered mirror stops here, before up)."""
    from mlstack.preflight import chart_crds

    group = "charts"
    pins = chart_crds.pinned_crd_digests()
    checks: list[Check] = []
    for repository, chart, version in ctx.facts.crd_charts:
        if chart not in pins:
            continue
        check_id = f"charts.crds[{chart}-{version}]"
        pinned = pins[chart].get(version)
        if pinned is None:
            checks.append(
                fail(
                    group,
                    check_id,
                    f"no CRD digests are recorded for {chart} {version}",
                    "record the sha256 of each crds/ file of that chart version in "
                    "components/versions.py",
                )
            )
            continue
        ref = chart_crds.ChartRef(repository, chart, version)
        try:
            summary = chart_crds.verify_crds(ref, pinned, ctx.clients.http_get)
            checks.append(ok(group, check_id, summary))
        except chart_crds.ChartFetchError as exc:
            checks.append(
                fail(
                    group,
                    check_id,
                    str(exc),
                    "do not deploy: compare the chart with the pinned digests "
                    "(docs/operations.md, 'CRDs and chart bumps'); if the repository is "
                    "unreachable from here, run preflight where pulumi up runs",
                )
            )
    return checks


def runner_access_checks(ctx: Context) -> list[Check]:
    """The CI runner reaches the API endpoint (mlstack.preflight.runner)."""
    from mlstack.preflight import runner

    facts = ctx.facts
    if not facts.delivery_enabled:
        return [skipped(runner.GROUP, runner.INGRESS_ID, "mlstack:delivery is not enabled")]
    return _guard(
        runner.GROUP,
        runner.INGRESS_ID,
        lambda: runner.runner_checks(
            ctx.clients.get("eks"),
            ctx.clients.get("ec2"),
            facts.cluster_name,
            facts.runner_sources,
            network=facts.runner_network,
        ),
    )


GROUP_CHECKS: list[Callable[[Context], list[Check]]] = [
    eks_checks,
    ami_checks,
    certificate_checks,
    model_checks,
    loader_checks,
    chart_crd_checks,
    capacity_checks,
    alb_quota_checks,
    prerequisite_checks,
    secrets_provider_checks,
    runner_access_checks,
]
"""Run after ``identity_checks`` (which establishes the caller), in report order."""
