"""The AWS Load Balancer Controller's CRDs come from the pinned chart's ``crds/`` through its
Helm release: no manifest fetched from another host, and the bytes Helm installs match the
sha256 recorded per chart version."""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path

import yaml

from components.serving.identity import WorkloadIdentity
from components.serving.load_balancer import LoadBalancerArgs
from components.versions import (
    AWS_LOAD_BALANCER_CONTROLLER_CHART,
    AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256,
    CHARTS,
)
from mlstack.synth import ResourceGraph
from policy.rules.lifecycle import CRD_INSTALLERS

RELEASE = "kubernetes:helm.sh/v3:Release"
MANIFEST_EXTENSIONS = (".yaml", ".yml", ".json")


def _helm_crd_files(chart_dir: Path) -> dict[str, bytes]:
    """The files Helm installs from a packaged chart's crds/, read from its source.

    Helm ``pkg/chart/v2/chart.go`` ``CRDObjects``: every chart file whose name starts with
    ``crds/`` and ``hasManifestExtension`` (.yaml, .yml, .json); ``pkg/action/install.go``
    ``installCRDs`` creates each (an existing CRD is skipped: AlreadyExists). A file the
    chart's ``.helmignore`` names is not in the package (``helm package``,
    ``pkg/ignore/rules.go``; the patterns used here are plain paths and globs).
    """
    ignore = [
        line.strip()
        for line in (chart_dir / ".helmignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    found: dict[str, bytes] = {}
    for path in sorted((chart_dir / "crds").rglob("*")):
        name = path.relative_to(chart_dir).as_posix()
        if not path.is_file() or not name.endswith(MANIFEST_EXTENSIONS):
            continue
        if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path.name, p) for p in ignore):
            continue
        found[name] = path.read_bytes()
    return found


def test_no_manifest_is_fetched_from_a_host_outside_the_helm_repositories(
    any_graph: ResourceGraph,
) -> None:
    repositories = {pin.repository for pin in CHARTS.values()}
    for node in any_graph.resources:
        if node.type.startswith("kubernetes:yaml/"):
            sources = [node.inputs.get("file"), *(node.inputs.get("files") or [])]
            urls = [s for s in sources if isinstance(s, str) and "://" in s]
            assert urls == [], f"{node.urn} fetches {urls} at every preview/up"
        if node.type == RELEASE:
            repo = (node.inputs.get("repositoryOpts") or {}).get("repo")
            chart = str(node.inputs.get("chart"))
            assert repo in repositories or chart.startswith("oci://"), (node.urn, repo)


def test_the_controller_release_installs_the_crds_of_its_pinned_chart(
    any_graph: ResourceGraph,
) -> None:
    release = any_graph.one(RELEASE, "load-balancer-release").inputs
    assert release["chart"] == AWS_LOAD_BALANCER_CONTROLLER_CHART.chart
    assert release["version"] == AWS_LOAD_BALANCER_CONTROLLER_CHART.version
    assert release["repositoryOpts"]["repo"] == AWS_LOAD_BALANCER_CONTROLLER_CHART.repository
    assert release.get("skipCrds") in (None, False)


def test_recorded_crd_digests_are_those_of_the_files_helm_installs_from_the_pinned_chart(
    upstream: Path,
) -> None:
    version = AWS_LOAD_BALANCER_CONTROLLER_CHART.version
    chart = upstream / "charts" / "src" / f"aws-load-balancer-controller-{version}"
    files = _helm_crd_files(chart)
    assert "crds/kustomization.yaml" not in files  # .helmignore'd: not in the package
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert digests == AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256[version]
    # The lifecycle-crd-order rule knows every group this release installs.
    groups = {
        str(doc["spec"]["group"])
        for data in files.values()
        for doc in yaml.safe_load_all(data)
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    }
    assert groups == set(CRD_INSTALLERS["aws-load-balancer-controller"])


def test_a_chart_version_without_recorded_crd_digests_is_refused_by_name() -> None:
    args = LoadBalancerArgs(
        cluster_name="c",
        region="us-west-2",
        vpc_id="vpc-1",
        vpc_cidr="10.0.0.0/16",
        subnet_ids=[],
        target_security_group_id="sg-1",
        identity=WorkloadIdentity("irsa", "c", "arn", "https://x"),
        chart_version="9.9.9",
    )
    assert args.problems() == [
        "chart_version: '9.9.9': allowed 3.5.0 (versions whose crds/ digests are recorded "
        "in AWS_LOAD_BALANCER_CONTROLLER_CRDS_SHA256)"
    ]
