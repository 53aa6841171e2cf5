"""``Monitoring``: the whole monitoring layer of one stack.

* an alert topic (KMS-encrypted SNS, subscriptions from config) — the one place to
  subscribe;
* kube-prometheus-stack (Prometheus, Alertmanager routing to the topic, Grafana);
* ServiceMonitors for every inference service and the DCGM exporter;
* PrometheusRules: fleet GPU rules and per-service SLO rules;
* Grafana dashboards (ConfigMaps for the sidecar);
* CloudWatch alarms per service on its ALB target group, and a CloudWatch dashboard.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.iam.scope import RoleScope
from components.monitoring import alert_rules as ar
from components.monitoring import cloudwatch as cw
from components.monitoring import dashboards as dash
from components.monitoring import metrics as m
from components.monitoring import prometheus_stack as ps
from components.monitoring import sizing as sz
from components.monitoring.notifications import Subscriber, create_alert_topic
from components.naming import model_name_problem
from components.validation import require_valid

TYPE_TOKEN = "mlstack:monitoring:Monitoring"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
DEFAULT_RUNBOOK_BASE = "https://github.com/mlstack/mlstack/blob/main/docs/monitoring.md"
CRD_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"
MONITORING_NAMESPACE = "monitoring"


@dataclass(frozen=True)
class AlbTargetGroupRef:
    """One ALB target group of a service, for its CloudWatch alarms.

    ``track`` None: the service's main target group (alarms ``<prefix>-<service>-<check>``);
    otherwise a further rollout track, alarmed separately as ``<service>-<track>`` (e.g. the
    canary of a canary rollout).
    """

    target_group_arn_suffix: pulumi.Input[str]
    load_balancer_arn_suffix: pulumi.Input[str]
    track: str | None = None
    kind: cw.LbKind = "alb"


@dataclass(frozen=True)
class LoadBalancerRef:
    """One load balancer for its own alarms (ALB 5XX ratio, NLB TCP resets); ``name``
    starts its alarm names (``<prefix>-<name>-<check>``)."""

    name: str
    kind: cw.LbKind
    arn_suffix: pulumi.Input[str]


@dataclass(frozen=True)
class ServiceTarget:
    """One inference service: how to scrape it, what to alert on, which ALB it sits behind.

    ``target_group_arn_suffix`` / ``load_balancer_arn_suffix`` (both or neither), or
    ``alb_target_groups`` (one entry per target group), turn on the CloudWatch alarms;
    without them the service has Prometheus rules only.
    """

    name: str
    namespace: str
    runtime: m.RuntimeMetrics
    p99_latency_slo_seconds: float
    min_healthy: int = 1
    """Healthy ALB targets below this raise a critical alarm (min replicas); 0 = the service
    may scale to zero, and its floor alarm is informational (never pages)."""
    selector_labels: Mapping[str, str] | None = None
    """Labels of the Kubernetes Service to scrape. Default: app.kubernetes.io/name=<name>."""
    metrics_port: str = "http"
    """Name of the Service port serving metrics."""
    metrics_path: str = "/metrics"
    k8s_service: str | None = None
    """Name of the Kubernetes Service (the ``service`` label of its series). Default: name."""
    hpa_name: str | None = None
    """The service's HorizontalPodAutoscaler. Default: KEDA's keda-hpa-<name>."""
    model_loader_container: str | None = ar.DEFAULT_MODEL_LOADER_CONTAINER
    startup_budget_seconds: int | None = None
    """The model's start-up budget: time-to-ready recorded, alert above it; None: off."""
    target_group_arn_suffix: pulumi.Input[str] | None = None
    load_balancer_arn_suffix: pulumi.Input[str] | None = None
    alb_target_groups: Sequence[AlbTargetGroupRef] = ()

    @property
    def rule_target(self) -> ar.ServiceRuleTarget:
        return ar.ServiceRuleTarget(
            name=self.name,
            namespace=self.namespace,
            runtime=self.runtime,
            p99_latency_slo_seconds=self.p99_latency_slo_seconds,
            k8s_service=self.k8s_service,
            hpa_name=self.hpa_name,
            model_loader_container=self.model_loader_container,
            startup_budget_seconds=self.startup_budget_seconds,
        )

    @property
    def target_groups(self) -> tuple[AlbTargetGroupRef, ...]:
        """Every target group to alarm on: the single pair, then ``alb_target_groups``."""
        refs = list(self.alb_target_groups)
        if self.target_group_arn_suffix is not None and self.load_balancer_arn_suffix is not None:
            refs.insert(
                0, AlbTargetGroupRef(self.target_group_arn_suffix, self.load_balancer_arn_suffix)
            )
        return tuple(refs)

    @property
    def alarm_targets(self) -> tuple[cw.AlbAlarmTarget, ...]:
        return tuple(
            cw.AlbAlarmTarget(
                service=self.name if ref.track is None else f"{self.name}-{ref.track}",
                target_group_arn_suffix=ref.target_group_arn_suffix,
                load_balancer_arn_suffix=ref.load_balancer_arn_suffix,
                min_healthy=self.min_healthy,
                p99_latency_slo_seconds=self.p99_latency_slo_seconds,
                kind=ref.kind,
            )
            for ref in self.target_groups
        )

    @property
    def alarm_target(self) -> cw.AlbAlarmTarget | None:
        """The alarm target of the main target group (None without one)."""
        return next((t for t in self.alarm_targets if t.service == self.name), None)


