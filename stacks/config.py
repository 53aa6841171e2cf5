"""Typed stack config: the whole ``mlstack:`` namespace, loaded and validated at once.

Two ways in, one validator:

* inside ``pulumi up`` :func:`load_config` reads the engine's config
  (``pulumi.runtime``), where secure values are already decrypted;
* offline (:func:`load_config_file`) reads ``Pulumi.<stack>.yaml`` straight from
  disk; ``secure:`` values stay encrypted and become opaque placeholders.

Either way the raw mapping goes through :func:`parse_config`, which returns a frozen
:class:`StackConfig` or raises :class:`ConfigError` listing *every* problem with the
stack file, the key path (``mlstack:cluster.version``), the value and what is allowed.
"""

from __future__ import annotations

import datetime
import difflib
import errno
import json
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError, field_validator

from components.network.cidrs import too_open
from stacks.schema.artifacts import ArtifactsConfig
from stacks.schema.base import ConfigModel, fixed, knob
from stacks.schema.cluster import ClusterConfig
from stacks.schema.delivery import (
    DeliveryConfig,
    prod_deploys_from_environments,
    runner_reaches_endpoint,
)
from stacks.schema.gpu_pools import GpuPoolConfig, pool_problems
from stacks.schema.models import ModelConfig
from stacks.schema.monitoring import MonitoringConfig
from stacks.schema.network import NetworkConfig
from stacks.schema.problems import MISSING, NAMESPACE, Problem, key_path
from stacks.schema.secrets import (
    PLAINTEXT_SECRET,
    SecureValue,
    ciphertext_problem,
    mark_secure,
    stack_file_secrets_problems,
)
from stacks.schema.serving import ServingConfig, cross_checks
from stacks.schema.tags import (
    MAX_TAGS_PER_RESOURCE,
    MAX_VALUE_CHARS,
    OWN_TAGS_MAX,
    tag_budget,
    tag_problems,
    tag_text_problem,
)
from stacks.stack_yaml import load_stack_yaml
from stacks.startup import startup_estimates

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_SECRET_PLACEHOLDER = "[secret: encrypted in stack file]"

RESERVED_TAG_KEYS = ("project", "stack", "environment", "owner")


