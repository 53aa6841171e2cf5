"""``mlstack model push`` against the real moto server: publish, immutability, faults."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from mlstack.model_store.local import scan_model_dir
from mlstack.model_store.push import (
    FileChangedError,
    MiB,
    PushError,
    PushSettings,
    VersionExistsError,
    push_model,
)
from mlstack.model_store.s3 import make_client
from tests.mlstack.model_store.conftest import Run, Store, sha256_of, write_model

PREFIX = "models/resnet50/v3/"
MANIFEST = PREFIX + "manifest.json"
SMALL_PARTS = PushSettings(concurrency=4, part_size=5 * MiB)


def _push_cli(run: Run, store: Store, directory: Path, *extra: str) -> tuple[int, str, str]:
    return run(
        "model", "push", str(directory), "--name", "resnet50", "--version", "v3",
        "--part-size-mib", "5", *store.args(), *extra,
    )  # fmt: skip


def _client(store: Store) -> Any:
    return make_client(store.endpoint, "us-east-1", max_connections=16)


def _uploads_in_progress(store: Store) -> list[str]:
    response = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [u["Key"] for u in response.get("Uploads", [])]


def test_push_publishes_every_file_and_a_manifest_that_describes_them(
    run: Run, store: Store, model_dir: Path
) -> None:
    code, out, err = _push_cli(
        run, store, model_dir, "--framework", "onnx", "--runtime", "triton",
        "--git-commit", "0123456789abcdef0123456789abcdef01234567",
    )  # fmt: skip

    assert code == 0, err
    assert "pushed resnet50 version v3: 4 files" in out
    local = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    assert store.object_keys(PREFIX) == sorted([PREFIX + rel for rel in local] + [MANIFEST])
    for rel in local:
        assert store.read(PREFIX + rel) == (model_dir / rel).read_bytes()
    manifest = json.loads(store.read(MANIFEST))
    assert manifest["name"] == "resnet50"
    assert manifest["version"] == "v3"
    assert manifest["schemaVersion"] == 1
    assert manifest["gitCommit"] == "0123456789abcdef0123456789abcdef01234567"
    assert manifest["hints"] == {"framework": "onnx", "runtime": "triton"}
    assert [f["path"] for f in manifest["files"]] == local
    for entry in manifest["files"]:
        path = model_dir / entry["path"]
        assert entry["size"] == path.stat().st_size
        assert entry["sha256"] == sha256_of(path)
        head = store.client.head_object(Bucket=store.bucket, Key=PREFIX + entry["path"])
        assert entry["versionId"] == head["VersionId"]
    assert manifest["totalBytes"] == sum(f["size"] for f in manifest["files"])
    assert manifest["createdAt"].endswith("Z")


def test_large_file_goes_up_as_a_multipart_object_with_composite_sha256(
    store: Store, model_dir: Path
) -> None:
    files = scan_model_dir(model_dir)
    push_model(_client(store), store.bucket, "resnet50", "v3", files, settings=SMALL_PARTS)

    head = store.client.head_object(
        Bucket=store.bucket, Key=PREFIX + "1/model.onnx", ChecksumMode="ENABLED"
    )
    assert head["ETag"].strip('"').endswith("-3")  # 12 MiB + 123 B in 5 MiB parts
    assert head["Metadata"]["mlstack-part-size"] == str(5 * MiB)
    assert head.get("ChecksumType") == "COMPOSITE"
    assert _uploads_in_progress(store) == []


def test_pushing_an_existing_version_is_refused_and_changes_nothing(
    run: Run, store: Store, model_dir: Path
) -> None:
    assert _push_cli(run, store, model_dir)[0] == 0
    before = store.client.list_object_versions(Bucket=store.bucket)["Versions"]
    (model_dir / "labels.txt").write_bytes(b"different labels")

    code, _, err = _push_cli(run, store, model_dir)

    assert code == 1
    assert "already exists" in err and "immutable" in err
    after = store.client.list_object_versions(Bucket=store.bucket)["Versions"]
    assert sorted(v["VersionId"] for v in after) == sorted(v["VersionId"] for v in before)


def test_interrupted_push_writes_no_manifest_and_a_rerun_completes_it(
    run: Run, store: Store, model_dir: Path
) -> None:
    client = _client(store)

    def drop_labels_upload(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == PREFIX + "labels.txt":
            raise ConnectionResetError("network dropped")

    client.meta.events.register("before-parameter-build.s3.PutObject", drop_labels_upload)
    files = scan_model_dir(model_dir)
    with pytest.raises(PushError) as failure:
        push_model(
            client, store.bucket, "resnet50", "v3", files,
            settings=PushSettings(concurrency=1, part_size=5 * MiB),
        )  # fmt: skip

    message = str(failure.value)
    assert "labels.txt" in message and "network dropped" in message
    assert "no manifest was written" in message and "Rerun" in message
    assert MANIFEST not in store.object_keys()
    code, out, _ = run("model", "list", *store.args()[:4])
    assert code == 0 and "incomplete" in out
    done_before = {
        key: store.client.head_object(Bucket=store.bucket, Key=key)["VersionId"]
        for key in store.object_keys(PREFIX)
    }
    # Sequential (concurrency 1, sorted paths): the multipart file and two small ones finished.
    assert sorted(done_before) == [
        PREFIX + p for p in ("1/model.onnx", "config.pbtxt", "empty.txt")
    ]

    code, out, err = _push_cli(run, store, model_dir)

    assert code == 0, err
    assert f"{len(done_before)} already there" in out
    for key, version_id in done_before.items():  # not uploaded a second time
        assert store.client.head_object(Bucket=store.bucket, Key=key)["VersionId"] == version_id
    assert run("model", "verify", "--name", "resnet50", "--version", "v3", *store.args())[0] == 0


def test_rerun_replaces_an_unpublished_object_whose_bytes_differ(
    run: Run, store: Store, model_dir: Path
) -> None:
    store.client.put_object(Bucket=store.bucket, Key=PREFIX + "labels.txt", Body=b"x" * 2048)

    code, out, err = _push_cli(run, store, model_dir)

    assert code == 0, err
    assert "already there" not in out
    assert store.read(PREFIX + "labels.txt") == (model_dir / "labels.txt").read_bytes()


def test_file_changed_during_upload_is_not_completed_and_nothing_is_published(
    store: Store, model_dir: Path
) -> None:
    client = _client(store)
    target = model_dir / "1/model.onnx"

    def append_once(**_: Any) -> None:
        if not getattr(append_once, "done", False):
            append_once.done = True  # type: ignore[attr-defined]
            with target.open("ab") as handle:
                handle.write(b"late write")

    client.meta.events.register("before-call.s3.UploadPart", append_once)
    with pytest.raises(PushError) as failure:
        push_model(
            client, store.bucket, "resnet50", "v3", scan_model_dir(model_dir),
            settings=SMALL_PARTS,
        )  # fmt: skip

    assert "1/model.onnx changed on disk while it was being uploaded" in str(failure.value)
    assert isinstance(failure.value.__cause__, FileChangedError)
    assert PREFIX + "1/model.onnx" not in store.object_keys()
    assert MANIFEST not in store.object_keys()
    assert _uploads_in_progress(store) == []


def test_objects_left_by_a_push_of_other_files_block_publishing(
    run: Run, store: Store, model_dir: Path
) -> None:
    store.client.put_object(Bucket=store.bucket, Key=PREFIX + "old-shard.bin", Body=b"stale")

    code, _, err = _push_cli(run, store, model_dir)

    assert code == 1
    assert "old-shard.bin" in err and "not in this directory" in err
    assert store.object_keys(PREFIX) == [PREFIX + "old-shard.bin"]


def test_a_concurrent_publish_of_the_same_version_is_not_overwritten(
    store: Store, model_dir: Path
) -> None:
    client = _client(store)
    other = b'{"written": "by another push"}'

    def publish_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == MANIFEST:
            store.client.put_object(Bucket=store.bucket, Key=MANIFEST, Body=other)

    client.meta.events.register("before-parameter-build.s3.PutObject", publish_first)
    with pytest.raises(VersionExistsError, match="published by another push"):
        push_model(
            client, store.bucket, "resnet50", "v3", scan_model_dir(model_dir),
            settings=SMALL_PARTS,
        )  # fmt: skip
    assert store.read(MANIFEST) == other


def test_parts_are_uploaded_in_parallel(store: Store, tmp_path: Path) -> None:
    """Two UploadPart calls must be in flight at once, or the barrier breaks the push."""
    directory = write_model(tmp_path / "m", {"weights.bin": 11 * MiB})
    client = _client(store)
    barrier = threading.Barrier(2, timeout=10)
    calls = itertools.count(1)

    def meet(**_: Any) -> None:
        if next(calls) <= 2:
            barrier.wait()  # BrokenBarrierError after 10 s if the second call never comes

    client.meta.events.register("before-call.s3.UploadPart", meet)
    result = push_model(
        client, store.bucket, "m", "v1", scan_model_dir(directory), settings=SMALL_PARTS
    )
    assert result.uploaded_files == 1


def test_progress_sees_every_byte_and_file(store: Store, model_dir: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.total = -1
            self.bytes = 0
            self.files: list[str] = []
            self.lock = threading.Lock()

        def start(self, total_bytes: int, total_files: int) -> None:
            self.total = total_bytes

        def advance(self, nbytes: int) -> None:
            with self.lock:
                self.bytes += nbytes

        def file_done(self, relpath: str, resumed: bool) -> None:
            with self.lock:
                self.files.append(relpath)

    recorder = Recorder()
    files = scan_model_dir(model_dir)
    push_model(
        _client(store), store.bucket, "resnet50", "v3", files,
        settings=SMALL_PARTS, progress=recorder,
    )  # fmt: skip
    assert recorder.total == recorder.bytes == sum(f.size for f in files)
    assert sorted(recorder.files) == [f.relpath for f in files]


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("ResNet50", "v1", "DNS-1035"),
        ("resnet_50", "v1", "DNS-1035"),
        ("-resnet", "v1", "DNS-1035"),
        ("r" * 46, "v1", "at most 45"),
        ("3b-model", "v1", "DNS-1035"),
        ("resnet50", "../v1", "safe path segment"),
        ("resnet50", "v1/extra", "safe path segment"),
        ("resnet50", ".hidden", "safe path segment"),
        ("resnet50", "v 1", "safe path segment"),
    ],
)
def test_bad_names_and_versions_are_usage_errors_and_upload_nothing(
    *, run: Run, store: Store, model_dir: Path, name: str, version: str, expected: str
) -> None:
    code, _, err = run(
        "model", "push", str(model_dir), "--name", name, "--version", version, *store.args()
    )
    assert code == 2
    assert expected in err
    assert store.object_keys() == []


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (None, "does not exist"),
        ({}, "is empty"),
        ({"manifest.json": b"{}"}, "reserved for the manifest"),
    ],
)
def test_unusable_model_directories_are_usage_errors(
    run: Run, store: Store, tmp_path: Path, layout: dict[str, bytes] | None, expected: str
) -> None:
    directory = tmp_path / "model"
    if layout is not None:
        directory.mkdir()
        write_model(directory, dict(layout))

    code, _, err = _push_cli(run, store, directory)

    assert code == 2
    assert expected in err
    assert store.object_keys() == []


def test_missing_bucket_is_a_clear_error(run: Run, store: Store, model_dir: Path) -> None:
    code, _, err = run(
        "model", "push", str(model_dir), "--name", "resnet50", "--version", "v3",
        "--bucket", "no-such-bucket", "--endpoint-url", store.endpoint, "--no-progress",
    )  # fmt: skip
    assert code == 1
    assert "bucket 'no-such-bucket' does not exist" in err


def test_missing_credentials_are_a_clear_error(
    run: Run, store: Store, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    code, _, err = _push_cli(run, store, model_dir)

    assert code == 1
    assert "no AWS credentials found" in err
    assert "Traceback" not in err


def test_no_bucket_and_no_stack_is_a_usage_error(run: Run, store: Store, model_dir: Path) -> None:
    code, _, err = run(
        "model", "push", str(model_dir), "--name", "resnet50", "--version", "v3",
        "--endpoint-url", store.endpoint, "--no-progress",
    )  # fmt: skip
    assert code == 2
    assert "no bucket" in err and "--stack" in err


def test_stack_without_the_pulumi_cli_says_to_pass_bucket(
    run: Run, store: Store, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = run(
        "model", "push", str(model_dir), "--name", "resnet50", "--version", "v3",
        "--stack", "dev", "--endpoint-url", store.endpoint, "--no-progress",
    )  # fmt: skip
    assert code == 2
    assert "Pulumi CLI is not on PATH" in err and "--bucket" in err


def test_stack_output_names_the_bucket(
    run: Run, store: Store, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uses a stand-in ``pulumi`` executable (a shell script that records its arguments
    and prints a bucket name), not the real Pulumi CLI, which is not installable here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "pulumi-args.txt"
    stand_in = bin_dir / "pulumi"
    stand_in.write_text(f'#!/bin/sh\necho "$@" > {record}\necho {store.bucket}\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    code, out, err = run(
        "model", "push", str(model_dir), "--name", "resnet50", "--version", "v3",
        "--stack", "dev", "--endpoint-url", store.endpoint, "--no-progress",
        "--root", str(tmp_path),
    )  # fmt: skip

    assert code == 0, err
    assert f"s3://{store.bucket}/{PREFIX}" in out
    recorded = record.read_text().split()
    assert recorded[:6] == ["stack", "output", "modelBucketName", "--stack", "dev", "--cwd"]
    assert recorded[6] == str(tmp_path)


def test_a_failing_pulumi_cli_is_reported(
    run: Run, store: Store, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in ``pulumi`` that fails like an unknown stack does (not the real CLI)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "pulumi"
    stand_in.write_text("#!/bin/sh\necho 'error: no stack named dev found' >&2\nexit 255\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    code, _, err = run(
        "model", "list", "--stack", "dev", "--endpoint-url", store.endpoint,
    )  # fmt: skip

    assert code == 1
    assert "exit 255" in err and "no stack named dev found" in err


def test_region_comes_from_the_boto3_chain(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = make_client(store.endpoint)
    assert client.meta.region_name == "eu-west-1"
