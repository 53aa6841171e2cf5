"""``InferenceNamespace``: the namespace all inference services share.

The namespace enforces the ``baseline`` Pod Security Standard and warns/audits on
``restricted``: the inference pods meet ``restricted`` when their runtime runs as
non-root and their pool's model cache is per pod; a node-shared cache adds one init
step that runs as root with only ``CAP_CHOWN`` (``model-cache-prepare``), which
``restricted`` warns about and ``baseline`` admits. It carries the label that makes the
AWS Load Balancer Controller inject pod readiness gates, so a rolling update waits until
new pods are healthy *in the ALB target group* before old ones go.
(The model loader is an image, ``loader/Dockerfile``: ``mlstack model fetch``.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

TYPE_TOKEN = "mlstack:serving:InferenceNamespace"


@dataclass(frozen=True)
class InferenceNamespaceArgs:
    """Inputs of :class:`InferenceNamespace`. Default namespace: ``inference``."""

    namespace: str = "inference"
    alb_readiness_gates: bool = True


class InferenceNamespace(pulumi.ComponentResource):
    """The serving namespace."""

    namespace: str
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
        self.namespace = args.namespace
        self.register_outputs({"namespace": args.namespace})
