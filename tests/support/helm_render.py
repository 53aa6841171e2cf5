"""Render a plan's Helm releases offline with Helm's own engine, in-process.

What ``pulumi up`` does with a ``kubernetes:helm.sh/v3:Release``: pulumi-kubernetes'
``helmReleaseProvider.Create`` (provider/pkg/provider/helm_release.go) runs Helm's
``action.Install`` against the cluster, so the templates see the cluster's discovery
(Helm ``Configuration.getCapabilities``, pkg/action/action.go: server version and API
versions), Helm installs the chart's ``crds/`` unless ``skipCrds``, and refuses a chart whose
declared dependencies are not under ``charts/`` (``action.CheckDependencies``,
pkg/action/install.go; called by ``checkChartDependencies`` in helm_release.go).

Here the same chart directory is rendered by helm-python-sdk (libhelm_c over Helm v4.2.3's
``engine.Render``; pulumi-kubernetes 4.34 embeds Helm v3.20, whose template engine the charts
rendered here do not tell apart) with the plan's release name, namespace and values, at the
cluster's Kubernetes version and with the API versions the plan installs. ``Chart.render`` of
helm-python-sdk 0.2.2 does not pass a Kubernetes version (it would render at Helm's default,
v1.36.0), but the native ``helm_render`` it calls accepts ``kube_version`` and
``api_versions`` (``helm template --kube-version --api-versions``): :func:`render_chart`
passes them, and ``tests/support/test_helm_render.py`` proves they reach the templates.

Chart sources: ``<upstream>/charts/src/<chart>-<version>/`` (the shared upstream reference
data, never copied into the repository) and, for subcharts a source lacks, every directory
of ``$MLSTACK_CHART_SOURCES`` (``:``-separated) holding ``<chart>-<version>/``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
EKS_CLUSTER = "aws:eks/cluster:Cluster"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader without its YAML 1.1 ``=`` (value) tag: a CRD's enum lists a
    plain ``=``, which Kubernetes (YAML 1.2) reads as a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_all(text: str) -> Iterator[Any]:
    return yaml.load_all(text, Loader=_Loader)


class ChartSourceMissingError(LookupError):
    """A chart, or a subchart it declares, is in none of the source directories."""


@dataclass(frozen=True)
class RenderedRelease:
    """The objects one release installs (``crds/`` first, then the templates, by path)."""

    resource: str
    release: str
    chart: str
    version: str
    namespace: str
    objects: tuple[dict[str, Any], ...]
    missing: str | None = None
    """Why the release could not be rendered (chart sources absent); ``objects`` is then
    empty."""

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") in kinds]

    def where(self) -> str:
        return f"{self.resource} ({self.chart} {self.version})"


def find_upstream() -> Path | None:
    """``$MLSTACK_UPSTREAM``, else the nearest ``shared/upstream`` above this file."""
    env = os.environ.get("MLSTACK_UPSTREAM")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "upstream" for p in Path(__file__).resolve().parents]
    return next((c for c in candidates if (c / "charts" / "src").is_dir()), None)


def source_roots(upstream: Path) -> list[Path]:
    """Where chart sources are looked up, in order."""
    extra = [Path(p) for p in os.environ.get("MLSTACK_CHART_SOURCES", "").split(":") if p]
    return [upstream / "charts" / "src", *extra]


def find_chart(name: str, version: str, roots: Sequence[Path]) -> Path:
    """``<root>/<name>-<version>/`` (``version`` may be a Helm wildcard like ``0.12.*``)."""
    for root in roots:
        if not root.is_dir():
            continue
        for candidate in sorted(root.iterdir(), reverse=True):
            if (
                fnmatch.fnmatch(candidate.name, f"{name}-{version}")
                and (candidate / "Chart.yaml").is_file()
            ):
                return candidate
    raise ChartSourceMissingError(
        f"chart {name} {version}: no {name}-{version}/ in {', '.join(map(str, roots))}"
    )


def _missing_dependencies(chart_dir: Path) -> list[dict[str, Any]]:
    """Declared dependencies that ``charts/`` does not hold, as Helm's CheckDependencies
    decides (by chart name, whatever the dependency's condition)."""
    import helm_python as helm

    with helm.Chart.load(chart_dir) as chart:
        declared: list[dict[str, Any]] = chart.metadata.get("dependencies") or []
        loaded = {str(d.get("name")) for d in chart.dependencies}
    return [d for d in declared if str(d["name"]) not in loaded]


def assemble(chart_dir: Path, roots: Sequence[Path], workdir: Path) -> Path:
    """``chart_dir`` itself when its dependencies are all there; else a copy in ``workdir``
    with the missing subcharts placed under ``charts/`` (``helm dependency build``)."""
    missing = _missing_dependencies(chart_dir)
    if not missing:
        return chart_dir
    found: dict[str, Path] = {}
    absent: list[str] = []
    for dep in missing:
        try:
            found[str(dep["name"])] = find_chart(str(dep["name"]), str(dep["version"]), roots)
        except ChartSourceMissingError:
            absent.append(f"{dep['name']}-{dep['version']}")
    if absent:
        raise ChartSourceMissingError(
            f"{chart_dir.name} declares subcharts missing from its charts/ and from "
            f"{', '.join(map(str, roots))}: {', '.join(absent)} (Helm refuses to install it "
            "so; add their sources as <chart>-<version>/ to shared/upstream/charts/src or a "
            "directory of $MLSTACK_CHART_SOURCES)"
        )
    target = workdir / chart_dir.name
    shutil.copytree(chart_dir, target)
    (target / "charts").mkdir(exist_ok=True)
    for name, source in found.items():
        shutil.copytree(source, target / "charts" / name)
    return target


def _objects(documents: Iterator[Any]) -> list[dict[str, Any]]:
    return [d for d in documents if isinstance(d, dict) and d.get("kind")]


def _path_value(values: Mapping[str, Any], dotted: str) -> Any:
    current: Any = values
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def disabled_subcharts(metadata: Mapping[str, Any], merged: Mapping[str, Any]) -> set[str]:
    """Names of the subcharts whose ``condition`` is off, as Helm's
    ``processDependencyConditions`` decides (pkg/chartutil/dependencies.go): the first of
    the comma-separated paths holding a boolean wins; none: enabled."""
    off: set[str] = set()
    for dep in metadata.get("dependencies") or []:
        for path in str(dep.get("condition") or "").split(","):
            value = _path_value(merged, path.strip()) if path.strip() else None
            if isinstance(value, bool):
                if not value:
                    off.add(str(dep["name"]))
                break
    return off


def _is_test_hook(obj: Mapping[str, Any]) -> bool:
    """``helm.sh/hook: test``: run by ``helm test`` only, never installed."""
    hooks = ((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
    return "test" in {h.strip() for h in str(hooks).split(",")}


def render_chart(
    chart_dir: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    kube_version: str,
    api_versions: Sequence[str] = (),
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    """The objects ``helm install`` of ``chart_dir`` creates: ``crds/`` of the chart and its
    enabled subcharts (unless ``include_crds`` is false), then every rendered template
    (NOTES.txt and ``helm test`` hooks excluded; install hooks included)."""
    import helm_python as helm
    from helm_python import _native  # pyright: ignore[reportPrivateUsage]

    options = {
        "name": release,
        "namespace": namespace,
        "is_install": True,
        "kube_version": kube_version,
        "api_versions": list(api_versions),
    }
    with helm.Chart.load(chart_dir) as chart:
        off = disabled_subcharts(chart.metadata, chart.merge_values(dict(values)))
        crds = [
            crd
            for crd in (chart.crds if include_crds else [])
            if not any(f"/charts/{name}/" in crd["filename"] for name in off)
        ]
        rendered: dict[str, str] = json.loads(
            _native.call_string(
                "helm_render",
                chart._raw(),  # pyright: ignore[reportPrivateUsage]
                json.dumps(dict(values)),
                json.dumps(options),
            )
        )
    objects: list[dict[str, Any]] = []
    for crd in crds:
        objects += _objects(_load_all(crd["data"]))
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        objects += [o for o in _objects(_load_all(rendered[path])) if not _is_test_hook(o)]
    return objects


def _installs_templated_crds(chart_dir: Path) -> bool:
    return any(
        "kind: CustomResourceDefinition" in f.read_text(errors="replace")
        for f in chart_dir.rglob("templates/*.yaml")
    )


def chart_name(inputs: Mapping[str, Any]) -> str:
    """The chart's name from a Release's ``chart`` input (a name or an ``oci://`` URL)."""
    return str(inputs["chart"]).rstrip("/").rsplit("/", 1)[-1]


def kube_version_of(graph: Any) -> str:
    """``v<major>.<minor>.0`` of the plan's EKS cluster."""
    clusters = list(graph.by_type(EKS_CLUSTER))
    if len(clusters) != 1:
        raise LookupError(f"expected one {EKS_CLUSTER} in the plan, found {len(clusters)}")
    return f"v{clusters[0].inputs['version']}.0"


def crd_api_versions(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """``group/version`` of every CustomResourceDefinition version among ``objects``."""
    found: set[str] = set()
    for obj in objects:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj["spec"]
        found |= {f"{spec['group']}/{v['name']}" for v in spec.get("versions", [])}
    return sorted(found)


def render_plan(graph: Any, upstream: Path) -> list[RenderedRelease]:
    """Every Helm release of a synthesized plan, rendered as it installs (a release whose
    chart sources are absent comes back with ``missing`` saying which).

    The cluster serves the CRDs of every release of the plan (the plan orders CRD releases
    before their users), so each release renders with those API versions available.
    """
    roots = source_roots(upstream)
    kube_version = kube_version_of(graph)
    releases = sorted(graph.by_type(HELM_RELEASE), key=lambda r: r.name)
    with tempfile.TemporaryDirectory(prefix="mlstack-charts-") as tmp:
        prepared: list[tuple[Any, Path]] = []
        missing: dict[str, str] = {}
        for node in releases:
            inputs = node.inputs
            workdir = Path(tmp) / node.name
            workdir.mkdir()
            try:
                source = find_chart(chart_name(inputs), str(inputs["version"]), roots)
                prepared.append((node, assemble(source, roots, workdir)))
            except ChartSourceMissingError as exc:
                missing[node.name] = str(exc)

        def render(node: Any, chart_dir: Path, apis: Sequence[str]) -> list[dict[str, Any]]:
            inputs = node.inputs
            return render_chart(
                chart_dir,
                inputs.get("values") or {},
                release=str(inputs["name"]),
                namespace=str(inputs.get("namespace") or "default"),
                kube_version=kube_version,
                api_versions=apis,
                include_crds=not inputs.get("skipCrds", False),
            )

        # The CRDs the plan installs: crds/ directories and templated CRDs.
        first = [
            render(node, path, ())
            for node, path in prepared
            if _installs_templated_crds(path) or any(path.rglob("crds/*.yaml"))
        ]
        apis = crd_api_versions([o for objects in first for o in objects])
        objects = {node.name: tuple(render(node, path, apis)) for node, path in prepared}
        return [
            RenderedRelease(
                resource=node.name,
                release=str(node.inputs["name"]),
                chart=chart_name(node.inputs),
                version=str(node.inputs["version"]),
                namespace=str(node.inputs.get("namespace") or "default"),
                objects=objects.get(node.name, ()),
                missing=missing.get(node.name),
            )
            for node in releases
        ]
