"""``mlstack:models``: served models, one InferenceService each.

A model names the artifact version it serves: its artifacts live under
``models/<name>/<artifactVersion>/`` in the model bucket (layout:
``components.storage.layout``, ``docs/model-artifacts.md``; ``mlstack model pin <stack>
<name> <version>`` edits ``artifactVersion`` in place). It also names the runtime preset
that serves it (``vllm``, ``triton`` or ``custom``), the GPU pool and resources of one
replica, how it autoscales, how new versions roll out (``rolling``, ``canary`` or
``blueGreen``, see docs/rollouts.md) and how it is exposed (shared ALB, NLB, in-cluster).
"""

from __future__ import annotations

import ipaddress
import math
import re
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import AfterValidator, WithJsonSchema, field_validator, model_validator

from components import naming
from components.network.cidrs import too_open
from components.serving import runtimes
from components.storage import layout
from stacks.schema import cron
from stacks.schema.base import ConfigModel, HotfixReason, fixed, knob

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_RULE_SLOT = 25000
"""ALB listener rules have priorities 1..50000: two per model (preview, main)."""

_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_PROM_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")
_PATH = re.compile(r"^/[A-Za-z0-9._~\-/]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,40}$")

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|m|k|M|G|T)?$")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity (``8``, ``7500m``, ``64Gi``) as a number."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity like 8, 500m or 64Gi")
    try:
        number = Decimal(match["num"])
    except InvalidOperation:  # pragma: no cover - the regex only lets numbers through
        raise ValueError(f"{text!r} is not a number") from None
    unit = match["unit"]
    if unit in _BINARY:
        return number * _BINARY[unit]
    if unit:
        return number * Decimal(_DECIMAL[unit])
    return number


MEMORY_UNITS = ("Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T")


def memory_unit_problem(text: str) -> str | None:
    """Why ``text`` is not a memory size with a byte unit (``12Gi``), or None.

    Kubernetes reads ``12`` as 12 bytes and ``100m`` as 0.1 byte: valid quantities, never
    what was meant for a model server's memory."""
    match = _QUANTITY.match(text)
    if match is None or match["unit"] in MEMORY_UNITS:
        return None  # not a quantity at all: parse_quantity reports it
    allowed = f"allowed units: {', '.join(MEMORY_UNITS)}"
    number = match["num"]
    if match["unit"] is None:
        return (
            f"{text!r} has no unit, so Kubernetes reads {number} bytes; give a byte unit, "
            f"e.g. {number}Gi ({allowed})"
        )
    return (
        f"{text!r} is {number} millibytes ('m' is milli); give a byte unit, e.g. {number}Mi "
        f"({allowed})"
    )


def image_parts(image: str) -> tuple[str, str | None, str | None]:
    """``(repository, tag, digest)`` of an image reference; raises on bad syntax."""
    match = _IMAGE.match(image)
    if not match:
        raise ValueError(f"{image!r} is not an image reference like registry/repo:tag")
    return match["repo"], match["tag"], match["digest"]


def _check_image(value: str) -> str:
    image_parts(value)
    return value


def _check_version(value: str) -> str:
    problem = layout.version_problem(value)
    if problem:
        raise ValueError(problem)
    return value


ModelName = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": layout.NAME_PATTERN, "maxLength": layout.NAME_MAX_LENGTH}
    ),
]
ArtifactVersion = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": layout.VERSION_PATTERN,
            "maxLength": layout.VERSION_MAX_LENGTH,
        }
    ),
]
"""A version string; ModelConfig checks it (layout.version_problem) with a clear message."""
CheckedVersion = Annotated[ArtifactVersion, AfterValidator(_check_version)]
"""A version checked where it appears (canary, blue/green colors)."""
ImageRef = Annotated[str, AfterValidator(_check_image)]


