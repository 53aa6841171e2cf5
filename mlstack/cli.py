"""The ``mlstack`` command line. ``main()`` maps errors to one line and an exit code.

Exit codes (the contract is in :mod:`mlstack.errors`): 0 ok, 1 the checked thing or the
operation failed, 2 usage or bad input, 130 interrupted. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import math
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer._click import exceptions as click_exceptions  # typer vendors click

from mlstack.errors import MlstackError, UsageError, printable
from mlstack.model_store.cli import model_app

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.startup import MeasuredSizes

app = typer.Typer(
    name="mlstack",
    help="Offline plans, checks and delivery tools for the mlstack Pulumi program.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts show [defaults] as written, not as rich markup
)

app.add_typer(model_app, name="model")

crds_app = typer.Typer(
    rich_markup_mode=None,
    help="CRD schemas for `plan --check`, taken from the charts' CRD manifests.",
    no_args_is_help=True,
)
app.add_typer(crds_app, name="crds")

loader_app = typer.Typer(
    help="The model-loader image (loader/Dockerfile) in the stack's own ECR repository.",
    no_args_is_help=True,
)
app.add_typer(loader_app, name="loader")

upstream_app = typer.Typer(
    rich_markup_mode=None,
    help="Upstream reference data the tests check against (chart defaults, IAM, CRDs).",
    no_args_is_help=True,
)
app.add_typer(upstream_app, name="upstream")

_DEBUG = {"on": False}

StackArg = Annotated[str, typer.Argument(help="Stack name: reads Pulumi.<stack>.yaml.")]
RootOpt = Annotated[
    Path, typer.Option("--root", help="Project directory holding the Pulumi.<stack>.yaml files.")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("mlstack")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            installed = "unknown (not installed)"
        typer.echo(f"mlstack {installed}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    del show_version
    _DEBUG["on"] = debug


def _stacks_here(root: Path) -> list[str]:
    from stacks.config import stacks_here

    return stacks_here(root)


def _require_stacks(stacks: list[str], root: Path) -> None:
    """Stacks whose Pulumi.<stack>.yaml is missing or not a file: one line, exit 2."""
    from stacks.config import stack_file_problem

    paths = {s: root / f"Pulumi.{s}.yaml" for s in stacks}
    unknown = [s for s, p in paths.items() if not (p.exists() or p.is_symlink())]
    if unknown:
        raise UsageError(
            f"unknown stack(s) {', '.join(unknown)}: no Pulumi.<stack>.yaml in {root}; "
            f"stacks here: {', '.join(_stacks_here(root)) or 'none'}"
        )
    for stack, path in paths.items():
        problem = stack_file_problem(path)
        if problem is not None:
            raise UsageError(f"stack {stack}: {problem}")


def _require_writable(out: Path | None, what: str = "--out") -> None:
    """Fail before any work when ``out`` cannot be written: one line, exit 2, nothing
    created (``mlstack.files``: only regular files are written)."""
    if out is not None:
        from mlstack.files import check_writable

        check_writable(out, what)


COST_FIGURE_MAX = 1e12
"""Largest usage figure ``cost`` takes (GB or LCUs per month): far past any real stack, and
small enough that every price times it stays finite (1e308 overflowed to ``$inf``)."""


def _finite_non_negative(value: float) -> float:
    """Option callback: a figure that is a finite number in [0, 1e12] (exit 2 otherwise)."""
    if not math.isfinite(value) or not 0 <= value <= COST_FIGURE_MAX:
        raise typer.BadParameter(f"{value!r}: allowed is a finite number from 0 to 1e12")
    return value


def _load(stack: str, root: Path):
    from stacks.config import ConfigError, load_config_file

    try:
        return load_config_file(stack, root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


@app.command()
def validate(stack: StackArg, root: RootOpt = Path()) -> None:
    """Validate Pulumi.<stack>.yaml only (no synth)."""
    cfg = _load(stack, root.resolve())
    typer.echo(f"Pulumi.{stack}.yaml: valid ({cfg.environment}, {cfg.region})")


@app.command()
def plan(  # noqa: PLR0917 (CLI options)
    stack: StackArg,
    out: Annotated[
        Path | None, typer.Option("--out", help="Plan JSON path [build/plan/<stack>.json].")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Also run the render checks; fail on findings.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    crd_schemas: Annotated[
        Path | None,
        typer.Option(
            "--crd-schemas",
            help="CRD schema directory for --check [$MLSTACK_CRD_SCHEMAS, else "
            "~/.cache/mlstack/crds]; fill it with `mlstack crds import`.",
        ),
    ] = None,
    strict_crds: Annotated[
        bool,
        typer.Option(
            "--strict-crds", help="With --check: a custom resource without a schema fails."
        ),
    ] = False,
    root: RootOpt = Path(),
) -> None:
    """Synthesize a stack offline and write its plan JSON."""
    from mlstack.custom_resources import (
        PROVIDE_HINT,
        SchemaStore,
        load_schema_dir,
        resolve_schema_dir,
    )
    from mlstack.plan import DEFAULT_PLAN_DIR, summary, write_plan
    from mlstack.render_checks import Finding, Unvalidated
    from mlstack.synth import synth_config

    if (crd_schemas is not None or strict_crds) and not check:
        raise UsageError("--crd-schemas and --strict-crds need --check")
    target = out or root / DEFAULT_PLAN_DIR / f"{stack}.json"
    _require_writable(target)
    store: SchemaStore | None = None
    if check:  # a bad schema directory is a usage error before any work
        store = load_schema_dir(resolve_schema_dir(crd_schemas))
    cfg = _load(stack, root.resolve())
    graph = synth_config(cfg, stack)
    path = write_plan(graph, target)
    info = summary(graph)
    findings: list[Finding] = []
    unvalidated: list[Unvalidated] = []
    if store is not None:
        from mlstack.render_checks import run_checks

        report = run_checks(graph, cfg.cluster.version, store, strict_crds=strict_crds)
        findings, unvalidated = report.findings, report.unvalidated
    if as_json:
        info["findings"] = [f.render() for f in findings]
        if store is not None:
            info["crdSchemas"] = str(store.where.path) if store.where else None
            info["notValidated"] = [u.render() for u in unvalidated]
        info["warnings"] = graph.warnings
        info["plan"] = str(path)
        typer.echo(json.dumps(info, indent=2))
    else:
        typer.echo(
            f"stack {stack}: {info['resources']} cloud resources (+{info['components']} "
            f"components; `mlstack diff` counts both) -> {path}"
        )
        for component, count in info["byComponent"].items():
            typer.echo(f"  {component:<24} {count:>4}")
        typer.echo("by type:")
        for type_token, count in info["byType"].items():
            typer.echo(f"  {type_token:<60} {count:>4}")
        for warning in graph.warnings:
            typer.echo(f"warning: {warning}")
        if store is not None:
            where = store.where.describe() if store.where else "none"
            found = "" if store.available else ", not found"
            typer.echo(f"CRD schemas: {where}{found}: {len(store.schemas)} kind(s)")
            typer.echo(f"render checks: {len(findings)} finding(s)")
            for finding in findings:
                typer.echo(f"  {finding.render()}")
            if not store.schemas:
                typer.echo(f"  {PROVIDE_HINT}")
            if unvalidated and not strict_crds:
                typer.echo(
                    f"custom resources: {len(unvalidated)} not validated "
                    "(no schema; --strict-crds makes this a failure)"
                )
                for missing in unvalidated:
                    typer.echo(f"  {missing.render()}")
    if findings:
        raise MlstackError(f"{len(findings)} render check finding(s) in stack {stack}")


@crds_app.command("import")
def crds_import(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CRD manifests: `helm show crds <chart> --version <v>`, `helm template` or "
            "`kubectl get crd <name> -o yaml` output (multi-document YAML, or a List)."
        ),
    ],
    to: Annotated[
        Path | None,
        typer.Option(
            "--to", help="Schema directory [$MLSTACK_CRD_SCHEMAS, else ~/.cache/mlstack/crds]."
        ),
    ] = None,
) -> None:
    """Write one schema file per served group/version/kind (descriptions dropped)."""
    from mlstack.crd_import import import_crds
    from mlstack.custom_resources import gvk_text, resolve_schema_dir

    directory = resolve_schema_dir(to).path
    result = import_crds(list(files), directory)
    for schema, path in result.written:
        typer.echo(f"{gvk_text(schema.key)} -> {path}")
    if result.skipped:
        typer.echo(f"skipped {result.skipped} document(s) that are not CRDs")


@upstream_app.command("fetch")
def upstream_fetch(
    to: Annotated[
        Path | None,
        typer.Option(
            "--to", help="Where to put it [$MLSTACK_UPSTREAM, else ~/.cache/mlstack/upstream]."
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="URLs and sha256 digests [mlstack/upstream.json]."),
    ] = None,
) -> None:
    """Download the reference data at the pinned versions; every file's sha256 is checked
    before anything is written. Needs the network (GitHub raw files); run once per clone
    and again after a pinned chart or controller version changes."""
    from mlstack import upstream

    files = upstream.load_manifest(manifest or upstream.MANIFEST)
    env = os.environ.get(upstream.ENV_VAR)
    dest = to or (Path(env) if env else upstream.default_cache())
    written = upstream.fetch(files, dest)
    typer.echo(f"{len(written)} files in {dest.expanduser().resolve()} (sha256 checked)")
    if not to and not env:
        typer.echo(f"tests find it there; elsewhere set {upstream.ENV_VAR}={dest}")


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON Schema.")] = Path(
        "schema/stack-config.schema.json"
    ),
) -> None:
    """Write the JSON Schema of Pulumi.<stack>.yaml (editors validate as you type)."""
    from mlstack.files import write_atomic
    from stacks.config import json_schema

    _require_writable(out)
    write_atomic(out, json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    typer.echo(f"wrote {out}")


@app.command("ci-settings")
def ci_settings(
    stacks: Annotated[list[str], typer.Argument(help="Stacks to report.")],
    github_output: Annotated[
        Path | None,
        typer.Option(
            "--github-output", help="Append `stacks=<json>` to this file ($GITHUB_OUTPUT)."
        ),
    ] = None,
    root: RootOpt = Path(),
) -> None:
    """Per stack, where its CI jobs run (``mlstack:delivery.runner``), as JSON for workflows:
    ``{"dev": {"runsOn": ["ubuntu-24.04"], "network": "hosted", "region": "..."}, ...}``."""
    _require_writable(github_output, "--github-output")
    settings: dict[str, dict[str, object]] = {}
    for stack in stacks:
        cfg = _load(stack, root.resolve())
        runner = cfg.delivery.runner
        settings[stack] = {"runsOn": runner.labels, "network": runner.network, "region": cfg.region}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    if github_output is not None:
        from mlstack.files import append_atomic

        append_atomic(github_output, f"stacks={text}\n", what="--github-output")
    typer.echo(text)


# --------------------------------------------------------------------------- PR review


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


MIN_MAX_CHARS = 1000
"""The smallest ``--max-chars``: room for the summary and the truncation note."""


def _max_chars(value: int) -> int:
    """Option callback: ``--max-chars`` of at least :data:`MIN_MAX_CHARS` (exit 2 otherwise)."""
    if value < MIN_MAX_CHARS:
        raise typer.BadParameter(f"{value}: allowed is an integer >={MIN_MAX_CHARS}")
    return value


OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Write the output to this file instead of stdout.")
]


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    from mlstack.files import write_atomic

    write_atomic(out, text)
    typer.echo(f"wrote {out}", err=True)


@app.command()
def diff(  # noqa: PLR0917 (CLI options)
    stacks: Annotated[list[str], typer.Argument(help="Stacks to compare, e.g. dev prod.")],
    base: Annotated[str, typer.Option("--base", help="Git ref of the base revision.")],
    against: Annotated[
        str | None,
        typer.Option("--against", help="Git ref to compare with the base [working tree]."),
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
    out: OutOpt = None,
    max_chars: Annotated[
        int,
        typer.Option("--max-chars", help="Markdown size limit (PR comments).", callback=_max_chars),
    ] = 60000,
    root: RootOpt = Path(),
) -> None:
    """What changes in each stack between --base and the working tree (or --against)."""
    from mlstack.review import diff as review_diff

    _require_writable(out)
    diffs = review_diff.diff_revisions(stacks, base, against, root)
    if fmt is OutputFormat.json:
        text = review_diff.render_json(diffs)
    elif fmt is OutputFormat.markdown:
        text = review_diff.render_markdown(diffs, max_chars)
    else:
        text = review_diff.render_text(diffs, color=out is None and sys.stdout.isatty())
    _emit(text, out)
    failed = [d.stack for d in diffs if not d.ok]
    if failed:
        raise MlstackError(f"stack(s) {', '.join(failed)} failed to synthesize on one side")


@app.command()
def parity(
    left: Annotated[str, typer.Argument(help="First stack, e.g. dev.")],
    right: Annotated[str, typer.Argument(help="Second stack, e.g. prod.")],
    fmt: FormatOpt = OutputFormat.text,
    root: RootOpt = Path(),
) -> None:
    """Same component tree and resource types; config differences only in knobs."""
    from mlstack.review import parity as review_parity

    _require_stacks([left, right], root.resolve())
    report = review_parity.check_parity(left, right, root.resolve())
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(report.to_json(), indent=2, default=str))
    elif fmt is OutputFormat.markdown:
        typer.echo(review_parity.render_markdown(report), nl=False)
    else:
        typer.echo(review_parity.render_text(report), nl=False)
    if report.errors:
        # The report above already shows the errors: exit 2 without repeating them.
        raise typer.Exit(2)
    if not report.ok:
        raise MlstackError(f"parity {left} vs {right}: {report.summary()}")


@app.command()
def policy(
    stacks: Annotated[list[str], typer.Argument(help="Stacks to check.")],
    fmt: FormatOpt = OutputFormat.text,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also list passing and n/a rules.")
    ] = False,
    root: RootOpt = Path(),
) -> None:
    """Run the policy pack's rules over the offline synth graph."""
    from mlstack.review import policy_check
    from mlstack.synth import synth_config

    _require_stacks(stacks, root.resolve())
    reports = [policy_check.check_policy(synth_config(_load(s, root.resolve()), s)) for s in stacks]
    if fmt is OutputFormat.json:
        typer.echo(policy_check.to_json(reports))
    else:
        for report in reports:
            if fmt is OutputFormat.markdown:
                typer.echo(policy_check.render_markdown(report))
            else:
                typer.echo(policy_check.render_text(report, verbose), nl=False)
    blocking = [f"{r.stack}: {len(r.blocking)}" for r in reports if not r.ok]
    if blocking:
        raise MlstackError(f"blocking policy results ({', '.join(blocking)})")


