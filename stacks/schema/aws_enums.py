"""Values AWS itself enumerates, read offline from botocore's service models.

botocore ships the API models of every service; their enum shapes are the
authoritative lists of instance types, EKS AMI types and capacity types. The
lists are loaded once per process.
"""

from __future__ import annotations

import difflib
from functools import cache

import botocore.session


@cache
def _enum(service: str, shape: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model(service)
    values = model.shape_for(shape).enum
    return frozenset(values)


def ec2_instance_types() -> frozenset[str]:
    """Every EC2 instance type name botocore knows (``ec2`` shape ``InstanceType``)."""
    return _enum("ec2", "InstanceType")


def eks_ami_types() -> frozenset[str]:
    """EKS managed node group AMI types (``eks`` shape ``AMITypes``)."""
    return _enum("eks", "AMITypes")


def eks_capacity_types() -> frozenset[str]:
    """EKS managed node group capacity types (``eks`` shape ``CapacityTypes``)."""
    return _enum("eks", "CapacityTypes")


def eks_log_types() -> frozenset[str]:
    """EKS control-plane log types (``eks`` shape ``LogType``)."""
    return _enum("eks", "LogType")


def describe_unknown(
    value: str, allowed: frozenset[str], what: str, *, list_all: bool = False
) -> str:
    """An error text for ``value`` not in ``allowed``, with close matches when any; the
    whole list when short (or ``list_all``)."""
    close = difflib.get_close_matches(value, sorted(allowed), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if len(allowed) <= 12 or list_all:
        return f"unknown {what}{hint}; allowed: {', '.join(sorted(allowed))}"
    return f"unknown {what} ({len(allowed)} known to botocore){hint}"


STACK_PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
"""The partitions a stack may run in (``stacks.composition.partition_of`` names these)."""


@cache
def regions() -> frozenset[str]:
    """Every region of the :data:`STACK_PARTITIONS` in botocore's endpoint data
    (``endpoints.json``; the isolated partitions' regions are left out)."""
    data = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    return frozenset(
        region
        for partition in data["partitions"]
        if partition["partition"] in STACK_PARTITIONS
        for region in partition.get("regions", {})
    )
