"""Where our controller policies deliberately differ from upstream's reference policies.

The test ``tests/components/iam/test_controller_iam_vs_upstream.py`` compares every
statement of the policies we write for the Karpenter controller and the AWS Load
Balancer Controller with upstream's (``../shared/upstream/iam/``, the versions pinned in
``components.versions``): each (action, resource) we grant must be granted by an upstream
statement whose conditions ours imply (equal or stricter), and each upstream action we
do not grant must be listed here. Every entry says why.

Controllers without an upstream reference policy in ``../shared/upstream/iam/``
(cluster-autoscaler, Alertmanager's SNS publisher, the model loaders, VPC flow logs)
are listed in :data:`NO_UPSTREAM_REFERENCE`.
"""

from __future__ import annotations

Controller = str
Action = str

DIFFERENCES: dict[tuple[Controller, Action], str] = {
    # ---- AWS Load Balancer Controller v3.5.0 (docs/install/iam_policy.json)
    **{
        ("aws-load-balancer-controller", action): "not granted: mlstack turns the feature off "
        "(controller flags enableWaf=false, enableWafv2=false, enableShield=false)"
        for action in (
            "waf-regional:AssociateWebACL",
            "waf-regional:DisassociateWebACL",
            "waf-regional:GetWebACL",
            "waf-regional:GetWebACLForResource",
            "wafv2:AssociateWebACL",
            "wafv2:DisassociateWebACL",
            "wafv2:GetWebACL",
            "wafv2:GetWebACLForResource",
            "elasticloadbalancing:SetWebAcl",
            "shield:CreateProtection",
            "shield:DeleteProtection",
            "shield:DescribeProtection",
            "shield:GetSubscriptionState",
        )
    },
    **{
        ("aws-load-balancer-controller", action): "not granted: no Cognito authentication and "
        "certificates only by ACM ARN (no IAM server certificates, no ACM discovery by host)"
        for action in (
            "cognito-idp:DescribeUserPoolClient",
            "iam:GetServerCertificate",
            "iam:ListServerCertificates",
        )
    },
}

NO_UPSTREAM_REFERENCE: dict[str, str] = {
    "cluster-autoscaler": "no reference policy shipped in ../shared/upstream/iam/; ours follows "
    "the chart's documented minimal policy, scoped to this cluster's ASG tags",
    "alertmanager": "publishes to the stack's own SNS topic and its KMS key only",
    "model-loader": "reads the model's own prefix of the model bucket (components.storage)",
    "vpc-flow-logs": "writes its own log group only",
}
