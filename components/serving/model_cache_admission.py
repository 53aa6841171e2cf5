"""``ModelCacheAdmission``: who may write the node-shared model cache, enforced at admission.

Every pod in the serving namespace could mount a cache claim
(``components.serving.model_cache``). A ValidatingAdmissionPolicy (CEL, built into the
API server since Kubernetes 1.30) bound to that namespace denies any pod that mounts one
unless:

1. every container (the model server) mounts it read-only, one model's directory
   (``subPath``);
2. an init container mounts it writable only as one of mlstack's three steps
   (``model-cache-prepare``, ``model-cache-hold``, ``model-loader``) exactly as the stack
   renders them: the stack's loader image reference, its own ``mlstack model ...``
   subcommand, no ``args``, ``envFrom``, hooks, probes (but the hold's own), working
   directory or extra privileges, only allow-listed variables and mounts;
3. a pod that mounts it has no ephemeral (``kubectl debug``) container and does not
   share its process namespace (either could reach a writer's files through ``/proc``).

``pods/exec`` into a writer step is not an admission request: who may exec in the
namespace (RBAC) is trusted, as is who may create pods there (the deploy role).

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
    return f"(has({c}.volumeMounts) && {c}.volumeMounts.exists(m, m.name in variables.cache))"


def _read_only_one_dir(m: str) -> str:
    return f"(has({m}.readOnly) && {m}.readOnly && has({m}.subPath) && {m}.subPath != '')"


WRITER_ENV = (
    "HOME",
    "MLSTACK_MODEL_BUCKET",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
"""Variables a writer step may carry: the stack's own and what the Pod Identity and IRSA
webhooks inject. Nothing that points Python or botocore at other code or config
(``PATH``, ``PYTHON*``, ``LD_*``, ``AWS_CONFIG_FILE`` with a ``credential_process``)."""


def _writer(loader_image: str, cache_dir: str, ready_file: str) -> str:
    """A CEL condition: container ``c`` is exactly one of mlstack's three writer steps as
    the stack renders it (an allow-list: anything not listed is refused)."""
    subcommands = ", ".join(f"'{name}': '{sub}'" for name, sub in WRITERS.items())
    writers = ", ".join(f"'{name}'" for name in WRITERS)
    env = ", ".join(f"'{name}'" for name in WRITER_ENV)
    mounts = (
        "(m.name == 'model' && m.mountPath == '/models') "
        f"|| (m.name in variables.cache && m.mountPath == '{cache_dir}' && !has(m.subPath)) "
        "|| (m.name == 'tmp' && m.mountPath == '/tmp') "
        "|| (m.mountPath.startsWith('/var/run/secrets/') && has(m.readOnly) && m.readOnly)"
    )
    return (
        f"(c.name in [{writers}] && c.image == '{loader_image}' "
        "&& has(c.command) && c.command.size() >= 3 && c.command[0] == 'mlstack' "
        f"&& c.command[1] == 'model' && c.command[2] == {{{subcommands}}}[c.name] "
        "&& !has(c.args) && !has(c.envFrom) && !has(c.lifecycle) && !has(c.workingDir) "
        "&& !has(c.livenessProbe) && !has(c.readinessProbe) "
        "&& (!has(c.startupProbe) || (c.name == 'model-cache-hold' "
        "&& has(c.startupProbe.exec) "
        f"&& c.startupProbe.exec.command == ['test', '-f', '{ready_file}'])) "
        f"&& (!has(c.env) || c.env.all(e, e.name in [{env}])) "
        f"&& has(c.volumeMounts) && c.volumeMounts.all(m, {mounts}) "
        "&& has(c.securityContext) && has(c.securityContext.runAsUser) "
        "&& c.securityContext.runAsUser == (c.name == 'model-cache-prepare' ? 0 : 1000) "
        "&& has(c.securityContext.allowPrivilegeEscalation) "
        "&& !c.securityContext.allowPrivilegeEscalation "
        "&& (!has(c.securityContext.privileged) || !c.securityContext.privileged) "
        "&& (c.name != 'model-cache-prepare' || (has(c.securityContext.capabilities) "
        "&& has(c.securityContext.capabilities.add) "
        "&& c.securityContext.capabilities.add == ['CHOWN'])) "
        "&& (c.name == 'model-cache-prepare' || !has(c.securityContext.capabilities) "
        "|| !has(c.securityContext.capabilities.add)))"
    )


def validations(loader_image: str, cache_dir: str, ready_file: str) -> list[tuple[str, str]]:
    """(CEL expression, message) of every rule. ``loader_image``: the exact reference the
    stack renders; ``cache_dir``: where the writers mount the cache; ``ready_file``: the
    hold sidecar's startup-probe file."""
    uses_cache = "variables.cache.size() > 0"
    return [
        (
            "!has(object.spec.containers) || object.spec.containers.all(c, "
            "!has(c.volumeMounts) || c.volumeMounts.all(m, "
            f"!(m.name in variables.cache) || {_read_only_one_dir('m')}))",
            "containers mount the node model cache read-only, one model's directory (subPath)",
        ),
        (
            "!has(object.spec.initContainers) || object.spec.initContainers.all(c, "
            f"!{_mounts_cache('c')} || {_writer(loader_image, cache_dir, ready_file)} "
            f"|| c.volumeMounts.all(m, !(m.name in variables.cache) || {_read_only_one_dir('m')}))",
            "only mlstack's model-cache-prepare, model-cache-hold and model-loader steps, "
            "exactly as the stack renders them (its loader image, their own mlstack command, "
            "no other variables, mounts, probes, hooks or privileges), may mount the node "
            "model cache writable",
        ),
        (
            f"!({uses_cache}) || !has(object.spec.ephemeralContainers) "
            "|| object.spec.ephemeralContainers.size() == 0",
            "no ephemeral (debug) container in a pod that mounts the node model cache (it "
            "could reach the writers' files through /proc)",
        ),
        (
            f"!({uses_cache}) || !has(object.spec.shareProcessNamespace) "
            "|| !object.spec.shareProcessNamespace",
            "a pod that mounts the node model cache may not share its process namespace",
        ),
    ]


@dataclass(frozen=True)
class ModelCacheAdmissionArgs:
    """Inputs of :class:`ModelCacheAdmission`."""

    namespace: str
    loader_image: pulumi.Input[str]
    """The exact loader image reference the pods run (``model_loader_image``)."""
    cache_dir: str
    """Where the writer steps mount the cache (``InferenceServiceArgs.model_cache_dir``)."""
    ready_file: str
    """The hold sidecar's ready file (its startup probe tests for it)."""
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
        rules = pulumi.Output.from_input(args.loader_image).apply(
            lambda image: validations(image, args.cache_dir, args.ready_file)
        )
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
