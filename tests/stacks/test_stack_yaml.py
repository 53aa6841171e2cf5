"""Stack files are read as the Pulumi engine reads them (go-yaml v3): aliases, merge keys.

The engine loads ``Pulumi.<stack>.yaml`` with ``yaml.Unmarshal`` of gopkg.in/yaml.v3
(pulumi ``sdk/go/common/encoding/marshal.go`` ``yamlMarshaler.Unmarshal``, called by
``sdk/go/common/workspace/loaders.go`` ``LoadProjectStackBytes``), go-yaml v3.0.1 as
pinned in pulumi's ``sdk/go.mod``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlstack.cli import main
from stacks.config import PROJECT_ROOT, load_config_file
from stacks.stack_yaml import allowed_alias_ratio, load_stack_yaml

DEV_TEXT = (PROJECT_ROOT / "Pulumi.dev.yaml").read_text()

BILLION_LAUGHS = """\
config:
  mlstack:environment: dev
  pulumi:a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  pulumi:b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  pulumi:c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  pulumi:d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  pulumi:e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  pulumi:f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  pulumi:g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  pulumi:h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  pulumi:i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
  mlstack:region: us-west-2
  mlstack:owner: x
"""
"""The 13-line alias bomb of the issue: 9**9 strings once expanded."""

MERGE_BOMB = """\
config:
  pulumi:a: &a {a0: x, a1: x, a2: x, a3: x, a4: x, a5: x, a6: x, a7: x, a8: x}
  pulumi:b: &b {<<: [*a, *a, *a, *a, *a, *a, *a, *a, *a]}
  pulumi:c: &c {<<: [*b, *b, *b, *b, *b, *b, *b, *b, *b]}
  pulumi:d: &d {<<: [*c, *c, *c, *c, *c, *c, *c, *c, *c]}
  pulumi:e: &e {<<: [*d, *d, *d, *d, *d, *d, *d, *d, *d]}
  pulumi:f: &f {<<: [*e, *e, *e, *e, *e, *e, *e, *e, *e]}
  pulumi:g: &g {<<: [*f, *f, *f, *f, *f, *f, *f, *f, *f]}
