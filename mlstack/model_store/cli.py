"""``mlstack model push | list | verify | pin`` (registered in ``mlstack.cli``).

boto3 is imported only when a command runs, so ``mlstack --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Annotated

import typer

from mlstack.errors import UsageError

model_app = typer.Typer(
    name="model",
    help=(
        "Model artifacts in the model bucket: models/<name>/<version>/ plus a manifest.json "
        "written last (docs/model-artifacts.md)."
    ),
    no_args_is_help=True,
)

NameOpt = Annotated[
    str, typer.Option("--name", help="Model name (DNS-1035 label, at most 45 characters).")
]
VersionOpt = Annotated[
    str, typer.Option("--version", help="Artifact version (one safe path segment).")
]
StackOpt = Annotated[
    str | None,
    typer.Option(
        "--stack", help="Read the bucket from this stack's output modelBucketName (Pulumi CLI)."
    ),
]
BucketOpt = Annotated[
    str | None,
    typer.Option("--bucket", help="Bucket name (else $MLSTACK_MODEL_BUCKET, else --stack)."),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="S3 endpoint of an S3-compatible store."),
]
RegionOpt = Annotated[
    str | None,
    typer.Option("--region", help="AWS region (default: the boto3 chain, else the stack's)."),
]
RootOpt = Annotated[
    Path, typer.Option("--root", help="Project directory holding the Pulumi.<stack>.yaml files.")
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-j", help="S3 requests in flight.", min=1, max=64)
]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Do not draw a progress bar.")]


class _Bar:
    """A rich progress bar on stderr, fed from upload threads."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._label = label
        self._task = self._progress.add_task(label, total=0, start=False)
        self._lock = threading.Lock()
        self._files = 0
        self._total_files = 0
        self._started = False

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._progress.stop()

    def start(self, total_bytes: int, total_files: int) -> None:
        """Called once the work is known: only then is the bar drawn."""
        self._total_files = total_files
        self._progress.update(self._task, total=total_bytes, description=self._describe())
        self._progress.start_task(self._task)
        self._progress.start()
        self._started = True

    def advance(self, nbytes: int) -> None:
        self._progress.update(self._task, advance=nbytes)

    def file_done(self, relpath: str, resumed: bool) -> None:
        with self._lock:
            self._files += 1
            description = self._describe()
        self._progress.update(self._task, description=description)

    def _describe(self) -> str:
        return f"{self._label} {self._files}/{self._total_files} files"


def _progress(enabled: bool, label: str):
    from contextlib import nullcontext

    from mlstack.model_store.push import NoProgress

    return _Bar(label) if enabled else nullcontext(NoProgress())


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _client(
    *,
    bucket: str | None,
    stack: str | None,
    endpoint_url: str | None,
    region: str | None,
    root: Path,
    connections: int = 10,
):
    from mlstack.model_store import s3

    name = s3.resolve_bucket(bucket, stack, root.resolve())
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region is None:
        import boto3

        region = boto3.Session().region_name or s3.stack_region(stack, root.resolve())
    client = s3.make_client(endpoint_url, region, max_connections=connections)
    s3.check_bucket(client, name)
    return client, name


def _git_commit() -> str | None:
    """HEAD of the git repository in the current directory, when there is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _check_name_version(name: str, version: str) -> None:
    from components.storage import layout

    problems = [p for p in (layout.name_problem(name), layout.version_problem(version)) if p]
    if problems:
        raise UsageError(f"--name {name!r} / --version {version!r}: " + "; ".join(problems))


@model_app.command()
def push(
    directory: Annotated[Path, typer.Argument(help="The model directory to upload.")],
    *,
    name: NameOpt,
    version: VersionOpt,
    stack: StackOpt = None,
    bucket: BucketOpt = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    root: RootOpt = Path(),
    concurrency: ConcurrencyOpt = 8,
    part_size_mib: Annotated[
        int, typer.Option("--part-size-mib", help="Multipart part size, MiB.", min=5, max=5120)
    ] = 8,
    framework: Annotated[
        str | None, typer.Option("--framework", help="Manifest hint, e.g. pytorch, onnx.")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option("--runtime", help="Manifest hint, e.g. vllm, triton.")
    ] = None,
    git_commit: Annotated[
        str | None,
        typer.Option(
            "--git-commit",
            help="Commit recorded in the manifest (default: git HEAD of the working directory).",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Glob of paths to leave out (repeatable), e.g. .git."),
    ] = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Upload DIRECTORY as models/<name>/<version>/ (parallel, checksummed, manifest last)."""
    from components.storage.layout import model_prefix
    from mlstack.model_store.local import scan_model_dir
    from mlstack.model_store.manifest import git_commit_problem, hint_problem
    from mlstack.model_store.push import MiB, PushSettings, push_model

    _check_name_version(name, version)
    hints = {k: v for k, v in (("framework", framework), ("runtime", runtime)) if v}
    problems = [p for k, v in hints.items() if (p := hint_problem(k, v))]
    commit = git_commit or _git_commit()
    if git_commit and (problem := git_commit_problem(git_commit)):
        problems.append(problem)
    if problems:
        raise UsageError("; ".join(problems))
    prefix = model_prefix(name, version)
    files = scan_model_dir(directory, exclude or (), prefix_bytes=len(prefix.encode()))
    client, bucket_name = _client(
        bucket=bucket,
        stack=stack,
        endpoint_url=endpoint_url,
        region=region,
        root=root,
        connections=concurrency + 4,
    )
    settings = PushSettings(
        concurrency=concurrency,
        part_size=part_size_mib * MiB,
        git_commit=commit if commit and not git_commit_problem(commit) else None,
        hints=hints,
    )
    with _progress(not no_progress, f"push {name}/{version}") as bar:
        result = push_model(
            client, bucket_name, name, version, files, settings=settings, progress=bar
        )
    manifest = result.manifest
    rate = result.uploaded_bytes / result.seconds / (1024 * 1024) if result.seconds else 0.0
    resumed = f", {result.resumed_files} already there" if result.resumed_files else ""
    typer.echo(
        f"pushed {name} version {version}: {len(manifest.files)} files, "
        f"{_human(manifest.total_bytes)} to s3://{bucket_name}/{result.prefix} "
        f"({result.uploaded_files} uploaded{resumed}; {result.seconds:.1f} s, {rate:.1f} MiB/s)"
    )


