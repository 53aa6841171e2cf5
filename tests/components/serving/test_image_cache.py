"""ImageCache: pull-through rules for supported registries, pulls rewritten, grants exact."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.serving.image_cache import ImageCache, ImageCacheArgs
from components.serving.registries import registry_of, repository_path
from mlstack.synth import ResourceGraph, SynthError, synth_config
from stacks.config import load_config_file

SECRET = "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub-Ab12Cd"
RULE = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.mark.parametrize(
    ("image", "registry", "path"),
    [
        ("docker.io/vllm/vllm-openai:v0.28.0", "docker.io", "vllm/vllm-openai:v0.28.0"),
        ("vllm/vllm-openai:v0.28.0", "docker.io", "vllm/vllm-openai:v0.28.0"),
        ("nginx:1.27", "docker.io", "library/nginx:1.27"),
        ("public.ecr.aws/aws-cli/aws-cli:2.36.7", "public.ecr.aws", "aws-cli/aws-cli:2.36.7"),
        ("nvcr.io/nvidia/tritonserver:26.04-py3", "nvcr.io", "nvidia/tritonserver:26.04-py3"),
        ("localhost:5000/x:1", "localhost:5000", "x:1"),
    ],
)
def test_references_split_into_registry_and_path(image: str, registry: str, path: str) -> None:
    assert registry_of(image) == registry
    assert repository_path(image) == path


def synth_cache(args: ImageCacheArgs) -> tuple[ResourceGraph, dict[str, object]]:
    seen: dict[str, object] = {}

    def program(_cfg: object, _stack: str) -> None:
        cache = ImageCache("cache", args)
        seen["cache"] = cache
        for image in args.images:
            pulumi.export(image, cache.resolve(image))

    return synth_config(load_config_file("dev"), "dev", program), seen


def test_supported_registries_are_cached_and_their_images_rewritten() -> None:
    images = ["docker.io/vllm/vllm-openai:v0.28.0", "public.ecr.aws/aws-cli/aws-cli:2.36.7"]
    graph, seen = synth_cache(
        ImageCacheArgs(
            prefix="mlstack-dev",
            region="us-west-2",
            images=images,
            credential_arns={"docker.io": SECRET},
            puller_role_names=["node-role"],
        )
    )
    rules = {r.inputs["ecrRepositoryPrefix"]: r.inputs for r in graph.by_type(RULE)}
    assert set(rules) == {"mlstack-dev-docker-hub", "mlstack-dev-ecr-public"}
    assert rules["mlstack-dev-docker-hub"]["credentialArn"] == SECRET
    assert "credentialArn" not in rules["mlstack-dev-ecr-public"]
    templates = graph.by_type(TEMPLATE)
    assert {t.inputs["prefix"] for t in templates} == set(rules)
    assert all(t.inputs["appliedFors"] == ["PULL_THROUGH_CACHE"] for t in templates)
    assert all(t.inputs["encryptionConfigurations"] for t in templates)
    cache = seen["cache"]
    assert isinstance(cache, ImageCache)
    assert cache.uncached == {}


def test_the_pull_grant_is_exactly_the_import_actions_on_the_cache_prefixes() -> None:
    graph, _ = synth_cache(
        ImageCacheArgs(
            prefix="mlstack-dev",
            region="us-west-2",
            images=["public.ecr.aws/aws-cli/aws-cli:2.36.7"],
            puller_role_names=["node-a", "node-b"],
        )
    )
    grants = graph.by_type(ROLE_POLICY)
    assert sorted(g.inputs["role"] for g in grants) == ["node-a", "node-b"]
    (statement,) = json.loads(grants[0].inputs["policy"])["Statement"]
    assert statement["Action"] == ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
    assert statement["Resource"] == [
        "arn:aws:ecr:us-west-2:123456789012:repository/mlstack-dev-ecr-public/*"
    ]


def test_unsupported_or_uncredentialed_registries_are_pulled_directly_and_say_why() -> None:
    graph, seen = synth_cache(
        ImageCacheArgs(
            prefix="mlstack-dev",
            region="us-west-2",
            images=["nvcr.io/nvidia/tritonserver:26.04-py3", "docker.io/vllm/vllm-openai:v1"],
        )
    )
    assert graph.by_type(RULE) == []
    cache = seen["cache"]
    assert isinstance(cache, ImageCache)
    assert "NGC" in cache.uncached["nvcr.io"]
    assert "credential" in cache.uncached["docker.io"]
    assert cache.resolve("nvcr.io/nvidia/tritonserver:26.04-py3") == (
        "nvcr.io/nvidia/tritonserver:26.04-py3"
    )


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("prefix", {"prefix": "a-very-long-stack-prefix-name"}),
        (
            "credential_arns",
            {"credential_arns": {"docker.io": "arn:aws:secretsmanager:x:secret:hub"}},
        ),
        ("credential_arns", {"credential_arns": {"nvcr.io": SECRET}}),
    ],
)
def test_bad_args_are_refused_naming_the_field(field: str, args: dict[str, object]) -> None:
    base: dict[str, object] = {"prefix": "mlstack-dev", "region": "us-west-2", **args}
    with pytest.raises(SynthError, match=f"(?s)ImageCache.*{field}"):
        synth_cache(ImageCacheArgs(**base))  # type: ignore[arg-type]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_pods_pull_vllm_through_the_stacks_own_cache(stack: str, request) -> None:
    graph = request.getfixturevalue(f"{stack}_graph")
    (rule,) = graph.by_type(RULE)
    prefix = rule.inputs["ecrRepositoryPrefix"]
    assert prefix == f"mlstack-{stack}-docker-hub"  # per stack: dev and prod never collide
    images = [
        c["image"]
        for d in graph.by_type("kubernetes:apps/v1:Deployment")
        for c in d.inputs["spec"]["template"]["spec"]["containers"]
    ]
    assert any(f".amazonaws.com/{prefix}/vllm/vllm-openai:" in i for i in images)
    assert any(i.startswith("nvcr.io/") for i in images)  # Triton: NGC is not cacheable
