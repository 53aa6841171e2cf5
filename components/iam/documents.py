"""Builders of IAM policy documents as plain dicts (JSON-serialisable, testable).

Trust policies for the three ways mlstack hands out AWS identities: an AWS
service principal, EKS Pod Identity, and IRSA (the cluster's OIDC provider).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from components.iam import actions

PolicyDocument = dict[str, Any]
VERSION = "2012-10-17"


def document(*statements: dict[str, Any]) -> PolicyDocument:
    return {"Version": VERSION, "Statement": list(statements)}


def allow(
    action_list: Sequence[str], resources: Sequence[str], sid: str | None = None
) -> dict[str, Any]:
    """An Allow statement; actions sorted so the rendered JSON is stable."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Action": sorted(action_list),
        "Resource": list(resources),
    }
    if sid:
        statement["Sid"] = sid
    return statement


def service_trust(service: str) -> PolicyDocument:
    """Trust an AWS service principal such as ``eks.amazonaws.com``."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": list(actions.SERVICE_ASSUME),
        }
    )


def pod_identity_trust(cluster_name: str, namespace: str, service_account: str) -> PolicyDocument:
    """Trust EKS Pod Identity for exactly one service account of one cluster.

    The association already binds the role to that service account; the session-tag
    conditions also stop any other association in the account (another cluster or
    namespace) from assuming the role.
    """
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": list(actions.POD_IDENTITY_ASSUME),
            "Condition": {
                "StringEquals": {
                    "aws:RequestTag/eks-cluster-name": cluster_name,
                    "aws:RequestTag/kubernetes-namespace": namespace,
                    "aws:RequestTag/kubernetes-service-account": service_account,
                }
            },
        }
    )


def irsa_trust(
    oidc_provider_arn: str, oidc_issuer_url: str, namespace: str, service_account: str
) -> PolicyDocument:
    """Trust exactly one Kubernetes service account through the cluster's OIDC provider."""
    issuer = oidc_issuer_url.removeprefix("https://")
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": oidc_provider_arn},
            "Action": actions.ASSUME_ROLE_WEB_IDENTITY,
            "Condition": {
                "StringEquals": {
                    f"{issuer}:aud": "sts.amazonaws.com",
                    f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                }
            },
        }
    )


def to_json(doc: PolicyDocument) -> str:
    """Stable JSON text for an IAM resource's ``policy`` input."""
    return json.dumps(doc, sort_keys=True)
