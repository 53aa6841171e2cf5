"""An AWS account in which a stack's preflight passes: moto for what moto implements,
botocore ``Stubber`` for the three APIs it does not.

moto 5.2 has no ``eks:DescribeAddonVersions``, knows only the ``vpc`` Service Quotas
and rejects (as AWS does) parameters under ``/aws/service/`` except its own few, so
``eks``, ``service-quotas`` and ``ssm`` clients are stubbed. ``Stubber`` checks every
stubbed response against botocore's own service model (``add_response`` validates it
against the operation's output shape) and every request against the input shape, so
the shapes used here are the API's, not invented. Everything else (STS, EC2, ACM,
S3, IAM, KMS, the tagging API) is a real moto server on loopback.

Used by the tests (``conftest.py``) and by ``benchmarks/preflight_bench.py``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.stub import Stubber

from components.serving import alb_quotas
from components.storage.layout import manifest_key
from mlstack.preflight.aws import Clients
from mlstack.preflight.checks import QUOTAS, ami_parameter, quota_class
from mlstack.preflight.facts import PlanFacts
from stacks.config import PROJECT_ROOT

AS_OF = dt.date(2026, 6, 1)
"""A day inside the stacks' pinned Kubernetes version's standard support (1.33: 2026-07-29)."""
ACCOUNT = "123456789012"
STATE_REGION = "us-west-2"
BUCKET_SUFFIX = "20260601120000000000000001"
"""The shape of the provider's generated suffix (time stamp + counter, 26 characters)."""


NODE_MONITORING_AGENT_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "nodeAgent": {"type": "object"},
        "dcgmAgent": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"tolerations": {"type": "array", "items": {"type": "object"}}},
        },
    },
}
"""A stand-in of the add-on's configuration schema: closed objects, as the agent's
``charts/configuration.schema.json`` declares them (``additionalProperties: false``)."""


@dataclass
class World:
    """What the moto account holds, and what the stubbed APIs answer."""

    endpoint: str
    root: Path
    stack: str
    region: str
    certificate_arn: str = ""
    key_arn: str = ""
    model_bucket: str = ""
    log_bucket: str = ""
    manifests: list[str] = field(default_factory=list)
    loader_repository: str = ""
    """The stack's model-loader ECR repository, holding ``MODEL_LOADER_IMAGE_TAG``."""
    registry_secrets: dict[str, str] = field(default_factory=dict)
    offered_addons: dict[str, list[str]] = field(default_factory=dict)
    """Add-on name -> versions DescribeAddonVersions offers (default: each pinned one)."""
    drop_addon: str | None = None
    addon_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Add-on name -> the configuration schema DescribeAddonConfiguration answers (default:
    :data:`NODE_MONITORING_AGENT_SCHEMA` for every add-on the plan configures)."""
    drop_ami: bool = False
    quota_vcpus: dict[str, float] = field(default_factory=dict)
    """Quota code -> value (default 4096 vCPU for every quota)."""

    def client(self, service: str, region: str | None = None) -> Any:
        return boto3.client(service, region_name=region or self.region, endpoint_url=self.endpoint)


# --------------------------------------------------------------------------- moto side


def self_signed_pem(names: list[str], not_after: dt.datetime) -> tuple[bytes, bytes]:
    """A certificate (and key) for ``names`` valid until ``not_after``, for ACM import."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=400))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def seed(
    endpoint: str,
    stack: str,
    root: Path,
    *,
    cert_names: list[str] | None = None,
    cert_not_after: dt.datetime = dt.datetime(2027, 6, 1, tzinfo=dt.UTC),
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> World:
    """Create everything ``Pulumi.<stack>.yaml`` depends on; write the stack file into ``root``
    with the ARNs moto generated (certificate, secrets key). ``edit`` changes the stack's
    ``config:`` mapping first (keys with their ``mlstack:`` namespace)."""
    from mlstack.delivery.bootstrap import bootstrap

    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    config = document["config"]
    if edit is not None:
        edit(config)
    region = config["mlstack:region"]
    world = World(endpoint=endpoint, root=root, stack=stack, region=region)
    iam = world.client("iam")
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    for arn in config["mlstack:cluster"]["adminRoleArns"]:
        iam.create_role(RoleName=arn.rsplit("/", 1)[-1], AssumeRolePolicyDocument=trust)
    iam.create_service_linked_role(AWSServiceName="spot.amazonaws.com")
    delivery = config["mlstack:delivery"]
    result = bootstrap(
        delivery["stateBucket"], STATE_REGION, github_oidc=True, endpoint_url=endpoint
    )
    assert result.oidc_provider_arn == delivery["oidcProviderArn"]
    world.key_arn = result.key_arn
    delivery["secretsKeyArn"] = result.key_arn

    credentials = config["mlstack:serving"].get("imageCache", {}).get("credentialArns", {})
    for host, arn in list(credentials.items()):
        name = arn.split(":secret:", 1)[1].rsplit("-", 1)[0]  # AWS appends -<6 characters>
        secrets = world.client("secretsmanager", arn.split(":")[3])
        credentials[host] = secrets.create_secret(
            Name=name, SecretString=json.dumps({"username": "u", "accessToken": "t"})
        )["ARN"]
        world.registry_secrets[host] = credentials[host]

    hosts = [
        m["exposure"]["host"] for m in config["mlstack:models"] if m.get("exposure", {}).get("host")
    ]
    names = cert_names or [f"*.{h.split('.', 1)[1]}" for h in hosts] or ["example.com"]
    pem, key = self_signed_pem(names, cert_not_after)
    acm = world.client("acm")
    world.certificate_arn = acm.import_certificate(Certificate=pem, PrivateKey=key)[
        "CertificateArn"
    ]
    config["mlstack:serving"]["loadBalancer"]["certificateArn"] = world.certificate_arn

    s3 = world.client("s3")
    prefix = f"mlstack-{stack}-models-"
    tags = {"TagSet": [{"Key": "project", "Value": "mlstack"}, {"Key": "stack", "Value": stack}]}
    world.model_bucket = prefix + BUCKET_SUFFIX
    world.log_bucket = prefix + "logs-" + BUCKET_SUFFIX
    for bucket in (world.log_bucket, world.model_bucket):
        create: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tags)
    for model in config["mlstack:models"]:
        versions = {model["artifactVersion"]}
        rollout = model.get("rollout") or {}
        if rollout.get("canary", {}).get("artifactVersion"):
            versions.add(rollout["canary"]["artifactVersion"])
        for color in ("blue", "green"):
            version = (rollout.get("blueGreen") or {}).get(color, {}).get("artifactVersion")
            if version:
                versions.add(version)
        for version in sorted(versions):
            key_name = manifest_key(model["name"], version)
            s3.put_object(Bucket=world.model_bucket, Key=key_name, Body=b"{}")
            world.manifests.append(key_name)
    seed_loader_image(world)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return world