@app.command()
def cost(
    stacks: Annotated[list[str], typer.Argument(help="Stacks to estimate.")],
    fmt: FormatOpt = OutputFormat.text,
    nat_gb: Annotated[
        float,
        typer.Option(
            "--nat-gb-per-month",
            help="NAT data processed at max scale, GB.",
            callback=_finite_non_negative,
        ),
    ] = 0.0,
    lcu: Annotated[
        float,
        typer.Option(
            "--lcu-per-lb",
            help="Average LCUs per load balancer at max scale.",
            callback=_finite_non_negative,
        ),
    ] = 0.0,
    root: RootOpt = Path(),
) -> None:
    """Monthly cost estimate at minimum and maximum scale, line by line."""
    from mlstack.review import cost as review_cost
    from mlstack.synth import synth_config

    _require_stacks(stacks, root.resolve())
    usage = review_cost.Usage(nat_gb_per_month=nat_gb, lcu_per_load_balancer=lcu)
    estimates = [
        review_cost.estimate(synth_config(_load(s, root.resolve()), s), usage=usage) for s in stacks
    ]
    if fmt is OutputFormat.json:
        typer.echo(review_cost.estimates_json(estimates))
        return
    render = (
        review_cost.render_markdown if fmt is OutputFormat.markdown else review_cost.render_text
    )
    for estimate in estimates:
        typer.echo(render(estimate), nl=False)


