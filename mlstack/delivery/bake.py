"""``mlstack bake <stack>``: watch a fresh update for M minutes; fail it on the first breach.

What is watched comes from the offline plan of the checked-out commit (no state
needed; the stack names its alarms and Deployments deterministically):

- every ``aws:cloudwatch/metricAlarm:MetricAlarm`` of the plan (its ``name``; the
  model it belongs to from the Service it watches). ``DescribeAlarms`` by name, up
  to 100 per call. Only alarms that *gate* can fail the bake: the alarm's ``bake`` tag
  (``gate`` | ``observe``), else its ``severity`` tag (``critical`` gates; ``warning``
  and ``info`` observe; no severity gates). A gating alarm in ``ALARM`` fails the bake
  with its name, reason and model, unless it was already in ``ALARM`` in the baseline
  taken before the update (``--baseline``) and did not get worse (see
  :func:`got_worse`): that is reported as pre-existing. Observed alarms in ``ALARM``
  and alarms still ``INSUFFICIENT_DATA`` at the end are reported, never failed. An
  alarm of the plan that does not exist is a usage error (wrong account or region,
  or the checkout is not what was deployed). With the Pulumi CLI the list is
  cross-checked with the stack output ``alarmNames``; names only in the outputs are
  watched too, and the difference is reported.
- every inference Deployment (label ``app.kubernetes.io/component=inference``),
  through the cluster's Kubernetes API with the caller's credentials (EKS:
  ``DescribeCluster`` + a presigned STS token, as ``aws eks get-token`` makes; or
  ``--kube-server`` with ``$MLSTACK_KUBE_TOKEN``): a pod in ``CrashLoopBackOff``, a
  failed init container (the model loader; its checksum failures are counted from
  the termination message), a failed pod or ``ProgressDeadlineExceeded`` fail the
  bake at once; available replicas below the configured minimum (the KEDA
  ``minReplicaCount``, else ``spec.replicas``) fail it only if still so at the end.

A clean bake is evidence only if the new version served (:func:`evidence_problems`):
each watched Deployment rolled out (generation observed, no old replicas left, at least
one updated replica available, as ``kubectl rollout status`` judges it) and every
load balancer scope a gating alarm watches answered at least the requests that alarm
needs to fire (``RequestCount`` / ``NewFlowCount`` summed over the bake). Otherwise
the verdict is ``inconclusive``: no rollback, and never promotion evidence.

Exit 0 passed or inconclusive, 1 breached, 2 usage or credentials
(:class:`BakeAccessError`).
"""

from __future__ import annotations

import base64
import json
import math
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from mlstack.aws import error_code
from mlstack.errors import MlstackError, UsageError

ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT_TYPE = "kubernetes:keda.sh/v1alpha1:ScaledObject"
SERVICE_TYPE = "kubernetes:core/v1:Service"
CLUSTER_TYPE = "aws:eks/cluster:Cluster"
MODEL_LABEL = "mlstack.io/model"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT_VALUE = "inference"
LOADER_CONTAINER = "model-loader"
CHECKSUM_MARKERS = ("sha256 mismatch", "checksum")
DESCRIBE_BATCH = 100
"""``DescribeAlarms`` accepts at most 100 ``AlarmNames``."""
BAKE_TAG = "bake"
"""Alarm tag giving its role in a bake explicitly."""
ROLES = ("gate", "observe")
GATING_SEVERITIES = ("critical",)
"""Severities that gate when an alarm has no ``bake`` tag (``warning``/``info`` observe)."""
REQUEST_METRICS = {"AWS/ApplicationELB": "RequestCount", "AWS/NetworkELB": "NewFlowCount"}
"""The traffic metric of each load balancer namespace: what proves a scope was used."""
MIN_REQUESTS = re.compile(r"requests\s*>=\s*(\d+)")
"""The per-period request minimum of a ratio alarm's metric math (cloudwatch.py)."""
Verdict = Literal["passed", "failed", "inconclusive"]


class BakeAccessError(UsageError):
    """Credentials, region or endpoint do not let the bake see what it must watch (exit 2)."""


