"""The JSON Schema editors use: stack files reference it and validate against it."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from stacks.config import PROJECT_ROOT
from stacks.stack_yaml import load_stack_yaml
from tests.conftest import STACKS

SCHEMA = PROJECT_ROOT / "schema/stack-config.schema.json"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_reference_and_satisfy_the_schema(stack: str) -> None:
    text = (PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert (
        text.splitlines()[0] == "# yaml-language-server: $schema=./schema/stack-config.schema.json"
    )
    jsonschema.validate(yaml.safe_load(text), json.loads(SCHEMA.read_text()))


def test_schema_rejects_an_unknown_key() -> None:
    document = load_stack_yaml((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["mlstack:clusterr"] = {}
    with pytest.raises(jsonschema.ValidationError, match="clusterr"):
        jsonschema.validate(document, json.loads(SCHEMA.read_text()))


def test_schema_marks_environment_knobs() -> None:
    schema = json.loads(SCHEMA.read_text())
    network = schema["$defs"]["NetworkConfig"]["properties"]
    assert network["natGateways"].get("x-env-knob") is True
    assert "x-env-knob" not in network["mode"]


def test_committed_schema_is_what_the_config_models_generate() -> None:
    """A new config field (``gpuPools[].autoRepair``...) reaches editors only once
    ``make schema`` rewrote the file: a stale file fails here."""
    from stacks.config import json_schema

    generated = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA.read_text(encoding="utf-8") == generated, "run `make schema`"
