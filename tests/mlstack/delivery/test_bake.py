"""``mlstack bake``: CloudWatch through a real moto server, Kubernetes through a fake API.

The alarms are the real prod plan's (``albAlarms`` switched on), created in moto and
moved with ``set_alarm_state`` while the bake runs (the bake's ``sleep`` is the hook:
a fake clock, so no test waits minutes). The Kubernetes API is a small HTTP server
on 127.0.0.1 answering with the responses in ``kube/responses.json`` (the API
server's JSON shapes, trimmed; written for these tests, not captured from a cluster).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

import mlstack.delivery.bake_stack as bake_stack_module
from mlstack.cli import main
from mlstack.delivery.bake import (
    AlarmState,
    BakeAccessError,
    BakeTargets,
    CloudWatchAlarms,
    CloudWatchRequests,
    KubeApi,
    calls_per_poll,
    cross_check,
    got_worse,
    render_poll,
    run_bake,
    take_baseline,
    targets_from_plan,
)
from mlstack.delivery.serving_spec import serving_specs
from mlstack.delivery.verdicts import FileLedger
from mlstack.errors import UsageError
from mlstack.synth import synth_config
from stacks.config import StackConfig, load_config_file, parse_config
from tests.conftest import raw_stack_config
from tests.mlstack.delivery.conftest import StandInPulumi

RESPONSES = json.loads((Path(__file__).parent / "kube" / "responses.json").read_text())
LLAMA = "llama-3-8b-instruct"
DEPLOYMENTS = "/apis/apps/v1/namespaces/inference/deployments/"
PODS = "/api/v1/namespaces/inference/pods"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def prod_alarms() -> tuple[dict[str, Any], StackConfig]:
    """The real prod plan (its CloudWatch alarms exist from the first deploy)."""
    raw = raw_stack_config("prod")
    cfg = parse_config(raw, "Pulumi.prod.yaml")
    plan = json.loads(json.dumps(synth_config(cfg, "prod").to_json()))
    return plan, cfg


@pytest.fixture
def targets(prod_alarms: tuple[dict[str, Any], StackConfig]) -> BakeTargets:
    return targets_from_plan(prod_alarms[0])


@dataclass
class FakeKube:
    """Routes path -> response name (``responses.json``); records every request."""

    url: str
    routes: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]], str | None]] = field(default_factory=list)

    def serve(self, **routes: str) -> None:
        self.routes.update(routes)

    def ready(self) -> None:
        self.routes.update(
            {
                DEPLOYMENTS + LLAMA: "llama-ready",
                DEPLOYMENTS + "resnet50": "resnet-ready",
                f"{PODS}?mlstack.io/model={LLAMA}": "llama-pods-ready",
                f"{PODS}?mlstack.io/model=resnet50": "resnet-pods-ready",
            }
        )


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    holder: dict[str, FakeKube] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kube = holder["kube"]
            parsed = urlparse(self.path)
            query = parse_qs(parsed.query)
            kube.requests.append((parsed.path, query, self.headers.get("Authorization")))
            key = parsed.path
            selector = query.get("labelSelector", [""])[0]
            model = next(
                (p for p in selector.split(",") if p.startswith("mlstack.io/model=")), None
            )
            if model:
                key = f"{parsed.path}?{model}"
            name = kube.routes.get(key)
            body = RESPONSES.get(name or "", None)
            status = 200
            if body is None:
                status, body = 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
            elif body.get("kind") == "Status":
                status = int(body["code"])
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["kube"] = FakeKube(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["kube"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def cloudwatch(moto_reset: str, aws_env: None, targets: BakeTargets) -> Any:
    """moto CloudWatch with the plan's alarms, all OK."""
    client = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=moto_reset)
    for alarm in targets.alarms:
        client.put_metric_alarm(
            AlarmName=alarm.name,
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        client.set_alarm_state(AlarmName=alarm.name, StateValue="OK", StateReason="test: ok")
    return client


class FakeTime:
    """A clock the bake's ``sleep`` advances; ``at(n, fn)`` runs fn before the n-th sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.hooks: dict[int, Callable[[], None]] = {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps in self.hooks:
            self.hooks[self.sleeps]()
        self.now += seconds


def _bake(targets: BakeTargets, client: Any, kube: KubeApi | None, time: FakeTime, **kw: Any):
    return run_bake(
        targets,
        CloudWatchAlarms(client),
        kube,
        minutes=kw.pop("minutes", 2),
        poll_seconds=kw.pop("poll_seconds", 30),
        clock=time.clock,
        sleep=time.sleep,
        **kw,
    )


# --------------------------------------------------------------------------- targets


def test_targets_come_from_the_plan_with_models_and_configured_minimums(
    targets: BakeTargets,
) -> None:
    assert targets.cluster_name == "mlstack-prod"
    assert targets.region == "us-east-1"
    names = [a.name for a in targets.alarms]
    assert names == sorted(names)
    for role in ("healthy-below-min", "p99-latency", "target-5xx", "unhealthy-hosts"):
        assert f"mlstack-prod-{LLAMA}-{role}" in names  # the ALB model's target-group alarms
    models = tuple(m.name for m in load_config_file("prod").models)
    # An NLB model's alarms carry its port (resnet50-grpc): each belongs to a model.
    assert all(a.model.startswith(models) for a in targets.alarms if a.model)
    assert LLAMA in {a.model for a in targets.alarms}
    assert [(d.name, d.min_available) for d in targets.deployments] == [
        (LLAMA, 2),
        ("resnet50", 2),
    ]
    assert targets.deployments[0].selector == {
        "mlstack.io/model": LLAMA,
        "mlstack.io/track": "stable",
    }


def test_dev_plan_alarms_are_watched_from_the_first_deploy(dev_graph: Any) -> None:
    dev = targets_from_plan(json.loads(json.dumps(dev_graph.to_json())))
    alarms = dev_graph.by_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarms and len(dev.alarms) == len(alarms)
    # Dev scales to zero outside its wake window: the minimum is KEDA's 0.
    assert [(d.name, d.min_available) for d in dev.deployments] == [(LLAMA, 0), ("resnet50", 0)]


def test_outputs_cross_check_watches_extra_alarms_and_names_the_difference(
    targets: BakeTargets,
) -> None:
    names = [a.name for a in targets.alarms]
    checked = cross_check(targets, [*names[1:], "mlstack-prod-old-alarm"])
    assert "mlstack-prod-old-alarm" in {a.name for a in checked.alarms}
    assert any("not in this checkout's plan (watched too)" in n for n in checked.notes)
    assert any(names[0] in n and "not in the stack outputs" in n for n in checked.notes)
    same = cross_check(targets, names)
    assert same.notes == ("alarm list matches the stack output alarmNames",)


# --------------------------------------------------------------------------- alarms


def test_clean_bake_passes_and_reports_insufficient_data_without_failing(
    targets: BakeTargets, cloudwatch: Any, fake_kube: FakeKube
) -> None:
    fake_kube.ready()
    cloudwatch.set_alarm_state(
        AlarmName=targets.alarms[1].name, StateValue="INSUFFICIENT_DATA", StateReason="no data"
    )
    time = FakeTime()
    report = _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), time)
    assert report.passed, report.summary()
    assert report.insufficient_data == [targets.alarms[1].name]
    assert report.polls == 5  # t = 0, 30, 60, 90, 120 s
    assert report.api_calls == 5 * calls_per_poll(targets, kubernetes=True)
    # The caller's token went to the API server.
    assert {auth for _, _, auth in fake_kube.requests} == {"Bearer tok"}


def test_alarm_set_to_alarm_mid_bake_fails_at_once_with_name_reason_and_model(
    targets: BakeTargets, cloudwatch: Any, fake_kube: FakeKube
) -> None:
    fake_kube.ready()
    breached = targets.alarms[2].name
    time = FakeTime()
    time.hooks[2] = lambda: cloudwatch.set_alarm_state(
        AlarmName=breached, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint"
    )
    report = _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), time, minutes=20)
    assert not report.passed
    assert report.polls == 3  # stopped at the first poll after the change, not after 20 min
    [breach] = report.breaches
    assert (breach.kind, breach.subject, breach.model) == ("alarm", breached, LLAMA)
    assert breach.reason == "Threshold Crossed: 1 datapoint"
    assert breached in report.summary()


def test_alarm_of_the_plan_missing_in_the_account_is_a_usage_error(
    targets: BakeTargets, cloudwatch: Any
) -> None:
    cloudwatch.delete_alarms(AlarmNames=[targets.alarms[0].name])
    with pytest.raises(BakeAccessError, match="do not exist in region us-east-1") as caught:
        _bake(targets, cloudwatch, None, FakeTime())
    assert caught.value.exit_code == 2


def test_many_alarms_are_described_100_per_call(cloudwatch: Any, targets: BakeTargets) -> None:
    names = [a.name for a in targets.alarms]
    source = CloudWatchAlarms(cloudwatch)
    states = source.states(names * 60)
    assert set(states) == set(names)
    assert source.calls == -(-len(names * 60) // 100)  # 100 names per DescribeAlarms call


# --------------------------------------------------------------------------- rollouts


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        (
            {f"{PODS}?mlstack.io/model={LLAMA}": "llama-pods-crashloop"},
            "container server in CrashLoopBackOff",
        ),
        (
            {f"{PODS}?mlstack.io/model={LLAMA}": "llama-pods-checksum"},
            "init container model-loader failed (exit 1, model checksum failure)",
        ),
        ({DEPLOYMENTS + LLAMA: "llama-deadline"}, "ProgressDeadlineExceeded"),
        ({DEPLOYMENTS + LLAMA: "missing"}, "not found"),
    ],
)
def test_broken_rollout_fails_the_bake_at_once(
    *,
    targets: BakeTargets,
    cloudwatch: Any,
    fake_kube: FakeKube,
    routes: dict[str, str],
    expected: str,
) -> None:
    fake_kube.ready()
    fake_kube.routes.update(routes)
    report = _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), FakeTime(), minutes=20)
    assert not report.passed
    assert report.polls == 1
    assert any(expected in b.reason and b.model == LLAMA for b in report.breaches), report.breaches
    if "checksum" in expected:
        assert report.checksum_failures == 1


def test_too_few_available_replicas_fail_only_if_still_short_at_the_end(
    targets: BakeTargets, cloudwatch: Any, fake_kube: FakeKube
) -> None:
    fake_kube.ready()
    fake_kube.serve(**{DEPLOYMENTS + LLAMA: "llama-short"})
    time = FakeTime()
    time.hooks[2] = lambda: fake_kube.serve(**{DEPLOYMENTS + LLAMA: "llama-ready"})
    recovered = _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), time)
    assert recovered.passed, recovered.summary()

    fake_kube.serve(**{DEPLOYMENTS + LLAMA: "llama-short"})
    short = _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), FakeTime())
    assert not short.passed
    assert short.polls == 5
    [breach] = short.breaches
    assert "1 available replica(s) at the end of the bake, the configured minimum is 2" in (
        breach.reason
    )


def test_forbidden_cluster_access_is_exit_2_naming_skip_kubernetes(
    targets: BakeTargets, cloudwatch: Any, fake_kube: FakeKube
) -> None:
    fake_kube.serve(**{DEPLOYMENTS + LLAMA: "forbidden"})
    with pytest.raises(BakeAccessError, match=r"HTTP 403.*--skip-kubernetes") as caught:
        _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), FakeTime())
    assert caught.value.exit_code == 2


def test_progress_rewrites_one_line_on_a_tty_and_prints_plain_lines_otherwise(
    targets: BakeTargets, cloudwatch: Any, fake_kube: FakeKube
) -> None:
    fake_kube.ready()
    lines: list[str] = []
    _bake(
        targets,
        cloudwatch,
        KubeApi(fake_kube.url, "tok"),
        FakeTime(),
        minutes=1,
        progress=lambda left, poll: lines.append(render_poll(left, poll, tty=False)),
    )
    ok = len(targets.alarms)
    assert lines == [
        f"bake: 1m00s left; alarms OK={ok}; rollouts ready 2/2",
        f"bake: 0m30s left; alarms OK={ok}; rollouts ready 2/2",
        f"bake: 0m00s left; alarms OK={ok}; rollouts ready 2/2",
    ]
    tty: list[str] = []
    _bake(
        targets,
        cloudwatch,
        None,
        FakeTime(),
        minutes=0.5,
        progress=lambda left, poll: tty.append(render_poll(left, poll, tty=True)),
    )
    assert all(line.startswith("\r\x1b[2K") and "\n" not in line for line in tty)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def bake_cli(
    *,
    monkeypatch: pytest.MonkeyPatch,
    prod_alarms: tuple[dict[str, Any], StackConfig],
    cloudwatch: Any,
    moto_reset: str,
    no_pulumi: None,
    fake_kube: FakeKube,
) -> Callable[..., int]:
    """``mlstack bake prod`` against moto + the fake API (plan: the prod one above)."""
    monkeypatch.setattr(
        bake_stack_module, "plan_for", lambda stack, root, commit=None: (prod_alarms[0], 10.0)
    )
    monkeypatch.setenv("MLSTACK_KUBE_TOKEN", "tok")
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    monkeypatch.delenv("MLSTACK_BAKE_LEDGER", raising=False)

    def run(*args: str) -> int:
        base = ["bake", "prod", "--endpoint-url", moto_reset, "--poll-seconds", "0.2"]
        return main([*base, "--minutes", "0.01", "--kube-server", fake_kube.url, *args])

    return run


def test_cli_exit_0_when_clean_with_plain_progress_lines(
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    targets: BakeTargets,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_kube.ready()
    assert bake_cli() == 0
    out = capsys.readouterr().out
    ok = len(targets.alarms)
    gating = sum(1 for a in targets.alarms if a.gate)
    assert f"baking stack prod for 0.01 min: {ok} alarm(s) ({gating} gating), 2 deployment(s)" in (
        out
    )
    assert "\r" not in out
    assert f"bake: 0m00s left; alarms OK={ok}; rollouts ready 2/2" in out
    assert "no Pulumi CLI to cross-check" in out
    assert "bake of stack prod passed" in out


def test_cli_exit_1_names_what_breached(
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    cloudwatch: Any,
    targets: BakeTargets,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_kube.ready()
    name = targets.alarms[0].name
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed")
    assert bake_cli("--json") == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["verdict"] == "failed"
    assert report["breaches"] == [
        {"kind": "alarm", "subject": name, "model": LLAMA, "reason": "Threshold Crossed"}
    ]
    assert f"error: bake of stack prod FAILED: alarm {name} (model {LLAMA})" in captured.err


def test_cli_skip_kubernetes_never_calls_the_cluster(
    bake_cli: Callable[..., int], fake_kube: FakeKube
) -> None:
    assert bake_cli("--skip-kubernetes") == 0  # no routes: any call would fail the bake
    assert fake_kube.requests == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--minutes", "0"], "must be > 0"),
        (["--kind", "canary"], "--kind 'canary': allowed are deploy, rollback"),
        (["--record"], "--record needs a ledger"),
    ],
)
def test_cli_usage_errors_exit_2(
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    fake_kube.ready()
    assert bake_cli(*args) == 2
    assert message in capsys.readouterr().err


def test_cli_without_credentials_is_exit_2(
    bake_cli: Callable[..., int],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert bake_cli() == 2
    assert "no AWS credentials found" in capsys.readouterr().err


def test_cli_records_the_verdict_with_the_update_and_each_models_serving_spec(
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    prod_alarms: tuple[dict[str, Any], StackConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_kube.ready()
    ledger = tmp_path / "ledger"
    assert bake_cli("--record", "--version", "7", "--ledger", f"file://{ledger}") == 0
    [record] = FileLedger(ledger).records("prod")
    assert (record.stack, record.version, record.verdict, record.kind) == (
        "prod",
        7,
        "passed",
        "deploy",
    )
    assert record.commit is not None and len(record.commit) == 40  # HEAD of this checkout
    assert "verdict recorded:" in capsys.readouterr().out
    # The evidence `mlstack promote` reads: each model's spec hash (and fields) as planned.
    plan, cfg = prod_alarms
    expected = serving_specs(plan, cfg.models)
    assert set(record.serving_specs) == {m.name for m in cfg.models}
    for name, spec in expected.items():
        assert record.serving_specs[name]["digest"] == spec.digest
        assert record.serving_specs[name]["spec"]["containers.server.gpus"] == 1


def test_cli_pages_the_alert_topic_when_a_bake_fails(
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    moto_reset: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_kube.ready()
    fake_kube.serve(**{f"{PODS}?mlstack.io/model={LLAMA}": "llama-pods-crashloop"})
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_reset)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_reset)
    topic = sns.create_topic(Name="mlstack-prod-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="pager")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    assert bake_cli("--kind", "rollback", "--page-on-failure") == 1
    assert f"paged: {topic}" in capsys.readouterr().out
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "mlstack: rollback bake of stack prod failed"
    assert "CrashLoopBackOff" in body["Message"]
    assert "Automatic rollback stopped" in body["Message"]


def test_page_command_publishes_to_the_plan_topic_without_the_cli(
    bake_cli: Callable[..., int], moto_reset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_reset)
    topic = sns.create_topic(Name="mlstack-prod-alerts")["TopicArn"]
    args = ["page", "prod", "--subject", "s", "--message", "m", "--endpoint-url", moto_reset]
    assert main(args) == 0
    assert f"paged: {topic}" in capsys.readouterr().out


def test_the_loader_reports_its_failure_in_the_termination_message(dev_graph: Any) -> None:
    """What the bake's checksum count reads: the init container's termination message."""
    deployment = next(
        r
        for r in dev_graph.resources
        if r.type == "kubernetes:apps/v1:Deployment" and r.inputs["metadata"]["name"] == LLAMA
    )
    init = deployment.inputs["spec"]["template"]["spec"]["initContainers"]
    [loader] = [c for c in init if c["name"] == "model-loader"]
    assert loader["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_with_the_cli_the_alarm_list_is_cross_checked_with_the_stack_outputs(
    *,
    monkeypatch: pytest.MonkeyPatch,
    prod_alarms: tuple[dict[str, Any], StackConfig],
    cloudwatch: Any,
    moto_reset: str,
    standin_pulumi: StandInPulumi,
    fake_kube: FakeKube,
    targets: BakeTargets,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The STAND-IN `pulumi` (conftest.py, not Pulumi) prints the outputs."""
    monkeypatch.setattr(
        bake_stack_module, "plan_for", lambda stack, root, commit=None: (prod_alarms[0], 10.0)
    )
    names = [a.name for a in targets.alarms]
    extra = "mlstack-prod-retired-model-target-5xx"
    cloudwatch.put_metric_alarm(
        AlarmName=extra,
        MetricName="m",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=extra, StateValue="ALARM", StateReason="still firing")
    standin_pulumi.set_outputs("prod", {"alarmNames": [*names, extra]})
    args = ["bake", "prod", "--endpoint-url", moto_reset, "--minutes", "0.01"]
    assert main([*args, "--skip-kubernetes", "--poll-seconds", "0.2"]) == 1
    captured = capsys.readouterr()
    assert "not in this checkout's plan (watched too)" in captured.out
    assert f"alarm {extra}: still firing" in captured.err
    [call] = standin_pulumi.calls_of("stack", "output")
    assert call["args"] == ["stack", "output", "--json", "--stack", "prod"]


# --------------------------------------------------------------------------- severity (13)


def _role(targets: BakeTargets, suffix: str) -> bool:
    [alarm] = [a for a in targets.alarms if a.name.endswith(f"{LLAMA}-{suffix}")]
    return alarm.gate


def test_only_critical_alarms_and_explicit_gates_gate_the_bake(
    targets: BakeTargets, dev_graph: Any
) -> None:
    assert _role(targets, "target-5xx") and _role(targets, "healthy-below-min")
    assert _role(targets, "unhealthy-hosts")  # tagged bake=gate explicitly
    assert not _role(targets, "p99-latency")  # warning: observed
    dev = targets_from_plan(json.loads(json.dumps(dev_graph.to_json())))
    assert not _role(dev, "healthy-below-min")  # scale-to-zero floor: info, observed


def test_dev_floor_alarm_in_alarm_at_night_is_reported_and_does_not_fail_the_bake(
    dev_graph: Any, moto_reset: str, aws_env: None
) -> None:
    dev = targets_from_plan(json.loads(json.dumps(dev_graph.to_json())))
    client = boto3.client("cloudwatch", region_name=dev.region, endpoint_url=moto_reset)
    for alarm in dev.alarms:
        client.put_metric_alarm(
            AlarmName=alarm.name,
            MetricName="HealthyHostCount",
            Namespace="AWS/ApplicationELB",
            Statistic="Minimum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="LessThanThreshold",
        )
    floor = f"mlstack-dev-{LLAMA}-healthy-below-min"
    client.set_alarm_state(AlarmName=floor, StateValue="ALARM", StateReason="0 healthy")
    report = _bake(dev, client, None, FakeTime())
    assert report.verdict == "passed", report.summary()
    assert [b.subject for b in report.observed] == [floor]
    assert f"observed (not gating) in ALARM: {floor}" in report.summary()


def test_a_bake_tag_outside_gate_and_observe_is_refused_naming_alarm_key_and_value() -> None:
    plan = {
        "resources": [
            {
                "type": "aws:cloudwatch/metricAlarm:MetricAlarm",
                "name": "x",
                "inputs": {"name": "mlstack-dev-x-target-5xx", "tags": {"bake": "block"}},
            }
        ]
    }
    with pytest.raises(UsageError) as caught:
        targets_from_plan(plan)
    assert str(caught.value) == (
        "plan: alarm mlstack-dev-x-target-5xx: tags.bake = 'block'; allowed: gate, observe"
    )


# --------------------------------------------------------------------------- evidence (14)

TG = [
    {"Name": "TargetGroup", "Value": f"targetgroup/{LLAMA}/0123456789abcdef"},
    {"Name": "LoadBalancer", "Value": "app/mlstack-prod/fedcba9876543210"},
]


def _alarm_on_the_target_group(client: Any, name: str) -> None:
    """The 5XX ratio alarm as cloudwatch.py renders it: metric math over the target
    group's HTTPCode_Target_5XX_Count and RequestCount (what DescribeAlarms returns)."""

    def stat(query_id: str, metric: str) -> dict[str, Any]:
        return {
            "Id": query_id,
            "ReturnData": False,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/ApplicationELB",
                    "MetricName": metric,
                    "Dimensions": TG,
                },
                "Period": 60,
                "Stat": "Sum",
            },
        }

    client.put_metric_alarm(
        AlarmName=name,
        EvaluationPeriods=5,
        DatapointsToAlarm=3,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
        Metrics=[
            stat("errors", "HTTPCode_Target_5XX_Count"),
            stat("requests", "RequestCount"),
            {"Id": "ratio", "Expression": "100 * errors / requests", "ReturnData": True},
        ],
    )
    client.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="test: ok")