@dataclass(frozen=True)
class DcgmScrape:
    """Where the NVIDIA DCGM exporter's Service is. Defaults: the dcgm-exporter chart's
    labels and port, in the namespace ``components.compute.nvidia`` installs it to."""

    namespace: str = "nvidia-gpu"
    match_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "dcgm-exporter"}
    )
    port: str = "metrics"
    path: str = "/metrics"


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of :class:`Monitoring`.

    ``name_prefix`` starts every AWS physical name (topic ``<prefix>-alerts``, alarms
    ``<prefix>-<service>-<check>``, dashboard ``<prefix>-inference``); use the cluster name.
    ``page_severities`` are the alert severities that notify the topic (Prometheus alerts
    and CloudWatch alarms alike); ``critical`` must be one of them.
    """

    name_prefix: str
    region: str
    cluster_name: pulumi.Input[str]
    grafana_admin_password: pulumi.Input[str] | None = None
    """Pulumi secret; None generates one (``pulumi-random`` ``RandomPassword``, needs a
    ``random`` provider in the component's providers), never the chart's default."""
    services: Sequence[ServiceTarget] = ()
    load_balancers: Sequence[LoadBalancerRef] = ()
    """The stack's load balancers, each alarmed on its own (besides its target groups)."""
    subscribers: Sequence[Subscriber] = ()
    page_severities: Sequence[str] = (ar.CRITICAL,)
    retention: str = "15d"
    """Prometheus retention, <n>h|d|w|y; must cover the longest alert window."""
    storage_gib: int = 50
    """Prometheus volume (gp3, encrypted) per replica."""
    replicas: int = 1
    """Prometheus and Alertmanager replicas (2+ for HA)."""
    active_series: int = sz.DEFAULT_ACTIVE_SERIES["dev"]
    """Expected active series (scrape load): sizes Prometheus with ``retention``."""
    thresholds: ar.AlertThresholds = field(default_factory=ar.AlertThresholds)
    alb_alarms: cw.AlbAlarmSettings = field(default_factory=cw.AlbAlarmSettings)
    gpu_pool_label: str = "mlstack.io/gpu-pool"
    """Node label holding the GPU pool name (dashboards and GPU alerts group by it)."""
    gpu_pool_repairs: Sequence[ar.PoolRepair] = ()
    """Per GPU pool, whether auto repair acts on a faulty node: the GPU fault alerts page
    only where it does not (or where it is overdue)."""
    dcgm: DcgmScrape | None = field(default_factory=DcgmScrape)
    """Where to scrape the DCGM exporter; None when something else scrapes it."""
    namespace: str = MONITORING_NAMESPACE
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where the monitoring pods run (the system nodes)."""
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE
    chart_version: str | None = None
    """Override of the pinned kube-prometheus-stack version."""
    protect: bool = False
    role_scope: RoleScope | None = None
    """IAM path and permissions boundary of the roles created here (None: plain roles)."""
    """protect + retain the topic and its key; retain Prometheus volumes."""
    key_deletion_days: int = 30

    def problems(self) -> list[str]:
        """Everything wrong with these args, as 'field: value: allowed' lines."""
        found: list[str] = []
        if not DNS_LABEL.match(self.name_prefix) or len(self.name_prefix) > 40:
            found.append(f"name_prefix: {self.name_prefix!r}: a DNS label of at most 40 chars")
        if not DNS_LABEL.match(self.namespace):
            found.append(f"namespace: {self.namespace!r}: a DNS label")
        bad_severities = [s for s in self.page_severities if s not in ar.SEVERITIES]
        if bad_severities or ar.CRITICAL not in self.page_severities:
            found.append(
                f"page_severities: {list(self.page_severities)}: a subset of "
                f"{list(ar.SEVERITIES)} containing 'critical'"
            )
        try:
            retention = ps.retention_minutes(self.retention)
            longest = self.thresholds.longest_window_minutes()
            if retention < longest:
                found.append(
                    f"retention: {self.retention!r}: shorter than the longest alert window "
                    f"({ar.duration(longest)})"
                )
        except ValueError as exc:
            found.append(f"retention: {exc}")
        if not 10 <= self.storage_gib <= 16384:
            found.append(f"storage_gib: {self.storage_gib}: between 10 and 16384")
        if not 1 <= self.replicas <= 5:
            found.append(f"replicas: {self.replicas}: between 1 and 5")
        if not sz.MIN_ACTIVE_SERIES <= self.active_series <= sz.MAX_ACTIVE_SERIES:
            found.append(
                f"active_series: {self.active_series}: between {sz.MIN_ACTIVE_SERIES} and "
                f"{sz.MAX_ACTIVE_SERIES}"
            )
        if not LABEL_KEY.match(self.gpu_pool_label):
            found.append(f"gpu_pool_label: {self.gpu_pool_label!r}: a Kubernetes label key")
        if not self.runbook_base_url.startswith("https://"):
            found.append(f"runbook_base_url: {self.runbook_base_url!r}: an https:// URL")
        if not 7 <= self.key_deletion_days <= 30:
            found.append(f"key_deletion_days: {self.key_deletion_days}: between 7 and 30")
        found += [f"thresholds.{p}" for p in self.thresholds.problems()]
        found += [f"alb_alarms.{p}" for p in self.alb_alarms.problems()]
        for sub in self.subscribers:
            found += [f"subscribers: {p}" for p in sub.problems()]
        found += self._service_problems()
        return found

    def _service_problems(self) -> list[str]:
        found: list[str] = []
        seen: set[str] = set()
        for i, svc in enumerate(self.services):
            where = f"services[{i}]"
            if model_name_problem(svc.name):
                found.append(f"{where}.name: {svc.name!r}: {model_name_problem(svc.name)}")
            if svc.name in seen:
                found.append(f"{where}.name: {svc.name!r}: duplicate service name")
            seen.add(svc.name)
            if not DNS_LABEL.match(svc.namespace):
                found.append(f"{where}.namespace: {svc.namespace!r}: a DNS label")
            if not 0 < svc.p99_latency_slo_seconds <= 600:
                found.append(
                    f"{where}.p99_latency_slo_seconds: {svc.p99_latency_slo_seconds}: in (0, 600]"
                )
            if svc.min_healthy < 0:
                found.append(
                    f"{where}.min_healthy: {svc.min_healthy}: 0 (may scale to zero) or more"
                )
            if (svc.target_group_arn_suffix is None) != (svc.load_balancer_arn_suffix is None):
                found.append(
                    f"{where}: give both target_group_arn_suffix and load_balancer_arn_suffix, "
                    "or neither"
                )
            tracks = [ref.track for ref in svc.target_groups]
            if len(set(tracks)) != len(tracks):
                found.append(f"{where}: target groups {tracks}: one per track (None = main)")
            for track in tracks:
                if track is not None and not DNS_LABEL.match(f"{svc.name}-{track}"):
                    found.append(f"{where}: track {track!r}: '<name>-<track>' must be a DNS label")
            if not svc.metrics_path.startswith("/"):
                found.append(f"{where}.metrics_path: {svc.metrics_path!r}: starts with /")
        alarmed = [t.service for svc in self.services for t in svc.alarm_targets]
        alarmed += [lb.name for lb in self.load_balancers]
        clashes = sorted(s for s, n in Counter(alarmed).items() if n > 1)
        if clashes:
            found.append(f"services: alarm names {clashes}: a service and a track collide")
        return found


def service_monitor_spec(svc: ServiceTarget) -> dict[str, Any]:
    """ServiceMonitor spec scraping one inference service's metrics port."""
    labels = dict(svc.selector_labels or {"app.kubernetes.io/name": svc.name})
    return {
        "selector": {"matchLabels": labels},
        "namespaceSelector": {"matchNames": [svc.namespace]},
        "endpoints": [
            {"port": svc.metrics_port, "path": svc.metrics_path, "interval": SCRAPE_INTERVAL}
        ],
    }


def dcgm_service_monitor_spec(dcgm: DcgmScrape) -> dict[str, Any]:
    """ServiceMonitor for the DCGM exporter: keeps the GPU workload's namespace/pod labels
    (honorLabels) and adds ``node`` (the scraped pod's node) for the pool join."""
    return {
        "selector": {"matchLabels": dict(dcgm.match_labels)},
        "namespaceSelector": {"matchNames": [dcgm.namespace]},
        "endpoints": [
            {
                "port": dcgm.port,
                "path": dcgm.path,
                "interval": SCRAPE_INTERVAL,
                "honorLabels": True,
                "relabelings": [
                    {
                        "action": "replace",
                        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                        "targetLabel": "node",
                    }
                ],
            }
        ],
    }


def _resources(depends_on: Any) -> list[pulumi.Resource]:
    """The plain resources of a ``depends_on`` option (Outputs of lists are not waited for)."""
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, list | tuple):
        return [r for r in depends_on if isinstance(r, pulumi.Resource)]
    return []


