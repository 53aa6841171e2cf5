"""Bake verdicts, recorded with the update they judge: the evidence behind "last good".

Design. Pulumi's DIY backends (S3, local files) have no stack tags, so a verdict is a
small JSON record *next to the state*, one object per bake:

    <ledger>/<stack>/<version:08d>/<finishedAt>-<verdict>.json

where ``<ledger>`` is, by default, ``.mlstack/bakes/<project>/`` in the state backend
(``s3://<state bucket>/.mlstack/bakes/mlstack/`` for ``PULUMI_BACKEND_URL=s3://…``,
``<dir>/.mlstack/bakes/mlstack/`` for ``file://<dir>``), or ``--ledger`` /
``$MLSTACK_BAKE_LEDGER``. The deploy role may write the state bucket, the preview
role read it, so CI needs no new permission. Records are only ever added, never
rewritten (a new bake of the same version adds a record).

A record names its stack, the history version and the commit it baked, the
verdict (``passed`` / ``failed`` / ``inconclusive``: clean, but the new version
served nothing, so it proves nothing), when, for how long, what breached, and the serving
spec of each model it baked (``servingSpecs``: its hash and fields,
:mod:`mlstack.delivery.serving_spec`; the evidence ``mlstack promote`` asks for). The
verdict of a version is:

- ``failed`` if ANY record of it failed (a failure is sticky: a later clean bake of
  the same update does not launder it);
- ``passed`` if at least one record passed and none failed;
- ``inconclusive`` if its only records are inconclusive (never last good, never
  promotion evidence);
- unbaked (``None``) otherwise.

A record counts only if its ``stack`` is the stack asked about and its ``commit`` is
the commit the history records for that version; anything else is ignored and
reported (``mismatched``), so a verdict can never vouch for another stack's update
or for a different program.

*Last good* of a stack = the newest successful update (not dirty, with a commit) whose
verdict is ``passed``, other than the one deployed now (:func:`last_good`); after a
failed update the one deployed before it counts too (the failed update may have left
resources between states, and redeploying it restores them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlparse

from mlstack.delivery.history import Update
from mlstack.errors import MlstackError, UsageError

Verdict = Literal["passed", "failed", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("passed", "failed", "inconclusive")
LEDGER_ENV = "MLSTACK_BAKE_LEDGER"
LEDGER_DIR = ".mlstack/bakes"
SCHEMA = 1


class LedgerError(MlstackError):
    """The verdict ledger could not be read or written."""


@dataclass(frozen=True)
class BakeRecord:
    """One bake of one update."""

    stack: str
    version: int
    commit: str | None
    verdict: Verdict
    started_at: datetime
    finished_at: datetime
    minutes: float
    kind: str = "deploy"
    breaches: tuple[str, ...] = ()
    insufficient_data: tuple[str, ...] = ()
    run_url: str | None = None
    serving_specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    """Model -> ``{"digest": "sha256:...", "spec": {...}}`` of what ran
    (:mod:`mlstack.delivery.serving_spec`); empty when the checkout was not the update."""

    def key(self) -> str:
        stamp = self.finished_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"{self.stack}/{self.version:08d}/{stamp}-{self.verdict}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "stack": self.stack,
            "version": self.version,
            "commit": self.commit,
            "verdict": self.verdict,
            "kind": self.kind,
            "startedAt": self.started_at.astimezone(UTC).isoformat(),
            "finishedAt": self.finished_at.astimezone(UTC).isoformat(),
            "minutes": self.minutes,
            "breaches": list(self.breaches),
            "insufficientData": list(self.insufficient_data),
            "runUrl": self.run_url,
            "servingSpecs": {m: dict(v) for m, v in self.serving_specs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> BakeRecord:
        try:
            verdict = data["verdict"]
            if verdict not in VERDICTS:
                raise ValueError(f"verdict {verdict!r}")
            return cls(
                stack=str(data["stack"]),
                version=int(data["version"]),
                commit=str(data["commit"]) if data.get("commit") else None,
                verdict=verdict,
                started_at=datetime.fromisoformat(str(data["startedAt"])),
                finished_at=datetime.fromisoformat(str(data["finishedAt"])),
                minutes=float(data.get("minutes", 0)),
                kind=str(data.get("kind", "deploy")),
                breaches=tuple(str(b) for b in data.get("breaches") or ()),
                insufficient_data=tuple(str(b) for b in data.get("insufficientData") or ()),
                run_url=data.get("runUrl"),
                serving_specs=_serving_specs(data.get("servingSpecs") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"unreadable bake record {where}: {exc}") from exc


def _serving_specs(data: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(data, Mapping):
        raise ValueError(f"servingSpecs is {type(data).__name__}, not an object")
    out: dict[str, Mapping[str, Any]] = {}
    for model, entry in data.items():
        if not isinstance(entry, Mapping) or not str(entry.get("digest", "")).startswith("sha256:"):
            raise ValueError(f"servingSpecs.{model}: needs a sha256: digest")
        out[str(model)] = dict(entry)
    return out


class Ledger(Protocol):
    """Where bake records live."""

    @property
    def url(self) -> str: ...

    def put(self, record: BakeRecord) -> str: ...

    def records(self, stack: str) -> list[BakeRecord]: ...


@dataclass(frozen=True)
class FileLedger:
    """A directory (the local file backend, tests)."""

    root: Path

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def put(self, record: BakeRecord) -> str:
        path = self.root / record.key()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:  # never overwrite
            json.dump(record.to_json(), handle, indent=2)
        return str(path)

    def records(self, stack: str) -> list[BakeRecord]:
        base = self.root / stack
        if not base.is_dir():
            return []
        out = []
        for path in sorted(base.glob("*/*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise LedgerError(f"unreadable bake record {path}: {exc}") from exc
            out.append(BakeRecord.from_json(data, str(path)))
        return out


@dataclass(frozen=True)
class S3Ledger:
    """A prefix in the S3 state bucket."""

    bucket: str
    prefix: str
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _client(self) -> Any:
        from mlstack.model_store.s3 import make_client

        return make_client(self.endpoint_url, self.region)

    def put(self, record: BakeRecord) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.prefix + record.key()
        try:
            self._client().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(record.to_json(), indent=2).encode(),
                ContentType="application/json",
            )
        except (BotoCoreError, ClientError) as exc:
            where = f"s3://{self.bucket}/{key}"
            raise LedgerError(f"cannot write the bake record {where}: {exc}") from exc
        return f"s3://{self.bucket}/{key}"

    def records(self, stack: str) -> list[BakeRecord]:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client()
        out: list[BakeRecord] = []
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}{stack}/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if not key.endswith(".json"):
                        continue
                    body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    out.append(BakeRecord.from_json(json.loads(body), f"s3://{self.bucket}/{key}"))
        except (BotoCoreError, ClientError, json.JSONDecodeError) as exc:
            raise LedgerError(f"cannot read bake records under {self.url}{stack}/: {exc}") from exc
        return out


def ledger_from_url(url: str, endpoint_url: str | None = None) -> Ledger:
    """``s3://bucket/prefix/`` or ``file:///dir`` (or a plain directory path)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"bake ledger {url!r}: no bucket")
        prefix = parsed.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        region = (parse_qs(parsed.query).get("region") or [None])[0]
        return S3Ledger(parsed.netloc, prefix, region, endpoint_url)
    if parsed.scheme in ("file", ""):
        path = parsed.path if parsed.scheme == "file" else url
        if parsed.scheme == "file" and parsed.netloc:  # file://relative/dir
            path = parsed.netloc + parsed.path
        return FileLedger(Path(path).expanduser())
    raise UsageError(f"bake ledger {url!r}: allowed are s3://bucket/prefix and file:///dir")


