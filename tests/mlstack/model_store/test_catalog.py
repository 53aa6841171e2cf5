"""``mlstack model list``: published and damaged versions, unreferenced blobs, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mlstack.model_store.conftest import Run, Store, blob, manifest_key, write_model


def _push(run: Run, store: Store, directory: Path, name: str, version: str) -> None:
    code, _, err = run(
        "model", "push", str(directory), "--name", name, "--version", version, *store.args()
    )  # fmt: skip
    assert code == 0, err


def _list(run: Run, store: Store, *extra: str) -> tuple[int, str, str]:
    return run("model", "list", "--bucket", store.bucket, "--endpoint-url", store.endpoint, *extra)


def test_lists_published_versions_and_unreferenced_blobs(
    run: Run, store: Store, tmp_path: Path
) -> None:
    small = write_model(tmp_path / "m", {"a.bin": 1000, "b/c.bin": 24})
    _push(run, store, small, "resnet50", "v1")
    _push(run, store, small, "resnet50", "v2")
    _push(run, store, small, "llama-3-8b-instruct", "2025-06-02")
    store.client.put_object(Bucket=store.bucket, Key=blob("resnet50", b"orphan"), Body=b"orphan")

    code, out, err = _list(run, store, "--json")

    assert code == 0, err
    document = json.loads(out)
    rows = document["versions"]
    assert [(r["name"], r["version"], r["status"]) for r in rows] == [
        ("llama-3-8b-instruct", "2025-06-02", "published"),
        ("resnet50", "v1", "published"),
        ("resnet50", "v2", "published"),
    ]
    assert rows[1]["files"] == 2 and rows[1]["totalBytes"] == 1024
    assert rows[1]["problems"] == []
    assert document["unreferencedBlobs"] == {"resnet50": {"blobs": 1, "bytes": 6}}

    code, out, _ = _list(run, store, "--name", "resnet50")
    assert code == 0
    assert "llama" not in out
    assert "resnet50: 1 blob(s), 6 B, referenced by no manifest" in out
    assert out.splitlines()[0].split() == [
        "NAME",
        "VERSION",
        "STATUS",
        "PUBLISHED",
        "FILES",
        "SIZE",
    ]


def test_a_version_with_a_missing_or_wrong_size_blob_is_listed_as_damaged(
    run: Run, store: Store, tmp_path: Path
) -> None:
    directory = write_model(tmp_path / "m", {"a.bin": b"A" * 100, "b.bin": b"B" * 50})
    _push(run, store, directory, "bert", "v1")
    store.client.delete_object(Bucket=store.bucket, Key=blob("bert", b"A" * 100))
    store.client.put_object(Bucket=store.bucket, Key=blob("bert", b"B" * 50), Body=b"B")

    code, out, err = _list(run, store, "--json")

    assert code == 1, err  # the checked thing failed (mlstack.errors)
    assert "1 damaged version(s): bert v1" in err
    (row,) = json.loads(out)["versions"]
    assert row["status"] == "damaged"
    assert any("a.bin" in p and "missing" in p for p in row["problems"])
    assert any("b.bin" in p and "holds 1 bytes" in p for p in row["problems"])
    code, out, err = _list(run, store)
    assert code == 1
    assert "damaged" in out and "published" not in out
    assert "1 damaged version(s): bert v1" in err


def test_an_unreadable_manifest_is_listed_as_damaged(
    run: Run, store: Store, tmp_path: Path
) -> None:
    store.client.put_object(Bucket=store.bucket, Key=manifest_key("bert", "v1"), Body=b"{nope")

    code, out, err = _list(run, store, "--json")

    assert code == 1, err
    assert "bert v1" in err
    (row,) = json.loads(out)["versions"]
    assert row["status"] == "damaged" and "not JSON" in row["problems"][0]


def test_list_exits_1_naming_only_the_damaged_versions(
    run: Run, store: Store, tmp_path: Path
) -> None:
    directory = write_model(tmp_path / "m", {"a.bin": b"A" * 100})
    _push(run, store, directory, "bert", "v1")
    _push(run, store, directory, "bert", "v2")
    store.client.put_object(Bucket=store.bucket, Key=manifest_key("bert", "v3"), Body=b"{nope")

    code, _, err = _list(run, store)

    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: 1 damaged version(s): bert v3;")
    assert "v1" not in err and "v2" not in err


def test_empty_bucket_and_unknown_model_say_so(run: Run, store: Store) -> None:
    code, out, _ = _list(run, store)
    assert code == 0 and "no model versions" in out
    code, out, _ = _list(run, store, "--name", "nothing-here")
    assert code == 0 and "no model versions" in out and "nothing-here" in out


def test_invalid_name_filter_is_a_usage_error(run: Run, store: Store) -> None:
    code, _, err = _list(run, store, "--name", "Bad/Name")
    assert code == 2
    assert "DNS-1035" in err
