"""``ModelLoaderRepository``: the ECR repository of the model-loader image (``loader/``).

One private repository per stack, created by the stack, with immutable tags (a tag,
once pushed, always names the same image), a vulnerability scan on every push, and
encryption under a dedicated KMS key (rotation on). The CI role that builds the
image gets push rights on this repository only (:meth:`grant_push`); nodes pull with
their ECR pull-only managed policy (ECR decrypts through its own grant on the key).

No lifecycle policy: a rollback to an older commit needs the older image, so images
are never expired automatically. ``protect`` (prod) protects and retains the
repository and the key, so ``pulumi destroy`` never deletes images a retained
deployment may still pull. ``force_delete`` (dev) lets a destroy, or a delete-first
replacement, delete the repository with its images: the provider's delete
(``DeleteRepository`` with ``Force`` = ``force_delete``) fails with
``RepositoryNotEmptyException`` otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import actions, documents
from components.validation import require_valid

TYPE_TOKEN = "mlstack:serving:ModelLoaderRepository"
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


@dataclass(frozen=True)
class ModelLoaderRepositoryArgs:
    """Inputs of :class:`ModelLoaderRepository`. ``repository_name``: e.g.
    ``mlstack-dev-model-loader``; key deletion window in days (7-30); ``force_delete``:
    delete the repository with its images (not with ``protect``)."""

    repository_name: str
    key_deletion_window_days: int = 30
    protect: bool = False
    force_delete: bool = False

    def problems(self) -> list[str]:
        found: list[str] = []
        if not (2 <= len(self.repository_name) <= 256) or not _REPOSITORY.fullmatch(
            self.repository_name
        ):
            found.append(
                f"repository_name: {self.repository_name!r}: 2-256 lowercase letters, digits, "
                "'.', '_', '-' and '/' (ECR repository names)"
            )
        if not 7 <= self.key_deletion_window_days <= 30:
            found.append(f"key_deletion_window_days: {self.key_deletion_window_days}: allowed 7-30")
        if self.force_delete and self.protect:
            found.append(
                "force_delete: True: conflicts with protect (a protected repository is "
                "retained); allowed: False"
            )
        return found


class ModelLoaderRepository(pulumi.ComponentResource):
    """The loader image's ECR repository and its KMS key."""

    repository: aws.ecr.Repository
    key: aws.kms.Key
    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ModelLoaderRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        require_valid("ModelLoaderRepository", name, args.problems())
        super().__init__(TYPE_TOKEN, name, None, opts)
        self._name = name
        stateful = pulumi.ResourceOptions(
            parent=self, protect=args.protect, retain_on_delete=args.protect
        )
        self.key = aws.kms.Key(
            f"{name}-key",
            aws.kms.KeyArgs(
                description=f"ECR repository {args.repository_name} (model-loader image)",
                enable_key_rotation=True,
                deletion_window_in_days=args.key_deletion_window_days,
            ),
            opts=stateful,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            aws.kms.AliasArgs(name=f"alias/{args.repository_name}", target_key_id=self.key.key_id),
            # Fixed name: a replacement deletes the old alias first (lifecycle-fixed-name-replace).
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.repository = aws.ecr.Repository(
            f"{name}-repository",
            aws.ecr.RepositoryArgs(
                name=args.repository_name,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(
                        encryption_type="KMS", kms_key=self.key.arn
                    )
                ],
                force_delete=args.force_delete,
            ),
            # Fixed name (the push script names it): replaced delete-first, never side by side.
            opts=pulumi.ResourceOptions.merge(
                stateful, pulumi.ResourceOptions(delete_before_replace=True)
            ),
        )
        self.repository_url = self.repository.repository_url
        self.repository_arn = self.repository.arn
        self.register_outputs(
            {"repositoryUrl": self.repository_url, "repositoryArn": self.repository_arn}
        )

    def grant_push(self, role: aws.iam.Role, name: str) -> aws.iam.RolePolicy:
        """Let ``role`` push (and read back) images of this repository only; the
        authorization token is account-wide by AWS's design (no resource)."""
        document = self.repository.arn.apply(
            lambda arn: documents.to_json(
                documents.document(
                    documents.allow(actions.ECR_AUTH_TOKEN, ["*"], sid="EcrLogin"),
                    documents.allow(actions.ECR_PUSH, [arn], sid="PushModelLoaderImage"),
                )
            )
        )
        return aws.iam.RolePolicy(
            name,
            aws.iam.RolePolicyArgs(role=role.name, policy=document),
            opts=pulumi.ResourceOptions(parent=role),
        )