def default_ledger(
    project: str,
    environ: Mapping[str, str] | None = None,
    endpoint_url: str | None = None,
) -> Ledger | None:
    """``$MLSTACK_BAKE_LEDGER``, else ``.mlstack/bakes/<project>/`` in the state backend
    named by ``$PULUMI_BACKEND_URL``; None when neither is set."""
    env = os.environ if environ is None else environ
    if env.get(LEDGER_ENV):
        return ledger_from_url(env[LEDGER_ENV], endpoint_url)
    backend = env.get("PULUMI_BACKEND_URL", "")
    parsed = urlparse(backend)
    if parsed.scheme == "s3" and parsed.netloc:
        region = (parse_qs(parsed.query).get("region") or [None])[0]
        base = parsed.path.strip("/")
        prefix = "/".join(p for p in (base, LEDGER_DIR, project) if p) + "/"
        return S3Ledger(parsed.netloc, prefix, region, endpoint_url)
    if parsed.scheme == "file":
        path = parsed.netloc + parsed.path
        return FileLedger(Path(path).expanduser() / LEDGER_DIR / project)
    return None


@dataclass(frozen=True)
class Verdicts:
    """The verdict of each version of one stack, from its records."""

    stack: str
    by_version: Mapping[int, Verdict]
    mismatched: tuple[str, ...] = field(default=())

    def of(self, version: int) -> Verdict | None:
        return self.by_version.get(version)


def verdicts_for(stack: str, history: Sequence[Update], records: Sequence[BakeRecord]) -> Verdicts:
    """Apply the rules of the module docstring."""
    commits = {u.version: u.commit for u in history}
    found: dict[int, set[str]] = {}
    mismatched: list[str] = []
    for record in records:
        if record.stack != stack:
            mismatched.append(f"record for stack {record.stack} under stack {stack}")
            continue
        if record.version not in commits or commits[record.version] != record.commit:
            mismatched.append(
                f"record of version {record.version} names commit "
                f"{(record.commit or '-')[:12]}, the history "
                f"{(commits.get(record.version) or 'no such version')[:12]}"
            )
            continue
        found.setdefault(record.version, set()).add(record.verdict)
    by_version: dict[int, Verdict] = {
        v: ("failed" if "failed" in seen else "passed" if "passed" in seen else "inconclusive")
        for v, seen in found.items()
    }
    return Verdicts(stack, by_version, tuple(mismatched))


def last_good(history: Sequence[Update], verdicts: Verdicts) -> Update | None:
    """The newest baked-and-passed successful update other than the one deployed now
    (which counts when an update failed after it: the stack is between states)."""
    current = next((u for u in history if u.is_update and u.succeeded), None)
    if current is not None and any(
        u.is_update and not u.succeeded and u.version > current.version for u in history
    ):
        current = None
    for update in history:
        if not (update.is_update and update.succeeded and update.commit and not update.dirty):
            continue
        if current is not None and update.version == current.version:
            continue
        if verdicts.of(update.version) == "passed":
            return update
    return None
