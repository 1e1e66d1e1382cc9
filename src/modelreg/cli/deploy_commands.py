"""render, deploy, promote, rollback, status, ci."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelreg.cli.output import emit_json, handle_errors, json_option, note, short, table, when, who

if TYPE_CHECKING:
    from modelreg.deploy import DeployOptions, DeployResult
    from modelreg.handle import Registry
    from modelreg.marks import PolicyChange

push_option = click.option(
    "--push", is_flag=True, help="Push the deploy branch to its remote afterwards."
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Show what would change; commit nothing."
)
force_option = click.option(
    "--force", is_flag=True, help="Overwrite manifests that were edited by hand."
)
missing_option = click.option(
    "--allow-missing",
    is_flag=True,
    help="Deploy even if the artifact is not in the DVC remote (pods will fail to fetch it).",
)


def _policy_remark(registry: Registry) -> None:
    """Say so when the working tree's modelreg.yaml is an edit that is not in force yet."""
    from modelreg.settings import local_differs

    if local_differs(registry.root, registry.policy):
        note(
            f"Note: your working tree's modelreg.yaml differs from {registry.policy.describe()}, "
            "which is the "
            f"policy in force; commit and push it to {registry.policy.ref} for it to apply."
        )


def _print_result(result: DeployResult, as_json: bool) -> None:
    for warning in result.warnings:
        note(warning)
    if as_json:
        emit_json(result.to_json())
    elif result.noop:
        click.echo(
            f"{result.tag} is already live in {result.env} (commit {short(result.commit)}): "
            "nothing to do."
        )
    else:
        verb = {"deploy": "Deployed", "promote": "Promoted", "rollback": "Rolled back"}[
            result.action
        ]
        prefix = f"Would have {verb.lower()}" if result.dry_run else verb
        was = f" (was {result.previous_version})" if result.previous_version else ""
        what = (
            f"{result.model} in {result.env} to {result.version}"
            if result.action == "rollback"
            else f"{result.tag} to {result.env}"
        )
        commit = "" if result.dry_run else f", commit {short(result.commit)}"
        click.echo(f"{prefix} {what}{was}: {', '.join(result.files)}{commit}")
        for gate in result.gates:
            click.echo(
                f"  gate {gate['gate']}: {'pass' if gate['passed'] else 'FAIL'} ({gate['detail']})"
            )
        if result.pushed:
            click.echo("Pushed the deploy branch.")


@click.command()
@click.argument("ref")
@click.option("--env", "env", required=True, help="Environment whose settings shape the manifests.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the manifests into this folder instead of printing them.",
)
@click.pass_obj
@handle_errors
def render(repo: str, ref: str, env: str, output: Path | None) -> None:
    """Render the manifests of REF for ENV, from the templates and settings at REF's tag.

    Example: modelreg render churn@v3 --env prod -o out/
    """
    from modelreg.handle import open_registry
    from modelreg.policy import deprecations
    from modelreg.render import render as run_render
    from modelreg.versions import resolve

    registry = open_registry(repo)
    found = resolve(registry, ref)
    version = (found.info.model, str(found.info.version))
    rendered = run_render(
        registry, found, env, deprecation=deprecations(registry, found.info.model).get(version)
    )
    if output is None:
        click.echo("---\n".join(data.decode() for data in rendered.files.values()), nl=False)
    else:
        output.mkdir(parents=True, exist_ok=True)
        for name, data in rendered.files.items():
            (output / name).write_bytes(data)
            click.echo(str(output / name))
    for warning in rendered.warnings:  # after the work: a failure is one line on stderr
        note(warning)


def change_options(command: Callable[..., None]) -> Callable[..., None]:
    """--push, --dry-run, --force, --allow-missing and --json: what deploy, promote and rollback
    share (passed on as `**flags`, DeployOptions' fields and `as_json`)."""
    for option in reversed(
        (push_option, dry_run_option, force_option, missing_option, json_option())
    ):
        command = option(command)
    return command


def _options(flags: dict[str, bool]) -> tuple[DeployOptions, bool]:
    """change_options' flags as DeployOptions, and whether to print JSON."""
    from modelreg.deploy import DeployOptions

    return DeployOptions(**{k: v for k, v in flags.items() if k != "as_json"}), flags["as_json"]


