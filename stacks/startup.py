"""Map a stack's config onto start-up estimates (``components.serving.startup_estimate``).

Read by ``mlstack coldstart`` and by the config rule that refuses a
``models[].startupBudgetSeconds`` shorter than the model's cold start-up estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import versions
from components.compute.gpu_instances import GpuInstance, load_gpu_instances
from components.compute.gpu_node_pool import parallel_image_pull
from components.serving.startup_estimate import StartupEstimate, StartupInputs, estimate
from stacks.schema.gpu_pools import GpuPoolConfig
from stacks.schema.models import ModelConfig


def landing_instance(pool: GpuPoolConfig, gpus: int) -> GpuInstance | None:
    """The pool's smallest instance type with at least ``gpus`` GPUs (fewest GPUs first,
    then the lowest price in the data file): where a replica lands first."""
    facts = load_gpu_instances()
    fitting = [
        facts[t] for t in pool.allowed_instance_types() if t in facts and facts[t].gpu_count >= gpus
    ]
    if not fitting:
        return None

    def price(i: GpuInstance) -> float:
        return min(i.price_per_hour.values(), default=0.0)

    return min(fitting, key=lambda i: (i.gpu_count, price(i), i.instance_type))


@dataclass(frozen=True)
class MeasuredSizes:
    """Sizes read with credentials (``mlstack coldstart --live``), each with its source;
    ``None`` keeps the config's value."""

    model_gib: float | None = None
    model_source: str = ""
    image_gib: float | None = None
    image_source: str = ""


def startup_inputs(
    model: ModelConfig, pool: GpuPoolConfig, measured: MeasuredSizes | None = None
) -> StartupInputs | None:
    """The estimate's facts for one model on its pool; ``None`` if no type fits one replica
    (the capacity rules report that). ``measured`` sizes win over the config's."""
    instance = landing_instance(pool, model.gpus)
    if instance is None:
        return None
    measured = measured or MeasuredSizes()
    model_gib, model_source = model.model_size_gib, "models[].modelSizeGib"
    if measured.model_gib is not None:
        model_gib, model_source = measured.model_gib, measured.model_source
    if measured.image_gib is not None:
        image_gib, image_source = measured.image_gib, measured.image_source
    elif model.image_size_gib is not None:
        image_gib, image_source = model.image_size_gib, "models[].imageSizeGib"
    elif model.runtime in versions.IMAGE_SIZES_GIB:
        image_gib, image_source = versions.IMAGE_SIZES_GIB[model.runtime]
    else:  # custom runtime without a size: the largest preset as a stand-in
        image_gib = max(size for size, _ in versions.IMAGE_SIZES_GIB.values())
        image_source = "custom image of unknown size: the largest preset's size assumed"
    return StartupInputs(
        model=model.name,
        runtime=model.runtime,
        gpus=model.gpus,
        instance=instance,
        provisioner=pool.provisioner,
        ami_family=pool.ami.family,
        model_size_gib=model_gib,
        model_size_source=model_source,
        image_size_gib=image_gib,
        image_size_source=image_source,
        local_nvme=pool.instance_store_raid0 and instance.instance_store,
        ebs_throughput_mibps=pool.root_volume.throughput_mibps,
        parallel_image_pull=parallel_image_pull(pool.ami.family, pool.ami.release),
        node_cache=pool.model_cache.scope == "node",
    )


def startup_estimates(
    models: list[ModelConfig],
    pools: list[GpuPoolConfig],
    measured: dict[str, MeasuredSizes] | None = None,
) -> dict[str, StartupEstimate]:
    """Each model's estimate, by model name (models whose pool or fit is missing skipped)."""
    by_name = {p.name: p for p in pools}
    out: dict[str, StartupEstimate] = {}
    for model in models:
        pool = by_name.get(model.pool)
        inputs = startup_inputs(model, pool, (measured or {}).get(model.name)) if pool else None
        if inputs is not None:
            out[model.name] = estimate(inputs)
    return out