@app.command()
def coldstart(
    stack: StackArg,
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Read model sizes from the manifests in the model bucket and image sizes "
            "from ECR (needs AWS credentials; read-only).",
        ),
    ] = False,
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="--live: the model bucket [stack output modelBucketName]."),
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="--live: S3 and ECR endpoint (tests).")
    ] = None,
    root: RootOpt = Path(),
) -> None:
    """Estimated start-up per model, from zero and from a warm node, phase by phase."""
    from mlstack import coldstart as cold

    cfg = _load(stack, root.resolve())
    measured, notes = None, []
    if live:
        measured, notes = _live_sizes(cfg, stack, bucket, endpoint_url, root.resolve())
    elif bucket or endpoint_url:
        raise UsageError("--bucket and --endpoint-url only apply with --live")
    startups = cold.model_startups(cfg, measured)
    typer.echo(
        cold.to_json(stack, startups, notes)
        if as_json
        else cold.render_text(stack, startups, notes)
    )


def _live_sizes(
    cfg: StackConfig, stack: str, bucket: str | None, endpoint_url: str | None, root: Path
) -> tuple[dict[str, MeasuredSizes], list[str]]:
    import boto3

    from mlstack import aws
    from mlstack.coldstart_live import measure_sizes
    from mlstack.model_store import s3

    name = s3.resolve_bucket(bucket, stack, root)
    s3_client = s3.make_client(endpoint_url, cfg.region)
    ecr = aws.make_client(boto3.Session(), "ecr", region=cfg.region, endpoint_url=endpoint_url)
    return measure_sizes(cfg, stack, s3_client=s3_client, bucket=name, ecr_client=ecr)