def _deploy(repo: str, ref: str, env: str, action: str, flags: dict[str, bool]) -> None:
    from modelreg.deploy import deploy as run_deploy
    from modelreg.handle import open_registry

    options, as_json = _options(flags)
    registry = open_registry(repo, refresh=options.push)
    result = run_deploy(registry, ref, env, options, action)
    _print_result(result, as_json)
    _policy_remark(registry)


@click.command()
@click.argument("ref")
@click.option("--env", "env", required=True, help="Environment to deploy to.")
@change_options
@click.pass_obj
@handle_errors
def deploy(repo: str, ref: str, env: str, **flags: bool) -> None:
    """Deploy REF to ENV: render it and commit the manifests to the deploy branch.

    Your working tree, index and current branch are not touched. An environment that
    `requires` another accepts only versions that were live there.

    Example: modelreg deploy churn@v3 --env staging --push
    """
    _deploy(repo, ref, env, "deploy", flags)


@click.command()
@click.argument("ref")
@click.option("--to", "env", required=True, help="Environment to promote to (e.g. prod).")
@change_options
@click.pass_obj
@handle_errors
def promote(repo: str, ref: str, env: str, **flags: bool) -> None:
    """Promote REF to an environment: a deploy, recorded as a promotion.

    Example: modelreg promote churn@v3 --to prod
    """
    _deploy(repo, ref, env, "promote", flags)


@click.command()
@click.argument("version", required=False)
@click.option(
    "--env", "env", help="Environment to roll back (default: the last one in modelreg.yaml)."
)
@click.option("--model", "model", help="Model to roll back (default: the only or default model).")
@change_options
@click.pass_obj
@handle_errors
def rollback(
    repo: str, version: str | None, env: str | None, model: str | None, **flags: bool
) -> None:
    """Put an environment back to VERSION (default: the last good version).

    The last good version is the newest earlier version live in ENV that is neither rolled back
    there nor quarantined, so repeated rollbacks walk back (v3, v2, v1) and never ping-pong. The
    manifests committed are byte for byte those of VERSION's earlier deploy, in a new commit
    (Modelreg-Restored-From). The version left is marked rolled back in ENV (deploying it there
    again needs --force), and ENV is held: tag pushes do not deploy over it until `release`.

    Example: modelreg rollback v2 --env prod
    """
    from modelreg.deploy import rollback as run_rollback
    from modelreg.handle import open_registry

    options, as_json = _options(flags)
    registry = open_registry(repo, refresh=options.push)
    result = run_rollback(registry, version, env, model, options)
    _print_result(result, as_json)
    _policy_remark(registry)


@click.command()
@click.option("--env", "env", help="Only this environment.")
@click.option(
    "--no-render", is_flag=True, help="Skip the fresh render (drift then means hand edits only)."
)
@json_option()
@click.pass_obj
@handle_errors
def status(repo: str, env: str | None, no_render: bool, as_json: bool) -> None:
    """What is live in each environment, and whether the deploy branch still matches it.

    DRIFT is `none`, `edited` (the files differ from the deploy commit: edited by hand) or
    `stale` (they differ from a fresh render of the tag).
    """
    from modelreg.handle import open_registry
    from modelreg.status import status as run_status

    states = run_status(open_registry(repo), env, check_render=not no_render)
    if as_json:
        return emit_json([s.to_json() for s in states])
    if not states:
        return click.echo(
            "Nothing deployed yet. Deploy a version: modelreg deploy MODEL@VERSION --env ENV"
        )
    table(
        ["env", "model", "version", "since", "by", "action", "commit", "drift", "tag", "flags"],
        [
            [
                s.env,
                s.model,
                s.version,
                when(s.since),
                who(s.by),
                s.action,
                short(s.commit),
                s.drift,
                s.tag_state,
                ",".join(
                    f
                    for f, on in (
                        ("QUARANTINED", s.quarantined),
                        ("DEPRECATED", s.deprecated),
                        ("held", s.held),
                        (f"canary:{_canary_flag(s.canary)}", s.canary),
                    )
                    if on
                )
                or "-",
            ]
            for s in states
        ],
    )
    for s in states:
        if s.tag_state in ("not fetched", "unknown"):
            note(
                f"{s.tag} ({s.env}) is not in this "
                f"clone{'' if s.tag_state == 'unknown' else ' (the remote has it)'}: "
                "git fetch --tags"
            )
        elif s.tag_state != "ok":
            note(
                f"WARNING: {s.tag} ({s.env}) was {s.tag_state} since it was deployed: versions are "
                "immutable; "
                "`modelreg deploy` refuses it until the tag is put back"
            )
        if s.quarantined:
            note(
                f"WARNING: {s.env} still runs {s.tag}, which is quarantined ({s.quarantined}): "
                f"roll back (modelreg rollback --env {s.env} --model {s.model})"
            )
        if s.deprecated:
            note(f"WARNING: {s.env} runs {s.tag}, which is {s.deprecated}")
        if s.held:
            note(
                f"{s.env} is held for {s.model} (a rollback): tag pushes do not deploy there until "
                f"`modelreg release {s.env} --model {s.model}` or a deploy by hand"
            )
        if s.canary:
            c = s.canary
            verdict = (
                f"last analysis {c['verdict']}: {c['summary']}"
                if c["verdict"]
                else "no analysis at this weight yet"
            )
            click.echo(
                f"{s.env}: canary of {c['tag']} at {c['weight']}% beside {s.version} since "
                f"{when(c['since'])} by {who(c['by'])} ({verdict})"
            )


