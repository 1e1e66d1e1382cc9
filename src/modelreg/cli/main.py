"""The `modelreg` command: a click group; each command parses, calls the library and prints."""

from __future__ import annotations

import os
import sys

import click

from modelreg.cli import (
    artifact_commands,
    deploy_commands,
    registry_commands,
    serve_commands,
    site_commands,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    (churn@v3). Deploying a version renders Kubernetes manifests onto a deploy branch that
    Argo CD or Flux syncs; a rollback is a new commit that puts back what an earlier version
    deployed.
    """
    ctx.obj = repo


for module in (
    registry_commands,
    deploy_commands,
    artifact_commands,
    serve_commands,
    site_commands,
):
    for command in module.COMMANDS:
        cli.add_command(command)


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