class BakeBreachedError(MlstackError):
    """The bake failed (exit 1); the message names what breached."""

    exit_code = 1


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class WatchedAlarm:
    name: str
    model: str | None = None
    severity: str | None = None
    gate: bool = True
    """Whether the alarm in ALARM fails the bake (else it is reported only)."""
    min_requests: int = 1
    """Requests its scope must answer during the bake for a clean state to be evidence:
    the alarm's ``datapointsToAlarm`` times its per-period minimum (1 without one)."""


@dataclass(frozen=True)
class WatchedDeployment:
    namespace: str
    name: str
    model: str | None
    min_available: int
    selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BakeTargets:
    stack: str
    region: str
    cluster_name: str | None
    alarms: tuple[WatchedAlarm, ...]
    deployments: tuple[WatchedDeployment, ...]
    notes: tuple[str, ...] = ()


def _meta(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = inputs.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def alarm_gates(name: str, tags: Mapping[str, Any]) -> bool:
    """The bake role of an alarm from its tags (module docstring); a bad tag is an error."""
    role = tags.get(BAKE_TAG)
    if role is None:
        severity = tags.get("severity")
        return severity is None or str(severity) in GATING_SEVERITIES
    if role not in ROLES:
        raise UsageError(
            f"plan: alarm {name}: tags.{BAKE_TAG} = {role!r}; allowed: {', '.join(ROLES)}"
        )
    return role == "gate"


def _min_requests(inputs: Mapping[str, Any]) -> int:
    per_period = 1
    for query in inputs.get("metricQueries") or []:
        found = MIN_REQUESTS.search(str((query or {}).get("expression") or ""))
        if found:
            per_period = max(per_period, int(found.group(1)))
    datapoints = inputs.get("datapointsToAlarm") or inputs.get("evaluationPeriods") or 1
    return per_period * int(datapoints)


def targets_from_plan(plan: Mapping[str, Any]) -> BakeTargets:
    """What to watch, from a plan JSON document (``mlstack plan`` / the synth graph)."""
    resources = [r for r in plan.get("resources", []) if isinstance(r, Mapping)]
    service_model: dict[str, str] = {}
    minimum: dict[tuple[str, str], int] = {}
    cluster_name = None
    for r in resources:
        inputs = r.get("inputs") or {}
        if r["type"] == SERVICE_TYPE:
            labels = _meta(inputs).get("labels") or {}
            if MODEL_LABEL in labels:
                service_model[str(_meta(inputs).get("name"))] = str(labels[MODEL_LABEL])
        elif r["type"] == SCALED_OBJECT_TYPE:
            spec = inputs.get("spec") or {}
            ref = (spec.get("scaleTargetRef") or {}).get("name")
            if ref and spec.get("minReplicaCount") is not None:
                minimum[(str(_meta(inputs).get("namespace")), str(ref))] = int(
                    spec["minReplicaCount"]
                )
        elif r["type"] == CLUSTER_TYPE and isinstance(inputs.get("name"), str):
            cluster_name = inputs["name"]
    alarms = []
    for r in resources:
        if r["type"] != ALARM_TYPE:
            continue
        inputs = r.get("inputs") or {}
        tags = inputs.get("tags") or {}
        service = tags.get("service")
        name = str(inputs.get("name") or r["name"])
        alarms.append(
            WatchedAlarm(
                name=name,
                model=service_model.get(str(service), service) if service else None,
                severity=tags.get("severity"),
                gate=alarm_gates(name, tags),
                min_requests=_min_requests(inputs),
            )
        )
    deployments = []
    for r in resources:
        if r["type"] != DEPLOYMENT_TYPE:
            continue
        inputs = r.get("inputs") or {}
        meta = _meta(inputs)
        labels = meta.get("labels") or {}
        if labels.get(COMPONENT_LABEL) != COMPONENT_VALUE:
            continue
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        spec = inputs.get("spec") or {}
        replicas = spec.get("replicas")
        floor = minimum.get((namespace, name), int(replicas) if replicas is not None else 1)
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        deployments.append(
            WatchedDeployment(
                namespace=namespace,
                name=name,
                model=labels.get(MODEL_LABEL),
                min_available=floor,
                selector={str(k): str(v) for k, v in selector.items()},
            )
        )
    return BakeTargets(
        stack=str(plan.get("stack", "")),
        region=str(plan.get("region", "")),
        cluster_name=cluster_name,
        alarms=tuple(sorted(alarms, key=lambda a: a.name)),
        deployments=tuple(sorted(deployments, key=lambda d: (d.namespace, d.name))),
    )


def cross_check(targets: BakeTargets, output_names: Iterable[str] | None) -> BakeTargets:
    """Union with the stack output ``alarmNames``; say what differs."""
    if output_names is None:
        return targets
    planned = {a.name for a in targets.alarms}
    deployed = set(output_names)
    notes = list(targets.notes)
    extra = sorted(deployed - planned)
    missing = sorted(planned - deployed)
    if extra:
        notes.append(
            f"alarms in the stack outputs but not in this checkout's plan (watched too): {extra}"
        )
    if missing:
        notes.append(f"alarms in this checkout's plan but not in the stack outputs: {missing}")
    if not extra and not missing:
        notes.append("alarm list matches the stack output alarmNames")
    alarms = targets.alarms + tuple(WatchedAlarm(name) for name in extra)
    return BakeTargets(
        targets.stack,
        targets.region,
        targets.cluster_name,
        tuple(sorted(alarms, key=lambda a: a.name)),
        targets.deployments,
        tuple(notes),
    )


# --------------------------------------------------------------------------- sources


Scope = tuple[str, tuple[tuple[str, str], ...]]
"""(namespace, sorted dimensions) of the metric an alarm watches."""


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    reason: str
    transitioned: str | None = None
    """When ``state`` last changed (``StateTransitionedTimestamp``, else
    ``StateUpdatedTimestamp``), ISO 8601."""
    datapoints: tuple[float, ...] = ()
    """``StateReasonData.recentDatapoints``: the values the last evaluation judged."""
    threshold: float | None = None
    comparison: str | None = None
    scope: Scope | None = None
    """The load balancer metric scope the alarm watches (None: not a load balancer's)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "reason": self.reason,
            "transitioned": self.transitioned,
            "datapoints": list(self.datapoints),
            "threshold": self.threshold,
            "comparison": self.comparison,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlarmState:
        return cls(
            name=str(data["name"]),
            state=str(data["state"]),
            reason=str(data.get("reason", "")),
            transitioned=data.get("transitioned"),
            datapoints=tuple(float(v) for v in data.get("datapoints") or ()),
            threshold=None if data.get("threshold") is None else float(data["threshold"]),
            comparison=data.get("comparison"),
        )


def _stamp(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value) if value else None


def _scope(alarm: Mapping[str, Any]) -> Scope | None:
    """Namespace and dimensions of a load balancer alarm (metric math: its first metric)."""
    namespace, dimensions = alarm.get("Namespace"), alarm.get("Dimensions")
    for query in alarm.get("Metrics") or []:
        metric = (query.get("MetricStat") or {}).get("Metric") or {}
        if metric.get("Namespace"):
            namespace, dimensions = metric["Namespace"], metric.get("Dimensions")
            break
    if namespace not in REQUEST_METRICS or not dimensions:
        return None
    return str(namespace), tuple(sorted((str(d["Name"]), str(d["Value"])) for d in dimensions))


def _datapoints(reason_data: str | None) -> tuple[float, ...]:
    try:
        data = json.loads(reason_data or "{}")
    except json.JSONDecodeError:
        return ()
    values = data.get("recentDatapoints") if isinstance(data, Mapping) else None
    return tuple(float(v) for v in values or () if isinstance(v, int | float))


def state_of(alarm: Mapping[str, Any]) -> AlarmState:
    """An :class:`AlarmState` from one ``DescribeAlarms`` ``MetricAlarms`` item."""
    return AlarmState(
        alarm["AlarmName"],
        alarm["StateValue"],
        alarm.get("StateReason", ""),
        transitioned=_stamp(
            alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
        ),
        datapoints=_datapoints(alarm.get("StateReasonData")),
        threshold=alarm.get("Threshold"),
        comparison=alarm.get("ComparisonOperator"),
        scope=_scope(alarm),
    )


class AlarmSource(Protocol):
    calls: int

    def states(self, names: Sequence[str]) -> dict[str, AlarmState]: ...


class CloudWatchAlarms:
    """``DescribeAlarms`` by name, batched; counts API calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def states(self, names: Sequence[str]) -> dict[str, AlarmState]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        out: dict[str, AlarmState] = {}
        for start in range(0, len(names), DESCRIBE_BATCH):
            batch = list(names[start : start + DESCRIBE_BATCH])
            try:
                self.calls += 1
                answer = self.client.describe_alarms(AlarmNames=batch, AlarmTypes=["MetricAlarm"])
            except NoCredentialsError as exc:
                raise BakeAccessError(f"no AWS credentials for CloudWatch: {exc}") from exc
            except ClientError as exc:
                code = error_code(exc)
                raise BakeAccessError(f"CloudWatch DescribeAlarms failed ({code}): {exc}") from exc
            except BotoCoreError as exc:
                raise BakeAccessError(f"CloudWatch is unreachable: {exc}") from exc
            for alarm in answer.get("MetricAlarms", []):
                out[alarm["AlarmName"]] = state_of(alarm)
        return out


class RequestSource(Protocol):
    calls: int

    def requests(self, scope: Scope, start: datetime, end: datetime) -> float: ...


class CloudWatchRequests:
    """The traffic a load balancer scope answered: ``GetMetricStatistics`` Sum of
    ``RequestCount`` (ALB) or ``NewFlowCount`` (NLB), one-minute periods."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def requests(self, scope: Scope, start: datetime, end: datetime) -> float:
        from botocore.exceptions import BotoCoreError, ClientError

        namespace, dimensions = scope
        self.calls += 1
        try:
            answer = self.client.get_metric_statistics(
                Namespace=namespace,
                MetricName=REQUEST_METRICS[namespace],
                Dimensions=[{"Name": k, "Value": v} for k, v in dimensions],
                StartTime=start,
                EndTime=end,
                Period=60,
                Statistics=["Sum"],
            )
        except (BotoCoreError, ClientError) as exc:
            raise BakeAccessError(f"CloudWatch GetMetricStatistics failed: {exc}") from exc
        return float(sum(point.get("Sum", 0.0) for point in answer.get("Datapoints", [])))


class KubeApi:
    """GET-only client of a Kubernetes API server (bearer token; CA from the cluster)."""

    def __init__(
        self, server: str, token: str, ca_data: bytes | None = None, timeout: float = 10
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.calls = 0
        self._context: ssl.SSLContext | None = None
        if self.server.startswith("https://"):
            self._context = ssl.create_default_context(cadata=ca_data.decode() if ca_data else None)

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The JSON object at ``path``; None for 404."""
        url = self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        )
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            if exc.code in (401, 403):
                raise BakeAccessError(
                    f"the Kubernetes API at {self.server} refused {path} (HTTP {exc.code}): "
                    "the caller's credentials have no access to the cluster; use "
                    "--skip-kubernetes to watch the alarms only"
                ) from exc
            raise BakeAccessError(f"Kubernetes API {url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise BakeAccessError(
                f"the Kubernetes API at {self.server} is unreachable: {exc}"
            ) from exc


