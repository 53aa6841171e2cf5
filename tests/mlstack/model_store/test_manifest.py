"""The manifest format: round trip, and every way a manifest can be wrong."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from mlstack.model_store.manifest import (
    SCHEMA_VERSION,
    FileEntry,
    ManifestError,
    build_manifest,
    parse_manifest,
)

SHA = hashlib.sha256(b"x").hexdigest()


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "name": "resnet50",
        "version": "v3",
        "createdAt": "2025-06-02T10:11:12Z",
        "gitCommit": None,
        "hints": {},
        "fileCount": 2,
        "totalBytes": 3,
        "files": [
            {"path": "a/b.bin", "size": 1, "sha256": SHA},
            {"path": "c.txt", "size": 2, "sha256": SHA},
        ],
    }
    document.update(changes)
    return document


def test_build_then_parse_round_trips() -> None:
    files = [FileEntry("z.bin", 5, SHA), FileEntry("a.txt", 0, SHA)]
    manifest = build_manifest(
        "resnet50", "v3", files, git_commit="abcdef1", hints={"runtime": "triton"}
    )

    text = manifest.to_json()
    again = parse_manifest(text, "resnet50", "v3")

    assert again == manifest
    assert [f.path for f in again.files] == ["a.txt", "z.bin"]
    document = json.loads(text)
    assert document["schemaVersion"] == SCHEMA_VERSION
    assert document["totalBytes"] == 5 and document["fileCount"] == 2
    assert document["hints"] == {"runtime": "triton"}


def test_a_valid_document_parses() -> None:
    manifest = parse_manifest(json.dumps(_document()), "resnet50", "v3")
    assert manifest.total_bytes == 3
    assert manifest.digests() == {SHA: 2}  # one blob for identical content


def test_every_problem_is_listed_at_once() -> None:
    document = _document(
        name="other",
        createdAt="yesterday",
        gitCommit="not-hex",
        hints={"framework": "py torch", "colour": "blue"},
        files=[
            {"path": "../up", "size": -1, "sha256": "ABC"},
            {"path": "/abs", "size": 1.5, "sha256": SHA},
        ],
    )
    with pytest.raises(ManifestError) as failure:
        parse_manifest(json.dumps(document), "resnet50", "v3")
    message = str(failure.value)
    for expected in (
        "name: 'other' does not match",
        "createdAt: 'yesterday'",
        "gitCommit: 'not-hex'",
        "hints.framework",
        "hints.colour: unknown hint",
        "files[0].path: '../up'",
        "files[0].size: -1",
        "files[0].sha256: 'ABC'",
        "files[1].path: '/abs'",
        "files[1].size: 1.5",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"schemaVersion": 3}, "newer than this mlstack reads"),
        ({"schemaVersion": 1}, "reads only 2"),
        (
            {
                "files": [
                    {"path": "a", "size": 1, "sha256": SHA},
                    {"path": "a/b", "size": 2, "sha256": SHA},
                ]
            },
            "'a' is a file and also the directory of 'a/b'",
        ),
        ({"files": []}, "non-empty list"),
        ({"totalBytes": 4}, "totalBytes: 4"),
        ({"fileCount": 1}, "fileCount: 1"),
        (
            {"files": list(reversed(_document()["files"]))},
            "paths must be unique and sorted",
        ),
        ({"files": [_document()["files"][0]] * 2, "fileCount": 2, "totalBytes": 2}, "unique"),
    ],
)
def test_structural_problems(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ManifestError, match=expected):
        parse_manifest(json.dumps(_document(**changes)), "resnet50", "v3")


def test_not_json_is_reported() -> None:
    with pytest.raises(ManifestError, match="is not JSON"):
        parse_manifest(b"\x00not json", "resnet50", "v3")


def test_differences_name_each_changed_file() -> None:
    other = hashlib.sha256(b"y").hexdigest()
    mine = build_manifest("m", "v1", [FileEntry("a", 1, SHA), FileEntry("b", 1, SHA)])
    theirs = build_manifest("m", "v1", [FileEntry("a", 1, other), FileEntry("c", 1, SHA)])
    assert mine.differences(mine) == []
    found = mine.differences(theirs)
    assert found[0] == "b: only in this push"
    assert found[1] == "c: only in the published version"
    assert found[2].startswith("a: different content")


def test_unknown_top_level_keys_are_ignored() -> None:
    manifest = parse_manifest(json.dumps(_document(futureField=1)), "resnet50", "v3")
    assert manifest.name == "resnet50"
