"""``mlstack:models``: served models. Each entry names the artifact version it serves.

The artifacts of a model live under ``models/<name>/<artifactVersion>/`` in the
model bucket (layout: ``components.storage.layout``, ``docs/model-artifacts.md``).
``mlstack model pin <stack> <name> <version>`` edits ``artifactVersion`` in place.
The inference-service fields (runtime, resources, autoscaling) join this class.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema, field_validator

from components.storage import layout
from stacks.schema.base import ConfigModel, fixed, knob

ModelName = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": layout.NAME_PATTERN, "maxLength": layout.NAME_MAX_LENGTH}
    ),
]
ArtifactVersion = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": layout.VERSION_PATTERN,
            "maxLength": layout.VERSION_MAX_LENGTH,
        }
    ),
]


class ModelConfig(ConfigModel):
    """One served model (fields added by the Model artifacts and Inference services issues)."""

    name: ModelName = fixed(
        description="Model name, a DNS-1123 label; its artifacts live under models/<name>/."
    )
    artifact_version: ArtifactVersion = knob(
        description=(
            "Artifact version served, a safe path segment (quote it if it looks like a "
            "number): models/<name>/<artifactVersion>/. Set with `mlstack model pin`."
        )
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        problem = layout.name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("artifact_version", mode="before")
    @classmethod
    def _version_is_a_string(cls, value: object) -> object:
        if isinstance(value, int | float):  # bool is an int too
            raise ValueError(
                f"got the {type(value).__name__} {value!r}; quote the version in YAML "
                '(e.g. "1.10") so it is not read as a number'
            )
        return value

    @field_validator("artifact_version")
    @classmethod
    def _safe_segment(cls, value: str) -> str:
        problem = layout.version_problem(value)
        if problem:
            raise ValueError(problem)
        return value
