"""``ImageCache``: ECR pull-through cache rules for the registries the runtime images use.

Model-server images are 8-20 GiB; pulled from their public registry on every new node,
they are slow, rate-limited (Docker Hub) and an outside dependency of every scale-up.
Through a pull-through cache rule the first node to pull an image makes ECR copy it into
a private repository in the stack's region; every later pull is in-region from ECR.

Per upstream registry that ECR supports as a pull-through source (:data:`UPSTREAMS`) and
that an image of the stack uses, the component creates:

- a ``PullThroughCacheRule`` under the prefix ``<prefix>-<registry>`` (the prefix is
  per stack, so two stacks in one account and region never collide on a rule);
- a ``RepositoryCreationTemplate`` for that prefix: the repositories ECR creates on the
  first pull are encrypted (AES-256; KMS would need a custom creation role) and keep at
  most :data:`KEEP_IMAGES` images;
- an inline policy on each puller role (the GPU node roles) allowing exactly
  ``ecr:BatchImportUpstreamImage`` and ``ecr:CreateRepository`` on
  ``repository/<prefix>-<registry>/*`` (what ECR requires of the principal whose pull
  fills the cache); pulls themselves use the nodes' ``AmazonEC2ContainerRegistryPullOnly``.

:meth:`ImageCache.resolve` rewrites an image reference to its cached form (an Output that
depends on its registry's rule and creation template and on the grants, so pods are created
after all three and the first pull finds them). Registries ECR does
not support (``nvcr.io`` for Triton, see :data:`UNSUPPORTED`) stay as they are.

Lifecycle: cached repositories are created by ECR, not by Pulumi: a destroy removes the
rules, templates and grants but leaves the cached repositories (docs/operations.md,
section 10). Tags stay mutable: ECR keeps a cached tag in sync with upstream only while the
repository's tags are mutable; pin images by digest for immutability.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.iam import actions
from components.serving.registries import UNSUPPORTED, UPSTREAMS, registry_of, repository_path
from components.validation import require_valid

TYPE_TOKEN = "mlstack:serving:ImageCache"
KEEP_IMAGES = 20
"""Images kept per cached repository (older ones expire)."""


@dataclass(frozen=True)
class ImageCacheArgs:
    """Inputs of :class:`ImageCache`.

    ``prefix`` makes rule prefixes unique per stack (e.g. ``mlstack-dev``); ``images``
    are every image reference the stack's pods run; ``credential_arns`` maps a registry
    host (``docker.io``) to the Secrets Manager secret ECR authenticates with;
    ``puller_role_names`` are the roles whose pulls may fill the cache (GPU node roles).
    A registry that needs a credential but has none is not cached (see
    :attr:`ImageCache.uncached`)."""

    prefix: str
    region: str
    partition: str = "aws"
    images: Sequence[str] = ()
    credential_arns: Mapping[str, str] = field(default_factory=dict)
    puller_role_names: Sequence[pulumi.Input[str]] = ()

    def problems(self) -> list[str]:
        found: list[str] = []
        longest = max((len(u.short_name) for u in UPSTREAMS.values()), default=0)
        if not self.prefix or len(self.prefix) + 1 + longest > 30:
            found.append(
                f"prefix: {self.prefix!r}: 1-{29 - longest} characters (ECR allows 30 for "
                "a cache rule's prefix, including '-<registry>')"
            )
        for host, arn in self.credential_arns.items():
            if host not in UPSTREAMS:
                found.append(f"credential_arns: {host!r}: allowed {sorted(UPSTREAMS)}")
            if ":secret:ecr-pullthroughcache/" not in arn:
                found.append(
                    f"credential_arns[{host!r}]: {arn!r}: a Secrets Manager secret whose name "
                    "starts with ecr-pullthroughcache/"
                )
        return found


class ImageCache(pulumi.ComponentResource):
    """Pull-through cache rules, creation templates and pull grants (module docstring)."""

    cached: dict[str, str]
    """Registry host -> cache prefix of each cached registry."""
    uncached: dict[str, str]
    """Registry host -> why its images are pulled from upstream."""

    def __init__(
        self, name: str, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        require_valid(type(self).__name__, name, args.problems())
        self._region = args.region
        self.cached, self.uncached = {}, {}
        rules: list[aws.ecr.PullThroughCacheRule] = []
        ready: dict[str, list[pulumi.Output[str]]] = {}  # host -> its rule and template ids
        for host in sorted({registry_of(i) for i in args.images}):
            upstream = UPSTREAMS.get(host)
            if upstream is None:
                self.uncached[host] = UNSUPPORTED.get(host, f"{host} is not an ECR upstream")
                continue
            credential = args.credential_arns.get(host)
            if upstream.needs_credential and credential is None:
                self.uncached[host] = f"{host} needs a credential (none configured)"
                continue
            prefix = f"{args.prefix}-{upstream.short_name}"
            self.cached[host] = prefix
            child = pulumi.ResourceOptions(parent=self)
            rule = aws.ecr.PullThroughCacheRule(
                f"{name}-{upstream.short_name}",
                aws.ecr.PullThroughCacheRuleArgs(
                    ecr_repository_prefix=prefix,
                    upstream_registry_url=upstream.upstream_url,
                    credential_arn=credential,
                ),
                # Fixed prefix: a replacing change (upstream URL) deletes the old rule
                # first, or the create fails with "already exists".
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(delete_before_replace=True)
                ),
            )
            rules.append(rule)
            template = aws.ecr.RepositoryCreationTemplate(
                f"{name}-{upstream.short_name}-template",
                aws.ecr.RepositoryCreationTemplateArgs(
                    prefix=prefix,
                    applied_fors=["PULL_THROUGH_CACHE"],
                    description=f"Cached images of {host} (mlstack)",
                    encryption_configurations=[
                        aws.ecr.RepositoryCreationTemplateEncryptionConfigurationArgs(
                            encryption_type="AES256"
                        )
                    ],
                    image_tag_mutability="MUTABLE",
                    lifecycle_policy=_lifecycle_policy(),
                ),
                opts=child,
            )
            ready[host] = [rule.id, template.id]
        self._rules = rules
        self._grants: list[aws.iam.RolePolicy] = []
        self._registry: dict[str, pulumi.Output[str]] = {}
        if rules:
            account = rules[0].registry_id
            for index, role in enumerate(args.puller_role_names):
                self._grants.append(
                    aws.iam.RolePolicy(
                        f"{name}-pull-{index}",
                        aws.iam.RolePolicyArgs(
                            role=role,
                            policy=account.apply(
                                lambda acct: _pull_policy(
                                    args.partition, args.region, acct, sorted(self.cached.values())
                                )
                            ),
                        ),
                        opts=pulumi.ResourceOptions(parent=self),
                    )
                )
            # The first pull of a host's image fills the cache: it needs that host's rule,
            # its creation template (else ECR creates the repository with its defaults) and
            # the grants, so each host's cached reference depends on all three.
            grant_ids = [g.id for g in self._grants]
            for host, ids in ready.items():
                self._registry[host] = pulumi.Output.all(account, *ids, *grant_ids).apply(
                    lambda values: f"{values[0]}.dkr.ecr.{args.region}.amazonaws.com"
                )
        self.register_outputs({"cached": self.cached, "uncached": self.uncached})

    def resolve(self, image: str) -> pulumi.Input[str]:
        """The image's cached reference when its registry is cached, else the image."""
        host = registry_of(image)
        prefix, registry = self.cached.get(host), self._registry.get(host)
        if prefix is None or registry is None:
            return image
        path = repository_path(image)
        return registry.apply(lambda registry: f"{registry}/{prefix}/{path}")


def _pull_policy(partition: str, region: str, account: str, prefixes: Sequence[str]) -> str:
    resources = [
        f"arn:{partition}:ecr:{region}:{account}:repository/{prefix}/*" for prefix in prefixes
    ]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "FillPullThroughCache",
                    "Effect": "Allow",
                    "Action": list(actions.ECR_PULL_THROUGH_IMPORT),
                    "Resource": resources,
                }
            ],
        },
        sort_keys=True,
    )


def _lifecycle_policy() -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the newest {KEEP_IMAGES} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": KEEP_IMAGES,
                    },
                    "action": {"type": "expire"},
                }
            ]
        },
        sort_keys=True,
    )