"""
"""The same shape through merge keys (PyYAML's merge flattening copies every pair)."""

GENEROUS_TIMEOUT = 600
"""Seconds a child may take before the test calls it hung (never asserted as a time)."""


def _project(tmp_path: Path, dev_text: str) -> Path:
    shutil.copy(PROJECT_ROOT / "Pulumi.prod.yaml", tmp_path)
    (tmp_path / "Pulumi.dev.yaml").write_text(dev_text)
    return tmp_path


def _mlstack(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a child; a hang ends in TimeoutExpired (the child is killed)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from mlstack.cli import main; sys.exit(main())", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=GENEROUS_TIMEOUT,
        check=False,
    )


# --------------------------------------------------------------------------- item 4: alias bombs


def test_the_alias_ratio_is_go_yamls() -> None:
    """go-yaml v3.0.1 ``decode.go`` ``allowedAliasRatio``: 99% up to 400,000 values read,
    10% from 4,000,000, linear in between."""
    assert allowed_alias_ratio(1001) == 0.99
    assert allowed_alias_ratio(400_000) == 0.99
    assert allowed_alias_ratio(2_200_000) == pytest.approx(0.99 - 0.89 / 2)
    assert allowed_alias_ratio(4_000_000) == 0.10
    assert allowed_alias_ratio(10**9) == 0.10


def test_a_billion_laughs_is_refused_while_reading_naming_the_line() -> None:
    """go-yaml v3.0.1 ``decode.go`` ``decoder.unmarshal`` fails with "document contains
    excessive aliasing" once past 1000 values, 100 of them aliased, over the allowed ratio."""
    with pytest.raises(yaml.YAMLError, match="excessive aliasing") as caught:
        load_stack_yaml(BILLION_LAUGHS)
    mark = caught.value.problem_mark  # pyright: ignore[reportAttributeAccessIssue]
    assert 4 <= mark.line + 1 <= 11  # on a line that writes aliases
    assert "document contains excessive aliasing" in str(caught.value)


def test_a_merge_key_bomb_is_refused_while_reading() -> None:
    """go-yaml ``decode.go`` ``merge`` reads each merged alias through ``unmarshal``, so the
    same ratio refuses a bomb built of ``<<:`` lists."""
    with pytest.raises(yaml.YAMLError, match="excessive aliasing"):
        load_stack_yaml(MERGE_BOMB)


def test_an_anchor_containing_its_own_alias_is_refused() -> None:
    """go-yaml ``decode.go`` ``decoder.alias``: "anchor '%s' value contains itself"."""
    with pytest.raises(yaml.YAMLError, match="contains its own alias"):
        load_stack_yaml("config:\n  pulumi:x: &loop [1, *loop]\n")


def test_a_few_aliases_still_read() -> None:
    text = "config:\n  pulumi:a: &a [x, y]\n" + "".join(f"  pulumi:b{i}: *a\n" for i in range(300))
    document = load_stack_yaml(text)
    assert document["config"]["pulumi:b299"] == ["x", "y"]


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_the_13_line_bomb_exits_2_naming_file_and_line(tmp_path: Path, command: str) -> None:
    """Today: hangs (the secure-path walk goes over 9**9 nodes)."""
    root = _project(tmp_path, BILLION_LAUGHS)
    done = _mlstack(command, "dev", "--root", str(root), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: Pulumi.dev.yaml: ")
    assert "excessive aliasing" in line and "at line " in line
    assert not (root / "build").exists()


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_self_containing_anchor_exits_2(tmp_path: Path, command: str) -> None:
    """Today: RecursionError, exit 1."""
    text = DEV_TEXT.replace("  mlstack:tags:\n", "  pulumi:loop: &loop [*loop]\n  mlstack:tags:\n")
    root = _project(tmp_path, text)
    done = _mlstack(command, "dev", "--root", str(root), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "anchor &loop contains its own alias *loop" in done.stderr


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def bombed_repo(tmp_path: Path) -> Path:
    """A git repository of the project whose working tree's dev stack file is the bomb."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("components", "stacks", "mlstack", "policy", "schema"):
        shutil.copytree(
            PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for stack_file in PROJECT_ROOT.glob("Pulumi*.yaml"):
        shutil.copy(stack_file, root / stack_file.name)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "first")
    (root / "Pulumi.dev.yaml").write_text(BILLION_LAUGHS)
    return root


@pytest.mark.parametrize("command", ["diff", "review"])
def test_diff_and_review_of_the_bomb_fail_naming_it(bombed_repo: Path, command: str) -> None:
    """`review` runs on every pull request: today both hang on the head side."""
    out = bombed_repo.parent / "review.md"
    extra = ["--out", str(out), "--stack", "dev"] if command == "review" else ["dev"]
    done = _mlstack(command, *extra, "--base", "HEAD", "--root", str(bombed_repo), cwd=bombed_repo)
    assert done.returncode != 0
    shown = done.stdout + done.stderr + (out.read_text() if out.exists() else "")
    assert "Pulumi.dev.yaml" in shown and "excessive aliasing" in shown


# --------------------------------------------------------------------------- merge keys


def test_merge_keys_resolve_as_go_yaml_resolves_them() -> None:
    """go-yaml v3.0.1 ``decode.go`` ``mapping`` then ``merge``: the mapping's own keys are
    kept (``mergedFields``), then the first merged mapping holding a key wins."""
    text = (
        "a: &a {k: from-a, x: a}\n"
        "b: &b {k: from-b, y: b}\n"
        "m: {<<: [*a, *b], k: own}\n"
        "n: {<<: [*a, *b]}\n"
        "o: {<<: *b, z: 1}\n"
    )
    document = load_stack_yaml(text)
    assert document["m"] == {"k": "own", "x": "a", "y": "b"}
    assert document["n"] == {"k": "from-a", "x": "a", "y": "b"}
    assert document["o"] == {"k": "from-b", "y": "b", "z": 1}


def test_two_merge_keys_in_one_mapping_are_a_duplicate_key() -> None:
    """go-yaml ``decode.go`` ``mapping`` (uniqueKeys): two equal key texts, ``<<`` included."""
    with pytest.raises(yaml.YAMLError, match="duplicate key '<<'"):
        load_stack_yaml("m: {<<: {a: 1}, <<: {b: 2}}\n")


def test_a_merged_key_overridden_in_place_is_not_a_duplicate() -> None:
    text = "base: &base {<<: {a: 1}, a: 2}\nm: {<<: *base, a: 3}\nn: *base\n"
    assert load_stack_yaml(text) == {"base": {"a": 2}, "m": {"a": 3}, "n": {"a": 2}}


def _with_merged_autoscaling(text: str) -> str:
    """Model 1 takes model 0's autoscaling through ``<<:`` and overrides its target."""
    first = "      autoscaling:\n        # Dev scales to zero"
    assert first in text
    text = text.replace(first, "      autoscaling: &scale\n        # Dev scales to zero", 1)
    second = text.index("      autoscaling:\n        minReplicas: 0", text.index("&scale"))
    end = text.index("      exposure:", second)
    return (
        text[:second] + "      autoscaling:\n        <<: *scale\n        target: 50\n" + text[end:]
    )


def test_a_stack_file_with_merge_keys_reads_like_it_written_out(tmp_path: Path) -> None:
    """Today: "could not determine a constructor for the tag 'tag:yaml.org,2002:merge'"."""
    root = _project(tmp_path, _with_merged_autoscaling(DEV_TEXT))
    assert load_config_file("dev", root) == load_config_file("dev", PROJECT_ROOT)


def test_validate_accepts_merge_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path, _with_merged_autoscaling(DEV_TEXT))
    assert main(["validate", "dev", "--root", str(root)]) == 0, capsys.readouterr().err
    assert "Pulumi.dev.yaml: valid" in capsys.readouterr().out


def test_a_merge_of_a_scalar_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _project(tmp_path, DEV_TEXT.replace("  mlstack:tags:\n", "  mlstack:tags:\n    <<: 3\n"))
    assert main(["validate", "dev", "--root", str(root)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "Pulumi.dev.yaml" in line and "merging" in line and "at line " in line


def test_nesting_too_deep_to_read_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Today: a RecursionError, exit 1."""
    root = _project(tmp_path, DEV_TEXT + "  pulumi:deep: " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["validate", "dev", "--root", str(root)]) == 2
    assert "nested too deeply" in capsys.readouterr().err
