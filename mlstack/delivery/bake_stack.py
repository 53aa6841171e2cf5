"""``mlstack bake <stack>`` end to end: plan -> targets -> clients -> bake -> record -> page.

Kept apart from :mod:`mlstack.delivery.bake` (the watching itself, which tests drive
with moto and a fake Kubernetes API) so that module needs no config, synth or CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlstack.delivery.bake import (
    BakeAccessError,
    BakeReport,
    BakeTargets,
    Baseline,
    CloudWatchAlarms,
    CloudWatchRequests,
    KubeApi,
    cross_check,
    eks_token,
    render_poll,
    run_bake,
    take_baseline,
    targets_from_plan,
)
from mlstack.delivery.verdicts import BakeRecord, Ledger, default_ledger, ledger_from_url
from mlstack.errors import MlstackError, UsageError

KUBE_TOKEN_ENV = "MLSTACK_KUBE_TOKEN"
TOPIC_TYPE = "aws:sns/topic:Topic"
PROJECT = "mlstack"


@dataclass(frozen=True)
class BakeOptions:
    stack: str
    root: Path
    minutes: float | None = None
    poll_seconds: float = 30
    skip_kubernetes: bool = False
    kube_server: str | None = None
    endpoint_url: str | None = None
    record: bool = False
    version: int | None = None
    ledger: str | None = None
    kind: str = "deploy"
    page_on_failure: bool = False
    tty: bool = False
    as_json: bool = False
    plan_commit: str | None = None
    """Bake the plan of this commit (a rollback's target), not the checkout's."""
    baseline: Path | None = None
    """A baseline file (``--baseline-out``) taken before the update."""
    baseline_out: Path | None = None
    """Only record the alarms' states now (before the update) into this file."""


@dataclass
class BakeOutcome:
    report: BakeReport | None
    recorded: str | None
    paged: str | None
    notes: list[str]


def _session(region: str) -> Any:
    import boto3

    from mlstack.aws import CREDENTIALS_HOWTO

    session = boto3.Session(region_name=region)
    if session.get_credentials() is None:
        raise BakeAccessError(
            f"the bake reads CloudWatch (and EKS) as the caller: {CREDENTIALS_HOWTO}"
        )
    return session


def _client(session: Any, service: str, endpoint_url: str | None) -> Any:

    from mlstack.aws import make_client  # bounded timeouts and retries, like every tool

    return make_client(session, service, endpoint_url=endpoint_url)


def stack_outputs(stack: str, root: Path) -> dict[str, Any] | None:
    """``pulumi stack output --json`` when the CLI is installed, else None."""
    from mlstack.delivery.pulumi_cli import PulumiCliMissingError, PulumiCommandError, find_pulumi

    try:
        cli = find_pulumi("reading stack outputs")
    except PulumiCliMissingError:
        return None
    try:
        done = cli.run(["stack", "output", "--json", "--stack", stack], cwd=root, capture=True)
    except PulumiCommandError as exc:
        raise UsageError(f"cannot read the outputs of stack {stack}: {exc}") from exc
    try:
        data = json.loads(done.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise UsageError(f"`pulumi stack output --json` printed no JSON: {exc}") from exc
    return data if isinstance(data, dict) else None


def plan_for(stack: str, root: Path, commit: str | None = None) -> tuple[dict[str, Any], float]:
    """The offline plan of the checked-out commit (or of ``commit``, synthesized by its
    own code on its own environment, as a rollback deploys it), and its bake minutes."""
    from stacks.config import ConfigError, load_config_file

    if commit is not None:
        return plan_at_commit(stack, root, commit)
    from mlstack.synth import synth_config

    try:
        cfg = load_config_file(stack, root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    graph = synth_config(cfg, stack)
    return json.loads(json.dumps(graph.to_json())), cfg.delivery.bake_minutes


def plan_at_commit(stack: str, root: Path, commit: str) -> tuple[dict[str, Any], float]:
    """``stack``'s plan at ``commit`` (:func:`mlstack.review.gitrefs.plans_at` on the
    commit's environment, :mod:`mlstack.delivery.environments`) and the commit's
    ``mlstack:delivery.bakeMinutes``."""
    from mlstack.delivery.environments import EnvBuilder, spec_at
    from mlstack.delivery.rollback import file_at, git, resolve_commit
    from mlstack.review import gitrefs
    from stacks.schema.delivery import DeliveryConfig
    from stacks.stack_yaml import load_stack_yaml

    sha = resolve_commit(root, commit)
    if sha is None:
        raise UsageError(f"--plan-commit {commit!r} is not a commit in {root}")
    if not file_at(root, sha, f"Pulumi.{stack}.yaml"):
        raise UsageError(f"--plan-commit {commit!r}: commit {sha[:12]} has no Pulumi.{stack}.yaml")
    env_dir = EnvBuilder.from_environment().ensure(spec_at(root, sha), lambda _: None)
    _, outcomes = gitrefs.plans_at(root, sha, [stack], virtualenv=env_dir)
    outcome = outcomes[stack]
    if outcome.plan is None:
        raise UsageError(f"stack {stack} at commit {sha[:12]} did not synthesize: {outcome.error}")
    data = load_stack_yaml(git(root, "show", f"{sha}:Pulumi.{stack}.yaml")) or {}
    delivery = ((data.get("config") or {}).get("mlstack:delivery") or {}) if data else {}
    default = DeliveryConfig.model_fields["bake_minutes"].default
    return outcome.plan, float(delivery.get("bakeMinutes", default))


def kube_client(
    options: BakeOptions, targets: BakeTargets, session: Any, environ: Mapping[str, str]
) -> KubeApi:
    if options.kube_server:
        token = environ.get(KUBE_TOKEN_ENV)
        if not token:
            raise UsageError(f"--kube-server needs the bearer token in ${KUBE_TOKEN_ENV}")
        return KubeApi(options.kube_server, token)
    if targets.cluster_name is None:
        raise UsageError(f"stack {options.stack}'s plan has no EKS cluster to watch")
    from botocore.exceptions import BotoCoreError, ClientError

    eks = _client(session, "eks", options.endpoint_url)
    try:
        cluster = eks.describe_cluster(name=targets.cluster_name)["cluster"]
    except (BotoCoreError, ClientError) as exc:
        raise BakeAccessError(
            f"cannot describe EKS cluster {targets.cluster_name} in {targets.region}: {exc}; "
            "use --skip-kubernetes to watch the alarms only"
        ) from exc
    import base64

    ca = base64.b64decode(cluster["certificateAuthority"]["data"])
    token = eks_token(session, targets.cluster_name, targets.region)
    return KubeApi(cluster["endpoint"], token, ca)


def _git_head(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def _baked_update(options: BakeOptions, notes: list[str]) -> tuple[int, str | None] | None:
    """(version, commit) the bake judges: ``--version``, else the newest update."""
    from mlstack.delivery.history import load_history
    from mlstack.delivery.pulumi_cli import PulumiCliMissingError

    head = _git_head(options.root)
    if options.plan_commit is not None:
        from mlstack.delivery.rollback import resolve_commit

        head = resolve_commit(options.root, options.plan_commit) or head
    try:
        history = load_history(options.stack, options.root)
    except PulumiCliMissingError:
        if options.version is None:
            notes.append("not recorded: no Pulumi CLI to find the update's version (--version)")
            return None
        return options.version, head
    if options.version is not None:
        update = next((u for u in history if u.version == options.version), None)
        if update is None:
            raise UsageError(f"stack {options.stack} has no version {options.version}")
    else:
        update = next((u for u in history if u.is_update), None)
        if update is None:
            notes.append(f"not recorded: stack {options.stack} has no update to judge")
            return None
    if update.commit and head and update.commit != head:
        notes.append(
            f"version {update.version} ran commit {update.commit[:12]}, this checkout is "
            f"{head[:12]}: the alarms watched are "
            + ("that commit's" if options.plan_commit else "this checkout's")
        )
    return update.version, update.commit


def _topic_arn(
    plan: Mapping[str, Any], outputs: Mapping[str, Any] | None, session: Any, endpoint: str | None
) -> str:
    if outputs and isinstance(outputs.get("alertTopicArn"), str):
        return str(outputs["alertTopicArn"])
    names = [
        r["inputs"]["name"]
        for r in plan.get("resources", [])
        if r["type"] == TOPIC_TYPE and isinstance((r.get("inputs") or {}).get("name"), str)
    ]
    if not names:
        raise UsageError("the plan has no SNS alert topic to page")
    account = _client(session, "sts", endpoint).get_caller_identity()["Account"]
    return f"arn:aws:sns:{session.region_name}:{account}:{names[0]}"


def page(session: Any, topic_arn: str, subject: str, message: str, endpoint: str | None) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client(session, "sns", endpoint).publish(
            TopicArn=topic_arn, Subject=subject[:99], Message=message
        )
    except (BotoCoreError, ClientError) as exc:
        raise MlstackError(f"paging through {topic_arn} failed: {exc}") from exc


def page_stack(stack: str, root: Path, subject: str, message: str, endpoint: str | None) -> str:
    """Publish to the stack's alert topic (outputs when the CLI exists, else the plan's
    topic name in the caller's account); returns the topic ARN."""
    plan, _ = plan_for(stack, root)
    session = _session(str(plan.get("region")))
    topic = _topic_arn(plan, stack_outputs(stack, root), session, endpoint)
    page(session, topic, subject, message, endpoint)
    return topic


def bake_stack(
    options: BakeOptions,
    echo: Callable[[str], None],
    progress_out: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> BakeOutcome:
    """Run the whole bake; the caller maps ``report.verdict`` to the exit code. With
    ``page_on_failure`` ANY bake that does not end passed or inconclusive pages: a
    breach, and also a usage or access error (exit 2), which is re-raised after."""
    try:
        return _bake_stack(options, echo, progress_out, environ)
    except MlstackError as exc:
        if not options.page_on_failure or options.baseline_out is not None:
            raise
        subject = f"mlstack: {options.kind} bake of stack {options.stack} could not run"
        try:
            topic = page_stack(
                options.stack,
                options.root,
                subject,
                f"{exc}\nThe bake did not judge the {options.kind}; a human must act "
                "(docs/operations.md, 'When an automatic rollback fails').",
                options.endpoint_url,
            )
        except MlstackError as paging:
            raise MlstackError(f"{exc}; paging failed too: {paging}") from exc
        echo(f"paged: {topic}")
        raise


def _bake_stack(
    options: BakeOptions,
    echo: Callable[[str], None],
    progress_out: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> BakeOutcome:
    env = os.environ if environ is None else environ
    plan, bake_minutes = plan_for(options.stack, options.root, options.plan_commit)
    minutes = options.minutes if options.minutes is not None else bake_minutes
    targets = targets_from_plan(plan)
    outputs = stack_outputs(options.stack, options.root)
    notes: list[str] = []
    if options.plan_commit is not None:
        notes.append(f"alarms of commit {options.plan_commit}'s plan (--plan-commit)")
    if outputs is None:
        notes.append("alarm list from the offline plan only (no Pulumi CLI to cross-check)")
    elif options.baseline_out is None:
        names = outputs.get("alarmNames")
        targets = cross_check(targets, names if isinstance(names, list) else [])
    session = _session(targets.region)
    cloudwatch = _client(session, "cloudwatch", options.endpoint_url)
    alarms = CloudWatchAlarms(cloudwatch)
    if options.baseline_out is not None:
        baseline = take_baseline(targets, alarms)
        from mlstack.files import write_atomic

        write_atomic(
            options.baseline_out,
            json.dumps(baseline.to_json(), indent=2) + "\n",
            what="--baseline-out",
        )
        firing = sorted(n for n, s in baseline.states.items() if s.state == "ALARM")
        echo(
            f"baseline of stack {options.stack}: {len(baseline.states)} alarm(s) recorded in "
            f"{options.baseline_out}"
            + (f"; already in ALARM: {', '.join(firing)}" if firing else "")
        )
        return BakeOutcome(None, None, None, notes)
    baseline = None
    if options.baseline is not None:
        try:
            data = json.loads(options.baseline.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"--baseline {options.baseline}: unreadable ({exc})") from exc
        baseline = Baseline.from_json(data, str(options.baseline))
        if baseline.stack != options.stack:
            raise UsageError(
                f"--baseline {options.baseline}: stack = {baseline.stack!r}; allowed: "
                f"a baseline of stack {options.stack!r}"
            )
    ledger: Ledger | None = None
    if options.record:
        ledger = (
            ledger_from_url(options.ledger, options.endpoint_url)
            if options.ledger
            else default_ledger(PROJECT, env, options.endpoint_url)
        )
        if ledger is None:
            raise UsageError(
                "--record needs a ledger: --ledger URL, $MLSTACK_BAKE_LEDGER, or an s3:// or "
                "file:// PULUMI_BACKEND_URL"
            )
    baked = _baked_update(options, notes) if options.record else None
    kube = None if options.skip_kubernetes else kube_client(options, targets, session, env)
    write = progress_out or echo
    echo(
        f"baking stack {options.stack} for {minutes:g} min: {len(targets.alarms)} alarm(s)"
        f" ({sum(1 for a in targets.alarms if a.gate)} gating)"
        + ("" if kube is None else f", {len(targets.deployments)} deployment(s)")
        + (" (Kubernetes skipped)" if kube is None else "")
    )
    started = datetime.now(UTC)
    report = run_bake(
        targets,
        alarms,
        kube,
        minutes=minutes,
        poll_seconds=options.poll_seconds,
        progress=lambda left, poll: write(render_poll(left, poll, tty=options.tty)),
        baseline=baseline,
        requests=CloudWatchRequests(cloudwatch),
        kind=options.kind,
    )
    if options.tty:
        write("")  # end the rewritten progress line
    report.notes = list(targets.notes) + notes
    recorded = None
    if ledger is not None and baked is not None:
        version, commit = baked
        specs = (
            _specs_baked(plan, options.stack, commit, options.root, report.notes)
            if options.plan_commit is None
            else {}
        )
        record = BakeRecord(
            stack=options.stack,
            version=version,
            commit=commit,
            verdict=report.verdict,
            started_at=started,
            finished_at=max(datetime.now(UTC), started + timedelta(microseconds=1)),
            minutes=minutes,
            kind=options.kind,
            breaches=tuple(b.render() for b in report.breaches),
            insufficient_data=tuple(report.insufficient_data),
            run_url=_run_url(env),
            serving_specs=specs,
        )
        recorded = ledger.put(record)
    paged = None
    if options.page_on_failure and report.failed:
        topic = _topic_arn(plan, outputs, session, options.endpoint_url)
        page(
            session,
            topic,
            f"mlstack: {options.kind} bake of stack {options.stack} failed",
            report.summary() + "\nAutomatic rollback stopped; a human must act "
            "(docs/operations.md, 'When an automatic rollback fails').",
            options.endpoint_url,
        )
        paged = topic
    return BakeOutcome(report, recorded, paged, report.notes)


def _specs_baked(
    plan: Mapping[str, Any], stack: str, commit: str | None, root: Path, notes: list[str]
) -> dict[str, Mapping[str, Any]]:
    """Each model's serving spec (hash and fields) from this checkout's plan, when the
    checkout is the commit the update ran (else it is not what ran: nothing, and a note)."""
    from mlstack.delivery.serving_spec import serving_specs
    from stacks.config import load_config_file

    head = _git_head(root)
    if commit is None or commit != head:
        notes.append(
            "serving specs not recorded (this checkout is not the update's commit): "
            "this bake is no evidence for `mlstack promote`"
        )
        return {}
    cfg = load_config_file(stack, root)
    return {name: spec.to_json() for name, spec in serving_specs(plan, cfg.models).items()}


def _run_url(env: Mapping[str, str]) -> str | None:
    server, repo, run = (
        env.get("GITHUB_SERVER_URL"),
        env.get("GITHUB_REPOSITORY"),
        env.get("GITHUB_RUN_ID"),
    )
    return f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None


def is_tty() -> bool:
    return sys.stdout.isatty() and os.environ.get("CI") is None
