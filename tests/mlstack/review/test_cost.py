"""Cost estimate: lines by resource type, a fixture instance catalog, the price data file."""

from __future__ import annotations

import json

import pytest

from mlstack.review.cost import (
    HOURS_PER_MONTH,
    PRICE_FILE,
    InstanceFacts,
    UnpricedRegionError,
    Usage,
    default_catalog,
    estimate,
    load_price_book,
    parse_cpu,
    parse_memory_gib,
    render_markdown,
    render_text,
)
from mlstack.synth import ResourceGraph
from tests.policy.graphs import graph, node

CATALOG = {
    "c1.test": InstanceFacts(
        "c1.test", vcpu=4, memory_gib=16, gpus=0, price_per_hour={"us-east-1": 0.5}
    ),
    "c2.test": InstanceFacts(
        "c2.test", vcpu=8, memory_gib=32, gpus=0, price_per_hour={"us-east-1": 1.0}
    ),
    "g1.test": InstanceFacts(
        "g1.test", vcpu=8, memory_gib=32, gpus=4, price_per_hour={"us-east-1": 4.0}
    ),
}

H = HOURS_PER_MONTH


def _lines(g: ResourceGraph, usage: Usage | None = None):
    result = estimate(g, catalog=CATALOG, usage=usage or Usage())
    return result, {(line.category, line.item): line for line in result.lines}


def _node_group(types: list[str], low: int, high: int, capacity: str = "ON_DEMAND"):
    template = node(
        "aws:ec2/launchTemplate:LaunchTemplate",
        "lt",
        {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"volumeSize": 100}}]},
    )
    group = node(
        "aws:eks/nodeGroup:NodeGroup",
        "ng",
        {
            "instanceTypes": types,
            "capacityType": capacity,
            "scalingConfig": {"minSize": low, "maxSize": high, "desiredSize": low},
        },
        depends_on=(template,),
    )
    return template, group


def test_node_group_min_uses_the_first_type_and_max_the_dearest() -> None:
    result, lines = _lines(graph(*_node_group(["c1.test", "c2.test"], 2, 5)))
    nodes = lines[("EC2 nodes", "ng")]
    assert nodes.monthly_min == pytest.approx(2 * 0.5 * H)
    assert nodes.monthly_max == pytest.approx(5 * 1.0 * H)
    disks = lines[("EBS storage", "ng disks")]
    gp3 = load_price_book().rate("us-east-1", "gp3GbMonth")
    assert gp3 is not None
    assert disks.monthly_min == pytest.approx(2 * 100 * gp3)
    assert disks.monthly_max == pytest.approx(5 * 100 * gp3)
    assert result.total_min == pytest.approx(nodes.monthly_min + disks.monthly_min, abs=0.01)


def test_spot_groups_are_priced_at_on_demand_and_say_so() -> None:
    _, lines = _lines(graph(*_node_group(["c1.test"], 1, 1, capacity="SPOT")))
    assert "spot priced at on-demand" in lines[("EC2 nodes", "ng")].detail


def test_unknown_instance_types_are_listed_as_unpriced() -> None:
    result, lines = _lines(graph(*_node_group(["zz9.huge"], 1, 2)))
    assert ("EC2 nodes", "ng") not in lines
    assert any("zz9.huge" in u for u in result.unpriced)


def _pool(requirements: list[dict[str, object]], limits: dict[str, object] | None):
    spec: dict[str, object] = {"template": {"spec": {"requirements": requirements}}}
    if limits is not None:
        spec["limits"] = limits
    return node(
        "kubernetes:karpenter.sh/v1:NodePool", "gpu", {"metadata": {"name": "gpu"}, "spec": spec}
    )


GPU_TYPES = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g1.test"]}]


def test_node_pool_maximum_comes_from_its_limits() -> None:
    _, lines = _lines(graph(_pool(GPU_TYPES, {"nvidia.com/gpu": 10, "cpu": "1000"})))
    line = lines[("Karpenter nodes", "gpu")]
    assert line.monthly_min == 0
    assert line.monthly_max == pytest.approx(2 * 4.0 * H)  # floor(10 GPUs / 4 per node) = 2
    assert "0-2 x g1.test" in line.detail


