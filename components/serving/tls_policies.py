"""The ELB TLS security policies mlstack accepts: minimum protocol TLS 1.2 or 1.3.

Source: Elastic Load Balancing User Guide, "Security policies for your Application Load
Balancer" (and the NLB page, which lists the same ``ELBSecurityPolicy-*`` names). Policies
that still allow TLS 1.0/1.1 (``ELBSecurityPolicy-2016-08``, ``-TLS13-1-1-2021-06``,
``-TLS-1-1-2017-01``, ...) are left out on purpose. Plain data: the config schema and the
policy pack (``lb-tls-policy``) read the same tuple.
"""

from __future__ import annotations

TLS12_POLICIES: tuple[str, ...] = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
    "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
    "ELBSecurityPolicy-FS-1-2-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2019-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10",
    "ELBSecurityPolicy-TLS-1-2-2017-01",
    "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
)
