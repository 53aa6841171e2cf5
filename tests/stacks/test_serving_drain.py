"""Keep-alive and draining on the rendered pod specs of both plans (issue 29, items 4, 5).

What the engine hands the kubelet and the servers, read from the synthesized plan:

* keep-alive: an ALB reuses an idle back-end connection until its idle timeout; a target
  that closes it first makes the ALB answer the next request on it with 502 (ELB guide,
  "Connection idle timeout"). vLLM reads ``VLLM_HTTP_TIMEOUT_KEEP_ALIVE`` (``vllm/envs.py``,
  default 5) and passes it to uvicorn as ``timeout_keep_alive``
  (``vllm/entrypoints/openai/api_server.py``, the ``serve_http`` call); Triton's HTTP
  endpoint (``src/http_server.cc`` ``HTTPServer::Start``: libevhtp, no
  ``evhtp_set_timeouts``) never closes an idle connection itself.
* draining: the kubelet runs the preStop hook, then sends SIGTERM and kills the container
  ``terminationGracePeriodSeconds`` after the pod's deletion. vLLM aborts every in-flight
  request on SIGTERM when ``--shutdown-timeout`` is 0, its default
  (``vllm/v1/engine/core.py`` ``EngineCoreProc._handle_shutdown``: ``mode = "abort" if
  shutdown_timeout == 0 else "drain"``); Triton waits ``--exit-timeout-secs``
  (``src/command_line_parser.cc``, default 30) for in-flight inferences
  (``src/main.cc``: ``StopEndpoints(&exit_timeout_secs)``).
"""

from __future__ import annotations

from typing import Any

import pytest

from components.serving.inference_service import PRE_STOP_SECONDS
from mlstack.synth import ResourceGraph
from stacks.config import StackConfig
from tests.conftest import STACKS, graph_for

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
ALB = "aws:lb/loadBalancer:LoadBalancer"


def _server(deployment: Any) -> dict[str, Any]:
    pod = deployment.inputs["spec"]["template"]["spec"]
    [server] = [c for c in pod["containers"] if c["name"] == "server"]
    return server


def _flag(args: list[str], flag: str) -> int:
    """The value of ``--flag=N`` or ``--flag N`` as the server's argument parser reads it
    (argparse and Triton's getopt_long both accept both forms; the last one wins)."""
    found: int | None = None
    for i, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            found = int(arg.split("=", 1)[1])
        elif arg == flag:
            found = int(args[i + 1])
    assert found is not None, f"{flag} not in {args}"
    return found


def _deployments(graph: ResourceGraph, runtime: str) -> list[Any]:
    found = [
        d
        for d in graph.by_type(DEPLOYMENT)
        if d.inputs["metadata"]["labels"].get("mlstack.io/runtime") == runtime
    ]
    assert found, f"no {runtime} Deployment in the {graph.stack} plan"
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_keeps_idle_connections_open_longer_than_the_alb(
    stack: str, stack_configs: dict[str, StackConfig]
) -> None:
    graph = graph_for(stack)
    [alb] = [n for n in graph.by_type(ALB) if n.inputs.get("loadBalancerType") == "application"]
    idle = int(alb.inputs["idleTimeout"])
    assert idle == stack_configs[stack].serving.load_balancer.idle_timeout_seconds
    for deployment in _deployments(graph, "vllm"):
        env = {e["name"]: e.get("value") for e in _server(deployment).get("env") or []}
        keep_alive = int(env["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"])
        assert keep_alive > idle, (deployment.name, keep_alive, idle)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    ("runtime", "flag"), [("vllm", "--shutdown-timeout"), ("triton", "--exit-timeout-secs")]
)
def test_servers_drain_within_the_grace_period_for_the_longest_request(
    stack: str, runtime: str, flag: str, stack_configs: dict[str, StackConfig]
) -> None:
    graph = graph_for(stack)
    models = {m.name: m for m in stack_configs[stack].models}
    groups = graph.by_type(TARGET_GROUP)
    for deployment in _deployments(graph, runtime):
        model = models[deployment.inputs["metadata"]["labels"]["mlstack.io/model"]]
        pod = deployment.inputs["spec"]["template"]["spec"]
        server = _server(deployment)
        shutdown = _flag(server["args"], flag)
        pre_stop = server["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop == PRE_STOP_SECONDS
        # Otherwise the kubelet kills the server before its drain ends.
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + shutdown
        # vLLM: 0 aborts every in-flight request at SIGTERM.
        assert shutdown >= model.longest_request_seconds >= 1
        # The load balancer keeps in-flight requests of a deregistered target as long.
        mine = [g for g in groups if g.inputs["tags"].get("mlstack:model") == model.name]
        assert mine
        for group in mine:
            assert group.inputs["deregistrationDelay"] >= model.longest_request_seconds