def _canary_flag(canary: dict | None) -> str:
    return f"{canary['candidate']}@{canary['weight']}%" if canary else ""


@click.command()
@click.option("--push/--no-push", default=True, help="Push the deploy branch (default: push).")
@json_option()
@click.pass_obj
@handle_errors
def ci(repo: str, push: bool, as_json: bool) -> None:
    """Run from GitHub Actions: do what the triggering event asks.

    A tag push (GITHUB_EVENT_NAME=push, GITHUB_REF_TYPE=tag) deploys that tag to the first
    environment. workflow_dispatch reads MODELREG_ACTION (deploy, promote, rollback),
    MODELREG_REF and MODELREG_ENV.
    """
    from modelreg.ci import plan
    from modelreg.deploy import DeployOptions, Held
    from modelreg.deploy import deploy as run_deploy
    from modelreg.deploy import rollback as run_rollback
    from modelreg.handle import open_registry

    registry = open_registry(repo, refresh=push)
    step = plan(registry, os.environ)
    if step.action == "skip":
        return (
            emit_json({"skipped": True, "message": step.notice})
            if as_json
            else click.echo(f"::notice::{step.notice}")
        )
    options = DeployOptions(push=push, automated=step.automated)
    try:
        if step.action == "rollback":
            result = run_rollback(registry, step.ref, step.env, None, options)
        else:
            assert step.ref is not None
            result = run_deploy(registry, step.ref, step.env, options, step.action)
    except Held as exc:  # a rollback holds the environment: not an error, nothing to do
        return (
            emit_json({"held": True, "message": str(exc)})
            if as_json
            else click.echo(f"Not deployed: {exc}")
        )
    _print_result(result, as_json)


reason_option = click.option("--reason", required=True, help="Why: recorded in git with your name.")


def mark_options(command: Callable[..., None]) -> Callable[..., None]:
    """--reason, --push and --json: what quarantine, deprecate and their lifts share."""
    for option in reversed((reason_option, push_option, json_option())):
        command = option(command)
    return command


def _mark(repo: str, push: bool, as_json: bool, act: Callable[[Registry], PolicyChange]) -> None:
    """Open the registry (its policy as the origin has it when pushing), act, print the change."""
    from modelreg.handle import open_registry

    _print_policy(act(open_registry(repo, refresh=push)), as_json)


@click.command()
@click.argument("ref")
@mark_options
@click.pass_obj
@handle_errors
def quarantine(repo: str, ref: str, reason: str, push: bool, as_json: bool) -> None:
    """Keep REF out of every environment: deploy, promote, rollback and the workflow refuse it.

    Recorded as a commit on the deploy branch (who, when, why), so `--push` (or the next
    push of the branch) shares it. Environments that still run it are flagged by `status`.

    Example: modelreg quarantine churn@v3 --reason "drift on March traffic" --push
    """
    from modelreg.marks import quarantine as run

    _mark(repo, push, as_json, lambda registry: run(registry, ref, reason, push=push))


@click.command()
@click.argument("ref")
@mark_options
@click.pass_obj
@handle_errors
def unquarantine(repo: str, ref: str, reason: str, push: bool, as_json: bool) -> None:
    """Lift the quarantine of REF (recorded like the quarantine itself).

    Example: modelreg unquarantine churn@v3 --reason "false alarm: the drift was a logging bug"
    """
    from modelreg.marks import quarantine as run

    _mark(repo, push, as_json, lambda registry: run(registry, ref, reason, lift=True, push=push))


