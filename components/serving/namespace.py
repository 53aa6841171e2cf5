"""``InferenceNamespace``: the namespace all inference services share, and its loader.

The namespace enforces the ``baseline`` Pod Security Standard and warns/audits on
``restricted`` (the inference pods meet ``restricted`` when their runtime runs as
non-root), and carries the label that makes the AWS Load Balancer Controller inject
pod readiness gates, so a rolling update waits until new pods are healthy *in the
ALB target group* before old ones go.

It also holds the model-loader script (a ConfigMap) every inference pod's init
container runs; its sha256 goes into each pod template so a script change rolls pods.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

TYPE_TOKEN = "mlstack:serving:InferenceNamespace"
LOADER_SCRIPT = Path(__file__).with_name("load_model.sh")
LOADER_CONFIG_MAP = "model-loader"
LOADER_KEY = "load_model.sh"


def loader_script() -> str:
    """The model-loader shell script shipped with this package."""
    return LOADER_SCRIPT.read_text(encoding="utf-8")


def loader_script_sha256() -> str:
    return hashlib.sha256(loader_script().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class InferenceNamespaceArgs:
    """Inputs of :class:`InferenceNamespace`. Default namespace: ``inference``."""

    namespace: str = "inference"
    alb_readiness_gates: bool = True


class InferenceNamespace(pulumi.ComponentResource):
    """The serving namespace and the model-loader ConfigMap."""

    namespace: str
    loader_config_map: str
    loader_sha256: str
    resource: k8s.core.v1.Namespace

    def __init__(
        self, name: str, args: InferenceNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        labels = {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        }
        if args.alb_readiness_gates:
            labels["elbv2.k8s.aws/pod-readiness-gate-inject"] = "enabled"
        self.resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.namespace, labels=labels),
            opts=pulumi.ResourceOptions(parent=self),
        )
        script = loader_script()
        k8s.core.v1.ConfigMap(
            f"{name}-loader",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=LOADER_CONFIG_MAP,
                namespace=args.namespace,
                labels={"app.kubernetes.io/name": LOADER_CONFIG_MAP},
            ),
            data={LOADER_KEY: script},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.resource]),
        )
        self.namespace = args.namespace
        self.loader_config_map = LOADER_CONFIG_MAP
        self.loader_sha256 = hashlib.sha256(script.encode("utf-8")).hexdigest()
        self.register_outputs({"namespace": args.namespace})