def eks_token(session: Any, cluster_name: str, region: str) -> str:
    """The bearer token ``aws eks get-token`` prints: a presigned STS GetCallerIdentity."""
    from botocore.signers import RequestSigner

    from mlstack.aws import make_client

    sts = make_client(session, "sts", region=region)
    signer = RequestSigner(
        sts.meta.service_model.service_id,
        region,
        "sts",
        "v4",
        session.get_credentials(),
        session.events,
    )
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {"x-k8s-aws-id": cluster_name},
            "context": {},
        },
        region_name=region,
        expires_in=60,
        operation_name="",
    )
    return "k8s-aws-v1." + base64.urlsafe_b64encode(str(url).encode()).decode().rstrip("=")


# --------------------------------------------------------------------------- polling


@dataclass(frozen=True)
class Breach:
    kind: str  # "alarm" | "rollout"
    subject: str
    model: str | None
    reason: str

    def render(self) -> str:
        model = f" (model {self.model})" if self.model else ""
        return f"{self.kind} {self.subject}{model}: {self.reason}"


@dataclass(frozen=True)
class RolloutState:
    deployment: WatchedDeployment
    available: int
    ready: bool
    checksum_failures: int = 0
    served: str | None = None
    """Why the new version has not served (None: it rolled out with a pod available)."""


