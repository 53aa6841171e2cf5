"""What the plan depends on outside the program, read from the offline synth and the config.

The synth is the same program ``pulumi up`` runs, so the add-on versions, the
certificate and the hosts routed to it, the model versions each Deployment loads and
the admin roles given access entries are taken from the synthesized resources
themselves; pool sizes, AMI pins, zones and the CI prerequisites come from the
validated config that produced them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from components.compute.gpu_instances import load_gpu_instances
from components.serving import alb_quotas
from mlstack.preflight.aws import arn_account
from mlstack.synth import ResourceGraph
from stacks.config import StackConfig

ADDON_TYPE = "aws:eks/addon:Addon"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
CLUSTER_TYPE = "aws:eks/cluster:Cluster"
ACCESS_ENTRY_TYPE = "aws:eks/accessEntry:AccessEntry"
BUCKET_TYPE = "aws:s3/bucket:Bucket"
MODEL_BUCKET_COMPONENT = "mlstack:storage:ModelArtifactBucket"
PULL_THROUGH_RULE_TYPE = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
INGRESS_TYPE = "kubernetes:networking.k8s.io/v1:Ingress"
LISTENER_TYPE = "aws:lb/listener:Listener"
LISTENER_RULE_TYPE = "aws:lb/listenerRule:ListenerRule"
LISTENER_CERTIFICATE_TYPE = "aws:lb/listenerCertificate:ListenerCertificate"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
ECR_REPOSITORY_TYPE = "aws:ecr/repository:Repository"
LOADER_REPOSITORY_COMPONENT = "mlstack:serving:ModelLoaderRepository"
NLB_CERT_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-ssl-cert"


@dataclass(frozen=True)
class AmiPin:
    pool: str
    provisioner: str
    family: str
    architecture: str
    release: str


@dataclass(frozen=True)
class PoolCapacity:
    pool: str
    instance_types: tuple[str, ...]
    capacity_types: tuple[str, ...]
    max_nodes: int
    model_cache_gib: int | None = None
    """The node-shared model cache's bound (``gpuPools[].modelCache``); None: per pod."""
    nvme_types: tuple[str, ...] = ()
    """Types whose cache lands on the instance-store RAID0 (the offline rules cannot size it)."""


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: str
    track: str
    """The Deployment's track: stable, canary, blue or green."""


@dataclass
class PlanFacts:
    """Everything preflight checks, in the order the report shows it."""

    stack: str
    region: str
    account_ids: dict[str, str] = field(default_factory=dict)
    """Account id -> the config key of one ARN that names it."""
    cluster_mode: str = "create"
    cluster_name: str = ""
    cluster_version: str = ""
    addons: dict[str, str] = field(default_factory=dict)
    """EKS add-on name -> pinned version."""
    amis: list[AmiPin] = field(default_factory=list)
    certificates: dict[str, list[str]] = field(default_factory=dict)
    """Certificate ARN -> host names routed through a listener that presents it."""
    models: list[ModelVersion] = field(default_factory=list)
    deploy_models: bool = True
    """``mlstack:serving.deployModels``: false in the first deploy's bucket phase."""
    configured_models: tuple[str, ...] = ()
    """``mlstack:models[].name``: a served model the plan shows no loader for is a FAIL."""
    model_bucket_prefix: str | None = None
    model_bucket_name: str | None = None
    pools: list[PoolCapacity] = field(default_factory=list)
    availability_zones: tuple[str, ...] = ()
    admin_roles: tuple[str, ...] = ()
    registry_credentials: dict[str, str] = field(default_factory=dict)
    """Upstream registry URL of an ECR pull-through cache rule -> its Secrets Manager secret."""
    delivery_enabled: bool = False
    oidc_provider_arn: str | None = None
    state_bucket: str | None = None
    secrets_key_arn: str | None = None
    uses_spot: bool = False
    loader_repository: str | None = None
    """The model-loader image's ECR repository (``ModelLoaderRepository``)."""
    loader_tag: str | None = None
    """The loader image tag the plan's pods pull; None: no pod runs the loader."""
    loader_digest: str | None = None
    """The digest the pods pin (``MODEL_LOADER_IMAGE_DIGEST``), once recorded."""
    addon_configurations: dict[str, str] = field(default_factory=dict)
    """Add-on name -> the ``configurationValues`` JSON the plan passes (EKS validates it
    against the version's schema at create: preflight checks it first)."""
    crd_charts: list[tuple[str, str, str]] = field(default_factory=list)
    """(repository, chart, version) of each Helm release that installs its chart's crds/
    (``skipCrds: false``) from a repository (preflight checks the CRD digests)."""
    secrets_provider: str | None = None
    """The stack file's ``secretsprovider`` (not config: the engine reads it)."""
    encrypted_key: str | None = None
    """The stack file's ``encryptedkey``: the data key ``pulumi stack init`` encrypted."""
    encryption_salt: bool = False
    """The stack file has a passphrase provider's ``encryptionsalt``."""
    runner_network: str = "hosted"
    """``mlstack:delivery.runner.network``: hosted, or vpc (a self-hosted runner inside)."""
    runner_sources: tuple[str, ...] = ()
    """The runner's declared source (security group, prefix list, CIDRs) for network vpc."""
    alb_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    """ALB name -> rules / target groups / extra certificates the plan attaches to it
    (``components.serving.alb_quotas``), checked against the account's quotas."""


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _hosts(ingress_inputs: dict[str, Any]) -> list[str]:
    rules = (ingress_inputs.get("spec") or {}).get("rules") or []
    return [str(r["host"]) for r in rules if isinstance(r, dict) and r.get("host")]


