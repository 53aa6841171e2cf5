"""Start-up estimate: phases add up, and each depends on the fact it names."""

from __future__ import annotations

import dataclasses

import pytest

from components.compute.gpu_instances import load_gpu_instances
from components.serving import startup_estimate as se


def inputs(**overrides: object) -> se.StartupInputs:
    base = se.StartupInputs(
        model="llm",
        runtime="vllm",
        gpus=1,
        instance=load_gpu_instances()["g6e.xlarge"],
        provisioner="karpenter",
        ami_family="al2023",
        model_size_gib=30.0,
        image_size_gib=10.0,
        image_size_source="test",
        local_nvme=True,
        ebs_throughput_mibps=125,
        parallel_image_pull=False,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def phase(phases: tuple[se.Phase, ...], name: str) -> se.Phase:
    (found,) = [p for p in phases if p.name == name]
    return found


def test_totals_are_the_sum_of_their_phases() -> None:
    result = se.estimate(inputs())
    assert result.cold_seconds == round(sum(p.seconds for p in result.cold))
    assert result.warm_seconds == round(sum(p.seconds for p in result.warm))
    assert [p.name for p in result.cold] == [
        "node launch",
        "image pull",
        "weights fetch",
        "GPU load",
        "warm-up",
        "ready",
    ]


def test_a_warm_node_with_a_cache_hit_skips_node_image_and_download() -> None:
    result = se.estimate(inputs())
    names = {p.name for p in result.warm}
    assert "node launch" not in names and "image pull" not in names
    verify = phase(result.warm, "weights fetch")
    # No download, but the shared entry is re-hashed: faster than the cold fetch.
    assert 0 < verify.seconds < phase(result.cold, "weights fetch").seconds
    assert "re-hashed" in verify.basis
    assert result.warm_seconds < result.cold_seconds


def test_ebs_throughput_bounds_the_download_and_the_image_pull() -> None:
    nvme = se.estimate(inputs(local_nvme=True))
    ebs = se.estimate(inputs(local_nvme=False, ebs_throughput_mibps=125))
    assert phase(ebs.cold, "weights fetch").seconds == pytest.approx(30 * 1024 / 125)
    assert phase(ebs.cold, "weights fetch").seconds > phase(nvme.cold, "weights fetch").seconds
    faster_ebs = se.estimate(inputs(local_nvme=False, ebs_throughput_mibps=1000))
    faster = phase(faster_ebs.cold, "weights fetch").seconds
    assert faster < phase(ebs.cold, "weights fetch").seconds
    assert "rootVolume.throughputMibps" in phase(ebs.cold, "weights fetch").basis


def test_parallel_image_pull_shortens_the_pull() -> None:
    default = phase(se.estimate(inputs()).cold, "image pull")
    parallel = phase(se.estimate(inputs(parallel_image_pull=True)).cold, "image pull")
    assert parallel.seconds < default.seconds
    assert "parallel pull" in parallel.basis


def test_managed_node_groups_launch_slower_than_karpenter() -> None:
    karpenter = phase(se.estimate(inputs()).cold, "node launch")
    managed = phase(se.estimate(inputs(provisioner="managed")).cold, "node launch")
    assert managed.seconds > karpenter.seconds


def test_more_gpus_load_a_sharded_model_faster() -> None:
    one = se.estimate(inputs(local_nvme=True, model_size_gib=100.0))
    four = se.estimate(
        inputs(instance=load_gpu_instances()["g6e.12xlarge"], gpus=4, model_size_gib=100.0)
    )
    assert phase(four.warm, "GPU load").seconds <= phase(one.warm, "GPU load").seconds


def test_unknown_model_size_assumes_the_gpu_memory_is_full() -> None:
    result = se.estimate(inputs(model_size_gib=None))
    fetch = phase(result.cold, "weights fetch")
    assert "modelSizeGib unset" in fetch.basis
    expected_gib = 48 * se.UNKNOWN_MODEL_FILL  # g6e.xlarge: one 48 GiB L40S
    assert fetch.seconds == pytest.approx(expected_gib * 1024 / se.S3_FETCH_MIBPS.value)


def test_every_assumed_phase_names_its_source() -> None:
    result = se.estimate(inputs())
    for p in (*result.cold, *result.warm):
        if p.seconds > 0:
            assert p.sources, p.name


def test_a_per_pod_cache_fetches_the_weights_again_on_a_warm_node() -> None:
    shared = se.estimate(inputs())
    per_pod = se.estimate(inputs(node_cache=False))
    assert shared.warm_cache_hit and not per_pod.warm_cache_hit
    refetch = phase(per_pod.warm, "weights fetch")
    assert refetch.seconds == phase(per_pod.cold, "weights fetch").seconds > 0
    assert "per-pod cache" in refetch.basis
    assert per_pod.warm_seconds > shared.warm_seconds
    assert per_pod.cold_seconds == shared.cold_seconds


def test_a_measured_model_size_names_its_source() -> None:
    found = se.estimate(inputs(model_size_gib=2.5, model_size_source="manifest s3://b/m.json"))
    assert "2.5 GiB (manifest s3://b/m.json)" in phase(found.cold, "weights fetch").basis