@dataclass
class Poll:
    alarms: dict[str, AlarmState]
    rollouts: list[RolloutState]
    breaches: list[Breach]
    pre_existing: list[Breach] = field(default_factory=list)
    """Gating alarms in ALARM already in the baseline, not worse: reported, not blamed."""
    observed: list[Breach] = field(default_factory=list)
    """Alarms that observe (not gate) in ALARM: reported only."""


def _pod_breaches(pod: Mapping[str, Any], dep: WatchedDeployment) -> tuple[list[Breach], int]:
    name = str((pod.get("metadata") or {}).get("name"))
    status = pod.get("status") or {}
    out: list[Breach] = []
    checksum = 0
    if status.get("phase") == "Failed":
        out.append(Breach("rollout", f"pod {name}", dep.model, "pod failed"))
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            out.append(
                Breach(
                    "rollout",
                    f"pod {name}",
                    dep.model,
                    f"container {cs.get('name')} in CrashLoopBackOff",
                )
            )
    for ics in status.get("initContainerStatuses") or []:
        states = [(ics.get("state") or {}), (ics.get("lastState") or {})]
        terminated = [s["terminated"] for s in states if s.get("terminated")]
        failed = [t for t in terminated if int(t.get("exitCode", 0)) != 0]
        waiting = (states[0].get("waiting") or {}).get("reason")
        messages = " ".join(str(t.get("message", "")) for t in failed).lower()
        if ics.get("name") == LOADER_CONTAINER and any(m in messages for m in CHECKSUM_MARKERS):
            checksum += 1
        if failed or waiting == "CrashLoopBackOff":
            detail = f"exit {failed[0].get('exitCode')}" if failed else "CrashLoopBackOff"
            if ics.get("name") == LOADER_CONTAINER and checksum:
                detail += ", model checksum failure"
            out.append(
                Breach(
                    "rollout",
                    f"pod {name}",
                    dep.model,
                    f"init container {ics.get('name')} failed ({detail})",
                )
            )
    return out, checksum


