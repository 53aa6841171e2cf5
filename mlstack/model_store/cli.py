"""``mlstack model push | list | verify | fetch | pin`` (registered in ``mlstack.cli``).

boto3 is imported only when a command runs, so ``mlstack --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from mlstack.errors import UsageError

model_app = typer.Typer(
    rich_markup_mode=None,
    name="model",
    help=(
        "Model artifacts in the model bucket: content-addressed blobs under "
        "models/<name>/blobs/sha256/ and one manifest per version, written last "
        "(docs/model-artifacts.md)."
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


def binary_rate(bytes_per_second: float | None) -> str:
    """A transfer rate in the binary units the byte counts use (``12.3 MiB/s``)."""
    if bytes_per_second is None:
        return "?"
    value = float(bytes_per_second)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}/s" if unit == "B" else f"{value:.1f} {unit}/s"
        value /= 1024
    return f"{bytes_per_second:.0f} B/s"  # pragma: no cover - the loop always returns


def _speed_column():
    """rich's TransferSpeedColumn speaks decimal MB/s next to the bar's MiB: this one
    uses binary units like DownloadColumn(binary_units=True)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BinarySpeedColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(binary_rate(task.finished_speed or task.speed), style="progress.data.speed")

    return BinarySpeedColumn()


class _Bar:
    """A rich progress bar on stderr, fed from worker threads; one task per phase."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _speed_column(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._label = label
        self._phase = ""
        self._task: Any = None
        self._lock = threading.Lock()
        self._files = 0
        self._total_files = 0
        self._started = False

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._progress.stop()

    def start(self, total_bytes: int, total_files: int, phase: str = "upload") -> None:
        """Called once per phase, when its work is known: only then is a bar drawn."""
        with self._lock:
            self._phase = phase
            self._files = 0
            self._total_files = total_files
            description = self._describe()
            self._task = self._progress.add_task(description, total=total_bytes)
        if not self._started:
            self._progress.start()
            self._started = True

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=nbytes)

    def file_done(self, relpath: str, resumed: bool) -> None:
        with self._lock:
            self._files += 1
            description = self._describe()
            task = self._task
        if task is not None:
            self._progress.update(task, description=description)

    def _describe(self) -> str:
        return f"{self._label} {self._phase} {self._files}/{self._total_files} files"


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
    from mlstack import aws
    from mlstack.model_store import s3

    aws.check_endpoint_url(endpoint_url)
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
    """Upload DIRECTORY as one immutable version (content-addressed blobs, manifest last)."""
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
    files = scan_model_dir(directory, exclude or ())
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
    where = f"s3://{bucket_name}/{result.manifest_key}"
    if result.outcome == "identical":
        typer.echo(f"{name} version {version} at {where}: {result.detail}")
        return
    rate = binary_rate(result.uploaded_bytes / result.seconds if result.seconds else 0.0)
    present = f", {result.present_blobs} already in the bucket" if result.present_blobs else ""
    typer.echo(
        f"pushed {name} version {version}: {len(manifest.files)} files, "
        f"{_human(manifest.total_bytes)}, manifest {where} ({result.uploaded_blobs} blobs "
        f"uploaded{present}; {result.seconds:.1f} s, {rate})"
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
    """List model versions: published, or damaged (a blob missing or the wrong size);
    exit 1 when any version is damaged."""
    from mlstack.model_store.catalog import list_versions

    if name is not None:
        from components.storage import layout

        problem = layout.name_problem(name)
        if problem:
            raise UsageError(f"--name {name!r}: {problem}")
    client, bucket_name = _client(
        bucket=bucket, stack=stack, endpoint_url=endpoint_url, region=region, root=root
    )
    catalog = list_versions(client, bucket_name, name)
    versions = catalog.versions
    if as_json:
        document = {
            "versions": [v.to_json() for v in versions],
            "unreferencedBlobs": {
                model: {"blobs": count, "bytes": size}
                for model, (count, size) in sorted(catalog.unreferenced.items())
            },
        }
        typer.echo(json.dumps(document, indent=2))
        _fail_on_damaged(versions)
        return
    if not versions and not catalog.unreferenced:
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
    for v in versions:
        for problem in v.problems:
            typer.echo(f"{v.name} {v.version} damaged: {problem}")
    for model, (count, size) in sorted(catalog.unreferenced.items()):
        typer.echo(
            f"{model}: {count} blob(s), {_human(size)}, referenced by no manifest (an "
            "unfinished push, or the loser of a race; rerun a failed push to finish it)"
        )
    _fail_on_damaged(versions)


def _fail_on_damaged(versions: list[Any]) -> None:
    """Exit 1 naming every damaged version (the listing above says why each is)."""
    from mlstack.errors import MlstackError

    damaged = [f"{v.name} {v.version}" for v in versions if v.status == "damaged"]
    if damaged:
        raise MlstackError(
            f"{len(damaged)} damaged version(s): {', '.join(damaged)}; never deploy them "
            "(`mlstack model verify` re-reads every byte)"
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
    """Re-read every blob of a version and check size and sha256 against its manifest."""
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
            f"{name} version {version} (s3://{bucket_name}/{report.manifest_key}) FAILED "
            f"verification ({count} problem{'s' if count != 1 else ''}):\n  - "
            + "\n  - ".join(report.problems)
        )
    typer.echo(
        f"verified {name} version {version}: {files} files, {_human(report.checked_bytes)}, "
        "every sha256 matches the manifest"
    )


@model_app.command()
def fetch(
    *,
    name: NameOpt,
    version: VersionOpt,
    cache_dir: Annotated[
        Path,
        typer.Option("--cache-dir", help="Node-local cache; entries are keyed by manifest digest."),
    ],
    stack: StackOpt = None,
    bucket: BucketOpt = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    root: RootOpt = Path(),
    concurrency: ConcurrencyOpt = 8,
    part_size_mib: Annotated[
        int, typer.Option("--part-size-mib", help="Bytes per ranged GET, MiB.", min=1, max=1024)
    ] = 16,
    manifest_sha256: Annotated[
        str | None,
        typer.Option("--manifest-sha256", help="Refuse unless the manifest has this sha256."),
    ] = None,
    cache_limit_bytes: Annotated[
        int | None,
        typer.Option("--cache-limit-bytes", help="Refuse to grow the cache beyond this size."),
    ] = None,
    link: Annotated[
        Path | None,
        typer.Option("--link", help="Point this symlink at the verified copy (atomically)."),
    ] = None,
    evict: Annotated[
        bool,
        typer.Option(
            "--evict",
            help="Make room under --cache-limit-bytes by evicting the least recently used "
            "versions no pod uses (a node-shared cache), instead of refusing.",
        ),
    ] = False,
    wait_for: Annotated[
        Path | None,
        typer.Option(
            "--wait-for",
            help="Start only once this file exists (the hold sidecar's ready file).",
        ),
    ] = None,
    wait_seconds: Annotated[
        float, typer.Option("--wait-seconds", help="How long --wait-for may take.", min=1)
    ] = 120.0,
    room_wait_seconds: Annotated[
        float,
        typer.Option(
            "--room-wait-seconds",
            help="With --evict: how long to wait for versions in use to be released when "
            "the cache is full (0: fail at once).",
            min=0,
        ),
    ] = 0.0,
    trust_cache: Annotated[
        bool,
        typer.Option(
            "--trust-cache",
            help="Use a cache hit after checking sizes only (default: re-hash every file).",
        ),
    ] = False,
) -> None:
    """Fetch a version into the cache: parallel ranged GETs, hashed while streaming, verified,
    published by rename. One JSON log line per phase on stdout."""
    from mlstack.model_store import node_cache
    from mlstack.model_store.fetch import FetchSettings, MiB, fetch_model, json_logger

    _check_name_version(name, version)
    settings = FetchSettings(
        concurrency=concurrency,
        part_size=part_size_mib * MiB,
        expected_manifest_sha256=manifest_sha256,
        cache_limit_bytes=cache_limit_bytes,
        evict=evict,
        room_wait_seconds=room_wait_seconds,
        verify_hits=not trust_cache,
    )
    problems = settings.problems()
    if problems:
        raise UsageError("; ".join(problems))
    if wait_for is not None:
        node_cache.wait_for(wait_for, wait_seconds, f"model fetch {name} {version}")
    client, bucket_name = _client(
        bucket=bucket,
        stack=stack,
        endpoint_url=endpoint_url,
        region=region,
        root=root,
        connections=concurrency + 4,
    )
    fetch_model(
        client,
        bucket_name,
        name,
        version,
        cache_dir,
        settings=settings,
        link=link,
        log=json_logger(typer.echo),
    )


@model_app.command()
def hold(
    *,
    name: NameOpt,
    version: VersionOpt,
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="The node-shared cache.")],
    ready_file: Annotated[
        Path, typer.Option("--ready-file", help="Written once the version is held.")
    ],
    link: Annotated[
        Path | None,
        typer.Option("--link", help="The loader's symlink: on a restart its entry must exist."),
    ] = None,
) -> None:
    """Hold a version's use lock in the node cache until SIGTERM: the pod's claim that no
    eviction may remove what it serves (runs as the pod's model-cache-hold sidecar)."""
    from mlstack.model_store import node_cache
    from mlstack.model_store.fetch import json_logger

    _check_name_version(name, version)
    node_cache.hold(cache_dir, name, version, ready_file, link=link, log=json_logger(typer.echo))


@model_app.command("cache-prepare")
def cache_prepare(
    *,
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="The node-shared cache.")],
    owner: Annotated[int, typer.Option("--owner", help="uid that owns the cache.", min=1)],
    group: Annotated[int, typer.Option("--group", help="gid of the cache.", min=1)],
) -> None:
    """Create the node cache's root and give it to the loader user (runs as root, with
    only CAP_CHOWN, before the loader). Idempotent."""
    from mlstack.model_store import node_cache

    changed = node_cache.prepare(cache_dir, owner, group)
    typer.echo(
        json.dumps(
            {"event": "model-cache", "phase": "prepare", "path": str(cache_dir), "changed": changed}
        )
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