class WakeScheduleConfig(ConfigModel):
    """When a scale-to-zero model is woken (a KEDA cron trigger)."""

    timezone: str = knob("UTC", description="IANA time zone of start/end, e.g. Europe/Berlin.")
    start: str = knob(description="Cron expression (5 fields) that starts the window.")
    end: str = knob(description="Cron expression (5 fields) that ends the window.")
    replicas: int = knob(1, ge=1, le=100, description="Replicas kept during the window.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron.cron_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _window(self) -> WakeScheduleConfig:
        if " ".join(self.start.split()) == " ".join(self.end.split()):
            raise ValueError(
                f"start and end are the same ({self.start!r}): the window would close as it "
                "opens; KEDA rejects it"
            )
        return self


class AutoscalingConfig(ConfigModel):
    """KEDA scaling of each Deployment on the runtime's queue signal."""

    min_replicas: int = knob(
        1, ge=0, le=1000, description="Fewest replicas; 0 scales to zero (needs wakeSchedule)."
    )
    max_replicas: int = knob(1, ge=1, le=1000, description="Most replicas.")
    target: float | None = knob(
        None,
        gt=0,
        description="Target of the runtime's scaling signal (vllm: waiting requests per "
        "replica, default 4; triton: queue ms per request, default 50).",
    )
    scale_down_stabilization_seconds: int = knob(
        300, ge=0, le=3600, description="Scale-down stabilization window (scale-up is fast)."
    )
    wake_schedule: WakeScheduleConfig | None = knob(
        None, description="Cron window that brings a scale-to-zero model up."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) is greater than maxReplicas "
                f"({self.max_replicas})"
            )
        if self.min_replicas == 0 and self.wake_schedule is None:
            raise ValueError(
                "minReplicas 0 needs a wakeSchedule: the queue metric comes from the pods, "
                "so nothing would ever scale the model up from zero"
            )
        if self.wake_schedule and self.wake_schedule.replicas > self.max_replicas:
            raise ValueError(
                f"wakeSchedule.replicas ({self.wake_schedule.replicas}) is greater than "
                f"maxReplicas ({self.max_replicas})"
            )
        return self