@click.command()
@click.argument("ref")
@click.option(
    "--sunset",
    required=True,
    metavar="YYYY-MM-DD",
    help="The first day deploy and promote refuse REF (UTC). Until then they warn.",
)
@click.option("--replacement", metavar="REF", help="The version callers should move to.")
@mark_options
@click.pass_obj
@handle_errors
def deprecate(
    repo: str,
    ref: str,
    sunset: str,
    replacement: str | None,
    reason: str,
    push: bool,
    as_json: bool,
) -> None:
    """Deprecate REF: callers are told until the sunset; after it, deploys refuse it.

    Recorded as a commit on the deploy branch like a quarantine. `list`, `show`, `status` and
    the site show it; `pull` warns; `deploy` and `promote` warn, and the pods they render answer
    with the Deprecation (RFC 9745) and Sunset (RFC 8594) headers and set
    modelreg_model_deprecated. Pods already running get the headers at their next deploy (`status`
    shows them `stale` until then): `modelreg deploy REF --env ENV` where it is live.
    Deprecating again with new terms replaces them.

    Example: modelreg deprecate churn@v2 --sunset 2027-03-01 --replacement churn@v4 --reason
    "retrained on 2026 data"
    """
    from modelreg.marks import deprecate as run

    _mark(
        repo,
        push,
        as_json,
        lambda registry: run(registry, ref, reason, sunset, replacement or "", push=push),
    )


@click.command()
@click.argument("ref")
@mark_options
@click.pass_obj
@handle_errors
def undeprecate(repo: str, ref: str, reason: str, push: bool, as_json: bool) -> None:
    """Lift the deprecation of REF (recorded like the deprecation itself).

    Example: modelreg undeprecate churn@v2 --reason "v4 is not ready for the EU callers"
    """
    from modelreg.marks import deprecate as run

    _mark(repo, push, as_json, lambda registry: run(registry, ref, reason, lift=True, push=push))


@click.command()
@click.argument("env")
@click.option("--model", help="Model to release (default: the only one held in ENV).")
@click.option("--reason", default="", help="Why (recorded).")
@push_option
@json_option()
@click.pass_obj
@handle_errors
def release(repo: str, env: str, model: str | None, reason: str, push: bool, as_json: bool) -> None:
    """Lift the hold a rollback put on ENV: tag pushes deploy there again.

    Example: modelreg release prod --model churn
    """
    from modelreg.marks import release as run

    _mark(repo, push, as_json, lambda registry: run(registry, env, model, reason, push=push))


@click.command()
@click.argument("ref")
@click.option("--env", "env", required=True, help="The environment the approval is for.")
@push_option
@json_option()
@click.pass_obj
@handle_errors
def approve(repo: str, ref: str, env: str, push: bool, as_json: bool) -> None:
    """Approve REF for ENV: a commit on the deploy branch signed with your git signing key.

    An environment with `approvals: N` in modelreg.yaml takes a version once N distinct allowed
    signers (.modelreg/allowed_signers, allowed_gpg) other than its tag's author approved it.

    Example: modelreg approve churn@v3 --env prod --push
    """
    from modelreg.marks import approve as run

    _mark(repo, push, as_json, lambda registry: run(registry, ref, env, push=push))


def _print_policy(change: PolicyChange, as_json: bool) -> None:
    if as_json:
        return emit_json(change.to_json())
    what = {
        "quarantine": f"Quarantined {change.model}@{change.version}",
        "unquarantine": f"Lifted the quarantine of {change.model}@{change.version}",
        "deprecate": f"Deprecated {change.model}@{change.version}",
        "undeprecate": f"Lifted the deprecation of {change.model}@{change.version}",
        "release": f"Released {change.env} for {change.model}",
        "approve": f"Approved {change.model}@{change.version} for {change.env}",
    }[change.action]
    if change.noop:
        state = {
            "quarantine": "is already quarantined",
            "unquarantine": "is not quarantined",
            "deprecate": "is already deprecated on these terms",
            "undeprecate": "is not deprecated",
            "release": f"is not held in {change.env}",
            "approve": f"is already approved by you for {change.env}",
        }[change.action]
        return click.echo(
            f"{change.model}{'@' + change.version if change.version else ''} {state}: nothing to "
            "do."
        )
    click.echo(
        f"{what} (commit {short(change.commit)})."
        + (" Pushed the deploy branch." if change.pushed else "")
    )