class Monitoring(pulumi.ComponentResource):
    """See the module docstring. ``opts.depends_on`` (e.g. the node group) is passed on to
    the Helm release, whose pods need nodes to run on."""

    topic_arn: pulumi.Output[str]
    prometheus_url: str
    """In-cluster Prometheus URL (KEDA's prometheus scaler queries it)."""
    namespace: str
    alertmanager_role_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    alarm_names: pulumi.Output[list[str]]
    """Names of the CloudWatch alarms (``mlstack bake`` cross-checks its list with them)."""

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        require_valid("Monitoring", name, args.problems())
        prefix = args.name_prefix
        page = tuple(args.page_severities)

        alert_topic = create_alert_topic(
            self,
            name,
            topic_name=f"{prefix}-alerts",
            alarm_name_prefix=f"{prefix}-",
            subscribers=args.subscribers,
            protect=args.protect,
            key_deletion_days=args.key_deletion_days,
        )
        self.topic_arn = alert_topic.topic.arn

        password = args.grafana_admin_password
        if password is None:
            # Never the chart's default: kube-prometheus-stack's Grafana falls back to a
            # public password. Generated once, kept in state (secret), stable across updates.
            password = random.RandomPassword(
                f"{name}-grafana-password",
                random.RandomPasswordArgs(length=32, special=True, override_special="-_.~"),
                opts=pulumi.ResourceOptions(parent=self),
            ).result

        stack = ps.create_stack(
            self,
            name,
            namespace=args.namespace,
            values=ps.StackValues(
                region=args.region,
                topic_arn=alert_topic.topic.arn,
                stack_label=prefix,
                retention=args.retention,
                storage_gib=args.storage_gib,
                replicas=args.replicas,
                page_severities=page,
                gpu_pool_label=args.gpu_pool_label,
                node_selector=args.node_selector,
                grafana_admin_secret=ps.GRAFANA_SECRET,
                protect=args.protect,
                sizing=sz.size(
                    args.active_series,
                    ps.retention_minutes(args.retention),
                    ps.SCRAPE_INTERVAL_SECONDS,
                ),
            ),
            chart=ps.chart_pin(args.chart_version),
            cluster_name=args.cluster_name,
            grafana_admin_password=password,
            topic_arn=alert_topic.topic.arn,
            key_arn=alert_topic.key.arn,
            wait_for=_resources(opts.depends_on if opts else None),
            role_scope=args.role_scope,
        )
        self.namespace = args.namespace
        self.prometheus_url = ps.prometheus_url(args.namespace)
        self.alertmanager_role_arn = stack.alertmanager_role.arn
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[stack.release])

        rule_targets = [svc.rule_target for svc in args.services]
        self._custom_resource(
            f"{name}-rules-fleet",
            "PrometheusRule",
            "mlstack-gpu-fleet",
            {
                "groups": ar.fleet_groups(
                    args.thresholds,
                    args.gpu_pool_label,
                    args.runbook_base_url,
                    args.gpu_pool_repairs,
                )
            },
            after_chart,
        )
        for svc, target in zip(args.services, rule_targets, strict=True):
            rules = ar.service_recording_rules(target) + ar.service_rules(
                target, args.thresholds, args.runbook_base_url
            )
            self._custom_resource(
                f"{name}-rules-{svc.name}",
                "PrometheusRule",
                f"mlstack-service-{svc.name}",
                {"groups": [ar.rule_group(f"mlstack-service-{svc.name}", rules)]},
                after_chart,
            )
            self._custom_resource(
                f"{name}-scrape-{svc.name}",
                "ServiceMonitor",
                f"mlstack-{svc.name}",
                service_monitor_spec(svc),
                after_chart,
            )
        if args.dcgm is not None:
            self._custom_resource(
                f"{name}-scrape-dcgm",
                "ServiceMonitor",
                "mlstack-dcgm-exporter",
                dcgm_service_monitor_spec(args.dcgm),
                after_chart,
            )

        key, value = dash.SIDECAR_LABEL
        for short, board in dash.all_dashboards(rule_targets).items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{short}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"mlstack-dashboard-{short}",
                    namespace=args.namespace,
                    labels={key: value, "app.kubernetes.io/part-of": "mlstack"},
                ),
                data={f"mlstack-{short}.json": dash.to_json(board)},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[stack.namespace]),
            )

        alarm_targets = [t for svc in args.services for t in svc.alarm_targets]
        alarms = [
            alarm
            for target in alarm_targets
            for alarm in cw.create_alarms(
                self,
                name,
                name_prefix=prefix,
                target=target,
                settings=args.alb_alarms,
                topic_arn=alert_topic.topic.arn,
                page_severities=page,
            )
        ]
        alarms += [
            alarm
            for balancer in args.load_balancers
            for alarm in cw.create_load_balancer_alarms(
                self,
                name,
                name_prefix=prefix,
                target=cw.LoadBalancerAlarmTarget(
                    balancer.name, balancer.kind, balancer.arn_suffix
                ),
                settings=args.alb_alarms,
                topic_arn=alert_topic.topic.arn,
                page_severities=page,
            )
        ]
        cw_dashboard = cw.create_dashboard(
            self,
            name,
            dashboard_name=f"{prefix}-inference",
            region=args.region,
            topic_name=f"{prefix}-alerts",
            targets=alarm_targets,
            alarms=alarms,
        )
        self.dashboard_name = cw_dashboard.dashboard_name
        self.alarm_names = pulumi.Output.all(*[alarm.name for alarm in alarms])

        self.register_outputs(
            {
                "topicArn": self.topic_arn,
                "prometheusUrl": self.prometheus_url,
                "alertmanagerRoleArn": self.alertmanager_role_arn,
                "dashboardName": self.dashboard_name,
                "alarmNames": self.alarm_names,
            }
        )

    def _custom_resource(
        self,
        resource_name: str,
        kind: str,
        object_name: str,
        spec: dict[str, Any],
        opts: pulumi.ResourceOptions,
    ) -> k8s.apiextensions.CustomResource:
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version=CRD_API,
            kind=kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=object_name,
                namespace=self.namespace,
                labels={"app.kubernetes.io/part-of": "mlstack"},
            ),
            spec=spec,
            opts=opts,
        )
