"""``NodeModelCache``: one GPU pool's node-shared model cache, as a claim pods can mount.

Every node of the pool keeps verified model versions in one host directory,
``HOST_PATH`` (under ``/var/lib/kubelet``, which both node families put on the
instance-store RAID0 when the pool has one, else on the EBS data volume), shared by all
the pool's inference pods: a pod restarted or rescheduled on a warm node finds its
version there and starts without downloading (``mlstack model fetch``). The loader
bounds it to ``size_gib`` and evicts the least recently used versions no pod holds
(``mlstack.model_store.node_cache``).

The directory reaches pods as a ``hostPath`` PersistentVolume pre-bound to one claim in
the serving namespace: the pods mount a ``persistentVolumeClaim``, which the namespace's
Pod Security level admits (a ``hostPath`` volume in a pod spec it would not), and
nothing else in the cluster can bind the volume (``claimRef``). The volume's node
affinity is the pool label: the scheduler, Karpenter and cluster-autoscaler place the
pods on the pool's nodes only. ``Retain``: deleting the claim never deletes host data
(the pool's nodes take it with them).

Lifecycle:
* first deploy: volume, then claim (bound at once through ``claimRef``/``volumeName``),
  then the Deployments that mount it; no node has to exist.
* update: the names carry a hash of every field an update cannot change in place
  (path, namespace, size, pool): a change creates a new volume and claim first, the
  Deployments roll onto it, then the old pair goes; never a delete-first name collision.
  The host directory is the same, so the cached versions survive the change.
* destroy: Deployments go first (they depend on the claim); the claim's
  ``pvc-protection`` finalizer holds it until their pods are gone, then the volume goes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

TYPE_TOKEN = "mlstack:serving:NodeModelCache"
HOST_PATH = "/var/lib/kubelet/mlstack-model-cache"
GiB = 1024**3


@dataclass(frozen=True)
class NodeModelCacheArgs:
    """Inputs of :class:`NodeModelCache`: the pool, its node label, the cache bound."""

    pool_name: str
    namespace: str
    node_label: tuple[str, str]
    """(key, value) every node of the pool carries, e.g. (mlstack.io/gpu-pool, a10g)."""
    size_gib: int
    host_path: str = HOST_PATH
    claim_depends_on: Sequence[pulumi.Resource] = ()
    """What the claim waits for: its namespace, and the admission policy binding that
    guards who mounts it (``ModelCacheAdmission``)."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.size_gib < 1:
            found.append(f"size_gib: {self.size_gib}: must be >= 1")
        if not self.host_path.startswith("/") or self.host_path.rstrip("/") in ("", "/var"):
            found.append(f"host_path: {self.host_path!r}: an absolute directory of its own")
        return found


@dataclass(frozen=True)
class NodeCacheMount:
    """What an InferenceService needs to use the pool's cache."""

    claim_name: pulumi.Input[str]
    limit_bytes: int


def volume_spec(args: NodeModelCacheArgs, claim_name: str) -> dict[str, Any]:
    """The PersistentVolume's whole spec (plain data: hashed into the names)."""
    key, value = args.node_label
    return {
        "capacity": {"storage": f"{args.size_gib}Gi"},
        # Each node has its own directory: many nodes read and write "the" volume.
        "accessModes": ["ReadWriteMany"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": "",
        "volumeMode": "Filesystem",
        "hostPath": {"path": args.host_path, "type": "DirectoryOrCreate"},
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": args.namespace,
            "name": claim_name,
        },
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}
                ]
            }
        },
    }


def claim_spec(args: NodeModelCacheArgs, volume_name: str) -> dict[str, Any]:
    """The PersistentVolumeClaim's whole spec (plain data: hashed into the names)."""
    return {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "",
        "volumeMode": "Filesystem",
        "volumeName": volume_name,
        "resources": {"requests": {"storage": f"{args.size_gib}Gi"}},
    }


def resource_name(args: NodeModelCacheArgs) -> str:
    """``mlstack-model-cache-<pool>-<hash>``: the hash covers both whole specs (with the
    names left out), so any change, to a field an update could not make in place or not,
    gives new objects created before the old ones go."""
    placeholder = "-"
    identity = json.dumps(
        [args.pool_name, volume_spec(args, placeholder), claim_spec(args, placeholder)],
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"mlstack-model-cache-{args.pool_name}-{digest}"


class NodeModelCache(pulumi.ComponentResource):
    """The pool's hostPath PersistentVolume and the one claim bound to it."""

    volume: k8s.core.v1.PersistentVolume
    claim: k8s.core.v1.PersistentVolumeClaim
    mount: NodeCacheMount

    def __init__(
        self, name: str, args: NodeModelCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        problems = args.problems()
        if problems:
            raise ValueError(f"NodeModelCache {name}: " + "; ".join(problems))
        object_name = resource_name(args)
        labels = {"app.kubernetes.io/managed-by": "mlstack", "mlstack.io/gpu-pool": args.pool_name}
        child = pulumi.ResourceOptions(parent=self)
        volume = volume_spec(args, object_name)
        claim = claim_spec(args, object_name)
        (term,) = volume["nodeAffinity"]["required"]["nodeSelectorTerms"]
        self.volume = k8s.core.v1.PersistentVolume(
            f"{name}-volume",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=object_name, labels=labels),
            # The same values as volume_spec (a test compares the rendered spec with it).
            spec=k8s.core.v1.PersistentVolumeSpecArgs(
                capacity=volume["capacity"],
                access_modes=volume["accessModes"],
                persistent_volume_reclaim_policy=volume["persistentVolumeReclaimPolicy"],
                storage_class_name=volume["storageClassName"],
                volume_mode=volume["volumeMode"],
                host_path=k8s.core.v1.HostPathVolumeSourceArgs(**volume["hostPath"]),
                claim_ref=k8s.core.v1.ObjectReferenceArgs(
                    api_version="v1",
                    kind="PersistentVolumeClaim",
                    namespace=args.namespace,
                    name=object_name,
                ),
                node_affinity=k8s.core.v1.VolumeNodeAffinityArgs(
                    required=k8s.core.v1.NodeSelectorArgs(
                        node_selector_terms=[
                            k8s.core.v1.NodeSelectorTermArgs(
                                match_expressions=[
                                    k8s.core.v1.NodeSelectorRequirementArgs(**expression)
                                    for expression in term["matchExpressions"]
                                ]
                            )
                        ]
                    )
                ),
            ),
            opts=child,
        )
        self.claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-claim",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=args.namespace, labels=labels
            ),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=claim["accessModes"],
                storage_class_name=claim["storageClassName"],
                volume_mode=claim["volumeMode"],
                volume_name=claim["volumeName"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests=claim["resources"]["requests"]
                ),
            ),
            # The volume by a plain name (known in every preview), the order by dependency;
            # the namespace and the admission binding too, so destroy sees those edges (a
            # parent's depends_on is not a child's) and no pod mounts it unguarded.
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.volume, *args.claim_depends_on]
            ),
        )
        self.mount = NodeCacheMount(
            claim_name=self.claim.metadata.name, limit_bytes=args.size_gib * GiB
        )
        self.register_outputs({"claimName": self.claim.metadata.name})