def _requests(client: Any, count: float) -> None:
    client.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": TG,
                "Value": count,
                "Timestamp": datetime.now(UTC),
            }
        ],
    )


def test_a_clean_bake_without_enough_requests_is_inconclusive_and_with_them_passes(
    targets: BakeTargets, cloudwatch: Any
) -> None:
    name = f"mlstack-prod-{LLAMA}-target-5xx"
    [alarm] = [a for a in targets.alarms if a.name == name]
    assert alarm.min_requests == 60  # 3 datapoints to alarm x at least 20 requests a period
    _alarm_on_the_target_group(cloudwatch, name)
    _requests(cloudwatch, 10)
    requests = CloudWatchRequests(cloudwatch)
    quiet = _bake(targets, cloudwatch, None, FakeTime(), requests=requests)
    assert quiet.verdict == "inconclusive"
    [problem] = quiet.inconclusive
    assert problem.startswith("RequestCount 10 of LoadBalancer=app/mlstack-prod/")
    assert f"alarm {name} needs at least 60 to judge it" in problem
    assert "INCONCLUSIVE" in quiet.summary()
    _requests(cloudwatch, 55)
    busy = _bake(targets, cloudwatch, None, FakeTime(), requests=requests)
    assert busy.verdict == "passed", busy.summary()


