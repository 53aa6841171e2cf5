"""kube-prometheus-stack: Prometheus, Alertmanager, Grafana, kube-state-metrics and
node-exporter from one pinned Helm chart, sized per stack.

* Prometheus keeps ``retention`` of data on an encrypted gp3 volume (a StorageClass of
  its own), and selects every ServiceMonitor / PrometheusRule in the cluster, not only the
  chart's. Volumes follow ``protect``: protected, the StorageClass retains released volumes
  and the Prometheus / Alertmanager StatefulSets keep their claims when deleted; otherwise
  (dev) the claims go with the StatefulSets and their EBS volumes with the claims.
* Every container has requests and a memory limit (:mod:`components.monitoring.sizing`:
  Prometheus from scrape load and retention).
* Alertmanager routes alerts whose severity pages to the alert SNS topic through its
  SNS receiver; its service account gets an IAM role through EKS Pod Identity that may
  only publish to that topic (and use the topic's key to do so).
* Grafana takes its admin password from a Kubernetes Secret made from a Pulumi secret
  (never a Helm value, so the plan shows no password), and loads dashboards from
  ConfigMaps labelled for its sidecar.
* EKS runs the control plane: the chart's scrapes of etcd, scheduler,
  controller-manager and kube-proxy (unreachable there) are off, so they raise no
  false "target down" alerts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.iam import documents
from components.iam.pod_identity import ServiceAccountRoleNames, pod_identity_role
from components.iam.scope import RoleScope
from components.monitoring.dashboards import DATASOURCE_UID, SIDECAR_LABEL
from components.monitoring.notifications import publisher_policy
from components.monitoring.sizing import DEFAULT_ACTIVE_SERIES, MonitoringSizing, Resources, size
from components.versions import CHARTS, ChartPin

CHART_ROLE = "kube-prometheus-stack"
RELEASE_NAME = "monitoring"
FULLNAME = "kps"
"""fullnameOverride: Prometheus is then reachable at ``kps-prometheus.<ns>:9090``."""
ALERTMANAGER_SERVICE_ACCOUNT = "alertmanager"
GRAFANA_SECRET = "grafana-admin"
STORAGE_CLASS = "mlstack-monitoring-gp3"
ALERTMANAGER_STORAGE_GIB = 2
SCRAPE_INTERVAL = "30s"
SCRAPE_INTERVAL_SECONDS = 30
_RETENTION = re.compile(r"^(\d+)(h|d|w|y)$")
_UNIT_MINUTES = {"h": 60, "d": 1440, "w": 10080, "y": 525600}


def retention_minutes(retention: str) -> int:
    """``15d`` -> 21600. Raises ValueError for anything but <n>h|d|w|y."""
    match = _RETENTION.match(retention)
    if not match:
        raise ValueError(f"{retention!r}: use <number><h|d|w|y>, e.g. 15d")
    return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]


def chart_pin(version_override: str | None = None) -> ChartPin:
    pin = CHARTS[CHART_ROLE]
    if version_override:
        return ChartPin(pin.chart, version_override, pin.repository)
    return pin


@dataclass(frozen=True)
class StackValues:
    """Inputs of :func:`helm_values` (plain, except the topic ARN)."""

    region: str
    topic_arn: pulumi.Input[str]
    stack_label: str
    retention: str = "15d"
    storage_gib: int = 50
    replicas: int = 1
    page_severities: Sequence[str] = ("critical",)
    gpu_pool_label: str = "mlstack.io/gpu-pool"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    grafana_admin_secret: str | None = GRAFANA_SECRET
    protect: bool = False
    sizing: MonitoringSizing | None = None
    """Requests and limits; None: :func:`components.monitoring.sizing.size` of 100k series."""


def alertmanager_config(
    topic_arn: pulumi.Input[str], region: str, page_severities: Sequence[str], stack_label: str
) -> dict[str, Any]:
    """Alertmanager routing: paging severities to the SNS topic, the rest nowhere."""
    severities = "|".join(sorted(page_severities))
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "severity", "namespace", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                {"receiver": "null", "matchers": ['alertname = "InfoInhibitor"']},
                {"receiver": "sns", "matchers": [f'severity =~ "{severities}"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity =~ "warning|info"'],
                "equal": ["alertname", "namespace", "service"],
            }
        ],
        "receivers": [
            {"name": "null"},
            {
                "name": "sns",
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        "sigv4": {"region": region},
                        "send_resolved": True,
                        # SNS subjects: ASCII, < 100 characters.
                        "subject": (
                            f"[{stack_label}] {{{{ .Status | toUpper }}}} "
                            "{{ .GroupLabels.alertname }}"
                        ),
                        "attributes": {
                            "source": "alertmanager",
                            "stack": stack_label,
                            "severity": '{{ or .CommonLabels.severity "none" }}',
                        },
                    }
                ],
            },
        ],
        "templates": ["/etc/alertmanager/config/*.tmpl"],
    }


def _volume_claim(storage_gib: int) -> dict[str, Any]:
    return {
        "volumeClaimTemplate": {
            "spec": {
                "storageClassName": STORAGE_CLASS,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
            }
        }
    }


def claim_retention(protect: bool) -> dict[str, str]:
    """StatefulSet ``persistentVolumeClaimRetentionPolicy`` of Prometheus and Alertmanager:
    protected, a deleted StatefulSet leaves its claims (and volumes); otherwise they go."""
    return {"whenDeleted": "Retain" if protect else "Delete", "whenScaled": "Retain"}


def helm_values(v: StackValues) -> dict[str, Any]:
    """The chart's values (shown as is in the plan; no secret in them)."""
    node_selector = dict(v.node_selector)
    sizing = v.sizing or default_sizing(v.retention)

    def res(r: Resources) -> dict[str, Any]:
        return r.to_k8s()

    grafana_admin: dict[str, Any] = (
        {
            "admin": {
                "existingSecret": v.grafana_admin_secret,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            }
        }
        if v.grafana_admin_secret
        else {}
    )
    return {
        "fullnameOverride": FULLNAME,
        # The CRDs come from their own release (PrometheusOperatorCrds): this chart's crds/
        # would be installed once and never upgraded.
        "crds": {"enabled": False},
        # The etcd/scheduler/controller-manager/kube-proxy rule groups are rendered only
        # when their component below is enabled too: turning the components off is enough.
        "defaultRules": {"create": True},
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheusOperator": {
            "nodeSelector": node_selector,
            "resources": res(sizing.operator),
            "prometheusConfigReloader": {"resources": res(sizing.config_reloader)},
            "admissionWebhooks": {"patch": {"resources": res(sizing.webhook_patch_job)}},
        },
        "prometheus": {
            "prometheusSpec": {
                "replicas": v.replicas,
                "retention": v.retention,
                # Leave headroom on the volume: stop at 85 % rather than fill it.
                "retentionSize": f"{int(v.storage_gib * 0.85)}GB",
                "scrapeInterval": SCRAPE_INTERVAL,
                "evaluationInterval": SCRAPE_INTERVAL,
                "externalLabels": {"stack": v.stack_label},
                "storageSpec": _volume_claim(v.storage_gib),
                "persistentVolumeClaimRetentionPolicy": claim_retention(v.protect),
                "resources": res(sizing.prometheus),
                "nodeSelector": node_selector,
                # Select every ServiceMonitor / PodMonitor / PrometheusRule in the cluster.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
            }
        },
        "alertmanager": {
            "serviceAccount": {"create": True, "name": ALERTMANAGER_SERVICE_ACCOUNT},
            "config": alertmanager_config(v.topic_arn, v.region, v.page_severities, v.stack_label),
            "alertmanagerSpec": {
                "replicas": v.replicas,
                "storage": _volume_claim(ALERTMANAGER_STORAGE_GIB),
                "persistentVolumeClaimRetentionPolicy": claim_retention(v.protect),
                "resources": res(sizing.alertmanager),
                "nodeSelector": node_selector,
            },
        },
        "grafana": {
            **grafana_admin,
            "defaultDashboardsTimezone": "utc",
            "nodeSelector": node_selector,
            "resources": res(sizing.grafana),
            "sidecar": {
                "resources": res(sizing.grafana_sidecar),
                "dashboards": {
                    "enabled": True,
                    "label": SIDECAR_LABEL[0],
                    "labelValue": SIDECAR_LABEL[1],
                    "searchNamespace": "ALL",
                },
                "datasources": {"enabled": True, "uid": DATASOURCE_UID},
            },
        },
        "kube-state-metrics": {
            "nodeSelector": node_selector,
            "resources": res(sizing.kube_state_metrics),
            # Expose the GPU pool label of nodes as label_<...> on kube_node_labels.
            "metricLabelsAllowlist": [f"nodes=[{v.gpu_pool_label}]"],
        },
        "prometheus-node-exporter": {"resources": res(sizing.node_exporter)},
    }