@app.command()
def review(
    base: Annotated[str, typer.Option("--base", help="Git ref of the PR's base.")],
    stack: Annotated[
        list[str] | None, typer.Option("--stack", help="Only these stacks [all Pulumi.*.yaml].")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the Markdown report.")] = Path(
        "build/review.md"
    ),
    max_chars: Annotated[
        int, typer.Option("--max-chars", help="Report size limit.", callback=_max_chars)
    ] = 60000,
    root: RootOpt = Path(),
) -> None:
    """Diff, parity, policy and cost for all stacks; one Markdown report for CI."""
    from mlstack.files import write_atomic
    from mlstack.review.review import run_review

    _require_writable(out)
    result = run_review(root, base, stack or None, max_chars)
    write_atomic(out, result.markdown)
    for d in result.diffs:
        typer.echo(f"{d.stack}: {d.summary()}" + (f"; cost {d.cost_summary()}" if d.ok else ""))
    typer.echo(f"report: {out} ({len(result.markdown)} chars)")
    if not result.ok:
        raise MlstackError("review failed: " + "; ".join(result.problems))


# --------------------------------------------------------------------------- delivery


@app.command()
def bootstrap(
    *,
    bucket: Annotated[str, typer.Option("--bucket", help="S3 bucket for Pulumi state.")],
    region: Annotated[str, typer.Option("--region", help="AWS region of the bucket and key.")],
    key_alias: Annotated[
        str, typer.Option("--key-alias", help="Alias of the KMS secrets key.")
    ] = "alias/mlstack-pulumi-secrets",
    noncurrent_days: Annotated[
        int, typer.Option("--noncurrent-days", help="Days to keep old state versions.")
    ] = 90,
    github_oidc: Annotated[
        bool, typer.Option("--github-oidc", help="Also create GitHub's OIDC provider.")
    ] = False,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="AWS endpoint override (testing).")
    ] = None,
) -> None:
    """Create the state bucket and secrets key (idempotent); print the login commands."""
    from mlstack.delivery.bootstrap import bootstrap as run_bootstrap

    result = run_bootstrap(
        bucket,
        region,
        key_alias=key_alias,
        noncurrent_days=noncurrent_days,
        github_oidc=github_oidc,
        endpoint_url=endpoint_url,
    )
    typer.echo(result.render())


LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Bake verdicts: s3://bucket/prefix/ or file:///dir [$MLSTACK_BAKE_LEDGER, else "
        ".mlstack/bakes/mlstack/ in the PULUMI_BACKEND_URL backend].",
    ),
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint-url", help="AWS endpoint override (testing).")
]


def _ledger(url: str | None, endpoint_url: str | None = None):
    from mlstack.delivery.verdicts import default_ledger, ledger_from_url

    if url:
        return ledger_from_url(url, endpoint_url)
    return default_ledger("mlstack", endpoint_url=endpoint_url)


@app.command()
def history(  # noqa: PLR0917 (CLI options)
    stack: StackArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Newest N entries (0: all).")] = 0,
    history_file: Annotated[
        Path | None,
        typer.Option(
            "--history-file",
            help="Read a saved `pulumi stack history --json` instead of running the Pulumi "
            "CLI (so this works where the CLI is not installed).",
        ),
    ] = None,
    ledger: LedgerOpt = None,
    endpoint_url: EndpointOpt = None,
    root: RootOpt = Path(),
) -> None:
    """Update history of a stack with the git commit and branch each update ran from,
    and each update's bake verdict when a bake ledger is configured."""
    from mlstack.delivery.history import load_history, read_history_file, render_table
    from mlstack.delivery.verdicts import verdicts_for

    updates = read_history_file(history_file) if history_file else load_history(stack, root)
    where = _ledger(ledger, endpoint_url)
    verdicts = verdicts_for(stack, updates, where.records(stack)) if where else None
    if limit > 0:
        updates = updates[:limit]
    if as_json:
        rows = []
        for u in updates:
            row = u.to_json()
            if verdicts is not None:
                row["bake"] = verdicts.of(u.version)
            rows.append(row)
        typer.echo(json.dumps(rows, indent=2))
    elif updates:
        typer.echo(render_table(updates, dict(verdicts.by_version) if verdicts else None))
        for problem in verdicts.mismatched if verdicts else ():
            typer.echo(f"note: ignored bake record: {problem}")
    else:
        typer.echo(f"stack {stack} has no history")


