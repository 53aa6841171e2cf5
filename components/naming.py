"""The one model-name rule: config (``mlstack:models[].name``), the bucket layout and
``mlstack model push`` all check names through :func:`model_name_problem`.

A model name becomes, unchanged or with a suffix, the name of Kubernetes objects and
of AWS resources, so its limits come from the tightest of them:

* Services are DNS-1035 labels (at most 63 characters, starting with a *letter*):
  ``<model>``, ``<model>-canary``, ``<model>-blue``, ``<model>-green``, ``<model>-nlb``
  (:data:`DERIVED_SUFFIXES`; the longest adds 7 characters).
* The model's IAM role is the Pulumi resource ``model-<model>-role``, auto-named with
  a ``-`` and 7 random hex characters; IAM role names have at most 64 characters:
  ``64 - len("model-") - len("-role") - 8 = 45``. That is the binding limit.
"""

from __future__ import annotations

import re

IAM_ROLE_NAME_MAX_LENGTH = 64
PULUMI_AUTONAME_SUFFIX_LENGTH = 8
"""``-`` plus 7 random hex characters Pulumi appends to auto-named resources."""
MODEL_ROLE_AFFIXES = ("model-", "-role")
"""The model role's Pulumi name is ``model-<model>-role`` (stacks/serving_layer)."""

MODEL_NAME_MAX_LENGTH = (
    IAM_ROLE_NAME_MAX_LENGTH
    - sum(len(affix) for affix in MODEL_ROLE_AFFIXES)
    - PULUMI_AUTONAME_SUFFIX_LENGTH
)
"""45: the longest model name whose IAM role name still fits in 64 characters."""

MODEL_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: lowercase letters, digits and '-', starting with a letter."""

DERIVED_SUFFIXES = ("canary", "blue", "green", "nlb")
"""``<model>-<suffix>`` names of one model's Kubernetes objects (tracks, the NLB Service)."""

_NAME = re.compile(MODEL_NAME_PATTERN)


def model_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid model name, or None when it is."""
    if not isinstance(name, str):
        return f"a model name must be a string, got {type(name).__name__}"
    if not name:
        return "a model name must not be empty"
    if len(name) > MODEL_NAME_MAX_LENGTH:
        return (
            f"a model name has at most {MODEL_NAME_MAX_LENGTH} characters (got {len(name)}): "
            "it names the model's IAM role and Kubernetes objects"
        )
    if not _NAME.fullmatch(name):
        return (
            "a model name must be a DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return None


def derived_names(model: str) -> tuple[str, ...]:
    """Every Kubernetes object name one model may use, whatever its rollout strategy."""
    return (model, *(f"{model}-{suffix}" for suffix in DERIVED_SUFFIXES))


def dns_safe(text: str) -> str:
    """``text`` as lowercase letters, digits and '-' only (stack names may hold '_', '.',
    capitals), for physical names built from it; ``stack`` when nothing is left."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "stack"