def seed_loader_image(world: World) -> None:
    """The loader repository with the pinned tag, as ``mlstack loader push`` leaves it."""
    from components.versions import MODEL_LOADER_IMAGE_TAG
    from stacks.serving_layer import loader_repository_name

    world.loader_repository = loader_repository_name(world.stack)
    ecr = world.client("ecr")
    ecr.create_repository(repositoryName=world.loader_repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [],
    }
    ecr.put_image(
        repositoryName=world.loader_repository,
        imageManifest=json.dumps(manifest),
        imageTag=MODEL_LOADER_IMAGE_TAG,
    )


# --------------------------------------------------------------------------- stubbed side


SYNTHETIC_CRDS = {"crds/crds.yaml": b"# a stand-in CRD file of the world's chart package\n"}
"""What the world's chart repositories serve under crds/ (the real bytes are checked
against the pinned digests in ``test_chart_crds.py``)."""


def chart_world(facts: PlanFacts) -> tuple[dict[str, bytes], dict[str, dict[str, dict[str, str]]]]:
    """(URL -> body, pinned digests) for every chart whose CRDs preflight checks: each
    repository lists the chart's version with a package holding :data:`SYNTHETIC_CRDS`."""
    from components.versions import AWS_LOAD_BALANCER_CONTROLLER_CHART
    from mlstack.preflight.chart_crds import crd_digests
    from tests.mlstack.preflight import chart_repo

    urls: dict[str, bytes] = {}
    pins: dict[str, dict[str, dict[str, str]]] = {}
    for repository, chart, version in facts.crd_charts:
        if chart != AWS_LOAD_BALANCER_CONTROLLER_CHART.chart:
            continue
        tgz = chart_repo.package(chart, {"Chart.yaml": b"name: x\n", **SYNTHETIC_CRDS})
        urls |= chart_repo.repository(repository, chart, version, tgz)
        pins.setdefault(chart, {})[version] = crd_digests(tgz, chart)
    return urls, pins


class WorldClients(Clients):
    """Real clients (moto, through ``AWS_ENDPOINT_URL``) except the stubbed services; chart
    repositories answer from memory (:func:`chart_world`)."""

    def __init__(
        self, region: str, stubbed: dict[str, Any], urls: dict[str, bytes] | None = None
    ) -> None:
        super().__init__(region)
        self.stubbed = stubbed
        self.stubbers: list[Stubber] = []
        self.urls = urls or {}

    def http_get(self, url: str) -> bytes:
        from mlstack.preflight.chart_crds import ChartFetchError

        if url not in self.urls:
            raise ChartFetchError(f"{url}: 404 (not in the world's repositories)")
        return self.urls[url]

    def get(self, service: str, region: str | None = None) -> Any:
        if service in self.stubbed:
            return self.stubbed[service]
        return super().get(service, region)