@model_app.command("list")
def list_command(
    *,
    name: Annotated[str | None, typer.Option("--name", help="Only this model.")] = None,
    stack: StackOpt = None,
    bucket: BucketOpt = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    root: RootOpt = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List model versions: published (manifest present) or incomplete."""
    from mlstack.model_store.catalog import list_versions

    if name is not None:
        from components.storage import layout

        problem = layout.name_problem(name)
        if problem:
            raise UsageError(f"--name {name!r}: {problem}")
    client, bucket_name = _client(
        bucket=bucket, stack=stack, endpoint_url=endpoint_url, region=region, root=root
    )
    versions = list_versions(client, bucket_name, name)
    if as_json:
        typer.echo(json.dumps([v.to_json() for v in versions], indent=2))
        return
    if not versions:
        typer.echo(f"no model versions in s3://{bucket_name}" + (f" for {name}" if name else ""))
        return
    rows = [("NAME", "VERSION", "STATUS", "PUBLISHED", "FILES", "SIZE")]
    rows += [
        (
            v.name,
            v.version,
            v.status,
            (v.published_at or "-")[:19].replace("T", " "),
            str(v.files),
            _human(v.total_bytes),
        )
        for v in versions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    incomplete = [v for v in versions if v.status == "incomplete"]
    if incomplete:
        typer.echo(
            f"{len(incomplete)} incomplete version(s): a push failed or is running; rerun it "
            "to finish"
        )


@model_app.command()
def verify(
    *,
    name: NameOpt,
    version: VersionOpt,
    stack: StackOpt = None,
    bucket: BucketOpt = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    root: RootOpt = Path(),
    concurrency: ConcurrencyOpt = 8,
    no_progress: NoProgressOpt = False,
) -> None:
    """Re-read every file of a version and check size and sha256 against its manifest."""
    from mlstack.errors import MlstackError
    from mlstack.model_store.verify import verify_model

    _check_name_version(name, version)
    client, bucket_name = _client(
        bucket=bucket,
        stack=stack,
        endpoint_url=endpoint_url,
        region=region,
        root=root,
        connections=concurrency + 4,
    )
    with _progress(not no_progress, f"verify {name}/{version}") as bar:
        report = verify_model(
            client, bucket_name, name, version, concurrency=concurrency, progress=bar
        )
    files = len(report.manifest.files)
    if not report.ok:
        count = len(report.problems)
        raise MlstackError(
            f"{name} version {version} in s3://{bucket_name}/{report.prefix} FAILED "
            f"verification ({count} problem{'s' if count != 1 else ''}):\n  - "
            + "\n  - ".join(report.problems)
        )
    typer.echo(
        f"verified {name} version {version}: {files} files, {_human(report.checked_bytes)}, "
        "every sha256 matches the manifest"
    )


@model_app.command()
def pin(
    stack: Annotated[str, typer.Argument(help="Stack name: edits Pulumi.<stack>.yaml.")],
    name: Annotated[str, typer.Argument(help="Model name (an entry of mlstack:models).")],
    version: Annotated[str, typer.Argument(help="Artifact version to serve.")],
    root: RootOpt = Path(),
) -> None:
    """Set a model's artifactVersion in Pulumi.<stack>.yaml, keeping comments and layout."""
    from mlstack.model_store.pin import pin_version

    result = pin_version(stack, name, version, root.resolve())
    if result.changed:
        typer.echo(f"{result.path.name}: {name} artifactVersion {result.previous} -> {version}")
    else:
        typer.echo(f"{result.path.name}: {name} already pinned to {version}")