class CanaryConfig(ConfigModel):
    """A second Deployment taking ``canaryWeight`` percent of the ALB traffic."""

    artifact_version: CheckedVersion | None = knob(
        None, description="Model version the canary serves."
    )
    image: ImageRef | None = knob(None, description="Image the canary runs (default: the model's).")
    stable_weight: int = knob(ge=0, le=100, description="Percent of traffic to stable.")
    canary_weight: int = knob(ge=0, le=100, description="Percent of traffic to the canary.")

    @field_validator("stable_weight", "canary_weight", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 100:
            raise ValueError(f"{value} is not a percent of traffic; allowed: 0..100")
        return value

    @model_validator(mode="after")
    def _weights(self) -> CanaryConfig:
        total = self.stable_weight + self.canary_weight
        if total != 100:
            raise ValueError(
                f"stableWeight ({self.stable_weight}) + canaryWeight ({self.canary_weight}) "
                f"= {total}; the weights must sum to 100"
            )
        return self


class ColorConfig(ConfigModel):
    """What one blue/green color runs; unset fields fall back to the model's."""

    artifact_version: CheckedVersion | None = knob(None, description="Model version of this color.")
    image: ImageRef | None = knob(None, description="Image of this color.")


COLORS = ("blue", "green")


class BlueGreenConfig(ConfigModel):
    """Two full Deployments; traffic goes to ``activeColor``, a preview route to the other."""

    active_color: str = knob(description="blue or green: the color that takes traffic.")
    blue: ColorConfig = knob(default_factory=ColorConfig, description="The blue color.")
    green: ColorConfig = knob(default_factory=ColorConfig, description="The green color.")
    preview_header: str = fixed(
        "x-mlstack-preview",
        description="Requests carrying this header (value 'true') go to the idle color.",
    )

    preview_source_cidrs: list[str] = knob(
        default_factory=list,
        description="alb: client CIDRs the preview route (previewHeader: true, to the idle, "
        "un-promoted color) accepts, as an ALB source-ip condition. Default: the VPC's CIDR "
        "(the private network), whatever the load balancer's scheme and inboundCidrs.",
    )

    @field_validator("preview_source_cidrs")
    @classmethod
    def _preview_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(
                    f"{cidr!r} is not a CIDR ({exc}); allowed: e.g. 10.0.0.0/8"
                ) from None
        opened = too_open(value)
        if opened:
            raise ValueError(
                f"{value} opens the un-promoted color to the internet: {opened} (the CIDRs "
                "of the people and tools that preview; default: the VPC)"
            )
        return value

    @field_validator("active_color")
    @classmethod
    def _known_color(cls, value: str) -> str:
        if value not in COLORS:
            raise ValueError(f"unknown active color {value!r}; allowed: blue, green")
        return value

    @field_validator("preview_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER.match(value):
            raise ValueError("must be an HTTP header name (letters, digits, '-')")
        return value.lower()

    @property
    def idle_color(self) -> str:
        return "green" if self.active_color == "blue" else "blue"


class RolloutConfig(ConfigModel):
    """How a new version reaches users."""

    strategy: Literal["rolling", "canary", "blueGreen"] = knob(
        "rolling", description="rolling, canary (weighted ALB split) or blueGreen."
    )
    max_surge: int = knob(1, ge=0, le=10, description="rolling: extra pods during an update.")
    max_unavailable: int = knob(
        0, ge=0, le=10, description="rolling: pods that may be down during an update."
    )
    canary: CanaryConfig | None = knob(None, description="canary: the second version + weights.")
    blue_green: BlueGreenConfig | None = knob(None, description="blueGreen: colors + active.")

    @model_validator(mode="after")
    def _strategy_blocks(self) -> RolloutConfig:
        if self.strategy == "canary" and self.canary is None:
            raise ValueError("strategy canary needs a canary block (second version + weights)")
        if self.strategy == "blueGreen" and self.blue_green is None:
            raise ValueError("strategy blueGreen needs a blueGreen block (activeColor)")
        if self.strategy != "canary" and self.canary is not None:
            raise ValueError(f"a canary block is set but strategy is {self.strategy}")
        if self.strategy != "blueGreen" and self.blue_green is not None:
            raise ValueError(f"a blueGreen block is set but strategy is {self.strategy}")
        if self.max_surge + self.max_unavailable == 0:
            raise ValueError("maxSurge and maxUnavailable cannot both be 0")
        return self


class ExposureConfig(ConfigModel):
    """How clients reach the model: the shared ALB, its own NLB (TCP), or in-cluster only."""

    type: Literal["alb", "nlb", "none"] = fixed(
        "none", description="alb: shared ALB (HTTP routing); nlb: own NLB (TCP); none."
    )
    host: str | None = knob(None, description="alb: host name to route (default: any host).")
    path: str = knob("/", description="alb: path prefix to route.")
    priority: int | None = fixed(
        None,
        ge=1,
        le=MAX_RULE_SLOT,
        description="alb: listener-rule slot (main rule priority 2*slot, preview rule "
        "2*slot-1). Default: derived from the model name, so it never moves when other "
        "models are added or removed; set it only to resolve a collision.",
    )
    certificate_arn: str | None = knob(
        None,
        description="alb: extra ACM certificate for this model's host, added to the HTTPS "
        "listener (SNI); nlb: the certificate of its TLS listeners.",
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.match(value):
            raise ValueError(f"{value!r} is not a lower-case DNS host name")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError("must start with '/' and use URL path characters only")
        return value


class CustomRuntimeConfig(ConfigModel):
    """runtime custom: the image brings its own server; tell mlstack how to probe it."""

    port: int = fixed(8080, ge=1024, le=65535, description="HTTP port of the server.")
    command: list[str] = fixed(default_factory=list, description="Entrypoint override.")
    liveness_path: str = fixed("/healthz", description="Liveness probe path.")
    readiness_path: str = fixed("/ready", description="Readiness (and startup) probe path.")
    metrics_path: str = fixed("/metrics", description="Prometheus metrics path.")
    metrics_port: int | None = fixed(
        None, ge=1024, le=65535, description="Metrics port (default: port)."
    )
    queue_metric: str = fixed(
        description="Prometheus gauge of requests waiting per pod; KEDA scales on its sum."
    )
    run_as_non_root: bool = fixed(True, description="Whether the image runs as non-root.")
    keep_alive_seconds: int | None = fixed(
        None,
        ge=1,
        le=4100,
        description="Seconds the server keeps an idle HTTP connection open. Behind the ALB it "
        "must exceed serving.loadBalancer.idleTimeoutSeconds, or the ALB answers some "
        "requests 502. Default: the idle timeout + 5, given to the server in "
        "MLSTACK_HTTP_KEEP_ALIVE_SECONDS, which it must honour (docs/operations.md).",
    )

    @field_validator("queue_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if not _PROM_METRIC.match(value):
            raise ValueError(f"{value!r} is not a Prometheus metric name")
        return value

    @field_validator("liveness_path", "readiness_path", "metrics_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.match(value):
            raise ValueError("must start with '/' and use URL path characters only")
        return value


class ModelConfig(ConfigModel):
    """One served model: its artifact version, runtime, resources, scaling, rollout."""

    name: ModelName = fixed(
        description=f"Model name, a DNS-1035 label (starts with a letter), at most "
        f"{naming.MODEL_NAME_MAX_LENGTH} characters; its artifacts live under models/<name>/."
    )
    artifact_version: ArtifactVersion = knob(
        description=(
            "Artifact version served, a safe path segment (quote it if it looks like a "
            "number): models/<name>/<artifactVersion>/. Set with `mlstack model pin`."
        )
    )
    hotfix: HotfixReason | None = knob(
        None,
        description="Why this entry runs in prod without having run in the lower stage first "
        "(`mlstack parity` then lists it as a hotfix instead of failing); remove it once the "
        "lower stage has caught up.",
    )
    runtime: Literal["vllm", "triton", "custom"] = fixed(
        description="Runtime preset: vllm, triton or custom."
    )
    image: ImageRef | None = knob(
        None, description="Container image (default: the preset's pinned image; custom: required)."
    )
    pool: str = fixed(description="GPU pool (mlstack:gpuPools[].name) the replicas run on.")
    gpus: int = knob(1, ge=1, le=16, description="GPUs per replica (nvidia.com/gpu).")
    cpu: str = knob("4", description="CPU per replica (request = limit), e.g. 8 or 7500m.")
    memory: str = knob("32Gi", description="Memory per replica (request = limit), e.g. 64Gi.")
    shm_size: str = knob("8Gi", description="/dev/shm size (memory-backed, counts as memory).")
    model_disk_gib: int = knob(
        100, ge=1, le=4000, description="Local disk for the downloaded model, GiB."
    )
    args: list[str] = knob(default_factory=list, description="Extra server arguments.")
    startup_budget_seconds: int = knob(
        1800,
        ge=60,
        le=7200,
        description="Seconds one replica may take from pod creation on a new node to Ready "
        "(node launch, image pull, weights fetch, GPU load, warm-up). Sets the startup probe, "
        "the Pulumi rollout timeout and the KEDA scale-up pace; must cover the estimate of "
        "`mlstack coldstart`.",
    )
    model_size_gib: float | None = knob(
        None,
        gt=0,
        le=4000,
        description="Total size of the artifact version's files in GiB, for the start-up "
        "estimate (default: the weights are assumed to fill 90% of the replica's GPU memory).",
    )
    image_size_gib: float | None = knob(
        None,
        gt=0,
        le=200,
        description="Compressed size of the container image in GiB, for the start-up "
        "estimate (default: the preset image's recorded size).",
    )
    drain_seconds: int = knob(
        60,
        ge=0,
        le=900,
        description="Time in-flight requests get to finish on shutdown: the target groups' "
        "deregistration delay and the server's shutdown timeout (vLLM --shutdown-timeout, "
        "Triton --exit-timeout-secs); at least maxRequestSeconds.",
    )
    max_request_seconds: int | None = knob(
        None,
        ge=1,
        le=900,
        description="The model's longest request in seconds, which drainSeconds must cover "
        "(default: latencySloSeconds, rounded up, else the runtime's: vllm 60, triton 1, "
        "custom 5).",
    )
    latency_slo_seconds: float | None = knob(
        None,
        gt=0,
        le=600,
        description="p99 request latency objective the alerts use (default: vllm 60 s for a "
        "whole generation, triton 1 s, custom 5 s).",
    )
    autoscaling: AutoscalingConfig = knob(
        default_factory=AutoscalingConfig, description="Replica bounds and scaling target."
    )
    rollout: RolloutConfig = knob(
        default_factory=RolloutConfig, description="rolling, canary or blueGreen."
    )
    exposure: ExposureConfig = knob(
        default_factory=ExposureConfig, description="ALB route, NLB, or in-cluster only."
    )
    custom: CustomRuntimeConfig | None = fixed(
        None, description="runtime custom only: ports, probe paths, queue metric."
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        problem = layout.name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("artifact_version", mode="before")
    @classmethod
    def _version_is_a_string(cls, value: object) -> object:
        if isinstance(value, int | float):  # bool is an int too
            raise ValueError(
                f"got the {type(value).__name__} {value!r}; quote the version in YAML "
                '(e.g. "1.10") so it is not read as a number'
            )
        return value

    @field_validator("artifact_version")
    @classmethod
    def _safe_segment(cls, value: str) -> str:
        return _check_version(value)

    @field_validator("cpu", "memory", "shm_size", mode="before")
    @classmethod
    def _number_as_quantity(cls, value: object) -> object:
        """YAML reads ``cpu: 8`` as a number; a plain number is a valid quantity."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{value:g}"
        return value

    @field_validator("cpu", "memory", "shm_size")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if parse_quantity(value) <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("memory", "shm_size")
    @classmethod
    def _bytes_unit(cls, value: str) -> str:
        problem = memory_unit_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.runtime == "custom" and (self.custom is None or self.image is None):
            raise ValueError("runtime custom needs both image and a custom block")
        if self.runtime != "custom" and self.custom is not None:
            raise ValueError(
                f"a custom block is only valid with runtime custom, not {self.runtime}"
            )
        if parse_quantity(self.shm_size) >= parse_quantity(self.memory):
            raise ValueError(
                f"shmSize ({self.shm_size}) must be smaller than memory ({self.memory}): "
                "/dev/shm counts against the memory limit"
            )
        if self.drain_seconds < self.longest_request_seconds:
            source = (
                "maxRequestSeconds"
                if self.max_request_seconds is not None
                else "the latency objective (latencySloSeconds or the runtime's default)"
            )
            raise ValueError(
                f"drainSeconds ({self.drain_seconds}) is shorter than the model's longest "
                f"request ({self.longest_request_seconds} s, {source}): requests still "
                "running when the load balancer deregisters a pod would be cut off; "
                f"allowed: drainSeconds >= {self.longest_request_seconds}"
            )
        canary = self.rollout.canary
        if canary is not None:
            version = canary.artifact_version or self.artifact_version
            image = canary.image or self.image
            if (version, image) == (self.artifact_version, self.image):
                raise ValueError(
                    "the canary has no second version: set rollout.canary.artifactVersion or "
                    "rollout.canary.image to something other than the stable one"
                )
        return self

    @property
    def longest_request_seconds(self) -> int:
        """``maxRequestSeconds``, else the latency objective rounded up."""
        if self.max_request_seconds is not None:
            return self.max_request_seconds
        slo = self.latency_slo_seconds or runtimes.default_latency_slo_seconds(self.runtime)
        return max(1, math.ceil(slo))

    def version_of(self, track: str) -> tuple[str, str | None]:
        """``(artifact version, image or None for the preset default)`` a track runs."""
        rollout = self.rollout
        if track == "canary" and rollout.canary is not None:
            c = rollout.canary
            return c.artifact_version or self.artifact_version, c.image or self.image
        if track in COLORS and rollout.blue_green is not None:
            color: ColorConfig = getattr(rollout.blue_green, track)
            return color.artifact_version or self.artifact_version, color.image or self.image
        return self.artifact_version, self.image

    @property
    def tracks(self) -> tuple[str, ...]:
        """The Deployments this model runs: stable (+ canary) or blue + green."""
        strategy = self.rollout.strategy
        if strategy == "canary":
            return ("stable", "canary")
        if strategy == "blueGreen":
            return COLORS
        return ("stable",)


def derived_name_collisions(models: list[ModelConfig]) -> list[tuple[int, str, str]]:
    """(model index, name, message) for every model whose name is another model's derived
    name (``<other>-canary``, ``-blue``, ``-green``, ``-nlb``): their Deployments, Services
    and ScaledObjects would share names. Checked whatever the strategies are now, since a
    strategy is a config change away."""
    found: list[tuple[int, str, str]] = []
    owners = {
        derived: (j, other.name)
        for j, other in enumerate(models)
        for derived in naming.derived_names(other.name)[1:]
    }
    for index, model in enumerate(models):
        owner = owners.get(model.name)
        if owner is not None and owner[1] != model.name:
            j, other = owner
            suffix = model.name[len(other) + 1 :]
            found.append(
                (
                    index,
                    model.name,
                    f"collides with models[{j}] ({other!r}), whose {suffix} objects are named "
                    f"{model.name!r} (derived names: <model>-"
                    f"{', <model>-'.join(naming.DERIVED_SUFFIXES)}); rename one of them",
                )
            )
    return found


def pdb_min_available(is_prod: bool) -> int | None:
    """The serving PDB: prod keeps at least one replica up (``minAvailable: 1``); other
    stacks allow one unavailable (None: ``maxUnavailable: 1``)."""
    return 1 if is_prod else None