def test_node_pool_node_count_limit_caps_the_maximum() -> None:
    _, lines = _lines(graph(_pool(GPU_TYPES, {"nvidia.com/gpu": 100, "nodes": "3"})))
    assert lines[("Karpenter nodes", "gpu")].monthly_max == pytest.approx(3 * 4.0 * H)


def test_node_pool_limits_in_millicores_and_memory_units() -> None:
    families = [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["c2"]}]
    _, lines = _lines(graph(_pool(families, {"cpu": "16000m", "memory": "1Ti"})))
    assert lines[("Karpenter nodes", "gpu")].monthly_max == pytest.approx(2 * 1.0 * H)


def test_node_pool_without_limits_is_unbounded() -> None:
    result, lines = _lines(graph(_pool(GPU_TYPES, None)))
    assert lines[("Karpenter nodes", "gpu")].monthly_max is None
    assert result.total_max is None
    assert any("unbounded" in u for u in result.unpriced)
    assert "unbounded" in render_text(result)


def test_nat_gateways_public_ips_and_data_processing() -> None:
    nats = [node("aws:ec2/natGateway:NatGateway", f"nat-{i}", {}) for i in range(3)]
    eips = [node("aws:ec2/eip:Eip", f"eip-{i}", {}) for i in range(3)]
    book = load_price_book()
    hour, gb = book.rate("us-east-1", "natGatewayHour"), book.rate("us-east-1", "natGatewayGb")
    assert hour is not None and gb is not None
    _, lines = _lines(graph(*nats, *eips), Usage(nat_gb_per_month=1000))
    nat = lines[("Networking", "NAT gateways")]
    assert nat.monthly_min == pytest.approx(3 * hour * H)
    assert nat.monthly_max == pytest.approx(3 * hour * H + 1000 * gb)
    assert lines[("Networking", "public IPv4")].monthly_min == pytest.approx(3 * 0.005 * H)
    without_usage, _ = _lines(graph(*nats))
    assert any("NAT data processing" in n for n in without_usage.not_included)


def test_load_balancers_from_ingress_groups_and_nlb_services() -> None:
    def ingress(name: str, group: str | None):
        annotations = {"alb.ingress.kubernetes.io/group.name": group} if group else {}
        return node(
            "kubernetes:networking.k8s.io/v1:Ingress",
            name,
            {"metadata": {"annotations": annotations}, "spec": {"ingressClassName": "alb"}},
        )

    nlb = node(
        "kubernetes:core/v1:Service",
        "svc",
        {
            "metadata": {
                "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "external"}
            },
            "spec": {"type": "LoadBalancer"},
        },
    )
    g = graph(ingress("a", "shared"), ingress("b", "shared"), ingress("c", None), nlb)
    _, lines = _lines(g, Usage(lcu_per_load_balancer=2))
    assert set(k for k in lines if k[0] == "Load balancers") == {
        ("Load balancers", "group shared"),
        ("Load balancers", "Ingress c"),
        ("Load balancers", "Service svc"),
    }
    alb = lines[("Load balancers", "group shared")]
    assert alb.monthly_max == pytest.approx((0.0225 + 2 * 0.008) * H)
    assert "NLB" in lines[("Load balancers", "Service svc")].detail


def test_an_ingress_class_with_params_groups_its_ingresses_on_one_alb() -> None:
    params = node(
        "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams",
        "params",
        {"metadata": {"name": "shared-params"}, "spec": {"group": {"name": "inference"}}},
    )
    klass = node(
        "kubernetes:networking.k8s.io/v1:IngressClass",
        "class",
        {
            "metadata": {"name": "mlstack-alb"},
            "spec": {
                "controller": "ingress.k8s.aws/alb",
                "parameters": {"kind": "IngressClassParams", "name": "shared-params"},
            },
        },
    )
    other = node(
        "kubernetes:networking.k8s.io/v1:IngressClass",
        "nginx",
        {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}},
    )

    def ingress(name: str, klass_name: str):
        return node(
            "kubernetes:networking.k8s.io/v1:Ingress",
            name,
            {"metadata": {"annotations": {}}, "spec": {"ingressClassName": klass_name}},
        )

    g = graph(
        params,
        klass,
        other,
        ingress("a", "mlstack-alb"),
        ingress("b", "mlstack-alb"),
        ingress("c", "nginx"),
    )
    _, lines = _lines(g)
    assert {k for k in lines if k[0] == "Load balancers"} == {("Load balancers", "group inference")}


