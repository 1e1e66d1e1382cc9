"""The `modelreg` command: a click group; each command parses, calls the library and prints.

Commands are loaded when they run (click's lazy-group pattern): `modelreg deploy` imports the
deploy commands and what they call, nothing else. `modelreg --help` lists them all, so it loads
the command modules (not the library behind them).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

# command name -> the module (under modelreg.cli) and the attribute that define it
COMMANDS = {
    **{
        name: ("registry_commands", name)
        for name in ("init", "register", "show", "history", "diff", "find", "lineage")
    },
    "list": ("registry_commands", "list_"),
    **{
        name: ("deploy_commands", name)
        for name in (
            "render", "deploy", "promote", "rollback", "status", "ci", "quarantine",
            "unquarantine", "deprecate", "undeprecate", "release", "approve",
        )
    },
    **{
        name: ("artifact_commands", name)
        for name in ("remote", "pull", "verify", "validate", "gc")
    },
    **{name: ("serve_commands", name) for name in ("serve", "fetch")},
    **{name: ("site_commands", name) for name in ("site", "ui")},
    **{name: ("canary_commands", name) for name in ("canary", "analyze")},
}  # fmt: skip


class LazyGroup(click.Group):
    """A group whose commands are imported when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"modelreg.cli.{module}"), attribute)
        assert isinstance(command, click.Command), (cmd_name, command)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="modelreg")
@click.option(
    "-C",
    "--repo",
    "repo",
    default=".",
    type=click.Path(file_okay=False),
    help="Run in this registry instead of the current directory.",
)
@click.pass_context
def cli(ctx: click.Context, repo: str) -> None:
    """modelreg: a GitOps model registry.

    A model version is a DVC-tracked artifact committed to git and named by an annotated tag
    (churn@v3). Deploying a version renders Kubernetes manifests onto a deploy branch that Argo CD
    or Flux syncs; a rollback is a new commit that puts back what an earlier version deployed.
    """
    ctx.obj = repo


def main() -> None:
    try:
        cli(prog_name="modelreg")
    finally:
        try:
            sys.stdout.flush()
        except (
            BrokenPipeError
        ):  # `modelreg list | head`: the reader left on purpose; stop quietly, exit 1
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