def default_sizing(retention: str) -> MonitoringSizing:
    """The sizing of :data:`components.monitoring.sizing.DEFAULT_ACTIVE_SERIES` (dev)."""
    return size(DEFAULT_ACTIVE_SERIES["dev"], retention_minutes(retention), SCRAPE_INTERVAL_SECONDS)


def prometheus_url(namespace: str) -> str:
    """In-cluster URL of Prometheus (what KEDA's prometheus scaler queries)."""
    return f"http://{FULLNAME}-prometheus.{namespace}.svc:9090"


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class StackResources:
    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release
    alertmanager_role: aws.iam.Role


def create_stack(
    parent: pulumi.Resource,
    name: str,
    *,
    namespace: str,
    values: StackValues,
    chart: ChartPin,
    cluster_name: pulumi.Input[str],
    grafana_admin_password: pulumi.Input[str] | None,
    topic_arn: pulumi.Input[str],
    key_arn: pulumi.Input[str],
    wait_for: Sequence[pulumi.Resource] = (),
    role_scope: RoleScope | None = None,
) -> StackResources:
    """Namespace, gp3 StorageClass, Grafana admin Secret, Alertmanager's IAM role and
    Pod Identity association, and the Helm release (which also waits for ``wait_for``,
    e.g. the nodes its pods run on)."""
    child = pulumi.ResourceOptions(parent=parent)
    labels = {"app.kubernetes.io/part-of": "mlstack", "app.kubernetes.io/component": "monitoring"}
    ns = k8s.core.v1.Namespace(
        f"{name}-namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels=labels),
        opts=child,
    )
    storage_class = k8s.storage.v1.StorageClass(
        f"{name}-gp3",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=STORAGE_CLASS, labels=labels),
        provisioner="ebs.csi.aws.com",
        parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4"},
        reclaim_policy="Retain" if values.protect else "Delete",
        volume_binding_mode="WaitForFirstConsumer",
        allow_volume_expansion=True,
        opts=child,
    )
    depends: list[pulumi.Resource] = [ns, storage_class, *wait_for]
    if grafana_admin_password is not None:
        secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=values.grafana_admin_secret, namespace=namespace, labels=labels
            ),
            type="Opaque",
            string_data={
                "admin-user": "admin",
                "admin-password": pulumi.Output.secret(grafana_admin_password),
            },
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[ns]),
        )
        depends.append(secret)

    alertmanager = pod_identity_role(
        ServiceAccountRoleNames(
            role=f"{name}-alertmanager-role",
            policy=f"{name}-alertmanager-publish",
            association=f"{name}-alertmanager-identity",
        ),
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=ALERTMANAGER_SERVICE_ACCOUNT,
        description="Alertmanager publishes alerts to the alert topic (Pod Identity)",
        policy=pulumi.Output.all(topic_arn, key_arn).apply(
            lambda v: documents.to_json(publisher_policy(v[0], v[1]))
        ),
        parent=parent,
        scope=role_scope,
    )
    role = alertmanager.role
    depends.append(alertmanager.association)

    release = k8s.helm.v3.Release(
        f"{name}-kube-prometheus-stack",
        k8s.helm.v3.ReleaseArgs(
            name=RELEASE_NAME,
            namespace=namespace,
            chart=chart.chart,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
            values=helm_values(values),
            timeout=900,
            max_history=10,
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends),
    )
    return StackResources(namespace=ns, release=release, alertmanager_role=role)
