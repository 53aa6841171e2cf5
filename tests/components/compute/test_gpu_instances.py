"""The GPU facts file: coverage, consistency with botocore, prices with date and source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.compute import gpu_instances
from stacks.schema import aws_enums

REQUIRED_FAMILIES = {"g4dn", "g5", "g6", "g6e", "p4d", "p5"}


def test_covers_the_required_families_in_both_regions() -> None:
    facts = gpu_instances.load_gpu_instances()
    assert gpu_instances.families() >= REQUIRED_FAMILIES
    assert {"us-east-1", "us-west-2"} <= gpu_instances.price_regions()
    for family in REQUIRED_FAMILIES:
        assert [t for t in facts.values() if t.family == family], family


def test_every_type_is_a_real_ec2_type_with_sane_facts() -> None:
    known = aws_enums.ec2_instance_types()
    for name, fact in gpu_instances.load_gpu_instances().items():
        assert name in known, name
        assert fact.instance_type == name
        assert 1 <= fact.gpu_count <= 16
        assert fact.vcpu >= 4 and fact.memory_gib >= 8
        assert fact.price_per_hour["us-east-1"] > 0 and fact.price_per_hour["us-west-2"] > 0


def test_well_known_facts() -> None:
    facts = gpu_instances.load_gpu_instances()
    assert (facts["p5.48xlarge"].gpu_count, facts["p5.48xlarge"].gpu_model) == (8, "H100")
    assert facts["p5.48xlarge"].total_gpu_memory_gib == 640
    assert (facts["g6e.xlarge"].gpu_model, facts["g6e.xlarge"].gpu_memory_gib) == ("L40S", 48)
    assert facts["g5g.xlarge"].kubernetes_arch == "arm64"
    assert facts["g4dn.xlarge"].kubernetes_arch == "amd64"
    assert facts["g5g.xlarge"].instance_store is False
    # within a family, more GPUs never cost less
    g5 = sorted((f for f in facts.values() if f.family == "g5"), key=lambda f: f.gpu_count)
    assert g5[0].price_per_hour["us-east-1"] < g5[-1].price_per_hour["us-east-1"]


def test_price_info_names_date_and_source() -> None:
    info = gpu_instances.price_info()
    assert info.date[:4].isdigit() and len(info.date) == 10
    assert "Price List" in info.source
    assert info.currency == "USD"
    assert set(info.regions) == gpu_instances.price_regions()


def test_expand_families_sizes_and_types_in_file_order() -> None:
    assert gpu_instances.expand(["g6.xlarge"], ["g5"], ["xlarge", "48xlarge"]) == (
        "g5.xlarge",
        "g5.48xlarge",
        "g6.xlarge",
    )
    assert gpu_instances.expand(["zz.unknown"]) == ("zz.unknown",)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda r: r.update(family="g9"), "does not match the name"),
        (lambda r: r.update(gpuCount=0), "gpuCount"),
        (lambda r: r["pricePerHour"].pop("us-west-2"), "prices for"),
        (lambda r: r.pop("vcpu"), "vcpu"),
    ],
)
def test_malformed_data_is_reported(tmp_path: Path, monkeypatch, edit, fragment: str) -> None:
    doc = json.loads(gpu_instances.DATA_FILE.read_text())
    edit(doc["instanceTypes"]["g5.xlarge"])
    broken = tmp_path / "gpu_instances.json"
    broken.write_text(json.dumps(doc))
    monkeypatch.setattr(gpu_instances, "DATA_FILE", broken)
    gpu_instances._document.cache_clear()
    gpu_instances._load.cache_clear()
    try:
        with pytest.raises(gpu_instances.GpuInstanceDataError, match=fragment):
            gpu_instances.load_gpu_instances()
    finally:
        monkeypatch.undo()
        gpu_instances._document.cache_clear()
        gpu_instances._load.cache_clear()
    assert "g5.xlarge" in gpu_instances.load_gpu_instances()
