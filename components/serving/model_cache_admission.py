"""``ModelCacheAdmission``: who may write the node-shared model cache, enforced at admission.

Every pod in the serving namespace could mount a cache claim
(``components.serving.model_cache``). A ValidatingAdmissionPolicy (CEL, built into the
API server since Kubernetes 1.30) bound to that namespace denies any pod that mounts one
unless:

1. every container (the model server) mounts it read-only, one model's directory
   (``subPath``);
2. an init container mounts it writable only as one of mlstack's three steps
   (``model-cache-prepare``, ``model-cache-hold``, ``model-loader``), running the stack's
   loader image, running exactly its ``mlstack model ...`` subcommand (no ``args``) and
   without ``PYTHON*`` / ``LD_*`` variables that could load other code;
3. no ephemeral container (``kubectl debug``) mounts it.

So the cache is written only by the loader's own code, which verifies every byte against
a manifest before it publishes an entry and re-hashes an entry before it uses it. Who may
create pods in the namespace (the deploy role) is trusted with everything else.

Lifecycle: cluster-scoped, no finalizers; the cache claims depend on the binding, so no
pod can mount a claim before the policy exists. Spec changes update in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

TYPE_TOKEN = "mlstack:serving:ModelCacheAdmission"
CLAIM_PREFIX = "mlstack-model-cache-"
WRITERS: dict[str, str] = {
    "model-cache-prepare": "cache-prepare",
    "model-cache-hold": "hold",
    "model-loader": "fetch",
}
"""Init container name -> the ``mlstack model`` subcommand it must run."""

CACHE_VOLUMES = (
    "has(object.spec.volumes) ? object.spec.volumes.filter(v, "
    "has(v.persistentVolumeClaim) && "
    f"v.persistentVolumeClaim.claimName.startsWith('{CLAIM_PREFIX}')"
    ").map(v, v.name) : []"
)
"""The names of the pod's volumes that are node model cache claims (the ``cache`` variable)."""


def _mounts_cache(c: str) -> str:
    return f"has({c}.volumeMounts) && {c}.volumeMounts.exists(m, m.name in variables.cache)"


def _read_only_one_dir(m: str) -> str:
    return f"(has({m}.readOnly) && {m}.readOnly && has({m}.subPath) && {m}.subPath != '')"


def validations(loader_repository: str) -> list[tuple[str, str]]:
    """(CEL expression, message) of every rule; ``loader_repository`` is the registry
    path of the stack's loader image (without tag or digest)."""
    subcommands = ", ".join(f"'{name}': '{sub}'" for name, sub in WRITERS.items())
    writers = ", ".join(f"'{name}'" for name in WRITERS)
    writer_ok = (
        f"(c.name in [{writers}] "
        f"&& (c.image.startsWith('{loader_repository}:') "
        f"|| c.image.startsWith('{loader_repository}@')) "
        "&& has(c.command) && c.command.size() >= 3 && c.command[0] == 'mlstack' "
        f"&& c.command[1] == 'model' && c.command[2] == {{{subcommands}}}[c.name] "
        "&& !has(c.args) "
        "&& (!has(c.env) || c.env.all(e, "
        "!e.name.startsWith('PYTHON') && !e.name.startsWith('LD_'))))"
    )
    return [
        (
            "!has(object.spec.containers) || object.spec.containers.all(c, "
            "!has(c.volumeMounts) || c.volumeMounts.all(m, "
            f"!(m.name in variables.cache) || {_read_only_one_dir('m')}))",
            "containers mount the node model cache read-only, one model's directory (subPath)",
        ),
        (
            "!has(object.spec.initContainers) || object.spec.initContainers.all(c, "
            f"!{_mounts_cache('c')} || {writer_ok} || c.volumeMounts.all(m, "
            f"!(m.name in variables.cache) || {_read_only_one_dir('m')}))",
            "only mlstack's model-cache-prepare, model-cache-hold and model-loader steps, "
            "running the stack's loader image and their own mlstack command, may mount the "
            "node model cache writable",
        ),
        (
            "!has(object.spec.ephemeralContainers) || object.spec.ephemeralContainers.all(c, "
            f"!{_mounts_cache('c')})",
            "ephemeral (debug) containers may not mount the node model cache",
        ),
    ]


@dataclass(frozen=True)
class ModelCacheAdmissionArgs:
    """Inputs of :class:`ModelCacheAdmission`."""

    namespace: str
    loader_repository: pulumi.Input[str]
    """The loader image's repository URL (``<registry>/<repository>``)."""
    depends_on: Sequence[pulumi.Resource] = ()


class ModelCacheAdmission(pulumi.ComponentResource):
    """The policy and its binding to the serving namespace."""

    policy: k8s.admissionregistration.v1.ValidatingAdmissionPolicy
    binding: k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding

    def __init__(
        self, name: str, args: ModelCacheAdmissionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        policy_name = f"mlstack-model-cache-{args.namespace}"
        rules = pulumi.Output.from_input(args.loader_repository).apply(validations)
        self.policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-policy",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=policy_name),
            spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicySpecArgs(
                failure_policy="Fail",
                match_constraints=k8s.admissionregistration.v1.MatchResourcesArgs(
                    resource_rules=[
                        k8s.admissionregistration.v1.NamedRuleWithOperationsArgs(
                            api_groups=[""],
                            api_versions=["v1"],
                            operations=["CREATE", "UPDATE"],
                            resources=["pods", "pods/ephemeralcontainers"],
                        )
                    ]
                ),
                variables=[
                    k8s.admissionregistration.v1.VariableArgs(
                        name="cache", expression=CACHE_VOLUMES
                    )
                ],
                validations=rules.apply(
                    lambda found: [
                        k8s.admissionregistration.v1.ValidationArgs(
                            expression=expression, message=message
                        )
                        for expression, message in found
                    ]
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.binding = k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=policy_name),
            spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpecArgs(
                policy_name=self.policy.metadata.name,
                validation_actions=["Deny"],
                match_resources=k8s.admissionregistration.v1.MatchResourcesArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={"kubernetes.io/metadata.name": args.namespace}
                    )
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"policy": self.policy.metadata.name})
