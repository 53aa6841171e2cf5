"""``mlstack preflight`` against a moto account with everything present, then with each
prerequisite taken away in turn (exit 1, that check named).

The AWS side is a moto server on loopback (``tests/conftest.py``); ``eks``,
``service-quotas`` and ``ssm`` are botocore ``Stubber`` clients whose responses
Stubber validates against botocore's own service models (``world.py`` says why).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from components.storage import layout
from components.versions import EKS_SUPPORT, EKS_SUPPORT_SOURCE
from stacks.config import load_config_file
from tests.mlstack.preflight.world import ACCOUNT, World
from tests.stacks.pulumi_secrets import stack_init

Runner = Callable[..., tuple[int, str, str]]
WorldFactory = Callable[..., World]


def _statuses(out: str) -> dict[str, str]:
    return {c["id"]: c["status"] for c in json.loads(out)["checks"]}


def _failed(out: str) -> set[str]:
    return {i for i, s in _statuses(out).items() if s == "FAIL"}


def test_dev_with_everything_present_passes_every_check(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    code, out, err = run_preflight_cli(world, "--json")
    report = json.loads(out)
    assert (code, err) == (0, "")
    assert report["ok"] is True and report["account"] == ACCOUNT
    statuses = _statuses(out)
    assert set(statuses.values()) <= {"ok", "skipped"}
    # What the plan depends on is checked item by item, not in bulk.
    for check_id in (
        "identity.account",
        "identity.region",
        "eks.standard-support",
        "eks.addon-version[coredns]",
        "eks.addon-version[vpc-cni]",
        "amis.gpu-release[inference]",
        "certificates.covers[llm.dev.ml.example.com]",
        "models.manifest[llama-3-8b-instruct@2025-06-02]",
        "models.manifest[resnet50@v3]",
        "capacity.quota[on-demand G and VT]",
        "capacity.quota[spot G and VT]",
        "capacity.offered[inference]",
        "prerequisites.admin-role[ml-platform-admin]",
        "prerequisites.spot-service-linked-role",
        "prerequisites.registry-credential[registry-1.docker.io]",
        "prerequisites.github-oidc-provider",
        "prerequisites.state-bucket",
        "prerequisites.secrets-key",
    ):
        assert statuses[check_id] == "ok", check_id
    assert statuses["eks.existing-cluster"] == "skipped"


def test_prod_with_everything_present_passes_in_text_form(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("prod")
    code, out, _ = run_preflight_cli(world)
    assert code == 0, out
    assert out.startswith(f"preflight prod (account {ACCOUNT}, us-east-1)\n")
    assert (
        "\nprerequisites\n" in out
        and "  ok      prerequisites.admin-role[ml-platform-breakglass]" in out
    )
    assert out.rstrip().splitlines()[-1].startswith("preflight prod: ok (")


# --------------------------------------------------------------------------- removals


def _delete_role(name: str) -> Callable[[World], None]:
    def run(world: World) -> None:
        world.client("iam").delete_role(RoleName=name)

    return run


def _delete_spot_role(world: World) -> None:
    iam = world.client("iam")
    for role in iam.list_roles(PathPrefix="/aws-service-role/spot.amazonaws.com/")["Roles"]:
        iam.delete_role(RoleName=role["RoleName"])


def _delete_oidc(world: World) -> None:
    world.client("iam").delete_open_id_connect_provider(
        OpenIDConnectProviderArn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    )


def _delete_state_bucket(world: World) -> None:
    world.client("s3", "us-west-2").delete_bucket(Bucket=f"mlstack-pulumi-state-{ACCOUNT}")


def _suspend_state_versioning(world: World) -> None:
    world.client("s3", "us-west-2").put_bucket_versioning(
        Bucket=f"mlstack-pulumi-state-{ACCOUNT}", VersioningConfiguration={"Status": "Suspended"}
    )


def _disable_key(world: World) -> None:
    world.client("kms", "us-west-2").disable_key(KeyId=world.key_arn.rsplit("/", 1)[-1])


def _delete_certificate(world: World) -> None:
    world.client("acm").delete_certificate(CertificateArn=world.certificate_arn)


def _delete_manifest(index: int) -> Callable[[World], None]:
    def run(world: World) -> None:
        world.client("s3").delete_object(Bucket=world.model_bucket, Key=world.manifests[index])

    return run


def _delete_model_bucket(world: World) -> None:
    s3 = world.client("s3")
    for key in world.manifests:
        s3.delete_object(Bucket=world.model_bucket, Key=key)
    s3.delete_bucket(Bucket=world.model_bucket)


def _set(attribute: str, value: Any) -> Callable[[World], None]:
    def run(world: World) -> None:
        setattr(world, attribute, value)

    return run


def _delete_registry_secret(world: World) -> None:
    arn = world.registry_secrets["docker.io"]
    world.client("secretsmanager", arn.split(":")[3]).delete_secret(
        SecretId=arn, ForceDeleteWithoutRecovery=True
    )


REMOVALS: list[tuple[str, Callable[[World], None]]] = [
    ("prerequisites.registry-credential[registry-1.docker.io]", _delete_registry_secret),
    ("prerequisites.admin-role[ml-platform-admin]", _delete_role("ml-platform-admin")),
    ("prerequisites.spot-service-linked-role", _delete_spot_role),
    ("prerequisites.github-oidc-provider", _delete_oidc),
    ("prerequisites.state-bucket", _delete_state_bucket),
    ("prerequisites.state-bucket", _suspend_state_versioning),
    ("prerequisites.secrets-key", _disable_key),
    ("certificates.certificate[{cert}]", _delete_certificate),
    ("models.manifest[llama-3-8b-instruct@2025-06-02]", _delete_manifest(0)),
    ("models.manifest[resnet50@v3]", _delete_manifest(1)),
    ("models.bucket", _delete_model_bucket),
    ("eks.addon-version[coredns]", _set("drop_addon", "coredns")),
    ("amis.gpu-release[inference]", _set("drop_ami", True)),
    ("capacity.quota[on-demand G and VT]", _set("quota_vcpus", {"L-DB2E81BA": 8.0})),
    ("capacity.quota[spot G and VT]", _set("quota_vcpus", {"L-3819A6DF": 0.0})),
]


ALSO_FAILS = {"prerequisites.secrets-key": {"secrets.provider"}}
"""A disabled secrets key also stops `pulumi stack init` from making the data key."""


@pytest.mark.parametrize(
    ("check_id", "remove"),
    REMOVALS,
    ids=[f"{c}-{getattr(r, '__name__', 'x')}" for c, r in REMOVALS],
)
def test_dev_without_one_prerequisite_fails_exactly_that_check(
    world_factory: WorldFactory,
    run_preflight_cli: Runner,
    check_id: str,
    remove: Callable[[World], None],
) -> None:
    world = world_factory("dev")
    remove(world)
    expected = check_id.format(cert=world.certificate_arn.rsplit("/", 1)[-1])
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert _failed(out) == {expected} | ALSO_FAILS.get(expected, set())
    failing = next(c for c in json.loads(out)["checks"] if c["id"] == expected)
    assert failing["fix"], "every FAIL says how to fix it"


# --------------------------------------------------------------------------- secrets provider


def _stack_file(world: World) -> dict[str, Any]:
    return yaml.safe_load((world.root / f"Pulumi.{world.stack}.yaml").read_text())


def _save(world: World, document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, sort_keys=False)
    (world.root / f"Pulumi.{world.stack}.yaml").write_text(text)


def _kms(world: World, session: boto3.Session | None = None) -> Callable[[str], Any]:
    session = session or boto3.Session()
    return lambda region: session.client("kms", region_name=region, endpoint_url=world.endpoint)


def test_before_stack_init_the_secrets_check_makes_a_data_key_as_stack_init_would(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("prod")  # the committed file: provider, no encryptedkey
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 0, out
    [check] = [c for c in json.loads(out)["checks"] if c["id"] == "secrets.provider"]
    assert check["status"] == "ok" and "no encryptedkey yet" in check["detail"]


def test_the_secrets_check_passes_on_the_encryptedkey_this_accounts_stack_init_wrote(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    document = _stack_file(world)
    stack_init(document, document["secretsprovider"], _kms(world))
    _save(world, document)
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 0, out
    assert _statuses(out)["secrets.provider"] == "ok"


def test_an_encryptedkey_another_accounts_stack_init_wrote_fails_the_secrets_check(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    """The committed files' old shape: ``stack init`` keeps it and KMS Decrypt fails."""
    world = world_factory("dev")
    sts = world.client("sts")
    creds = sts.assume_role(
        RoleArn="arn:aws:iam::111111111111:role/example", RoleSessionName="example"
    )["Credentials"]
    example = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    other = _kms(world, example)("us-west-2")
    key = other.create_key()["KeyMetadata"]["KeyId"]
    other.create_alias(AliasName="alias/mlstack-pulumi-secrets", TargetKeyId=key)
    document = _stack_file(world)
    stack_init(document, document["secretsprovider"], _kms(world, example))
    _save(world, document)

    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert _failed(out) == {"secrets.provider"}
    [check] = [c for c in json.loads(out)["checks"] if c["id"] == "secrets.provider"]
    assert "Pulumi.dev.yaml: KMS cannot decrypt its encryptedkey" in check["detail"]
    assert "Decrypt: AccessDeniedException" in check["detail"]
    assert 'pulumi stack init dev --secrets-provider="awskms://' in check["fix"]


