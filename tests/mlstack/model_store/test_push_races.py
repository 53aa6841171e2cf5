"""Racing pushes of one version (threads and processes) against moto with S3's atomic
conditional writes: exactly one manifest wins, nothing is overwritten, the version
verifies, and the loser says what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from mlstack.model_store.local import scan_model_dir
from mlstack.model_store.push import MiB, PushResult, PushSettings, push_model
from mlstack.model_store.s3 import make_client
from tests.mlstack.model_store.conftest import Run, Store, manifest_key, write_model

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = manifest_key("llm", "v1")
SETTINGS = PushSettings(concurrency=4, part_size=5 * MiB)


def _two_models(tmp_path: Path, identical: bool) -> tuple[Path, Path]:
    shared = {"weights.bin": os.urandom(11 * MiB), "config.json": b'{"layers": 2}'}
    first = write_model(tmp_path / "a", shared)
    second = write_model(
        tmp_path / "b",
        shared if identical else {**shared, "config.json": b'{"layers": 3}'},
    )
    return first, second


def _assert_one_intact_version(run: Run, store: Store) -> None:
    assert len(store.versions_of(MANIFEST)) == 1  # never overwritten
    for key in store.object_keys("models/llm/blobs/"):
        assert len(store.versions_of(key)) == 1, key  # created once, never replaced
    code, out, err = run("model", "verify", "--name", "llm", "--version", "v1", *store.args())
    assert code == 0, err
    assert "every sha256 matches" in out


@pytest.mark.parametrize("identical", [True, False], ids=["identical", "different"])
def test_racing_threads(run: Run, atomic_store: Store, tmp_path: Path, identical: bool) -> None:
    directories = _two_models(tmp_path, identical)
    barrier = threading.Barrier(2, timeout=30)
    outcomes: list[PushResult | BaseException] = [None, None]  # type: ignore[list-item]

    def push(index: int) -> None:
        client = make_client(atomic_store.endpoint, "us-east-1", max_connections=8)

        def meet_at_the_manifest(params: dict[str, Any], **_: Any) -> None:
            if params.get("Key") == MANIFEST:
                barrier.wait()  # both pushes are past every check: a real race

        client.meta.events.register("before-parameter-build.s3.PutObject", meet_at_the_manifest)
        try:
            outcomes[index] = push_model(
                client, atomic_store.bucket, "llm", "v1",
                scan_model_dir(directories[index]), settings=SETTINGS,
            )  # fmt: skip
        except BaseException as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    winners = [o for o in outcomes if isinstance(o, PushResult) and o.outcome == "published"]
    assert len(winners) == 1, outcomes
    (loser,) = [o for o in outcomes if o is not winners[0]]
    if identical:
        assert isinstance(loser, PushResult) and loser.outcome == "identical"
        assert "by a concurrent push while this one ran with identical files" in loser.detail
    else:
        assert isinstance(loser, Exception)
        message = str(loser)
        assert "by a concurrent push while this one ran with different content" in message
        assert "config.json: different content" in message
        assert "The published version was not changed" in message
    winner_files = {f.path: f.sha256 for f in winners[0].manifest.files}
    published = json.loads(atomic_store.read(MANIFEST))
    assert {f["path"]: f["sha256"] for f in published["files"]} == winner_files
    _assert_one_intact_version(run, atomic_store)


RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mlstack.cli import main
    from mlstack.model_store import push

    barrier, me = Path(sys.argv[1]), sys.argv[2]
    original = push._publish

    def publish_together(*args, **kwargs):
        (barrier / me).touch()
        deadline = time.monotonic() + 60
        while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return original(*args, **kwargs)

    push._publish = publish_together
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.parametrize("identical", [True, False], ids=["identical", "different"])
def test_racing_processes(run: Run, atomic_store: Store, tmp_path: Path, identical: bool) -> None:
    """Two real ``mlstack model push`` processes; each waits for the other just before
    its manifest write (a file barrier), so both are past every check."""
    directories = _two_models(tmp_path, identical)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def command(index: int, directory: Path) -> list[str]:
        push = ["model", "push", str(directory), "--name", "llm", "--version", "v1"]
        racer = [sys.executable, "-c", RACER, str(barrier), str(index)]
        return [*racer, *push, "--part-size-mib", "5", *atomic_store.args()]

    processes = [
        subprocess.Popen(
            command(index, directory),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, directory in enumerate(directories)
    ]
    results = [(p.wait(timeout=180), p.stdout.read(), p.stderr.read()) for p in processes]  # type: ignore[union-attr]

    assert sorted(barrier.iterdir()) == [barrier / "0", barrier / "1"]  # both raced
    published = [r for r in results if r[0] == 0 and "pushed llm version v1" in r[1]]
    assert len(published) == 1, results
    (loser,) = [r for r in results if r is not published[0]]
    if identical:
        assert loser[0] == 0, loser
        assert "by a concurrent push while this one ran with identical files" in loser[1]
    else:
        assert loser[0] == 1, loser
        assert "by a concurrent push while this one ran with different content" in loser[2]
        assert len(loser[2].strip().splitlines()) == 1
    _assert_one_intact_version(run, atomic_store)
