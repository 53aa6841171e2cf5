"""The ``mlstack`` command line. ``main()`` maps errors to one line and an exit code.

Exit codes: 0 ok, 2 invalid config or usage, 1 anything else. ``--debug`` shows
tracebacks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer._click import exceptions as click_exceptions  # typer vendors click

from mlstack.errors import MlstackError, UsageError
from mlstack.model_store.cli import model_app

app = typer.Typer(
    name="mlstack",
    help="Offline plans, checks and delivery tools for the mlstack Pulumi program.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(model_app, name="model")

_DEBUG = {"on": False}

StackArg = Annotated[str, typer.Argument(help="Stack name: reads Pulumi.<stack>.yaml.")]
RootOpt = Annotated[
    Path, typer.Option("--root", help="Project directory holding the Pulumi.<stack>.yaml files.")
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _DEBUG["on"] = debug


def _load(stack: str, root: Path):
    from stacks.config import ConfigError, load_config_file

    try:
        return load_config_file(stack, root)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc


@app.command()
def validate(stack: StackArg, root: RootOpt = Path()) -> None:
    """Validate Pulumi.<stack>.yaml only (no synth)."""
    cfg = _load(stack, root.resolve())
    typer.echo(f"Pulumi.{stack}.yaml: valid ({cfg.environment}, {cfg.region})")


@app.command()
def plan(
    stack: StackArg,
    out: Annotated[
        Path | None, typer.Option("--out", help="Plan JSON path [build/plan/<stack>.json].")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Also run the render checks; fail on findings.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    root: RootOpt = Path(),
) -> None:
    """Synthesize a stack offline and write its plan JSON."""
    from mlstack.plan import DEFAULT_PLAN_DIR, summary, write_plan
    from mlstack.synth import synth_config

    cfg = _load(stack, root.resolve())
    graph = synth_config(cfg, stack)
    path = write_plan(graph, out or root / DEFAULT_PLAN_DIR / f"{stack}.json")
    info = summary(graph)
    findings = []
    if check:
        from mlstack.render_checks import check_graph

        findings = check_graph(graph, cfg.cluster.version)
    if as_json:
        info["findings"] = [f.render() for f in findings]
        info["warnings"] = graph.warnings
        info["plan"] = str(path)
        typer.echo(json.dumps(info, indent=2))
    else:
        typer.echo(f"stack {stack}: {info['resources']} resources -> {path}")
        for component, count in info["byComponent"].items():
            typer.echo(f"  {component:<24} {count:>4}")
        typer.echo("by type:")
        for type_token, count in info["byType"].items():
            typer.echo(f"  {type_token:<60} {count:>4}")
        for warning in graph.warnings:
            typer.echo(f"warning: {warning}")
        if check:
            typer.echo(f"render checks: {len(findings)} finding(s)")
            for finding in findings:
                typer.echo(f"  {finding.render()}")
    if findings:
        raise MlstackError(f"{len(findings)} render check finding(s) in stack {stack}")


@app.command()
def schema(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON Schema.")] = Path(
        "schema/stack-config.schema.json"
    ),
) -> None:
    """Write the JSON Schema of Pulumi.<stack>.yaml (editors validate as you type)."""
    from stacks.config import json_schema

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by the console script)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _DEBUG["on"] = "--debug" in args
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="mlstack", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except click_exceptions.ClickException as exc:
        exc.show()
        return 2
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except MlstackError as exc:
        if _DEBUG["on"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        if _DEBUG["on"]:
            raise
        typer.echo(
            f"error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", err=True
        )
        return 1


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