def test_kms_keys_with_rotation_and_alarms() -> None:
    keys = [
        node("aws:kms/key:Key", "a", {"enableKeyRotation": True}),
        node("aws:kms/key:Key", "b", {"enableKeyRotation": False}),
    ]
    alarms = [
        node("aws:cloudwatch/metricAlarm:MetricAlarm", "std", {"period": 60}),
        node("aws:cloudwatch/metricAlarm:MetricAlarm", "fast", {"period": 10}),
    ]
    _, lines = _lines(graph(*keys, *alarms))
    kms = lines[("Security", "KMS keys")]
    assert (kms.monthly_min, kms.monthly_max) == (2.0, 4.0)
    assert lines[("Monitoring", "CloudWatch alarms")].monthly_min == pytest.approx(0.10 + 0.30)


def test_a_region_without_prices_is_an_error_naming_it_never_a_zero_total() -> None:
    with pytest.raises(UnpricedRegionError, match=r"no prices for region eu-west-1 .*us-east-1"):
        estimate(graph(*_node_group(["c1.test"], 1, 1), region="eu-west-1"), catalog=CATALOG)


@pytest.mark.parametrize(("quantity", "cores"), [("4", 4.0), (8, 8.0), ("500m", 0.5), ("1.5", 1.5)])
def test_cpu_quantities(quantity: object, cores: float) -> None:
    assert parse_cpu(quantity) == cores


@pytest.mark.parametrize(
    ("quantity", "gib"), [("64Gi", 64.0), ("1Ti", 1024.0), ("512Mi", 0.5), (2**30, 1.0)]
)
def test_memory_quantities(quantity: object, gib: float) -> None:
    assert parse_memory_gib(quantity) == pytest.approx(gib)


@pytest.mark.parametrize("bad", ["four", "1.2.3", "-1", "2Gi"])
def test_bad_cpu_quantities_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="not a CPU quantity"):
        parse_cpu(bad)


@pytest.mark.parametrize("bad", ["10GB", "lots", "-1Gi", "1.2.3Mi"])
def test_bad_memory_quantities_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="not a memory quantity"):
        parse_memory_gib(bad)


# --------------------------------------------------------------------------- data and real stacks


def test_price_file_is_dated_sourced_and_covers_both_regions() -> None:
    doc = json.loads(PRICE_FILE.read_text())
    assert doc["date"] and doc["currency"] == "USD"
    assert set(doc["regions"]) == {"us-east-1", "us-west-2"}
    for region in doc["regions"].values():
        assert all(value > 0 for value in region.values())
    needed = {"eksClusterHour", "natGatewayHour", "albHour", "kmsKeyMonth", "gp3GbMonth"}
    assert needed <= set(doc["sources"])
    assert "alarmStandardMonth" in doc["sources"] and "ec2" in doc["sources"]
    for name in ("m6i.large", "m6i.xlarge", "m6a.xlarge"):
        facts = default_catalog()[name]
        assert set(facts.price_per_hour) == {"us-east-1", "us-west-2"}


def test_real_stacks_are_priced_line_by_line(any_graph: ResourceGraph) -> None:
    result = estimate(any_graph)
    categories = {line.category for line in result.lines}
    assert {"EKS control plane", "EC2 nodes", "Networking", "Security"} <= categories
    assert result.unpriced == []
    assert result.total_max is not None
    assert 0 < result.total_min <= result.total_max
    assert result.total_min == pytest.approx(
        sum(line.monthly_min for line in result.lines), abs=0.01
    )
    assert f"{result.total_min:,.2f}" in render_markdown(result)


def test_prod_costs_more_than_dev(dev_graph: ResourceGraph, prod_graph: ResourceGraph) -> None:
    assert estimate(prod_graph).total_min > estimate(dev_graph).total_min