@app.command()
def bake(  # noqa: PLR0917 (CLI options)
    stack: StackArg,
    minutes: Annotated[
        float | None,
        typer.Option("--minutes", help="How long to watch [mlstack:delivery.bakeMinutes]."),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", help="Seconds between polls.")
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    skip_kubernetes: Annotated[
        bool,
        typer.Option("--skip-kubernetes", help="Watch the alarms only (no cluster access)."),
    ] = False,
    kube_server: Annotated[
        str | None,
        typer.Option(
            "--kube-server", help="Kubernetes API URL (token in $MLSTACK_KUBE_TOKEN) [EKS]."
        ),
    ] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Record the verdict with the update (ledger).")
    ] = False,
    version: Annotated[
        int | None, typer.Option("--version", help="History version judged [the newest].")
    ] = None,
    kind: Annotated[
        str, typer.Option("--kind", help="What is baked: deploy or rollback (recorded).")
    ] = "deploy",
    page_on_failure: Annotated[
        bool,
        typer.Option(
            "--page-on-failure",
            help="On any non-zero exit (a breach, or a bake that could not run), publish to "
            "the alert topic.",
        ),
    ] = False,
    plan_commit: Annotated[
        str | None,
        typer.Option(
            "--plan-commit",
            help="Watch the alarms of this commit's plan (a rollback's target) [the checkout].",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Alarm states before the update (--baseline-out)."),
    ] = None,
    baseline_out: Annotated[
        Path | None,
        typer.Option(
            "--baseline-out",
            help="Only record the alarms' states now (run before the update) into FILE.",
        ),
    ] = None,
    ledger: LedgerOpt = None,
    endpoint_url: EndpointOpt = None,
    root: RootOpt = Path(),
) -> None:
    """Watch the stack's alarms and inference rollouts after an update; exit 1 on a breach
    (an inconclusive bake, where the new version served nothing, exits 0)."""
    from mlstack.delivery.bake_stack import BakeOptions, bake_stack, is_tty

    if kind not in ("deploy", "rollback"):
        raise UsageError(f"--kind {kind!r}: allowed are deploy, rollback")
    tty = is_tty() and not as_json
    options = BakeOptions(
        stack=stack,
        root=root.resolve(),
        minutes=minutes,
        poll_seconds=poll_seconds,
        skip_kubernetes=skip_kubernetes,
        kube_server=kube_server,
        endpoint_url=endpoint_url,
        record=record,
        version=version,
        ledger=ledger,
        kind=kind,
        page_on_failure=page_on_failure,
        tty=tty,
        as_json=as_json,
        plan_commit=plan_commit,
        baseline=baseline,
        baseline_out=baseline_out,
    )
    say = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    progress = (lambda line: typer.echo(line, nl=False)) if tty else say
    outcome = bake_stack(options, echo=say, progress_out=progress)
    report = outcome.report
    if report is None:  # --baseline-out
        return
    if as_json:
        data = report.to_json() | {"recorded": outcome.recorded, "paged": outcome.paged}
        typer.echo(json.dumps(data, indent=2))
    else:
        for note in report.notes:
            typer.echo(f"note: {note}")
        if report.insufficient_data:
            typer.echo(f"still INSUFFICIENT_DATA: {', '.join(report.insufficient_data)}")
        if report.checksum_failures:
            typer.echo(f"model loader checksum failures: {report.checksum_failures}")
        if outcome.recorded:
            typer.echo(f"verdict recorded: {outcome.recorded}")
        if outcome.paged:
            typer.echo(f"paged: {outcome.paged}")
        typer.echo(report.summary())
    if report.failed:
        from mlstack.delivery.bake import BakeBreachedError

        raise BakeBreachedError(report.summary())


@app.command()
def promote(  # noqa: PLR0917 (CLI options)
    model: Annotated[str, typer.Argument(help="Model name (mlstack:models[].name).")],
    source: Annotated[str, typer.Option("--from", help="Stack promoted from.")] = "dev",
    target: Annotated[str, typer.Option("--to", help="Stack promoted to.")] = "prod",
    force: Annotated[
        bool, typer.Option("--force", help="Promote a version that has not passed a bake.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why --force (recorded in the file).")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Model bucket to check [target's output].")
    ] = None,
    ledger: LedgerOpt = None,
    endpoint_url: EndpointOpt = None,
    root: RootOpt = Path(),
) -> None:
    """Copy a model's baked serving spec (version, image, args, GPUs, SLO...) up a stage."""
    from mlstack.delivery.promote import baked_specs
    from mlstack.delivery.promote import promote as run_promote

    root = root.resolve()
    where = _ledger(ledger, endpoint_url)
    evidence = baked_specs(where, source) if where is not None else None
    result = run_promote(
        model,
        root,
        source=source,
        target=target,
        force=force,
        reason=reason,
        evidence=evidence.ran if evidence else None,
        evidence_source=evidence.source if evidence else "no bake ledger configured",
        bucket=bucket,
        endpoint_url=endpoint_url,
    )
    was = f" (was {result.previous})" if result.previous else " (new entry)"
    typer.echo(f"{result.path.name}: {model} -> {result.version}{was}")
    if result.copied:
        typer.echo(f"  also copied from {source}: {', '.join(result.copied)}")
    typer.echo(f"  serving spec: {result.digest}")
    if result.forced:
        typer.echo(f"  forced: {reason} (recorded as a comment)")
    for difference in result.differences:
        typer.echo(f"  differs from {source} (forced): {difference}")
    typer.echo(
        f"  bucket checked: {result.bucket_checked}"
        if result.bucket_checked
        else "  bucket not checked (no credentials or no bucket name)"
    )


@app.command(name="page")
def page_command(
    stack: StackArg,
    *,
    subject: Annotated[str, typer.Option("--subject", help="Message subject.")],
    message: Annotated[str, typer.Option("--message", help="Message text.")],
    endpoint_url: EndpointOpt = None,
    root: RootOpt = Path(),
) -> None:
    """Publish to the stack's alert topic (the workflows page when a rollback fails)."""
    from mlstack.delivery.bake_stack import page_stack

    typer.echo(f"paged: {page_stack(stack, root.resolve(), subject, message, endpoint_url)}")


@app.command()
def rollback(
    stack: StackArg,
    *,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="History version, a commit this stack deployed, or last-good (the newest "
            "update whose bake passed).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Stop after the diff (no Pulumi CLI needed).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Deploy without asking.")] = False,
    history_file: Annotated[
        Path | None,
        typer.Option(
            "--history-file",
            help="Read a saved `pulumi stack history --json` instead of running the Pulumi "
            "CLI (so this works where the CLI is not installed).",
        ),
    ] = None,
    allow_unbaked: Annotated[
        bool,
        typer.Option("--allow-unbaked", help="Accept a target that was never baked."),
    ] = False,
    ledger: LedgerOpt = None,
    endpoint_url: EndpointOpt = None,
    root: RootOpt = Path(),
) -> None:
    """Redeploy the program and config of a prior update (git worktree + pulumi up)."""
    from mlstack.delivery.rollback import run_rollback

    run_rollback(
        stack,
        to,
        root.resolve(),
        dry_run=dry_run,
        assume_yes=yes,
        history_file=history_file,
        echo=typer.echo,
        confirm=lambda question: typer.confirm(question, default=False),
        color=sys.stdout.isatty(),
        ledger=_ledger(ledger, endpoint_url),
        allow_unbaked=allow_unbaked,
    )