class StackConfig(ConfigModel):
    """Everything under ``mlstack:`` in ``Pulumi.<stack>.yaml``."""

    environment: Literal["dev", "prod"] = knob(
        description="dev or prod: selects the environment rules (HA, protection, paging)."
    )
    region: str = knob(
        description="AWS region of every resource, e.g. us-west-2.",
        # For editors only: the validator checks botocore's region list (did-you-mean).
        json_schema_extra={"pattern": r"^[a-z]{2}(-gov)?-[a-z]+-\d$"},
    )
    owner: str = fixed(
        description="Team or address that owns the stack; tagged on every AWS resource "
        "(an AWS tag value: letters, digits, spaces and _ . : / = + - @).",
        min_length=1,
        max_length=256,
    )
    tags: dict[str, str] = knob(
        default_factory=dict,
        description="Extra tags on every AWS resource (project/stack/environment/owner are set); "
        "values may differ per environment, e.g. costCenter.",
    )
    protect_stateful: bool | None = knob(
        None,
        description="protect + retain-on-delete for stateful resources. Default: on in prod only.",
    )
    network: NetworkConfig = fixed(description="The VPC (create or existing).")
    cluster: ClusterConfig = fixed(
        default_factory=ClusterConfig, description="The EKS cluster (create or existing)."
    )
    gpu_pools: list[GpuPoolConfig] = fixed(default_factory=list, description="GPU node pools.")
    models: list[ModelConfig] = fixed(default_factory=list, description="Served models.")
    artifacts: ArtifactsConfig = fixed(
        default_factory=ArtifactsConfig, description="Model-artifact bucket."
    )
    serving: ServingConfig = fixed(
        default_factory=ServingConfig, description="Load balancer and autoscaling."
    )
    monitoring: MonitoringConfig = fixed(
        default_factory=MonitoringConfig, description="Metrics, alerts, notifications."
    )
    delivery: DeliveryConfig = fixed(default_factory=DeliveryConfig, description="CI identities.")

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        from stacks.schema import aws_enums

        known = aws_enums.regions()
        if value not in known:
            raise ValueError(aws_enums.describe_unknown(value, known, "AWS region", list_all=True))
        return value

    @field_validator("owner")
    @classmethod
    def _owner_is_a_tag_value(cls, value: str) -> str:
        problem = tag_text_problem(
            value, what="owner (the value of the owner tag)", max_chars=MAX_VALUE_CHARS, min_chars=1
        )
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _valid_tags(cls, value: Any) -> Any:
        # Before pydantic's str check, which drops the SecureValue mark of secure: values.
        if not isinstance(value, dict):
            return value
        problems = tag_problems(value)
        reserved = sorted(k for k in value if k in RESERVED_TAG_KEYS)
        if reserved:
            problems.append(f"tag keys {reserved} are set by mlstack itself; remove them")
        budget = tag_budget(len(RESERVED_TAG_KEYS))
        if len(value) > budget:
            problems.append(
                f"{len(value)} tags; allowed: at most {budget} (AWS allows "
                f"{MAX_TAGS_PER_RESOURCE} per resource, and the provider's default tags add "
                f"{', '.join(RESERVED_TAG_KEYS)} to each, besides up to {OWN_TAGS_MAX} a "
                "resource sets itself)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def protect(self) -> bool:
        """Whether stateful resources are protected and retained on delete."""
        return self.is_prod if self.protect_stateful is None else self.protect_stateful


# --------------------------------------------------------------------------- errors


class ConfigError(Exception):
    """Invalid stack config. ``str()`` lists every problem, one per line."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        count = len(problems)
        if count == 1 and problems[0].path in FILE_LEVEL:
            # The file itself cannot be read: one line naming it.
            super().__init__(f"{source}: {problems[0].render()}")
            return
        lines = [f"invalid config in {source} ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {p.render()}" for p in problems]
        super().__init__("\n".join(lines))


FILE_LEVEL = ("file", "yaml", "config", "stack")
"""Problem paths about the whole file (unreadable, not YAML, no such stack)."""

_MISSING = MISSING


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The config model class found by walking ``loc`` from the root (aliases)."""
    model: type[BaseModel] | None = StackConfig
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next(
            (f for n, f in model.model_fields.items() if (f.alias or n) == part),
            None,
        )
        if field is None:
            return None
        model = _first_model(field.annotation)
    return model


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _first_model(arg)
            if found is not None:
                return found
    return None


def _problems_from(exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # pydantic inserts the name of a union member or a validator tag; drop non-keys.
        loc = tuple(p for p in loc if isinstance(p, int) or not p.startswith("function-"))
        kind = err["type"]
        value: Any = err.get("input", _MISSING)
        message = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = (
                sorted((f.alias or n) for n, f in parent.model_fields.items()) if parent else []
            )
            message = "unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
        elif kind == "missing":
            message = "required key is missing"
            value = _MISSING
        elif kind == PLAINTEXT_SECRET:
            message = message.replace("<this key>", key_path(loc))
            value = "[plaintext, not shown]"
        elif kind == "string_type":
            message += _unquoted_hint(value)
        problems.append(Problem(key_path(loc), value, message))
    return problems


def _unquoted_hint(value: Any) -> str:
    """For a text key that got a date, boolean or number: YAML read an unquoted scalar.

    The engine turns an unquoted date into Go's ``time.Time`` text (``2025-06-02 00:00:00
    +0000 UTC``, pulumi ``sdk/go/common/resource/config/object.go`` ``unmarshalObject``),
    so the program would not even see what the file says: quoting is the only fix."""
    if isinstance(value, datetime.date):
        kind = "a date" if not isinstance(value, datetime.datetime) else "a timestamp"
        example = value.isoformat()
    elif isinstance(value, bool):
        kind, example = "a boolean (true/false/yes/no/on/off)", str(value).lower()
    elif isinstance(value, int | float):
        kind, example = "a number (1.10 reads as 1.1, 010 as 8)", str(value)
    else:
        return ""
    return f'; unquoted, YAML reads this as {kind}: quote it, e.g. "{example}"'


# --------------------------------------------------------------------------- cross-field rules

EnvironmentRule = Callable[[StackConfig], Iterable[Problem]]


def _prod_network_rules(cfg: StackConfig) -> Iterable[Problem]:
    if not cfg.is_prod or cfg.network.mode != "create":
        return
    if len(cfg.network.availability_zones) < 3:
        yield Problem(
            "mlstack:network.availabilityZones",
            cfg.network.availability_zones,
            "prod needs at least 3 availability zones",
        )
    if cfg.network.nat_gateways != "perAz":
        yield Problem(
            "mlstack:network.natGateways",
            cfg.network.nat_gateways,
            "prod needs one NAT gateway per AZ; allowed: perAz",
        )


def _region_matches_zones(cfg: StackConfig) -> Iterable[Problem]:
    for i, az in enumerate(cfg.network.availability_zones):
        if not az.startswith(cfg.region):
            yield Problem(
                f"mlstack:network.availabilityZones[{i}]",
                az,
                f"zone is not in region {cfg.region}",
            )


def _prod_cluster_rules(cfg: StackConfig) -> Iterable[Problem]:
    if cfg.is_prod and cfg.cluster.system_node_group.min_size < 2:
        yield Problem(
            "mlstack:cluster.systemNodeGroup.minSize",
            cfg.cluster.system_node_group.min_size,
            "prod needs at least 2 system nodes",
        )
    cl = cfg.cluster
    if cl.mode == "create" and not cl.admin_role_arns:
        yield Problem(
            "mlstack:cluster.adminRoleArns",
            [],
            "a new cluster needs at least one admin role: the cluster creator gets no access "
            "of its own (API authentication mode), so nothing could manage the cluster",
        )
    opened = too_open(cl.effective_public_cidrs()) if cl.endpoint_public_access else None
    if cfg.is_prod and opened:
        empty = " (an empty list: EKS opens 0.0.0.0/0)" if not cl.public_access_cidrs else ""
        yield Problem(
            "mlstack:cluster.publicAccessCidrs",
            cl.public_access_cidrs,
            f"prod must not open the public API endpoint to the whole internet{empty}: "
            f"{opened}; or set endpointPublicAccess: false",
        )


def _prod_monitoring_subscribers(cfg: StackConfig) -> Iterable[Problem]:
    if cfg.is_prod and not cfg.monitoring.subscribers:
        yield Problem(
            "mlstack:monitoring.subscribers",
            [],
            "prod needs at least one subscriber (email or https) to receive alerts",
        )


def _retention_covers_alert_windows(cfg: StackConfig) -> Iterable[Problem]:
    from components.monitoring.alert_rules import duration
    from components.monitoring.prometheus_stack import retention_minutes

    mon = cfg.monitoring
    longest = mon.thresholds.to_thresholds().longest_window_minutes()
    if retention_minutes(mon.retention) < longest:
        yield Problem(
            "mlstack:monitoring.retention",
            mon.retention,
            f"shorter than the longest alert window it must evaluate ({duration(longest)}, "
            "from mlstack:monitoring.thresholds); allowed: at least that",
        )


def _artifact_bucket_rules(cfg: StackConfig) -> Iterable[Problem]:
    art = cfg.artifacts
    if art.force_destroy and cfg.environment != "dev":
        yield Problem(
            "mlstack:artifacts.forceDestroy",
            True,
            "allowed only in dev stacks; a prod bucket is never emptied by `pulumi destroy`",
        )
    elif art.force_destroy and cfg.protect:
        yield Problem(
            "mlstack:artifacts.forceDestroy",
            True,
            "conflicts with protectStateful: true (a protected bucket is retained on delete)",
        )
    if cfg.is_prod and not art.access_logging.enabled:
        yield Problem(
            "mlstack:artifacts.accessLogging.enabled",
            False,
            "prod needs server access logs on the model bucket; allowed: true",
        )


def _loader_repository_rules(cfg: StackConfig) -> Iterable[Problem]:
    if not cfg.serving.loader_repository.force_delete:
        return
    key = "mlstack:serving.loaderRepository.forceDelete"
    if cfg.environment != "dev":
        yield Problem(
            key,
            True,
            "allowed only in dev stacks; a prod destroy never deletes the loader images a "
            "retained deployment may still pull",
        )
    elif cfg.protect:
        yield Problem(
            key,
            True,
            "conflicts with protectStateful: true (a protected repository is retained on delete)",
        )


def _unique_model_names(cfg: StackConfig) -> Iterable[Problem]:
    seen: dict[str, int] = {}
    for index, model in enumerate(cfg.models):
        if model.name in seen:
            yield Problem(
                f"mlstack:models[{index}].name",
                model.name,
                f"duplicate model name (also models[{seen[model.name]}]); names must be unique",
            )
        else:
            seen[model.name] = index


def _gpu_pool_rules(cfg: StackConfig) -> Iterable[Problem]:
    """Cross-key GPU pool rules (see ``stacks.schema.gpu_pools.pool_problems``)."""
    for loc, value, message in pool_problems(
        cfg.gpu_pools, is_prod=cfg.is_prod, cluster_version=cfg.cluster.version
    ):
        yield Problem(key_path(loc), value, message)


def _serving_rules(cfg: StackConfig) -> Iterable[Problem]:
    """Models vs GPU pools, prod replicas and images, ALB routes and certificate."""
    for path, value, message in cross_checks(
        region=cfg.region,
        is_prod=cfg.is_prod,
        models=cfg.models,
        gpu_pools=cfg.gpu_pools,
        serving=cfg.serving,
    ):
        yield Problem(path, value, message)


def _startup_budget_covers_estimate(cfg: StackConfig) -> Iterable[Problem]:
    """A replica's startupBudgetSeconds covers its cold start-up estimate (stacks.startup)."""
    estimates = startup_estimates(list(cfg.models), list(cfg.gpu_pools))
    for index, model in enumerate(cfg.models):
        found = estimates.get(model.name)
        if found is not None and model.startup_budget_seconds < found.cold_seconds:
            phases = ", ".join(f"{p.name} {round(p.seconds)} s" for p in found.cold)
            yield Problem(
                f"mlstack:models[{index}].startupBudgetSeconds",
                model.startup_budget_seconds,
                f"shorter than the estimated cold start of {found.cold_seconds} s ({phases}); "
                f"allowed: at least {found.cold_seconds} (see `mlstack coldstart`)",
            )


def _delivery_rules(cfg: StackConfig) -> Iterable[Problem]:
    """Prod deploys through a protected GitHub environment; CI reaches the API endpoint."""
    yield from prod_deploys_from_environments(cfg.delivery, is_prod=cfg.is_prod)
    cl = cfg.cluster
    yield from runner_reaches_endpoint(
        cfg.delivery,
        public_access=cl.endpoint_public_access,
        private_access=cl.endpoint_private_access,
        public_cidrs=list(cl.public_access_cidrs),
        endpoint_open=too_open(cl.effective_public_cidrs()) is not None,
        vpc_created=cfg.network.mode == "create",
    )


# --------------------------------------------------------------------------- guardrails
# Capacity, derived names (issue 13 items 4 and 5).


def _derived_name_rules(cfg: StackConfig) -> Iterable[Problem]:
    """No model is named like another model's derived objects (``<model>-canary``...)."""
    from stacks.schema.models import derived_name_collisions

    for index, name, message in derived_name_collisions(cfg.models):
        yield Problem(f"mlstack:models[{index}].name", name, message)


def _capacity_rules(cfg: StackConfig) -> Iterable[Problem]:
    """Models fit their pools' instance types and limits (``stacks.schema.capacity``)."""
    from stacks.schema.capacity import capacity_findings

    for path, value, message in capacity_findings(cfg.models, cfg.gpu_pools, is_prod=cfg.is_prod):
        yield Problem(path, value, message)


ENVIRONMENT_RULES: list[EnvironmentRule] = [
    _prod_network_rules,
    _region_matches_zones,
    _prod_cluster_rules,
    _prod_monitoring_subscribers,
    _retention_covers_alert_windows,
    _artifact_bucket_rules,
    _loader_repository_rules,
    _unique_model_names,
    _gpu_pool_rules,
    _serving_rules,
    _delivery_rules,
    _derived_name_rules,
    _capacity_rules,
    _startup_budget_covers_estimate,
]
"""Rules spanning several keys. Later sections append their own rules here."""


# --------------------------------------------------------------------------- loading


def parse_config(raw: Mapping[str, Any], source: str) -> StackConfig:
    """Validate the ``mlstack:`` mapping (namespace already stripped); all problems at once."""
    try:
        cfg = StackConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(source, _problems_from(exc)) from None
    problems = [p for rule in ENVIRONMENT_RULES for p in rule(cfg)]
    if problems:
        raise ConfigError(source, problems)
    return cfg


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def _namespace_values(items: Iterable[tuple[str, Any]], source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for full_key, value in items:
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE and key:
            values[key] = value
        elif namespace == "aws":
            problems.append(
                Problem(
                    full_key,
                    value,
                    "mlstack uses an explicit AWS provider; set mlstack:region (and no aws:*)",
                )
            )
        elif namespace != "pulumi":
            problems.append(
                Problem(full_key, _MISSING, f"unknown namespace; allowed: {NAMESPACE}:, pulumi:")
            )
    if problems:
        raise ConfigError(source, problems)
    return values


def _offline_secrets(value: Any) -> Any:
    """Replace ``{secure: ...}`` by an opaque placeholder (offline: nothing to decrypt with),
    marked as having come from a ``secure:`` entry (:class:`SecureValue`)."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SecureValue(OFFLINE_SECRET_PLACEHOLDER)
        return {k: _offline_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_offline_secrets(v) for v in value]
    return value


def stacks_here(root: Path) -> list[str]:
    """The stacks under ``root``: ``Pulumi.<stack>.yaml`` files that are regular files."""
    return sorted(
        p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml") if p.is_file()
    )


def stack_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a stack file, said as what it is; None for a file."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (
                f"{path} is a symbolic link loop (it leads back to itself{_link_target(path)}); "
                "point it at a stack file or replace it with one"
            )
        if path.is_symlink():
            return (
                f"{path} is a symbolic link to {path.readlink()}, which does not exist; "
                "point it at a stack file or replace it with one"
            )
        if exc.errno == errno.ENOENT:
            others = ", ".join(stacks_here(path.parent)) or "none"
            return f"no stack file {path}; stacks here: {others}"
        return f"cannot read {path}: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    kind = "a directory" if stat.S_ISDIR(mode) else _FILE_KINDS.get(stat.S_IFMT(mode), "special")
    return f"{path} is {kind}, not a file; a stack file is a regular YAML file"


def _link_target(path: Path) -> str:
    try:
        return f", -> {path.readlink()}"
    except OSError:  # the loop is in a directory on the way, not this link
        return ""


_FILE_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}

TOP_LEVEL_KEYS = ("config", "encryptedkey", "encryptionsalt", "environment", "secretsprovider")
"""The keys of a stack file the Pulumi engine reads (``workspace.ProjectStack``)."""


def _document_problem(document: Any) -> str | None:
    """A stack file without a ``config:`` mapping: say what the file holds instead."""
    if document is None:
        return (
            "the file is empty (no YAML content, or only comments); a stack file needs a "
            "top-level config: mapping of mlstack: keys"
        )
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a single value ({document!r:.40})"
        return f"the file holds {kind}; expected a mapping with a top-level config: mapping"
    if "config" not in document:
        keys = [str(k) for k in document]
        near = difflib.get_close_matches("config", keys, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}? (rename it to config:)" if near else ""
        return (
            f"no config: mapping{hint}; top-level keys here: {', '.join(keys) or 'none'}; "
            f"allowed: {', '.join(TOP_LEVEL_KEYS)}"
        )
    unknown = [str(k) for k in document if k not in TOP_LEVEL_KEYS]
    if unknown:
        first = unknown[0]
        near = difflib.get_close_matches(first, TOP_LEVEL_KEYS, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else ""
        return (
            f"unknown top-level key(s) {unknown}{hint} (the engine would ignore what they "
            f"mean to set); allowed: {', '.join(TOP_LEVEL_KEYS)}"
        )
    config = document["config"]
    if not isinstance(config, dict):
        got = "empty" if config is None else f"{type(config).__name__}, not a mapping"
        return f"config: is {got}; expected a mapping of mlstack: keys"
    return None


def load_config_file(stack: str, root: Path = PROJECT_ROOT) -> StackConfig:
    """Offline: read and validate ``Pulumi.<stack>.yaml`` under ``root``."""
    path = stack_file(stack, root)
    source = path.name
    problem = stack_file_problem(path)
    if problem is not None:
        raise ConfigError(source, [Problem("stack", _MISSING, problem)])
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source,
            [
                Problem(
                    "file",
                    _MISSING,
                    f"not UTF-8 text (byte {exc.start}: "
                    f"{exc.object[exc.start : exc.start + 1]!r}); save the stack file as UTF-8",
                )
            ],
        ) from None
    except OSError as exc:
        raise ConfigError(source, [Problem("file", _MISSING, f"cannot read: {exc}")]) from None
    try:
        document = load_stack_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            source, [Problem("yaml", _MISSING, f"not valid YAML{where}: {reason}")]
        ) from None
    problem = _document_problem(document)
    if problem is not None:
        raise ConfigError(source, [Problem("config", _MISSING, problem)])
    config = document["config"]
    values = _namespace_values(config.items(), source)
    provider_problems = secrets_provider_problems(document, stack)
    provider_problems += ciphertext_problems(document)
    if provider_problems:
        raise ConfigError(source, provider_problems)
    return parse_config(_offline_secrets(values), source)


def _secure_entries(value: Any, path: str) -> Iterable[tuple[str, Any]]:
    """(key path, what is under ``secure:``) for every ``secure:`` entry in ``value``."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            yield path, value["secure"]
            return
        for key, item in value.items():
            yield from _secure_entries(item, f"{path}.{key}" if ":" in path else f"{path}{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secure_entries(item, f"{path}[{index}]")


def _secure_paths(value: Any, path: str) -> Iterable[str]:
    return (entry_path for entry_path, _ in _secure_entries(value, path))


def ciphertext_problems(document: Mapping[str, Any]) -> list[Problem]:
    """``secure:`` values that are not ciphertext of the stack's secrets provider (plaintext
    such as ``secure: hunter2``, or empty): named by key path, the value never shown."""
    config = document.get("config") or {}
    provider = document.get("secretsprovider")
    return [
        Problem(path, _MISSING, problem)
        for key, value in config.items()
        for path, secure in _secure_entries(value, f"{key}")
        if (problem := ciphertext_problem(secure, str(provider) if provider else None, path))
    ]


def secrets_provider_problems(document: Mapping[str, Any], stack: str) -> list[Problem]:
    """The stack file's secrets shape (:func:`stacks.schema.secrets.stack_file_secrets_problems`):
    the config loader raises these; ``lifecycle-secrets-provider`` reports the same."""
    return stack_file_secrets_problems(document, stack)


def load_config(stack: str) -> StackConfig:
    """Inside a Pulumi run: read the engine's config for this stack and validate it."""
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.CONFIG.get()) or runtime_config.get_config_env()
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    items: list[tuple[str, Any]] = []
    for full_key, value in raw.items():
        decoded = _decode_engine_value(value)
        if runtime_config.is_config_secret(full_key) or full_key in secret_keys:
            # The engine decrypted a secure: value: mark it, so secret fields accept it.
            decoded = mark_secure(decoded)
        items.append((full_key, decoded))
    return parse_config(_namespace_values(items, f"Pulumi.{stack}.yaml"), f"Pulumi.{stack}.yaml")


def _decode_engine_value(value: Any) -> Any:
    """The engine passes structured values as JSON text; plain strings stay strings."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def json_schema() -> dict[str, Any]:
    """JSON Schema of a ``Pulumi.<stack>.yaml`` file (for editors and ``mlstack schema``)."""
    inner = StackConfig.model_json_schema(by_alias=True)
    defs = inner.pop("$defs", {})
    properties = {f"{NAMESPACE}:{key}": value for key, value in inner.get("properties", {}).items()}
    required = [f"{NAMESPACE}:{key}" for key in inner.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://mlstack.dev/schema/stack-config.json",
        "title": "mlstack stack file (Pulumi.<stack>.yaml)",
        "type": "object",
        "properties": {
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
            "config": {
                "type": "object",
                "properties": properties,
                "required": required,
                "patternProperties": {"^pulumi:": {}},
                "additionalProperties": False,
            },
        },
        "$defs": defs,
    }