def check_rollout(kube: KubeApi, dep: WatchedDeployment) -> tuple[RolloutState, list[Breach]]:
    base = f"/apis/apps/v1/namespaces/{dep.namespace}/deployments/{dep.name}"
    obj = kube.get(base)
    if obj is None:
        breach = Breach("rollout", f"deployment {dep.namespace}/{dep.name}", dep.model, "not found")
        return RolloutState(dep, 0, False), [breach]
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    breaches: list[Breach] = []
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "Progressing"
            and condition.get("status") == "False"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            breaches.append(
                Breach(
                    "rollout",
                    f"deployment {dep.namespace}/{dep.name}",
                    dep.model,
                    f"ProgressDeadlineExceeded: {condition.get('message', '')}".strip(),
                )
            )
    available = int(status.get("availableReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    selector = ",".join(f"{k}={v}" for k, v in sorted(dep.selector.items()))
    pods = kube.get(
        f"/api/v1/namespaces/{dep.namespace}/pods", {"labelSelector": selector} if selector else {}
    )
    checksum = 0
    for pod in (pods or {}).get("items") or []:
        found, count = _pod_breaches(pod, dep)
        breaches += found
        checksum += count
    ready = observed and available >= dep.min_available
    return RolloutState(dep, available, ready, checksum, new_version_problem(obj)), breaches


def new_version_problem(deployment: Mapping[str, Any]) -> str | None:
    """Why a Deployment's new version has not served, None when it has: the checks of
    ``kubectl rollout status`` (generation observed, no old replicas left, updated
    replicas available), and at least one updated replica available (zero replicas is a
    finished rollout that served nothing)."""
    status = deployment.get("status") or {}
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return "the controller has not observed the update (observedGeneration < generation)"
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated == 0:
        return "no replica of the new version (updatedReplicas 0)"
    if total > updated:
        return f"{total - updated} old replica(s) still running"
    if available < 1:
        return f"none of the {updated} updated replica(s) is available"
    return None


@dataclass(frozen=True)
class Baseline:
    """The alarms' states before the update (``mlstack bake --baseline``)."""

    stack: str
    taken_at: datetime
    states: Mapping[str, AlarmState]

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "takenAt": self.taken_at.astimezone(UTC).isoformat(),
            "alarms": [s.to_json() for s in sorted(self.states.values(), key=lambda s: s.name)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> Baseline:
        try:
            return cls(
                stack=str(data["stack"]),
                taken_at=datetime.fromisoformat(str(data["takenAt"])),
                states={a["name"]: AlarmState.from_json(a) for a in data["alarms"]},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"{where}: not a bake baseline ({exc}); write one with "
                "`mlstack bake <stack> --baseline-out FILE` before the update"
            ) from exc


def take_baseline(
    targets: BakeTargets, alarms: AlarmSource, now: datetime | None = None
) -> Baseline:
    """The states of the plan's alarms now; alarms that do not exist yet are new."""
    names = [a.name for a in targets.alarms]
    states = alarms.states(names) if names else {}
    return Baseline(targets.stack, now or datetime.now(UTC), states)


def _excess(state: AlarmState) -> float | None:
    """How far the worst recent datapoint is past the threshold (None: unknown)."""
    if not state.datapoints or state.threshold is None or not state.comparison:
        return None
    if state.comparison.startswith("Greater"):
        return max(state.datapoints) - state.threshold
    if state.comparison.startswith("Less"):
        return state.threshold - min(state.datapoints)
    return None


def got_worse(before: AlarmState, now: AlarmState) -> str | None:
    """Why an alarm in ALARM before the update counts as a new breach (None: it does not).

    Worse is either (1) it left ALARM and entered it again since the baseline (a later
    state transition), or (2) its worst recent datapoint is now more than twice as far
    past the threshold as in the baseline."""
    if now.transitioned and before.transitioned and now.transitioned > before.transitioned:
        return f"left ALARM and re-entered it at {now.transitioned}"
    was, is_now = _excess(before), _excess(now)
    if was is not None and is_now is not None and is_now > 2 * max(was, 0.0):
        return (
            f"now {is_now:g} past the threshold {now.threshold:g}, more than twice the "
            f"{was:g} before the update"
        )
    return None


def poll_once(
    targets: BakeTargets,
    alarms: AlarmSource,
    kube: KubeApi | None,
    baseline: Baseline | None = None,
) -> Poll:
    names = [a.name for a in targets.alarms]
    states = alarms.states(names) if names else {}
    missing = [n for n in names if n not in states]
    if missing:
        raise BakeAccessError(
            f"{len(missing)} alarm(s) of stack {targets.stack} do not exist in region "
            f"{targets.region}: {missing[:5]} (wrong account or region, or this checkout is "
            "not what was deployed)"
        )
    by_name = {a.name: a for a in targets.alarms}
    breaches: list[Breach] = []
    pre_existing: list[Breach] = []
    observed: list[Breach] = []
    for s in states.values():
        if s.state != "ALARM":
            continue
        watched = by_name[s.name]
        breach = Breach("alarm", s.name, watched.model, s.reason or "in ALARM")
        before = baseline.states.get(s.name) if baseline else None
        if not watched.gate:
            observed.append(breach)
        elif before is not None and before.state == "ALARM":
            worse = got_worse(before, s)
            if worse:
                breaches.append(
                    Breach("alarm", s.name, watched.model, f"{breach.reason} ({worse})")
                )
            else:
                pre_existing.append(breach)
        else:
            breaches.append(breach)
    rollouts: list[RolloutState] = []
    if kube is not None:
        for dep in targets.deployments:
            state, found = check_rollout(kube, dep)
            rollouts.append(state)
            breaches += found
    return Poll(states, rollouts, breaches, pre_existing, observed)


def evidence_problems(
    targets: BakeTargets,
    poll: Poll,
    requests: RequestSource | None,
    start: datetime,
    end: datetime,
) -> list[str]:
    """Why a clean bake is not evidence (empty: it is): see the module docstring."""
    problems = [
        f"deployment {r.deployment.namespace}/{r.deployment.name}: {r.served}"
        for r in poll.rollouts
        if r.served
    ]
    if requests is None:
        return problems
    need: dict[Scope, WatchedAlarm] = {}
    for alarm in targets.alarms:
        state = poll.alarms.get(alarm.name)
        if not alarm.gate or state is None or state.scope is None:
            continue
        if state.scope not in need or alarm.min_requests > need[state.scope].min_requests:
            need[state.scope] = alarm
    for scope, alarm in sorted(need.items(), key=lambda item: item[1].name):
        served = requests.requests(scope, start, end)
        if served < alarm.min_requests:
            where = ",".join(f"{k}={v}" for k, v in scope[1])
            problems.append(
                f"{REQUEST_METRICS[scope[0]]} {served:g} of {where} during the bake; alarm "
                f"{alarm.name} needs at least {alarm.min_requests} to judge it"
            )
    return problems


# --------------------------------------------------------------------------- the bake


@dataclass
class BakeReport:
    stack: str
    minutes: float
    verdict: Verdict
    breaches: list[Breach]
    insufficient_data: list[str]
    polls: int
    api_calls: int
    elapsed_seconds: float
    alarms_watched: int
    deployments_watched: int
    kubernetes_skipped: bool
    notes: list[str] = field(default_factory=list)
    checksum_failures: int = 0
    pre_existing: list[Breach] = field(default_factory=list)
    observed: list[Breach] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    """Why a clean bake is no evidence (verdict ``inconclusive``)."""
    gating: int = 0

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def failed(self) -> bool:
        return self.verdict == "failed"

    def summary(self) -> str:
        if self.failed:
            return f"bake of stack {self.stack} FAILED: " + "; ".join(
                b.render() for b in self.breaches
            )
        extra = (
            f"; still INSUFFICIENT_DATA: {', '.join(self.insufficient_data)}"
            if self.insufficient_data
            else ""
        )
        if self.pre_existing:
            extra += "; in ALARM before the update (not blamed): " + ", ".join(
                b.subject for b in self.pre_existing
            )
        if self.observed:
            extra += "; observed (not gating) in ALARM: " + ", ".join(
                b.subject for b in self.observed
            )
        scope = (
            f"({self.alarms_watched} alarms, {self.gating} gating, "
            f"{self.deployments_watched} deployments"
            f"{', Kubernetes skipped' if self.kubernetes_skipped else ''})"
        )
        if self.verdict == "inconclusive":
            return (
                f"bake of stack {self.stack} INCONCLUSIVE after "
                f"{self.elapsed_seconds / 60:.1f} min {scope}: the new version did not serve "
                "(no rollback, no promotion evidence): " + "; ".join(self.inconclusive) + extra
            )
        return (
            f"bake of stack {self.stack} passed after {self.elapsed_seconds / 60:.1f} min "
            f"{scope}{extra}"
        )

    def to_json(self) -> dict[str, Any]:
        def rows(breaches: Sequence[Breach]) -> list[dict[str, Any]]:
            return [
                {"kind": b.kind, "subject": b.subject, "model": b.model, "reason": b.reason}
                for b in breaches
            ]

        return {
            "stack": self.stack,
            "verdict": self.verdict,
            "minutes": self.minutes,
            "breaches": rows(self.breaches),
            "preExisting": rows(self.pre_existing),
            "observed": rows(self.observed),
            "inconclusive": self.inconclusive,
            "insufficientData": self.insufficient_data,
            "polls": self.polls,
            "apiCalls": self.api_calls,
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "alarmsWatched": self.alarms_watched,
            "gatingAlarms": self.gating,
            "deploymentsWatched": self.deployments_watched,
            "kubernetesSkipped": self.kubernetes_skipped,
            "checksumFailures": self.checksum_failures,
            "notes": self.notes,
        }


Progress = Callable[[float, Poll], None]


def run_bake(
    targets: BakeTargets,
    alarms: AlarmSource,
    kube: KubeApi | None,
    *,
    minutes: float,
    poll_seconds: float,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    baseline: Baseline | None = None,
    requests: RequestSource | None = None,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    kind: str = "deploy",
) -> BakeReport:
    """Poll every ``poll_seconds`` until ``minutes`` have passed or something breaches;
    a clean end is ``passed`` only with evidence that the new version served
    (:func:`evidence_problems`, traffic read from ``requests``), else ``inconclusive``.

    A gating alarm already in ALARM before the update (the baseline) is not blamed while
    the bake runs; if it is still in ALARM at the end, a ``deploy`` bake is
    ``inconclusive`` (nothing shows the new version is good: never last good, never
    promotion evidence) and a ``rollback`` bake ``failed`` (the rollback did not clear
    what it was run for: it pages)."""
    if minutes <= 0 or poll_seconds <= 0:
        raise UsageError(f"--minutes ({minutes}) and --poll-seconds ({poll_seconds}) must be > 0")
    start = clock()
    began = wall()
    deadline = start + minutes * 60
    polls = 0
    poll: Poll | None = None
    while True:
        poll = poll_once(targets, alarms, kube, baseline)
        polls += 1
        left = max(0.0, deadline - clock())
        if progress is not None:
            progress(left, poll)
        if poll.breaches or left <= 0:
            break
        sleep(min(poll_seconds, left))
    breaches = list(poll.breaches)
    if not breaches:
        breaches = [
            Breach(
                "rollout",
                f"deployment {r.deployment.namespace}/{r.deployment.name}",
                r.deployment.model,
                f"{r.available} available replica(s) at the end of the bake, "
                f"the configured minimum is {r.deployment.min_available}",
            )
            for r in poll.rollouts
            if not r.ready
        ]
    still_firing = list(poll.pre_existing) if not breaches else []
    if still_firing and kind == "rollback":
        breaches = [
            Breach(b.kind, b.subject, b.model, f"{b.reason} (in ALARM before the rollback, still)")
            for b in still_firing
        ]
    unproven = (
        []
        if breaches
        else [
            f"{b.subject}: in ALARM before the update and still at the end of the bake; "
            "nothing shows the new version is good"
            for b in still_firing
        ]
        + evidence_problems(
            targets,
            poll,
            requests,
            began.replace(second=0, microsecond=0),
            wall().replace(second=0, microsecond=0) + timedelta(minutes=1),  # this minute too
        )
    )
    verdict: Verdict = "failed" if breaches else "inconclusive" if unproven else "passed"
    insufficient = sorted(s.name for s in poll.alarms.values() if s.state == "INSUFFICIENT_DATA")
    return BakeReport(
        stack=targets.stack,
        minutes=minutes,
        verdict=verdict,
        breaches=breaches,
        insufficient_data=insufficient,
        polls=polls,
        api_calls=alarms.calls + (kube.calls if kube else 0) + (requests.calls if requests else 0),
        elapsed_seconds=clock() - start,
        alarms_watched=len(targets.alarms),
        deployments_watched=len(targets.deployments) if kube else 0,
        kubernetes_skipped=kube is None,
        notes=list(targets.notes),
        checksum_failures=sum(r.checksum_failures for r in poll.rollouts),
        pre_existing=list(poll.pre_existing),
        observed=list(poll.observed),
        inconclusive=unproven,
        gating=sum(1 for a in targets.alarms if a.gate),
    )


def calls_per_poll(targets: BakeTargets, kubernetes: bool) -> int:
    """API calls one poll makes: ceil(alarms/100) + 2 per Deployment (itself + its pods)."""
    alarm_calls = math.ceil(len(targets.alarms) / DESCRIBE_BATCH)
    return alarm_calls + (2 * len(targets.deployments) if kubernetes else 0)


def render_poll(left: float, poll: Poll, *, tty: bool) -> str:
    counts: dict[str, int] = {}
    for state in poll.alarms.values():
        counts[state.state] = counts.get(state.state, 0) + 1
    alarms = " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
    ready = sum(1 for r in poll.rollouts if r.ready)
    rollouts = f"rollouts ready {ready}/{len(poll.rollouts)}" if poll.rollouts else "no rollouts"
    minutes, seconds = divmod(int(left), 60)
    line = f"bake: {minutes:d}m{seconds:02d}s left; alarms {alarms}; {rollouts}"
    if poll.pre_existing:
        line += f"; in ALARM before the update: {len(poll.pre_existing)}"
    if poll.observed:
        line += f"; observed in ALARM: {len(poll.observed)}"
    if poll.breaches:
        line += f"; BREACHED: {poll.breaches[0].render()}"
    return ("\r\x1b[2K" + line) if tty else line
