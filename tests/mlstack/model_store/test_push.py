"""``mlstack model push`` against the real moto server: publish, immutability, faults."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from components.storage import layout
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
from tests.mlstack.model_store.conftest import (
    Run,
    Store,
    blob,
    manifest_key,
    sha256_of,
    write_model,
)

MANIFEST = manifest_key("resnet50", "v3")
BLOBS = "models/resnet50/blobs/sha256/"
SMALL_PARTS = PushSettings(concurrency=4, part_size=5 * MiB)


def _push_cli(
    run: Run, store: Store, directory: Path, *extra: str, version: str = "v3"
) -> tuple[int, str, str]:
    return run(
        "model", "push", str(directory), "--name", "resnet50", "--version", version,
        "--part-size-mib", "5", *store.args(), *extra,
    )  # fmt: skip


def _client(store: Store) -> Any:
    return make_client(store.endpoint, "us-east-1", max_connections=16)


def _uploads_in_progress(store: Store) -> list[str]:
    response = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [u["Key"] for u in response.get("Uploads", [])]


def _all_versions(store: Store) -> list[tuple[str, str]]:
    response = store.client.list_object_versions(Bucket=store.bucket)
    return sorted((v["Key"], v["VersionId"]) for v in response.get("Versions", []))


def test_push_publishes_content_addressed_blobs_and_a_manifest_naming_them(
    run: Run, store: Store, model_dir: Path
) -> None:
    code, out, err = _push_cli(
        run, store, model_dir, "--framework", "onnx", "--runtime", "triton",
        "--git-commit", "0123456789abcdef0123456789abcdef01234567",
    )  # fmt: skip

    assert code == 0, err
    assert "pushed resnet50 version v3: 4 files" in out and MANIFEST in out
    local = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    blobs = sorted(blob("resnet50", (model_dir / rel).read_bytes()) for rel in local)
    assert store.object_keys("models/") == sorted([*blobs, MANIFEST])
    for rel in local:
        data = (model_dir / rel).read_bytes()
        assert store.read(blob("resnet50", data)) == data
    manifest = json.loads(store.read(MANIFEST))
    assert manifest["name"] == "resnet50"
    assert manifest["version"] == "v3"
    assert manifest["schemaVersion"] == 2
    assert manifest["gitCommit"] == "0123456789abcdef0123456789abcdef01234567"
    assert manifest["hints"] == {"framework": "onnx", "runtime": "triton"}
    assert [f["path"] for f in manifest["files"]] == local
    for entry in manifest["files"]:
        path = model_dir / entry["path"]
        assert entry == {"path": entry["path"], "size": path.stat().st_size,
                         "sha256": sha256_of(path)}  # fmt: skip
    assert manifest["totalBytes"] == sum(f["size"] for f in manifest["files"])
    assert manifest["createdAt"].endswith("Z")
    assert _uploads_in_progress(store) == []


def test_large_file_goes_up_as_a_multipart_blob_with_composite_sha256(
    store: Store, model_dir: Path
) -> None:
    files = scan_model_dir(model_dir)
    push_model(_client(store), store.bucket, "resnet50", "v3", files, settings=SMALL_PARTS)

    key = blob("resnet50", (model_dir / "1/model.onnx").read_bytes())
    head = store.client.head_object(Bucket=store.bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3")  # 12 MiB + 123 B in 5 MiB parts
    assert head.get("ChecksumType") == "COMPOSITE"
    assert _uploads_in_progress(store) == []


def test_identical_files_share_one_blob_and_a_new_version_uploads_only_what_changed(
    run: Run, store: Store, tmp_path: Path
) -> None:
    same = b"same bytes" * 1000
    directory = write_model(tmp_path / "m", {"a.bin": same, "copy/a.bin": same, "w.bin": 4096})
    code, out, err = _push_cli(run, store, directory, version="v1")
    assert code == 0, err
    assert "2 blobs uploaded" in out
    first = _all_versions(store)

    (directory / "w.bin").write_bytes(b"retrained")
    code, out, err = _push_cli(run, store, directory, version="v2")

    assert code == 0, err
    assert "1 blobs uploaded, 1 already in the bucket" in out
    added = sorted(set(_all_versions(store)) - set(first))
    assert [key for key, _ in added] == sorted(
        [blob("resnet50", b"retrained"), manifest_key("resnet50", "v2")]
    )


def test_pushing_an_existing_version_with_other_content_is_refused_and_changes_nothing(
    run: Run, store: Store, model_dir: Path
) -> None:
    assert _push_cli(run, store, model_dir)[0] == 0
    before = _all_versions(store)
    (model_dir / "labels.txt").write_bytes(b"different labels")

    code, _, err = _push_cli(run, store, model_dir)

    assert code == 1
    assert "already published" in err and "immutable" in err and "labels.txt" in err
    assert _all_versions(store) == before


def test_same_size_other_bytes_is_refused_after_hashing(
    run: Run, store: Store, model_dir: Path
) -> None:
    assert _push_cli(run, store, model_dir)[0] == 0
    before = _all_versions(store)
    labels = model_dir / "labels.txt"
    labels.write_bytes(bytes(b ^ 0xFF for b in labels.read_bytes()))  # same size

    code, _, err = _push_cli(run, store, model_dir)

    assert code == 1
    assert "labels.txt: different content" in err
    assert _all_versions(store) == before


def test_repushing_identical_content_succeeds_saying_so_and_writes_nothing(
    run: Run, store: Store, model_dir: Path
) -> None:
    assert _push_cli(run, store, model_dir)[0] == 0
    before = _all_versions(store)

    code, out, err = _push_cli(run, store, model_dir)

    assert code == 0, err
    assert "already published earlier with identical files" in out
    assert _all_versions(store) == before


def _sorting_after(digests: set[str], size: int) -> bytes:
    """``size`` bytes whose sha256 sorts after every one of ``digests``.

    A push uploads the missing blobs in digest order and the first failure stops the
    rest, so a file of random bytes made to fail would be the first upload (leaving
    nothing behind) in about one run in three; these bytes make it the last.
    """
    highest = max(digests)
    for n in itertools.count():
        data = n.to_bytes(8, "big").ljust(size, b"\n")
        if hashlib.sha256(data).hexdigest() > highest:
            return data
    raise AssertionError("unreachable")


def test_interrupted_push_writes_no_manifest_and_a_rerun_uploads_only_missing_blobs(
    run: Run, store: Store, model_dir: Path
) -> None:
    client = _client(store)
    others = [p for p in model_dir.rglob("*") if p.is_file() and p.name != "labels.txt"]
    last = _sorting_after({sha256_of(p) for p in others}, size=2048)
    (model_dir / "labels.txt").write_bytes(last)  # uploaded after every other blob
    labels = blob("resnet50", last)

    def drop_labels_upload(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == labels:
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
    assert "No manifest was written" in message and "Rerun" in message
    assert MANIFEST not in store.object_keys()
    code, out, _ = run("model", "list", *store.args()[:4])
    assert code == 0 and "referenced by no manifest" in out
    done_before = dict(_all_versions(store))
    assert sorted(done_before) == sorted(blob("resnet50", p.read_bytes()) for p in others)

    code, out, err = _push_cli(run, store, model_dir)

    assert code == 0, err
    assert f"{len(done_before)} already in the bucket" in out
    after = dict(_all_versions(store))
    for key, version_id in done_before.items():  # not uploaded a second time
        assert after[key] == version_id
    assert run("model", "verify", "--name", "resnet50", "--version", "v3", *store.args())[0] == 0


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

    assert "1/model.onnx changed on disk while it was being pushed" in str(failure.value)
    assert isinstance(failure.value.__cause__, FileChangedError)
    assert MANIFEST not in store.object_keys()
    assert len([k for k in store.object_keys(BLOBS)]) <= 3  # the big blob never completed
    assert _uploads_in_progress(store) == []


def test_a_file_rewritten_between_hashing_and_upload_is_caught(
    store: Store, tmp_path: Path
) -> None:
    directory = write_model(tmp_path / "m", {"w.bin": b"A" * 1000})
    client = _client(store)

    rewritten: list[str] = []

    def rewrite(params: dict[str, Any], **_: Any) -> None:
        # The blob listing comes after hashing (an earlier listing reads the published
        # versions, before hashing: a rewrite there would be hashed as it is).
        if params.get("Prefix") == layout.blobs_prefix("m") and not rewritten:
            (directory / "w.bin").write_bytes(b"B" * 1000)
            rewritten.append(params["Prefix"])

    client.meta.events.register("before-parameter-build.s3.ListObjectsV2", rewrite)
    with pytest.raises(PushError, match="changed on disk"):
        push_model(client, store.bucket, "m", "v1", scan_model_dir(directory))
    assert rewritten, "the blob listing was never made: nothing tested"
    assert store.object_keys("models/") == []


def test_a_version_published_concurrently_with_other_content_is_not_overwritten(
    store: Store, model_dir: Path
) -> None:
    client = _client(store)
    winner = _other_manifest("resnet50", "v3")

    def publish_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == MANIFEST:
            store.client.put_object(Bucket=store.bucket, Key=MANIFEST, Body=winner)

    client.meta.events.register("before-parameter-build.s3.PutObject", publish_first)
    with pytest.raises(VersionExistsError) as failure:
        push_model(
            client, store.bucket, "resnet50", "v3", scan_model_dir(model_dir),
            settings=SMALL_PARTS,
        )  # fmt: skip
    message = str(failure.value)
    assert "by a concurrent push while this one ran with different content" in message
    assert "The published version was not changed" in message
    assert "belong to no version" in message
    assert store.read(MANIFEST) == winner
    assert len(store.versions_of(MANIFEST)) == 1


def test_a_blob_created_concurrently_is_accepted_not_rewritten(
    store: Store, tmp_path: Path
) -> None:
    data = b"weights" * 100
    directory = write_model(tmp_path / "m", {"w.bin": data})
    client = _client(store)
    key = blob("m", data)

    def someone_else_first(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key and not store.object_keys(key):
            store.client.put_object(Bucket=store.bucket, Key=key, Body=data)

    client.meta.events.register("before-parameter-build.s3.PutObject", someone_else_first)
    result = push_model(client, store.bucket, "m", "v1", scan_model_dir(directory))

    assert result.outcome == "published"
    assert result.uploaded_blobs == 0 and result.present_blobs == 1
    assert len(store.versions_of(key)) == 1


def test_a_damaged_blob_in_the_bucket_stops_the_push(store: Store, tmp_path: Path) -> None:
    data = b"good bytes" * 10
    directory = write_model(tmp_path / "m", {"w.bin": data})
    store.client.put_object(Bucket=store.bucket, Key=blob("m", data), Body=b"short")

    with pytest.raises(PushError) as failure:
        push_model(_client(store), store.bucket, "m", "v1", scan_model_dir(directory))

    assert blob("m", data) in str(failure.value) and "damaged" in str(failure.value)
    assert manifest_key("m", "v1") not in store.object_keys()


def test_a_store_without_conditional_writes_is_refused(store: Store, tmp_path: Path) -> None:
    directory = write_model(tmp_path / "m", {"w.bin": b"x" * 10})
    client = _client(store)

    def not_implemented(params: dict[str, Any], **_: Any) -> None:
        if params.get("IfNoneMatch") == "*":
            raise ClientError(
                {"Error": {"Code": "NotImplemented", "Message": "If-None-Match"}}, "PutObject"
            )

    client.meta.events.register("before-parameter-build.s3.PutObject", not_implemented)
    with pytest.raises(PushError, match="does not support conditional writes"):
        push_model(client, store.bucket, "m", "v1", scan_model_dir(directory))
    assert store.object_keys("models/") == []


def _other_manifest(name: str, version: str) -> bytes:
    document = {
        "schemaVersion": 2,
        "name": name,
        "version": version,
        "createdAt": "2025-01-01T00:00:00Z",
        "gitCommit": None,
        "hints": {},
        "fileCount": 1,
        "totalBytes": 1,
        "files": [{"path": "other.bin", "size": 1, "sha256": "0" * 64}],
    }
    return json.dumps(document).encode()


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
    assert result.uploaded_blobs == 1


def test_progress_sees_every_byte_and_file(store: Store, model_dir: Path) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.phases: list[tuple[str, int]] = []
            self.bytes: dict[str, int] = {}
            self.files: dict[str, list[str]] = {}
            self.lock = threading.Lock()

        def start(self, total_bytes: int, total_files: int, phase: str = "upload") -> None:
            self.phases.append((phase, total_bytes))
            self.bytes[phase] = 0
            self.files[phase] = []

        def advance(self, nbytes: int) -> None:
            with self.lock:
                self.bytes[self.phases[-1][0]] += nbytes

        def file_done(self, relpath: str, resumed: bool) -> None:
            with self.lock:
                self.files[self.phases[-1][0]].append(relpath)

    recorder = Recorder()
    files = scan_model_dir(model_dir)
    push_model(
        _client(store), store.bucket, "resnet50", "v3", files,
        settings=SMALL_PARTS, progress=recorder,
    )  # fmt: skip
    total = sum(f.size for f in files)
    assert recorder.phases == [("hash", total), ("upload", total)]
    assert recorder.bytes == {"hash": total, "upload": total}
    assert sorted(recorder.files["hash"]) == [f.relpath for f in files]
    assert sorted(recorder.files["upload"]) == [f.relpath for f in files]


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

    assert code == 2  # a missing prerequisite (mlstack.errors), the how-to in one line
    assert "no AWS credentials found" in err and "AWS_PROFILE" in err
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
    assert f"s3://{store.bucket}/{MANIFEST}" in out
    recorded = record.read_text().split()
    assert recorded[:6] == ["stack", "output", "modelBucketName", "--stack", "dev", "--cwd"]
    assert recorded[6] == str(tmp_path)


def test_a_failing_pulumi_cli_is_reported(
    run: Run, store: Store, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in ``pulumi`` (not the real CLI) that answers ``pulumi version`` and fails
    ``pulumi stack output`` like an unknown stack does: the operation failed (exit 1); a
    CLI whose ``version`` fails too is broken (exit 2, tests/mlstack/test_exit_codes.py)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "pulumi"
    stand_in.write_text(
        '#!/bin/sh\n[ "$1" = version ] && { echo v3.272.0; exit 0; }\n'
        "echo 'error: no stack named dev found' >&2\nexit 255\n"
    )
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