def test_a_provider_key_that_does_not_exist_fails_the_secrets_check_naming_bootstrap(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    world.client("kms", "us-west-2").delete_alias(AliasName="alias/mlstack-pulumi-secrets")
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert "secrets.provider" in _failed(out)
    [check] = [c for c in json.loads(out)["checks"] if c["id"] == "secrets.provider"]
    assert "alias/mlstack-pulumi-secrets" in check["detail"] and "does not exist" in check["detail"]
    assert "mlstack bootstrap" in check["fix"]


def test_missing_model_bucket_names_the_first_deploy_step(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    _delete_model_bucket(world)
    code, out, _ = run_preflight_cli(world)
    assert code == 1
    assert "the model bucket does not exist yet (first deploy)" in out
    assert "next: step 4 of the first deploy, the bucket phase" in out
    assert 'docs/operations.md, section "First deploy"' in out


def test_the_log_bucket_is_never_taken_for_the_model_bucket(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    _delete_model_bucket(world)  # the log bucket, tagged the same, stays
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert world.log_bucket not in out


def test_explicit_model_bucket_wins_over_the_tag_lookup(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    code, out, _ = run_preflight_cli(world, "--json", "--model-bucket", world.log_bucket)
    assert code == 1
    assert _failed(out) == {
        "models.manifest[llama-3-8b-instruct@2025-06-02]",
        "models.manifest[resnet50@v3]",
    }


def test_certificate_not_covering_a_routed_host_fails_that_host(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev", cert_names=["*.ml.example.com", "dev.ml.example.com"])
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert _failed(out) == {"certificates.covers[llm.dev.ml.example.com]"}


def test_certificate_expiring_within_30_days_fails(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    # ACM (and moto) refuse to import an expired certificate, so this one expires 19 days
    # from the real today, and preflight judges dates as of the real today.
    now = dt.datetime.now(dt.UTC)
    world = world_factory("dev", cert_not_after=now + dt.timedelta(days=19))
    code, out, _ = run_preflight_cli(world, "--json", as_of=now.date().isoformat())
    cert_id = f"certificates.certificate[{world.certificate_arn.rsplit('/', 1)[-1]}]"
    assert code == 1
    # The pinned Kubernetes version may be past standard support as of the real today.
    assert cert_id in _failed(out) and _failed(out) - {cert_id} <= {"eks.standard-support"}
    detail = next(c["detail"] for c in json.loads(out)["checks"] if c["id"] == cert_id)
    expiry = (now + dt.timedelta(days=19)).date().isoformat()
    assert f"expires on {expiry} (in 19 days, less than 30)" in detail


@pytest.fixture
def far_east_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local zone 14 hours ahead of UTC (botocore reads ACM's dates in it)."""
    with monkeypatch.context() as patched:
        patched.setenv("TZ", "Pacific/Kiritimati")
        time.tzset()
        try:
            yield
        finally:
            patched.undo()
            time.tzset()


def test_certificate_days_left_are_counted_in_utc_whatever_the_local_zone(
    world_factory: WorldFactory, run_preflight_cli: Runner, far_east_clock: None
) -> None:
    # 12:00 UTC, 19 days on, is already the 20th day in UTC+14.
    today = dt.datetime.now(dt.UTC).date()
    midday = dt.datetime.combine(today + dt.timedelta(days=19), dt.time(12), tzinfo=dt.UTC)
    world = world_factory("dev", cert_not_after=midday)
    code, out, _ = run_preflight_cli(world, "--json", as_of=today.isoformat())
    cert_id = f"certificates.certificate[{world.certificate_arn.rsplit('/', 1)[-1]}]"
    assert code == 1
    detail = next(c["detail"] for c in json.loads(out)["checks"] if c["id"] == cert_id)
    assert f"expires on {midday.date().isoformat()} (in 19 days, less than 30)" in detail


def test_version_past_standard_support_fails_and_names_the_date_source(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev")
    minor = load_config_file("dev").cluster.version
    end = EKS_SUPPORT[minor].standard_support_end
    after = (end + dt.timedelta(days=1)).isoformat()
    code, out, _ = run_preflight_cli(world, "--json", as_of=after)
    assert code == 1
    assert _failed(out) == {"eks.standard-support"}
    detail = next(
        c["detail"] for c in json.loads(out)["checks"] if c["id"] == "eks.standard-support"
    )
    assert f"left EKS standard support on {end.isoformat()}" in detail
    assert f"source: {EKS_SUPPORT_SOURCE}" in detail


def test_instance_type_not_offered_in_a_zone_fails_the_pool(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    def zones(config: dict[str, Any]) -> None:
        config["mlstack:network"]["availabilityZones"] = ["us-west-2a", "us-west-2d"]

    world = world_factory("dev", edit=zones)
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert _failed(out) == {"capacity.offered[inference]"}
    assert "g5.xlarge in us-west-2d" in out


def _canary(config: dict[str, Any]) -> None:
    config["mlstack:gpuPools"][0]["maxNodes"] = 8  # room for the canary's pods (capacity fit)
    llm = config["mlstack:models"][0]
    llm["rollout"] = {
        "strategy": "canary",
        "canary": {"artifactVersion": "2025-06-09", "stableWeight": 90, "canaryWeight": 10},
    }


def test_canary_version_manifest_is_checked_too(
    world_factory: WorldFactory, run_preflight_cli: Runner
) -> None:
    world = world_factory("dev", edit=_canary)
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 0, out
    assert _statuses(out)["models.manifest[llama-3-8b-instruct@2025-06-09]"] == "ok"
    key = layout.manifest_key("llama-3-8b-instruct", "2025-06-09")
    assert key in world.manifests
    world.client("s3").delete_object(Bucket=world.model_bucket, Key=key)
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    assert _failed(out) == {"models.manifest[llama-3-8b-instruct@2025-06-09]"}
    assert "canary track" in out


def test_credentials_of_another_account_fail_the_identity_check(
    world_factory: WorldFactory, run_preflight_cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = world_factory("dev")
    other = world.client("sts").assume_role(
        RoleArn="arn:aws:iam::210987654321:role/elsewhere", RoleSessionName="preflight"
    )["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", other["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", other["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", other["SessionToken"])
    code, out, _ = run_preflight_cli(world, "--json")
    assert code == 1
    identity = next(c for c in json.loads(out)["checks"] if c["id"] == "identity.account")
    assert identity["status"] == "FAIL"
    assert (
        "caller account 210987654321 is not the stack's account: 123456789012" in identity["detail"]
    )


# --------------------------------------------------------------------------- exit 2


def test_no_credentials_exits_2_with_one_line_how_to(tmp_path: Path) -> None:
    """The whole process: no credentials anywhere -> exit 2, one line, no traceback."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MLSTACK_"))
    }
    env |= {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "preflight", "dev"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("error: no AWS credentials found")
    assert "AWS_PROFILE" in lines[0]


def test_rejected_credentials_exit_2_not_a_fail(
    world_factory: WorldFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import boto3
    from botocore.stub import Stubber

    from mlstack.cli import main
    from mlstack.preflight import run as preflight_run
    from tests.mlstack.preflight.world import stubbed_clients

    world = world_factory("dev")
    sts = boto3.client("sts", region_name="us-west-2")
    stub = Stubber(sts)
    stub.add_client_error(
        "get_caller_identity", "InvalidClientTokenId", "The security token is invalid.", 403
    )
    stub.activate()

    def clients(facts: Any) -> Any:
        made = stubbed_clients(world, facts)
        made.stubbed["sts"] = sts
        return made

    monkeypatch.setattr(preflight_run, "make_clients", clients)
    code = main(["preflight", "dev", "--root", str(world.root), "--as-of", "2026-06-01"])
    err = capsys.readouterr().err
    assert code == 2
    assert "AWS rejected the credentials (GetCallerIdentity: InvalidClientTokenId" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["preflight", "nosuch"], "no stack file"),
        (["preflight", "dev", "--as-of", "tomorrow"], "--as-of 'tomorrow': not a date"),
    ],
)
def test_usage_and_config_errors_exit_2(
    args: list[str], message: str, preflight_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_invalid_stack_file_exits_2_naming_file_and_key(
    preflight_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlstack.cli import main
    from stacks.config import PROJECT_ROOT

    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["mlstack:cluster"]["version"] = "1.20"
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(document))
    assert main(["preflight", "dev", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml" in err and "mlstack:cluster.version" in err


def test_whole_process_prod_against_moto_exits_0(world_factory: WorldFactory) -> None:
    """A new interpreter runs the CLI end to end (what the benchmark times)."""
    world = world_factory("prod")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.mlstack.preflight.stubbed_main",
            "prod",
            "--root",
            str(world.root),
            "--as-of",
            "2026-06-01",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_unreachable_endpoint_is_one_line_exit_1(
    preflight_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from mlstack.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens after close
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code = main(["preflight", "dev"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("error: cannot reach AWS STS to identify the caller:")
    assert closed in err and len(err.splitlines()) == 1
