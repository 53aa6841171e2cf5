"""``mlstack model list``: published and incomplete versions, filters, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mlstack.model_store.conftest import Run, Store, write_model


def _push(run: Run, store: Store, directory: Path, name: str, version: str) -> None:
    code, _, err = run(
        "model", "push", str(directory), "--name", name, "--version", version, *store.args()
    )  # fmt: skip
    assert code == 0, err


def _list(run: Run, store: Store, *extra: str) -> tuple[int, str, str]:
    return run("model", "list", "--bucket", store.bucket, "--endpoint-url", store.endpoint, *extra)


def test_lists_published_and_incomplete_versions(run: Run, store: Store, tmp_path: Path) -> None:
    small = write_model(tmp_path / "m", {"a.bin": 1000, "b/c.bin": 24})
    _push(run, store, small, "resnet50", "v1")
    _push(run, store, small, "resnet50", "v2")
    _push(run, store, small, "llama-3-8b-instruct", "2025-06-02")
    store.client.put_object(Bucket=store.bucket, Key="models/resnet50/v3/a.bin", Body=b"1")

    code, out, err = _list(run, store, "--json")

    assert code == 0, err
    rows = json.loads(out)
    assert [(r["name"], r["version"], r["status"]) for r in rows] == [
        ("llama-3-8b-instruct", "2025-06-02", "published"),
        ("resnet50", "v1", "published"),
        ("resnet50", "v2", "published"),
        ("resnet50", "v3", "incomplete"),
    ]
    assert rows[1]["files"] == 2 and rows[1]["totalBytes"] == 1024
    assert rows[3]["publishedAt"] is None

    code, out, _ = _list(run, store, "--name", "resnet50")
    assert code == 0
    assert "llama" not in out
    assert "1 incomplete version(s)" in out
    assert out.splitlines()[0].split() == [
        "NAME",
        "VERSION",
        "STATUS",
        "PUBLISHED",
        "FILES",
        "SIZE",
    ]


def test_empty_bucket_and_unknown_model_say_so(run: Run, store: Store) -> None:
    code, out, _ = _list(run, store)
    assert code == 0 and "no model versions" in out
    code, out, _ = _list(run, store, "--name", "nothing-here")
    assert code == 0 and "no model versions" in out and "nothing-here" in out


def test_invalid_name_filter_is_a_usage_error(run: Run, store: Store) -> None:
    code, _, err = _list(run, store, "--name", "Bad/Name")
    assert code == 2
    assert "DNS-1035" in err
