"""Rollout strategies as data: which Deployments (tracks) run, and where traffic goes.

* ``rolling``: one track, ``stable``; a new version is a rolling update of it.
* ``canary``: ``stable`` and ``canary`` side by side, each with its own Service (so
  its own ALB target group); the ALB forwards with the configured weights.
* ``blueGreen``: ``blue`` and ``green``, both fully scaled; the main route goes to
  the active color, a preview route (same host/path plus a header) to the idle one.

Promote, abort and roll back are config changes (docs/rollouts.md); this module turns
the config into names and weights, nothing else, so it is tested without Pulumi.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Strategy = Literal["rolling", "canary", "blueGreen"]
Track = Literal["stable", "canary", "blue", "green"]

TRACKS: dict[str, tuple[Track, ...]] = {
    "rolling": ("stable",),
    "canary": ("stable", "canary"),
    "blueGreen": ("blue", "green"),
}


def workload_name(model: str, track: str) -> str:
    """Deployment/Service name of a track: the stable track keeps the model's name, so
    switching rolling <-> canary never replaces the serving Deployment."""
    return model if track == "stable" else f"{model}-{track}"


@dataclass(frozen=True)
class Backend:
    """One weighted target of the main route: a Service (= an ALB target group)."""

    service: str
    weight: int


@dataclass(frozen=True)
class RoutePlan:
    """Where the model's traffic goes.

    ``main``: weighted backends of the main route (weights sum to 100).
    ``preview``: the Service the preview route reaches (blueGreen only).
    ``cluster_selector_track``: the track the in-cluster Service ``<model>`` selects.
    """

    main: tuple[Backend, ...]
    preview: str | None
    cluster_selector_track: Track


def route_plan(
    model: str,
    strategy: Strategy,
    canary_weight: int = 0,
    active_color: str | None = None,
) -> RoutePlan:
    """The routes of one model for its strategy; raises ValueError on bad inputs."""
    if strategy == "rolling":
        return RoutePlan((Backend(model, 100),), None, "stable")
    if strategy == "canary":
        if not 0 <= canary_weight <= 100:
            raise ValueError(f"canary weight {canary_weight} is not within 0..100")
        return RoutePlan(
            (
                Backend(workload_name(model, "stable"), 100 - canary_weight),
                Backend(workload_name(model, "canary"), canary_weight),
            ),
            None,
            "stable",
        )
    if active_color not in ("blue", "green"):
        raise ValueError(f"active color {active_color!r} is not blue or green")
    idle = "green" if active_color == "blue" else "blue"
    active: Track = "blue" if active_color == "blue" else "green"
    return RoutePlan(
        (Backend(workload_name(model, active), 100),),
        workload_name(model, idle),
        active,
    )


# --------------------------------------------------------------------------- rule priorities

RULE_SLOTS = 25000
"""ALB rule priorities run 1..50000; each model owns one slot = two priorities."""


def derived_rule_slot(model: str) -> int:
    """The listener-rule slot of a model, derived from its name alone (1..RULE_SLOTS), so a
    model's priorities never move when other models are added or removed."""
    digest = hashlib.sha256(model.encode()).digest()
    return 1 + int.from_bytes(digest[:8], "big") % RULE_SLOTS


def rule_priorities(slot: int) -> tuple[int, int]:
    """(preview, main) priorities of a slot: the header-matched preview rule is evaluated
    just before the main rule of the same host/path."""
    if not 1 <= slot <= RULE_SLOTS:
        raise ValueError(f"rule slot {slot} is not within 1..{RULE_SLOTS}")
    return 2 * slot - 1, 2 * slot


def path_patterns(path: str) -> list[str]:
    """ALB path-pattern values of a path prefix: ``/`` is everything, ``/v1`` matches
    ``/v1`` and ``/v1/...`` (not ``/v10``)."""
    if path == "/":
        return ["/*"]
    base = path.rstrip("/")
    return [base, f"{base}/*"]


WARM_SOURCE_CIDR = "255.255.255.255/32"
"""The only condition of a model's warm rule (a source-ip): the limited broadcast address,
which can never be the source of a TCP connection (RFC 1122, 4.2.3.10), so the rule
matches no request; it only makes ELB health-check the groups it names."""

RULE_CONDITION_VALUES = 5
"""ALB quota: condition values per rule (host, path patterns, header and source-ip values
together)."""


def condition_values(
    host: str | None, path: str, header: bool = False, source_cidrs: Sequence[str] = ()
) -> int:
    """How many condition values a listener rule for ``host``/``path`` (plus a header and
    source CIDRs) carries; ALB allows :data:`RULE_CONDITION_VALUES`."""
    count = (host is not None) + len(source_cidrs) + int(header)
    if host is None or path != "/":
        count += len(path_patterns(path))
    return count


def route_covers(outer: tuple[str | None, str], inner: tuple[str | None, str]) -> bool:
    """Whether every request ``inner`` (host, path prefix) matches also matches ``outer``."""
    (outer_host, outer_path), (inner_host, inner_path) = outer, inner
    if outer_host is not None:
        if inner_host is None:
            return False
        if outer_host.startswith("*."):
            if not (inner_host.endswith(outer_host[1:]) and inner_host != outer_host[2:]):
                return False
        elif outer_host != inner_host:
            return False
    prefix = outer_path.rstrip("/")
    return inner_path.rstrip("/") == prefix or inner_path.startswith(prefix + "/")
