"""policy/replacement.py, the one replacement table, against the pinned SDKs and both plans.

AWS entries are read from the Terraform AWS provider's schema (``ForceNew`` /
``RequiresReplace`` in ``hashicorp/terraform-provider-aws``
``internal/service/<service>/<file>.go``, named per entry); the pinned pulumi-aws SDK
carries no schema, so the tests hold every listed property to exist on its ``*Args``
class and the table to repeat every "forces a new resource" note of its docstrings.
Kubernetes entries follow pulumi-kubernetes ``provider/pkg/provider/diff.go``
(``forceNewProperties``: ``metadata.name``/``metadata.namespace`` plus per-kind fields)
and ``helm_release.go`` (``Diff``: ``name``/``namespace``).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys

import pytest

from mlstack.synth import ResourceGraph
from policy.replacement import FIXED_NAME_TYPES, REPLACEMENT_TABLE, forces_replacement

FORCES_NEW = re.compile(r"forces? (a )?new|will force a new|forces new resource", re.IGNORECASE)
CUSTOM_RESOURCE = "pulumi_kubernetes.apiextensions.CustomResource"
AWS_TYPES = sorted(t for t in REPLACEMENT_TABLE if t.startswith("aws:"))
TYPED_TYPES = sorted(t for t, e in REPLACEMENT_TABLE.items() if e.sdk_class != CUSTOM_RESOURCE)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _sdk(sdk_class: str) -> type:
    module, cls = sdk_class.rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)


def _args(sdk_class: str) -> type:
    """The resource's ``*Args`` from its own module: the generator names it ``*InitArgs``
    where ``*Args`` is taken (``s3.BucketLoggingArgs`` is a nested input of ``s3.Bucket``)."""
    resource = _sdk(sdk_class)
    module = sys.modules[resource.__module__]
    name = resource.__name__
    return getattr(module, f"{name}InitArgs", None) or getattr(module, f"{name}Args")


def _sdk_force_new(args: type) -> set[str]:
    """Args parameters whose docstring says a change forces a new resource."""
    doc = inspect.getdoc(args.__init__) or ""
    found: set[str] = set()
    for block in re.split(r"\n(?=:param )", doc):
        match = re.match(r":param [^\n]*?(\w+): (.*)", block, re.DOTALL)
        if match and FORCES_NEW.search(match.group(2)):
            found.add(match.group(1))
    return found


def _plan_types(graph: ResourceGraph) -> set[str]:
    """Custom resource types of a plan (providers are not replaced by a property change)."""
    return {
        n.type for n in graph.resources if n.custom and not n.type.startswith("pulumi:providers:")
    }


@pytest.mark.parametrize("type_token", sorted(REPLACEMENT_TABLE))
def test_every_listed_property_exists_in_the_pinned_sdk(type_token: str) -> None:
    entry = REPLACEMENT_TABLE[type_token]
    if entry.sdk_class == CUSTOM_RESOURCE:
        params = {"metadata", "spec"}
    else:
        params = set(inspect.signature(_args(entry.sdk_class).__init__).parameters)
    listed = {p.split(".")[0] for p in (*entry.name_props, *entry.scope_props, *entry.force_new)}
    assert {_snake(p) for p in listed} <= params


@pytest.mark.parametrize("type_token", AWS_TYPES)
def test_the_table_holds_every_replacement_the_sdk_docstrings_name(type_token: str) -> None:
    entry = REPLACEMENT_TABLE[type_token]
    listed = {_snake(p.split(".")[0]) for p in entry.force_new}
    assert _sdk_force_new(_args(entry.sdk_class)) <= listed


def test_the_docstring_reader_finds_a_known_replacement() -> None:
    """The reader is not vacuous: the pinned SDK documents this one."""
    assert "bootstrap_self_managed_addons" in _sdk_force_new(_args("pulumi_aws.eks.Cluster"))


@pytest.mark.parametrize("type_token", TYPED_TYPES)
def test_the_table_names_its_type_tokens_like_the_sdk(type_token: str) -> None:
    source = inspect.getsource(_sdk(REPLACEMENT_TABLE[type_token].sdk_class))
    assert f"'{type_token}'" in source or f'"{type_token}"' in source, type_token


def test_every_entry_names_its_upstream_source() -> None:
    for type_token, entry in REPLACEMENT_TABLE.items():
        assert re.search(r"\.go\b", entry.source), type_token
        if type_token.startswith("aws:") and not type_token.startswith("aws:iam/"):
            assert "region" in entry.force_new, type_token  # v6's per-resource region


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_resource_type_either_plan_uses_has_an_entry(
    stack: str, dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    """Issue 21 / issue 27 item 9: a type missing here was never marked replaced by
    ``mlstack diff`` nor refused by ``mlstack rollback``."""
    graph = dev_graph if stack == "dev" else prod_graph
    assert sorted(_plan_types(graph) - set(REPLACEMENT_TABLE)) == []


def test_the_review_and_the_rollback_refusals_read_this_table() -> None:
    from mlstack.delivery import rollback_safety
    from mlstack.review import diff, replacements

    assert replacements.forces_replacement is forces_replacement
    assert diff.forces_replacement is forces_replacement
    assert rollback_safety.forces_replacement is forces_replacement
    assert {t: e.force_new for t, e in REPLACEMENT_TABLE.items()} == replacements.FORCES_REPLACEMENT


@pytest.mark.parametrize(
    ("type_token", "path"),
    [
        ("aws:sns/topic:Topic", "name"),
        ("aws:ecr/repository:Repository", "encryptionConfigurations[0].kmsKey"),
        ("aws:eks/cluster:Cluster", "encryptionConfig.resources[0]"),
        ("aws:kms/key:Key", "keyUsage"),
        ("aws:kms/alias:Alias", "name"),
        ("aws:s3/bucket:Bucket", "objectLockEnabled"),
        ("aws:cloudwatch/logGroup:LogGroup", "logGroupClass"),
        ("kubernetes:core/v1:ConfigMap", "data.config.yaml"),
        ("kubernetes:helm.sh/v3:Release", "namespace"),
    ],
)
def test_the_changes_the_two_old_tables_disagreed_on_replace(type_token: str, path: str) -> None:
    assert forces_replacement(type_token, path)


def test_in_place_updates_do_not_replace() -> None:
    assert not forces_replacement("aws:ecr/repository:Repository", "forceDelete")
    assert not forces_replacement("aws:kms/key:Key", "description")
    assert not forces_replacement("aws:sns/topic:Topic", "kmsMasterKeyId")
    assert not forces_replacement("aws:eks/cluster:Cluster", "version")
    assert not forces_replacement("aws:eks/cluster:Cluster", "nameSuffix")  # prefix, not a path
    assert not forces_replacement("kubernetes:apps/v1:Deployment", "spec.replicas")


def test_only_names_that_a_replacement_keeps_can_collide() -> None:
    """A type whose only replacing property is its name gets a new name on every
    replacement; the cluster keeps its name when its role changes."""
    assert REPLACEMENT_TABLE["aws:cloudwatch/dashboard:Dashboard"].collision_props() == ()
    assert "roleArn" in REPLACEMENT_TABLE["aws:eks/cluster:Cluster"].collision_props()
    assert "clusterName" not in REPLACEMENT_TABLE["aws:eks/nodeGroup:NodeGroup"].collision_props()
    assert all(t.startswith("aws:") for t in FIXED_NAME_TYPES)


def test_adding_cluster_encryption_updates_in_place_and_removing_it_replaces() -> None:
    """terraform-provider-aws ``internal/service/eks/cluster.go``: ``CustomizeDiff``
    ``ForceNewIfChange("encryption_config", len(old) == 1 && len(new) == 0)``: only the
    removal replaces the cluster."""
    from policy.replacement import replacing_changes

    cluster = "aws:eks/cluster:Cluster"
    encrypted = {"name": "c", "encryptionConfig": {"resources": ["secrets"]}}
    plain = {"name": "c"}
    assert replacing_changes(cluster, plain, encrypted) == ()
    assert replacing_changes(cluster, encrypted, plain) == ("encryptionConfig",)
    changed = {"name": "c", "encryptionConfig": {"resources": ["secrets"], "x": 1}}
    assert replacing_changes(cluster, encrypted, changed) == ("encryptionConfig",)
