"""How much of the address space a list of CIDRs opens, judged on their union.

``[0.0.0.0/1, 128.0.0.0/1]`` names no ``/0`` yet opens everything: a guardrail that
compares strings misses it. :func:`too_open` collapses the list per address family
and compares the share of that family's space it covers with a limit given as a
prefix length (at most what one ``/8`` covers for IPv4, one ``/32`` for IPv6). Every
"too open" check of the project (config rules, policy rules) calls it.

:func:`outside_rfc1918` is the one rule for a VPC's own range: inside the RFC 1918
blocks, not merely ``is_private`` (which also admits 0/8, 127/8, 169.254/16, 198.18/15).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

RFC1918: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
)
"""The private-use blocks of RFC 1918 section 3: a VPC's range lies inside one of them."""


def outside_rfc1918(cidr: str) -> str | None:
    """Why ``cidr`` is not an IPv4 network inside one RFC 1918 block, or ``None``.

    100.64.0.0/10 (RFC 6598, carrier-grade NAT) is refused too: EKS pods may use it as a
    secondary range, but never as the VPC's primary CIDR here."""
    try:
        network = ipaddress.ip_network(str(cidr), strict=True)
    except ValueError as exc:
        return f"not a network CIDR ({exc})"
    if not isinstance(network, ipaddress.IPv4Network) or not any(
        network.subnet_of(block) for block in RFC1918
    ):
        blocks = ", ".join(str(b) for b in RFC1918)
        return f"not inside an RFC 1918 private range; allowed: a network inside {blocks}"
    return None


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