def _loader_images(inputs: dict[str, Any]) -> Iterator[str]:
    """The image of every init container that loads a model version."""
    pod = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("initContainers") or []:
        argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        if "fetch" in argv and container.get("image"):
            yield str(container["image"])


def _loader_versions(inputs: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(model, version, track) of every init container that loads a model version."""
    labels = ((inputs.get("metadata") or {}).get("labels")) or {}
    track = str(labels.get("mlstack.io/track", "stable"))
    pod = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":
            continue  # the model-cache-hold sidecar names the version too; it loads nothing
        env = {e.get("name"): e.get("value") for e in container.get("env") or [] if "name" in e}
        # `mlstack model fetch --name N --version V ...` (the loader's command line).
        argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
        flags = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
        name = flags.get("--name") or env.get("MODEL_NAME")
        version = flags.get("--version") or env.get("MODEL_VERSION")
        if name and version:
            yield str(name), str(version), track


def _accounts(cfg: StackConfig) -> dict[str, str]:
    found: dict[str, str] = {}
    arns: list[tuple[str, str | None]] = [
        (f"mlstack:cluster.adminRoleArns[{i}]", arn)
        for i, arn in enumerate(cfg.cluster.admin_role_arns)
    ]
    arns.append(
        ("mlstack:serving.loadBalancer.certificateArn", cfg.serving.load_balancer.certificate_arn)
    )
    arns.append(("mlstack:delivery.oidcProviderArn", cfg.delivery.oidc_provider_arn))
    arns.append(("mlstack:delivery.secretsKeyArn", cfg.delivery.secrets_key_arn))
    for host, arn in cfg.serving.image_cache.credential_arns.items():
        arns.append((f"mlstack:serving.imageCache.credentialArns.{host}", arn))
    for key, arn in arns:
        account = arn_account(arn) if arn else None
        if account:
            found.setdefault(account, key)
    return found


def plan_facts(cfg: StackConfig, graph: ResourceGraph) -> PlanFacts:
    """Collect the facts preflight verifies from one synthesized stack."""
    facts = PlanFacts(stack=graph.stack, region=cfg.region, account_ids=_accounts(cfg))
    facts.cluster_mode = cfg.cluster.mode
    facts.cluster_name = cfg.cluster.name or f"mlstack-{graph.stack}"
    clusters = graph.by_type(CLUSTER_TYPE)
    facts.cluster_version = str(
        clusters[0].inputs.get("version", cfg.cluster.version) if clusters else cfg.cluster.version
    )
    for node in graph.by_type(RELEASE_TYPE):
        repo = (node.inputs.get("repositoryOpts") or {}).get("repo")
        if repo and node.inputs.get("skipCrds") is False:
            facts.crd_charts.append(
                (str(repo), str(node.inputs.get("chart")), str(node.inputs.get("version")))
            )
    for node in graph.by_type(ADDON_TYPE):
        name, version = node.inputs.get("addonName"), node.inputs.get("addonVersion")
        if name and version:
            facts.addons[str(name)] = str(version)
            if node.inputs.get("configurationValues"):
                facts.addon_configurations[str(name)] = str(node.inputs["configurationValues"])
    facts.admin_roles = tuple(
        sorted(
            {
                str(n.inputs["principalArn"])
                for n in graph.by_type(ACCESS_ENTRY_TYPE)
                if str(n.inputs.get("principalArn", "")) in cfg.cluster.admin_role_arns
            }
        )
    ) or tuple(cfg.cluster.admin_role_arns if cfg.cluster.mode == "create" else ())

    # Certificates: the Pulumi-owned listeners'. The HTTPS listener's default certificate
    # covers every host a listener rule routes, except the hosts of a model that brings its
    # own SNI certificate (a ListenerCertificate under the same model component); NLB TLS
    # listeners present theirs to clients that name no host.
    own_certs: dict[str | None, list[str]] = {}
    for node in graph.by_type(LISTENER_CERTIFICATE_TYPE):
        arn = node.inputs.get("certificateArn")
        if arn:
            own_certs.setdefault(node.parent, []).append(str(arn))
    hosts_by_owner: dict[str | None, set[str]] = {}
    for node in graph.by_type(LISTENER_RULE_TYPE):
        for condition in node.inputs.get("conditions") or []:
            values = ((condition or {}).get("hostHeader") or {}).get("values") or []
            hosts_by_owner.setdefault(node.parent, set()).update(str(v) for v in values)
    default_hosts = sorted(
        {h for owner, hosts in hosts_by_owner.items() if owner not in own_certs for h in hosts}
    )
    for node in graph.by_type(LISTENER_TYPE):
        arn = node.inputs.get("certificateArn")
        if not arn:
            continue
        routed = default_hosts if node.inputs.get("protocol") == "HTTPS" else []
        facts.certificates[str(arn)] = sorted(
            set(facts.certificates.get(str(arn), [])) | set(routed)
        )
    for owner, arns in own_certs.items():
        for arn in arns:
            hosts = hosts_by_owner.get(owner, set())
            facts.certificates[arn] = sorted(set(facts.certificates.get(arn, [])) | hosts)

    seen: set[tuple[str, str, str]] = set()
    for node in graph.by_type(DEPLOYMENT_TYPE):
        for item in _loader_versions(node.inputs):
            if item not in seen:
                seen.add(item)
                facts.models.append(ModelVersion(*item))
    facts.models.sort(key=lambda m: (m.model, m.version, m.track))
    for component in graph.by_type(LOADER_REPOSITORY_COMPONENT):
        for child in graph.children(component.urn):
            if child.type == ECR_REPOSITORY_TYPE and child.inputs.get("name"):
                facts.loader_repository = str(child.inputs["name"])
    images = sorted(
        {i for node in graph.by_type(DEPLOYMENT_TYPE) for i in _loader_images(node.inputs)}
    )
    if images:
        # <registry>/<repository>:<tag>[@sha256:<digest>]
        reference, _, digest = images[0].partition("@")
        facts.loader_tag = reference.rsplit(":", 1)[-1]
        facts.loader_digest = digest or None
    facts.runner_network = cfg.delivery.runner.network
    facts.runner_sources = tuple(cfg.delivery.runner.api_sources())
    # The first deploy's bucket phase declares no model (serving.deployModels: false).
    facts.deploy_models = bool(getattr(cfg.serving, "deploy_models", True))
    facts.configured_models = tuple(m.name for m in cfg.models) if facts.deploy_models else ()
    for component in graph.by_type(MODEL_BUCKET_COMPONENT):
        for child in graph.children(component.urn):
            if child.type != BUCKET_TYPE or child.name != f"{component.name}-bucket":
                continue
            facts.model_bucket_name = child.inputs.get("bucket") or None
            facts.model_bucket_prefix = child.inputs.get("bucketPrefix") or None

    for node in graph.by_type(PULL_THROUGH_RULE_TYPE):
        secret = node.inputs.get("credentialArn")
        if secret:
            facts.registry_credentials[str(node.inputs.get("upstreamRegistryUrl"))] = str(secret)
    instances = load_gpu_instances()
    for pool in cfg.gpu_pools:
        facts.amis.append(
            AmiPin(
                pool.name,
                pool.provisioner,
                pool.ami.family,
                pool.ami.architecture,
                pool.ami.release,
            )
        )
        facts.pools.append(
            PoolCapacity(
                pool.name,
                pool.allowed_instance_types(),
                tuple(pool.capacity_types),
                pool.max_nodes,
                model_cache_gib=pool.model_cache.size_gib
                if pool.model_cache.scope == "node"
                else None,
                nvme_types=tuple(
                    t
                    for t in pool.allowed_instance_types()
                    if pool.instance_store_raid0 and t in instances and instances[t].instance_store
                ),
            )
        )
        facts.uses_spot = facts.uses_spot or "spot" in pool.capacity_types
    facts.availability_zones = tuple(cfg.network.availability_zones)
    delivery = cfg.delivery
    facts.delivery_enabled = delivery.enabled
    if delivery.enabled:
        facts.oidc_provider_arn = delivery.oidc_provider_arn
        facts.state_bucket = delivery.state_bucket
        facts.secrets_key_arn = delivery.secrets_key_arn
    facts.alb_usage = alb_quotas.alb_usage(
        alb_quotas.PlanNode(n.urn, n.type, n.name, n.dependencies, n.inputs)
        for n in graph.resources
    )
    return facts


def add_stack_file_secrets(facts: PlanFacts, document: dict[str, Any]) -> PlanFacts:
    """Copy the stack file's secrets provider fields (top level, outside ``config:``)."""
    provider, key = document.get("secretsprovider"), document.get("encryptedkey")
    facts.secrets_provider = str(provider) if provider else None
    facts.encrypted_key = str(key) if key else None
    facts.encryption_salt = bool(document.get("encryptionsalt"))
    return facts
