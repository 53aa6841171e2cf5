"""Run preflight for one stack: synth offline, collect the facts, run every check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlstack.errors import UsageError
from mlstack.loader_pin import read_loader_pin
from mlstack.preflight.aws import Clients, require_credentials
from mlstack.preflight.checks import (
    GROUP_CHECKS,
    Context,
    CredentialsUnusableError,
    identity_checks,
)
from mlstack.preflight.facts import PlanFacts, add_stack_file_secrets, plan_facts
from mlstack.preflight.report import Report


def collect_facts(stack: str, root: Path) -> PlanFacts:
    """Load and synthesize ``Pulumi.<stack>.yaml`` offline (config errors: exit 2)."""
    from mlstack.synth import synth_config
    from stacks.config import ConfigError, load_config_file, stack_file
    from stacks.stack_yaml import load_stack_yaml

    try:
        cfg = load_config_file(stack, root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    facts = plan_facts(cfg, synth_config(cfg, stack))
    if facts.loader_tag is not None:
        # The tag the checked-out program pins (a rollback target's, with --root), which the
        # synth of today's code cannot know.
        pin = read_loader_pin(root)
        facts.loader_tag, facts.loader_digest = pin.tag, pin.digest
    document = load_stack_yaml(stack_file(stack, root).read_text(encoding="utf-8")) or {}
    return add_stack_file_secrets(facts, document)


def make_clients(facts: PlanFacts) -> Clients:
    """Clients for the stack's region from the standard chain (tests substitute stubs here)."""
    return Clients(facts.region)


def run_preflight(
    facts: PlanFacts,
    clients: Clients | None = None,
    *,
    today: dt.date | None = None,
    model_bucket: str | None = None,
) -> Report:
    """Every check, in report order. Raises ``UsageError`` when the credentials are unusable."""
    clients = clients if clients is not None else make_clients(facts)
    require_credentials(clients)
    ctx = Context(
        facts=facts,
        clients=clients,
        today=today or dt.datetime.now(dt.UTC).date(),
        model_bucket=model_bucket,
    )
    try:
        checks = identity_checks(ctx)
        for group in GROUP_CHECKS:
            checks += group(ctx)
    except CredentialsUnusableError as exc:
        raise UsageError(str(exc)) from None
    return Report(stack=facts.stack, region=facts.region, account=ctx.caller_account, checks=checks)