def test_zero_replicas_of_the_new_version_make_a_clean_bake_inconclusive(
    targets: BakeTargets,
    cloudwatch: Any,
    fake_kube: FakeKube,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dev at night: KEDA holds the Deployment at 0, the minimum is 0, nothing breaches."""
    zero = json.loads(json.dumps(RESPONSES["llama-ready"]))
    zero["spec"]["replicas"] = 0
    zero["status"] |= {"replicas": 0, "updatedReplicas": 0, "readyReplicas": 0}
    zero["status"]["availableReplicas"] = 0
    monkeypatch.setitem(RESPONSES, "llama-zero", zero)
    fake_kube.ready()
    fake_kube.serve(**{DEPLOYMENTS + LLAMA: "llama-zero"})
    at_night = replace(
        targets, deployments=tuple(replace(d, min_available=0) for d in targets.deployments)
    )
    report = _bake(at_night, cloudwatch, KubeApi(fake_kube.url, "tok"), FakeTime())
    assert report.verdict == "inconclusive"
    assert report.inconclusive == [
        f"deployment inference/{LLAMA}: no replica of the new version (updatedReplicas 0)"
    ]


def test_old_replicas_still_running_are_no_evidence_for_the_new_version(
    targets: BakeTargets,
    cloudwatch: Any,
    fake_kube: FakeKube,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As `kubectl rollout status` judges it: status.replicas > updatedReplicas."""
    mixed = json.loads(json.dumps(RESPONSES["llama-ready"]))
    mixed["status"] |= {"replicas": 3, "updatedReplicas": 1}
    monkeypatch.setitem(RESPONSES, "llama-mixed", mixed)
    fake_kube.ready()
    fake_kube.serve(**{DEPLOYMENTS + LLAMA: "llama-mixed"})
    report = _bake(targets, cloudwatch, KubeApi(fake_kube.url, "tok"), FakeTime())
    assert report.verdict == "inconclusive"
    assert report.inconclusive == [f"deployment inference/{LLAMA}: 2 old replica(s) still running"]


def test_cli_inconclusive_exits_0_and_is_recorded_as_inconclusive(
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    cloudwatch: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_kube.ready()
    _alarm_on_the_target_group(cloudwatch, f"mlstack-prod-{LLAMA}-target-5xx")
    ledger = tmp_path / "ledger"
    args = ("--json", "--record", "--version", "7", "--ledger", f"file://{ledger}")
    assert bake_cli(*args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "inconclusive"
    [record] = FileLedger(ledger).records("prod")
    assert record.verdict == "inconclusive"


# --------------------------------------------------------------------------- baseline (15)


def test_an_alarm_in_alarm_before_the_update_is_reported_not_blamed(
    targets: BakeTargets, cloudwatch: Any
) -> None:
    shared = next(a.name for a in targets.alarms if a.name.endswith("-elb-5xx"))
    cloudwatch.set_alarm_state(
        AlarmName=shared, StateValue="ALARM", StateReason="another model's errors"
    )
    baseline = take_baseline(targets, CloudWatchAlarms(cloudwatch))
    blamed = _bake(targets, cloudwatch, None, FakeTime())
    assert blamed.verdict == "failed"  # without a baseline the innocent deploy is blamed
    report = _bake(targets, cloudwatch, None, FakeTime(), baseline=baseline)
    # Not blamed, but not evidence either (review finding: a model's own alarm firing
    # before and after would otherwise let a bad version pass and become last good).
    assert report.verdict == "inconclusive", report.summary()
    assert [b.subject for b in report.pre_existing] == [shared]
    assert f"in ALARM before the update (not blamed): {shared}" in report.summary()
    assert any("still at the end of the bake" in p for p in report.inconclusive)


def test_a_pre_existing_alarm_that_clears_during_the_bake_lets_it_pass(
    targets: BakeTargets, cloudwatch: Any
) -> None:
    shared = next(a.name for a in targets.alarms if a.name.endswith("-elb-5xx"))
    cloudwatch.set_alarm_state(AlarmName=shared, StateValue="ALARM", StateReason="before")
    baseline = take_baseline(targets, CloudWatchAlarms(cloudwatch))
    time = FakeTime()
    time.hooks[1] = lambda: cloudwatch.set_alarm_state(
        AlarmName=shared, StateValue="OK", StateReason="cleared"
    )
    report = _bake(targets, cloudwatch, None, time, baseline=baseline)
    assert report.verdict == "passed", report.summary()


def test_a_rollback_bake_waits_for_what_it_was_run_for_and_fails_if_it_still_fires(
    targets: BakeTargets, cloudwatch: Any
) -> None:
    """Review finding: the rollback bake failed on its first poll because the bad
    version's alarm had not cleared yet. With the baseline taken before the rollback it
    is not blamed while it clears; still firing at the end, the rollback failed (pages)."""
    shared = next(a.name for a in targets.alarms if a.name.endswith("-elb-5xx"))
    cloudwatch.set_alarm_state(AlarmName=shared, StateValue="ALARM", StateReason="bad version")
    baseline = take_baseline(targets, CloudWatchAlarms(cloudwatch))
    still = _bake(targets, cloudwatch, None, FakeTime(), baseline=baseline, kind="rollback")
    assert still.verdict == "failed" and still.polls > 1
    assert "in ALARM before the rollback, still" in still.breaches[0].reason
    time = FakeTime()
    time.hooks[1] = lambda: cloudwatch.set_alarm_state(
        AlarmName=shared, StateValue="OK", StateReason="cleared"
    )
    cleared = _bake(targets, cloudwatch, None, time, baseline=baseline, kind="rollback")
    assert cleared.verdict == "passed", cleared.summary()


def test_a_pre_existing_alarm_that_recovered_and_fired_again_is_blamed(
    targets: BakeTargets, cloudwatch: Any
) -> None:
    shared = next(a.name for a in targets.alarms if a.name.endswith("-elb-5xx"))
    cloudwatch.set_alarm_state(AlarmName=shared, StateValue="ALARM", StateReason="before")
    baseline = take_baseline(targets, CloudWatchAlarms(cloudwatch))
    time = FakeTime()

    def recover_and_fire() -> None:
        cloudwatch.set_alarm_state(AlarmName=shared, StateValue="OK", StateReason="recovered")
        cloudwatch.set_alarm_state(AlarmName=shared, StateValue="ALARM", StateReason="again")

    time.hooks[1] = recover_and_fire
    report = _bake(targets, cloudwatch, None, time, baseline=baseline)
    assert report.verdict == "failed"
    [breach] = report.breaches
    assert breach.subject == shared
    assert "again (left ALARM and re-entered it at" in breach.reason


def test_a_pre_existing_breach_counts_as_worse_only_past_twice_its_excess() -> None:
    def state(*points: float) -> AlarmState:
        return AlarmState(
            "a", "ALARM", "", "t0", points, threshold=5.0, comparison="GreaterThanThreshold"
        )

    assert got_worse(state(6.0, 7.0), state(8.5)) is None  # 3.5 past, 2 before
    assert got_worse(state(6.0, 7.0), state(9.5)) == (
        "now 4.5 past the threshold 5, more than twice the 2 before the update"
    )
    low = AlarmState("b", "ALARM", "", "t0", (1.0,), threshold=2.0, comparison="LessThanThreshold")
    assert got_worse(low, replace(low, datapoints=(0.0,))) is None  # 2 past, 1 before: not >2


def test_cli_baseline_out_then_baseline_reports_the_pre_existing_breach(
    *,
    bake_cli: Callable[..., int],
    fake_kube: FakeKube,
    cloudwatch: Any,
    targets: BakeTargets,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_kube.ready()
    shared = next(a.name for a in targets.alarms if a.name.endswith("-elb-5xx"))
    cloudwatch.set_alarm_state(AlarmName=shared, StateValue="ALARM", StateReason="before")
    path = tmp_path / "baseline.json"
    assert bake_cli("--baseline-out", str(path)) == 0
    assert f"already in ALARM: {shared}" in capsys.readouterr().out
    assert bake_cli("--baseline", str(path), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [b["subject"] for b in report["preExisting"]] == [shared]
    other = json.loads(path.read_text()) | {"stack": "dev"}
    path.write_text(json.dumps(other))
    assert bake_cli("--baseline", str(path)) == 2
    assert f"--baseline {path}: stack = 'dev'; allowed: a baseline of stack 'prod'" in (
        capsys.readouterr().err
    )


# --------------------------------------------------------------------------- rollback (12)


def test_plan_commit_bakes_the_targets_alarms_and_a_rollback_bake_pages_on_exit_2(
    *,
    monkeypatch: pytest.MonkeyPatch,
    prod_alarms: tuple[dict[str, Any], StackConfig],
    cloudwatch: Any,
    moto_reset: str,
    no_pulumi: None,
    targets: BakeTargets,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After rolling back a commit that added alarms, the bad commit's alarms are gone:
    the bake of the checkout (the bad commit) cannot find them (exit 2, which now pages),
    the bake of the target commit's plan (--plan-commit) judges what exists."""
    import mlstack.synth

    plan = prod_alarms[0]
    added = [a.name for a in targets.alarms if "resnet50" in a.name]
    assert added
    target_plan = dict(plan)
    target_plan["resources"] = [
        r for r in plan["resources"] if (r.get("inputs") or {}).get("name") not in added
    ]
    asked: list[str] = []

    def at_commit(stack: str, root: Path, commit: str) -> tuple[dict[str, Any], float]:
        asked.append(commit)
        return target_plan, 10.0

    class Graph:
        def to_json(self) -> dict[str, Any]:
            return plan

    monkeypatch.setattr(bake_stack_module, "plan_at_commit", at_commit)
    monkeypatch.setattr(mlstack.synth, "synth_config", lambda cfg, stack: Graph())
    cloudwatch.delete_alarms(AlarmNames=added)
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=moto_reset)
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_reset)
    topic = sns.create_topic(Name="mlstack-prod-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="pager")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["QueueArn"])
    base = ["bake", "prod", "--endpoint-url", moto_reset, "--minutes", "0.01"]
    base += ["--poll-seconds", "0.2", "--skip-kubernetes", "--kind", "rollback"]
    base += ["--page-on-failure"]
    assert main([*base, "--plan-commit", "abc1234"]) == 0
    assert asked == ["abc1234"]
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages") is None

    assert main(base) == 2
    err = capsys.readouterr()
    assert "do not exist in region us-east-1" in err.err
    assert f"paged: {topic}" in err.out
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    body = json.loads(message["Body"])
    assert body["Subject"] == "mlstack: rollback bake of stack prod could not run"
