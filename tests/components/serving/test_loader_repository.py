"""``ModelLoaderRepository``: the loader image's ECR repository, as each stack renders it."""

from __future__ import annotations

import json

import pytest

from components.serving.loader_repository import ModelLoaderRepositoryArgs
from components.versions import MODEL_LOADER_IMAGE_TAG, model_loader_image
from mlstack.synth import ResourceGraph

REPOSITORY = "aws:ecr/repository:Repository"


def test_the_repository_is_immutable_scanned_and_kms_encrypted(any_graph: ResourceGraph) -> None:
    repository = any_graph.one(REPOSITORY)
    inputs = repository.inputs
    assert inputs["name"] == f"mlstack-{any_graph.stack}-model-loader"
    assert inputs["imageTagMutability"] == "IMMUTABLE"
    assert inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    (encryption,) = inputs["encryptionConfigurations"]
    assert encryption["encryptionType"] == "KMS"
    key = any_graph.one("aws:kms/key:Key", "model-loader-key")
    assert (
        encryption["kmsKey"]
        == f"arn:aws:kms:{key_region(any_graph)}:123456789012:key/key-model-loader-key"
    )
    assert key.inputs["enableKeyRotation"] is True


def test_dev_force_deletes_the_repository_and_prod_keeps_its_images(
    dev_graph: ResourceGraph, prod_graph: ResourceGraph
) -> None:
    """Issue 27 item 10: dev's destroy failed on the non-empty repository."""
    assert dev_graph.one(REPOSITORY).inputs["forceDelete"] is True
    prod = prod_graph.one(REPOSITORY)
    assert prod.inputs["forceDelete"] is False
    assert prod.protect and prod.retain_on_delete


def test_force_delete_with_protect_is_refused() -> None:
    args = ModelLoaderRepositoryArgs("mlstack-x-model-loader", protect=True, force_delete=True)
    assert any(p.startswith("force_delete: True: conflicts with protect") for p in args.problems())


def _manifest() -> str:
    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1}
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1,
                "digest": "sha256:" + "c" * 64,
            },
            "layers": [{**layer, "digest": "sha256:" + "d" * 64}],
        }
    )


@pytest.mark.usefixtures("aws_env")
def test_deleting_a_repository_that_holds_an_image_needs_force(moto_reset: str) -> None:
    """What a destroy (or a delete-first replacement) of the repository runs.

    The Terraform provider pulumi-aws bridges deletes a repository with
    ``DeleteRepository(RepositoryName, RegistryId, Force=force_delete)`` and reports
    ``RepositoryNotEmptyException`` as "not empty, consider using force_delete"
    (hashicorp/terraform-provider-aws ``internal/service/ecr/repository.go``,
    ``resourceRepositoryDelete``). The same call against moto: refused while the
    repository holds an image, done with ``Force``.
    """
    import boto3
    from botocore.exceptions import ClientError

    ecr = boto3.client("ecr", region_name="us-east-1", endpoint_url=moto_reset)
    name = "mlstack-dev-model-loader"
    registry = ecr.create_repository(repositoryName=name)["repository"]["registryId"]
    ecr.put_image(repositoryName=name, imageManifest=_manifest(), imageTag="v1")
    with pytest.raises(ClientError) as refused:
        ecr.delete_repository(repositoryName=name, registryId=registry, force=False)
    assert refused.value.response["Error"]["Code"] == "RepositoryNotEmptyException"
    assert ecr.describe_repositories()["repositories"][0]["repositoryName"] == name
    ecr.delete_repository(repositoryName=name, registryId=registry, force=True)
    assert ecr.describe_repositories()["repositories"] == []


def key_region(graph: ResourceGraph) -> str:
    return graph.one("pulumi:providers:aws", "aws").inputs["region"]


def test_prod_protects_and_retains_the_repository_and_its_key(prod_graph: ResourceGraph) -> None:
    for node in (prod_graph.one(REPOSITORY), prod_graph.one("aws:kms/key:Key", "model-loader-key")):
        assert node.protect and node.retain_on_delete


def test_pods_pull_the_loader_from_the_stacks_repository(any_graph: ResourceGraph) -> None:
    url = any_graph.one(REPOSITORY).inputs["name"]
    deployments = [
        d for d in any_graph.by_type("kubernetes:apps/v1:Deployment")
        if any(c["name"] == "model-loader"
               for c in d.inputs["spec"]["template"]["spec"].get("initContainers", []))
    ]  # fmt: skip
    assert deployments
    for deployment in deployments:
        # The loader and the node cache's prepare and hold steps: all the loader image.
        for step in deployment.inputs["spec"]["template"]["spec"]["initContainers"]:
            assert step["image"].endswith(f".amazonaws.com/{url}:{MODEL_LOADER_IMAGE_TAG}")


def test_the_deploy_role_may_push_to_this_repository_only(any_graph: ResourceGraph) -> None:
    (grant,) = [p for p in any_graph.by_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.startswith("model-loader-push")]  # fmt: skip
    statements = {s["Sid"]: s for s in json.loads(grant.inputs["policy"])["Statement"]}
    push = statements["PushModelLoaderImage"]
    assert push["Resource"] == [
        f"arn:aws:ecr:{key_region(any_graph)}:123456789012:repository/"
        f"mlstack-{any_graph.stack}-model-loader"
    ]
    assert not any("Delete" in a for a in push["Action"])
    assert statements["EcrLogin"]["Action"] == ["ecr:GetAuthorizationToken"]


def test_the_image_reference_pins_the_digest_once_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from components import versions

    repo = "1.dkr.ecr.us-east-1.amazonaws.com/r"
    assert model_loader_image(repo) == f"{repo}:{MODEL_LOADER_IMAGE_TAG}"
    monkeypatch.setattr(versions, "MODEL_LOADER_IMAGE_DIGEST", "sha256:" + "a" * 64)
    assert versions.model_loader_image(repo) == f"{repo}:{MODEL_LOADER_IMAGE_TAG}@sha256:{'a' * 64}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (ModelLoaderRepositoryArgs(repository_name="Bad Name"), "repository_name: 'Bad Name'"),
        (
            ModelLoaderRepositoryArgs(repository_name="ok", key_deletion_window_days=3),
            "key_deletion_window_days: 3",
        ),
    ],
)
def test_invalid_args_are_listed(args: ModelLoaderRepositoryArgs, expected: str) -> None:
    assert any(expected in p for p in args.problems())
