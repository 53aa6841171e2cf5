"""``mlstack bake <stack>``: watch a fresh update for M minutes; fail it on the first breach.

What is watched comes from the offline plan of the checked-out commit (no state
needed; the stack names its alarms and Deployments deterministically):

- every ``aws:cloudwatch/metricAlarm:MetricAlarm`` of the plan (its ``name``; the
  model it belongs to from the Service it watches). ``DescribeAlarms`` by name, up
  to 100 per call. Any alarm in ``ALARM`` fails the bake with its name, reason and
  model; alarms still ``INSUFFICIENT_DATA`` at the end are reported, not failed. An
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

Exit 0 clean, 1 breached, 2 usage or credentials (:class:`BakeAccessError`).
"""

from __future__ import annotations

import base64
import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
        alarms.append(
            WatchedAlarm(
                name=str(inputs.get("name") or r["name"]),
                model=service_model.get(str(service), service) if service else None,
                severity=tags.get("severity"),
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


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    reason: str


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
                out[alarm["AlarmName"]] = AlarmState(
                    alarm["AlarmName"], alarm["StateValue"], alarm.get("StateReason", "")
                )
        return out


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


@dataclass
class Poll:
    alarms: dict[str, AlarmState]
    rollouts: list[RolloutState]
    breaches: list[Breach]


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
    return RolloutState(dep, available, ready, checksum), breaches


def poll_once(targets: BakeTargets, alarms: AlarmSource, kube: KubeApi | None) -> Poll:
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
    breaches = [
        Breach("alarm", s.name, by_name[s.name].model, s.reason or "in ALARM")
        for s in states.values()
        if s.state == "ALARM"
    ]
    rollouts: list[RolloutState] = []
    if kube is not None:
        for dep in targets.deployments:
            state, found = check_rollout(kube, dep)
            rollouts.append(state)
            breaches += found
    return Poll(states, rollouts, breaches)


# --------------------------------------------------------------------------- the bake


@dataclass
class BakeReport:
    stack: str
    minutes: float
    verdict: str  # passed | failed
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

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def summary(self) -> str:
        if self.passed:
            extra = (
                f"; still INSUFFICIENT_DATA: {', '.join(self.insufficient_data)}"
                if self.insufficient_data
                else ""
            )
            return (
                f"bake of stack {self.stack} passed after {self.elapsed_seconds / 60:.1f} min "
                f"({self.alarms_watched} alarms, {self.deployments_watched} deployments"
                f"{', Kubernetes skipped' if self.kubernetes_skipped else ''}){extra}"
            )
        return f"bake of stack {self.stack} FAILED: " + "; ".join(b.render() for b in self.breaches)

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "verdict": self.verdict,
            "minutes": self.minutes,
            "breaches": [
                {"kind": b.kind, "subject": b.subject, "model": b.model, "reason": b.reason}
                for b in self.breaches
            ],
            "insufficientData": self.insufficient_data,
            "polls": self.polls,
            "apiCalls": self.api_calls,
            "elapsedSeconds": round(self.elapsed_seconds, 3),
            "alarmsWatched": self.alarms_watched,
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
) -> BakeReport:
    """Poll every ``poll_seconds`` until ``minutes`` have passed or something breaches."""
    if minutes <= 0 or poll_seconds <= 0:
        raise UsageError(f"--minutes ({minutes}) and --poll-seconds ({poll_seconds}) must be > 0")
    start = clock()
    deadline = start + minutes * 60
    polls = 0
    poll: Poll | None = None
    while True:
        poll = poll_once(targets, alarms, kube)
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
    insufficient = sorted(s.name for s in poll.alarms.values() if s.state == "INSUFFICIENT_DATA")
    return BakeReport(
        stack=targets.stack,
        minutes=minutes,
        verdict="failed" if breaches else "passed",
        breaches=breaches,
        insufficient_data=insufficient,
        polls=polls,
        api_calls=alarms.calls + (kube.calls if kube else 0),
        elapsed_seconds=clock() - start,
        alarms_watched=len(targets.alarms),
        deployments_watched=len(targets.deployments) if kube else 0,
        kubernetes_skipped=kube is None,
        notes=list(targets.notes),
        checksum_failures=sum(r.checksum_failures for r in poll.rollouts),
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
    if poll.breaches:
        line += f"; BREACHED: {poll.breaches[0].render()}"
    return ("\r\x1b[2K" + line) if tty else line
