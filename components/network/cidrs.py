"""How much of the address space a list of CIDRs opens, judged on their union.

``[0.0.0.0/1, 128.0.0.0/1]`` names no ``/0`` yet opens everything: a guardrail that
compares strings misses it. :func:`too_open` collapses the list per address family
and compares the share of that family's space it covers with a limit given as a
prefix length (at most what one ``/8`` covers for IPv4, one ``/32`` for IPv6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

MAX_OPEN_PREFIX: dict[int, int] = {4: 8, 6: 32}
"""Per IP version: the union may cover at most as much as one network of this prefix."""


@dataclass(frozen=True)
class Openness:
    """The union of one family's CIDRs: its share of the space and an equivalent prefix."""

    version: int
    share: float
    """Fraction of the family's address space covered (1.0 = everything)."""
    networks: tuple[str, ...]
    """The collapsed union, e.g. ``('0.0.0.0/0',)`` for ``[0.0.0.0/1, 128.0.0.0/1]``."""

    @property
    def equivalent_prefix(self) -> float:
        """The prefix length of one network as large as the union (``0`` = all)."""
        import math

        return abs(-math.log2(self.share)) if self.share > 0 else float("inf")


def openness(cidrs: Iterable[str]) -> list[Openness]:
    """Collapse ``cidrs`` per IP version (invalid entries raise ``ValueError``)."""
    by_version: dict[int, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for cidr in cidrs:
        network = ipaddress.ip_network(str(cidr), strict=False)
        by_version.setdefault(network.version, []).append(network)
    result: list[Openness] = []
    for version in sorted(by_version):
        collapsed = list(ipaddress.collapse_addresses(by_version[version]))  # type: ignore[arg-type]
        bits = 32 if version == 4 else 128
        share = sum(n.num_addresses for n in collapsed) / 2.0**bits
        result.append(Openness(version, share, tuple(str(n) for n in collapsed)))
    return result


def too_open(cidrs: Iterable[str]) -> str | None:
    """Why the union of ``cidrs`` opens too much of the internet, or ``None``."""
    for family in openness(cidrs):
        limit = MAX_OPEN_PREFIX[family.version]
        if family.share > 2.0**-limit:
            union = ", ".join(family.networks[:4]) + (" ..." if len(family.networks) > 4 else "")
            return (
                f"together they cover {family.share:.2%} of the IPv{family.version} address "
                f"space (as much as one /{family.equivalent_prefix:.0f}; union: {union}); "
                f"allowed: at most one /{limit}'s worth"
            )
    return None