@loader_app.command("push")
def loader_push(stack: StackArg, root: RootOpt = Path()) -> None:
    """Build and push the pinned loader image to the stack's repository unless it is there
    (needs docker and the stack's AWS credentials; run before `deployModels: true`)."""
    from mlstack.delivery.loader_image import push_loader_image

    push_loader_image(stack, root.resolve(), echo=typer.echo)


@app.command()
def preflight(
    stack: StackArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    model_bucket: Annotated[
        str | None,
        typer.Option(
            "--model-bucket",
            help="Model bucket name [$MLSTACK_MODEL_BUCKET, else found by the stack's tags].",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Judge dates (standard support, cert expiry) as of YYYY-MM-DD (default: today).",
        ),
    ] = None,
    root: RootOpt = Path(),
) -> None:
    """Read-only checks against the AWS account before `pulumi up` (exit 1 on any FAIL)."""
    import datetime as dt
    import os

    from mlstack.preflight.run import collect_facts, run_preflight

    day: dt.date | None = None
    if as_of is not None:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            raise UsageError(f"--as-of {as_of!r}: not a date; allowed: YYYY-MM-DD") from None
    facts = collect_facts(stack, root.resolve())
    bucket = model_bucket or os.environ.get("MLSTACK_MODEL_BUCKET") or None
    report = run_preflight(facts, today=day, model_bucket=bucket)
    typer.echo(report.render_json() if as_json else report.render_text(), nl=False)
    if not report.ok:
        raise typer.Exit(1)


def _no_credentials(exc: BaseException) -> UsageError | None:
    """botocore's ``NoCredentialsError`` as the exit-2 how-to (botocore loaded only if used)."""
    if "botocore" not in sys.modules:
        return None
    from mlstack.aws import credentials_error

    return credentials_error(exc)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _DEBUG["on"] = "--debug" in args
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="mlstack", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except click_exceptions.ClickException as exc:
        exc.show()
        return 2
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except MlstackError as exc:
        if _DEBUG["on"]:
            raise
        typer.echo(printable(f"error: {exc}", keep_newlines=True), err=True)
        return exc.exit_code
    except Exception as exc:
        if _DEBUG["on"]:
            raise
        no_credentials = _no_credentials(exc)
        if no_credentials is not None:  # a call path that did not check them first
            typer.echo(printable(f"error: {no_credentials}"), err=True)
            return no_credentials.exit_code
        typer.echo(
            printable(f"error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)"),
            err=True,
        )
        return 1


def entrypoint() -> None:
    """``python -m mlstack.cli``: Ctrl-C ends any command at once, cleaned up, exit 130
    (the console script is ``mlstack.entry:main``, which installs it before any import)."""
    from mlstack import interrupt

    interrupt.install()
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