def stubbed_clients(world: World, facts: PlanFacts) -> WorldClients:
    """Clients whose ``eks``, ``ssm`` and ``service-quotas`` answer from ``world``, in the
    order preflight asks (Stubber is strict about order and parameters)."""
    kwargs: dict[str, Any] = {"region_name": world.region}
    eks = boto3.client("eks", **kwargs)
    ssm = boto3.client("ssm", **kwargs)
    quotas = boto3.client("service-quotas", **kwargs)
    eks_stub, ssm_stub, quota_stub = Stubber(eks), Stubber(ssm), Stubber(quotas)

    for name, pinned in sorted(facts.addons.items()):
        offered = world.offered_addons.get(name, [pinned])
        if world.drop_addon == name:
            offered = [v for v in offered if v != pinned] + [pinned.replace("eksbuild", "xbuild")]
        eks_stub.add_response(
            "describe_addon_versions",
            {
                "addons": [
                    {
                        "addonName": name,
                        "type": "networking",
                        "addonVersions": [
                            {
                                "addonVersion": v,
                                "architecture": ["amd64", "arm64"],
                                "compatibilities": [
                                    {
                                        "clusterVersion": facts.cluster_version,
                                        "platformVersions": ["*"],
                                        "defaultVersion": False,
                                    }
                                ],
                                "requiresConfiguration": False,
                            }
                            for v in offered
                        ],
                        "publisher": "eks",
                        "owner": "aws",
                    }
                ]
            },
            {"addonName": name, "kubernetesVersion": facts.cluster_version},
        )
        if name in facts.addon_configurations:
            schema = world.addon_schemas.get(name, NODE_MONITORING_AGENT_SCHEMA)
            eks_stub.add_response(
                "describe_addon_configuration",
                {
                    "addonName": name,
                    "addonVersion": pinned,
                    "configurationSchema": json.dumps(schema),
                },
                {"addonName": name, "addonVersion": pinned},
            )
    if facts.cluster_mode == "existing":
        eks_stub.add_response(
            "describe_cluster",
            {
                "cluster": {
                    "name": facts.cluster_name,
                    "version": facts.cluster_version,
                    "status": "ACTIVE",
                }
            },
            {"name": facts.cluster_name},
        )

    paths = sorted({ami_parameter(pin, facts.cluster_version) for pin in facts.amis})
    if paths:
        published = [] if world.drop_ami else paths
        invalid = [p for p in paths if p not in published]
        ssm_stub.add_response(
            "get_parameters",
            {
                **({"InvalidParameters": invalid} if invalid else {}),
                "Parameters": [
                    {
                        "Name": p,
                        "Type": "String",
                        "Value": "ami-0123456789abcdef0",
                        "Version": 1,
                        "DataType": "aws:ec2:image",
                        "ARN": f"arn:aws:ssm:{world.region}::parameter{p}",
                    }
                    for p in published
                ],
            },
            {"Names": paths},
        )

    needed = sorted(
        {
            (capacity, cls)
            for pool in facts.pools
            for capacity in pool.capacity_types
            if capacity != "reserved"
            for cls in {quota_class(t) for t in pool.instance_types} - {None}
        }
    )
    for capacity, cls in needed:
        code, name = QUOTAS[(capacity, str(cls))]
        quota_stub.add_response(
            "get_service_quota",
            {
                "Quota": {
                    "ServiceCode": "ec2",
                    "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                    "QuotaArn": f"arn:aws:servicequotas:{world.region}:{ACCOUNT}:ec2/{code}",
                    "QuotaCode": code,
                    "QuotaName": name,
                    "Value": world.quota_vcpus.get(code, 4096.0),
                    "Unit": "None",
                    "Adjustable": True,
                    "GlobalQuota": False,
                }
            },
            {"ServiceCode": "ec2", "QuotaCode": code},
        )
    for alb_quota in alb_quotas.QUOTAS if facts.alb_usage else ():
        if alb_quota.code is None:
            continue
        service = alb_quotas.SERVICE_CODE
        quota_stub.add_response(
            "get_service_quota",
            {
                "Quota": {
                    "ServiceCode": service,
                    "QuotaArn": f"arn:aws:servicequotas:{world.region}:{ACCOUNT}:"
                    f"{service}/{alb_quota.code}",
                    "QuotaCode": alb_quota.code,
                    "QuotaName": alb_quota.name,
                    "Value": float(alb_quota.default),
                }
            },
            {"ServiceCode": service, "QuotaCode": alb_quota.code},
        )
    if facts.delivery_enabled:  # the runner checks (mlstack.preflight.runner), last
        if facts.cluster_mode == "existing":
            eks_stub.add_response(
                "describe_cluster",
                {"cluster": {"name": facts.cluster_name, "status": "ACTIVE"}},
                {"name": facts.cluster_name},
            )
        else:  # the world is before the first deploy: no cluster yet
            eks_stub.add_client_error(
                "describe_cluster",
                "ResourceNotFoundException",
                expected_params={"name": facts.cluster_name},
            )
    urls, _ = chart_world(facts)
    clients = WorldClients(world.region, {"eks": eks, "ssm": ssm, "service-quotas": quotas}, urls)
    for stub in (eks_stub, ssm_stub, quota_stub):
        stub.activate()
        clients.stubbers.append(stub)
    return clients
