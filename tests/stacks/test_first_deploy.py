"""The first deploy of a new stack never waits on artifacts that are not pushed yet
(issue 12 item 2; docs/operations.md, "First deploy")."""

from __future__ import annotations

import json

from mlstack.review.plans import policy_stack
from policy.core import run_rule
from policy.rules import RULES
from tests.conftest import SynthEdited

INFERENCE_SERVICE = "mlstack:serving:InferenceService"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _timeouts(graph) -> list[int]:
    """Every wait the engine would do longer than Pulumi's 10-minute default."""
    found: list[int] = []
    for node in graph.resources:
        annotations = (node.inputs.get("metadata") or {}).get("annotations") or {}
        if "pulumi.com/timeoutSeconds" in annotations:
            found.append(int(annotations["pulumi.com/timeoutSeconds"]))
    return found


def test_the_bucket_phase_deploys_no_model_and_waits_on_no_artifact(
    synth_edited: SynthEdited,
) -> None:
    graph = synth_edited("dev", {"serving.deployModels": False})
    assert graph.by_type(INFERENCE_SERVICE) == []
    serving = [
        d for d in graph.by_type(DEPLOYMENT) if d.inputs["metadata"].get("namespace") == "inference"
    ]
    assert serving == []
    assert _timeouts(graph) == []  # no hour-long Deployment wait left
    assert graph.outputs["modelBucketName"]  # what `mlstack model push --stack dev` reads
    assert graph.outputs["inferenceEndpoints"] == {}
    assert graph.by_type("aws:s3/bucket:Bucket")


def test_the_serving_phase_deploys_every_model_with_its_long_wait(dev_graph) -> None:
    services = dev_graph.by_type(INFERENCE_SERVICE)
    assert len(services) == len(json.loads(json.dumps(dev_graph.outputs["inferenceEndpoints"])))
    assert services
    assert _timeouts(dev_graph) and max(_timeouts(dev_graph)) > 600


def test_the_bucket_phase_passes_every_mandatory_rule(synth_edited: SynthEdited) -> None:
    stack = policy_stack(synth_edited("prod", {"serving.deployModels": False}))
    blocking = [r.rule.id for r in (run_rule(rule, stack) for rule in RULES) if r.blocking]
    assert blocking == []
