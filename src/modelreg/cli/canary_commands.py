"""canary start/step/promote/abort, and analyze."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from modelreg.cli.output import emit_json, handle_errors, json_option, note, short
from modelreg.verdict import FAILED, INCONCLUSIVE, PASSED

if TYPE_CHECKING:
    from modelreg.analysis import Measurement
    from modelreg.canary import CanaryResult
    from modelreg.handle import Registry

# analyze's exit codes: 1 and 2 stay errors and usage, 3 is modelreg's own bug
EXIT_CODES = {PASSED: 0, FAILED: 4, INCONCLUSIVE: 5}

push_option = click.option(
    "--push", is_flag=True, help="Push the deploy branch to its remote afterwards."
)
env_option = click.option("--env", "env", required=True, help="The environment the canary runs in.")
model_option = click.option(
    "--model", "model", help="The model (default: the default model, or the only canary in ENV)."
)


@click.group()
def canary() -> None:
    """Run a candidate version beside the stable one on a share of the traffic.

    Every step is a commit on the deploy branch. Under serving.kind deployment the candidate's
    manifests go to <env>/<model>/canary/ (named <model>-<env>-canary) and the HTTPRoute of
    environments.ENV.canary.gateway splits the traffic by weight; under KServe the
    InferenceService gets canaryTrafficPercent. `modelreg analyze --record` judges it on
    Prometheus; step and promote need a passed analysis at the current weight.

    \b
    Example:
      modelreg canary start churn@v4 --env prod --weight 10 --push
      modelreg analyze --env prod --prometheus http://prometheus:9090 --record --push
      modelreg canary step --env prod --weight 50 --push
      modelreg canary promote --env prod --push
    """


def _print(result: CanaryResult, as_json: bool, what: str) -> None:
    if as_json:
        return emit_json(result.to_json())
    if result.noop:
        return click.echo(f"Nothing to do: it is so already (commit {short(result.commit)}).")
    click.echo(f"{what}, commit {short(result.commit)}")
    if result.pushed:
        click.echo("Pushed the deploy branch.")


@canary.command()
@click.argument("ref")
@env_option
@click.option(
    "--weight",
    type=click.IntRange(min=0, max=1_000_000),
    help="Percent of the traffic for REF, 1-99 (default: the first of canary.steps).",
)
@push_option
@json_option()
@click.pass_obj
@handle_errors
def start(repo: str, ref: str, env: str, weight: int | None, push: bool, as_json: bool) -> None:
    """Start a canary of REF in ENV beside the version live there.

    The stable manifests stay as they are; the candidate's are added beside them, and the
    split is set (HTTPRoute weights, or KServe's canaryTrafficPercent). The gates of ENV apply
    to REF as to a deploy. Trailers name the candidate, the stable version and the weight.
    """
    from modelreg.canary import start as run
    from modelreg.handle import open_registry

    result = run(open_registry(repo, refresh=push), ref, env, weight, push)
    _print(result, as_json,
           f"Started a canary of {result.model}@{result.candidate} in {env} at {result.weight}% "
           f"beside {result.stable}")  # fmt: skip


@canary.command()
@env_option
@model_option
@click.option(
    "--weight",
    type=click.IntRange(min=0, max=1_000_000),
    help="The new percent, above the current one (default: the next of canary.steps).",
)
@push_option
@json_option()
@click.pass_obj
@handle_errors
def step(
    repo: str, env: str, model: str | None, weight: int | None, push: bool, as_json: bool
) -> None:
    """Raise the canary's share of the traffic; refused unless the last analysis at the
    current weight passed."""
    from modelreg.canary import step as run
    from modelreg.handle import open_registry

    result = run(open_registry(repo, refresh=push), env, model, weight, push)
    _print(result, as_json,
           f"Stepped the canary of {result.model}@{result.candidate} in {env} to "
           f"{result.weight}%")  # fmt: skip


@canary.command()
@env_option
@model_option
@push_option
@json_option()
@click.pass_obj
@handle_errors
def promote(repo: str, env: str, model: str | None, push: bool, as_json: bool) -> None:
    """Deploy the candidate in place of the stable version (its manifests, no canary folder);
    refused without a passed analysis at the final weight (the last of canary.steps)."""
    from modelreg.canary import promote as run
    from modelreg.handle import open_registry

    result = run(open_registry(repo, refresh=push), env, model, push)
    if as_json:
        return emit_json(result.to_json())
    if result.noop:
        return click.echo(f"{result.tag} was promoted already (commit {short(result.commit)}).")
    click.echo(
        f"Promoted the canary: {result.tag} runs in {env} (was {result.previous_version}), "
        f"commit {short(result.commit)}"
    )
    if result.pushed:
        click.echo("Pushed the deploy branch.")


@canary.command()
@env_option
@model_option
@click.option("--reason", required=True, help="Why: recorded with the candidate's quarantine.")
@push_option
@json_option()
@click.pass_obj
@handle_errors
def abort(repo: str, env: str, model: str | None, reason: str, push: bool, as_json: bool) -> None:
    """Stop the canary: the stable deploy's manifests come back byte for byte
    (Modelreg-Restored-From), the candidate is quarantined with REASON, and ENV is held (tag
    pushes do not deploy there until `modelreg release`)."""
    from modelreg.canary import abort as run
    from modelreg.handle import open_registry

    result = run(open_registry(repo, refresh=push), env, model, reason, push)
    _print(result, as_json,
           f"Aborted the canary of {result.model}@{result.candidate} in {env}: "
           f"{result.stable} takes all the traffic, {result.candidate} is quarantined")  # fmt: skip


@click.command()
@click.option("--env", "env", help="The environment whose canary to judge.")
@model_option
@click.option("--all", "every", is_flag=True, help="Judge every running canary (the workflow).")
@click.option(
    "--prometheus",
    "url",
    required=True,
    envvar="MODELREG_PROMETHEUS_URL",
    help="Prometheus' base URL (or MODELREG_PROMETHEUS_URL), e.g. http://prometheus:9090.",
)
@click.option("--interval", help="Time between measurements, e.g. 30s (default: the policy's).")
@click.option(
    "--count", type=click.IntRange(min=1, max=1000), help="Measurements (default: the policy's)."
)
@click.option(
    "--on-fail",
    type=click.Choice(["hold", "abort"]),
    default="hold",
    show_default=True,
    help="hold: the canary stays where it is (step and promote refuse); abort: abort it.",
)
@click.option("--record", is_flag=True, help="Commit the analysis to the deploy branch.")
@push_option
@json_option()
@click.pass_obj
@handle_errors
def analyze(
    repo: str,
    env: str | None,
    model: str | None,
    every: bool,
    url: str,
    interval: str | None,
    count: int | None,
    on_fail: str,
    record: bool,
    push: bool,
    as_json: bool,
) -> None:
    """Judge the canary running in ENV on Prometheus, with ENV's analysis policy.

    Runs the policy's PromQL (success rate, 4xx rate and p99 latency against the stable
    version's, a traffic floor, served bytes against the card's SHA-256, your own checks) COUNT
    times INTERVAL apart and prints each measurement. Exit status: 0 passed, 4 failed,
    5 inconclusive (too little traffic, no data); 1 an error, 2 a usage error. With --all, the
    worst verdict's (failed, then inconclusive).
    `--record` commits the analysis (every query, value and condition) to the deploy branch;
    `--on-fail abort` then aborts a failed canary.

    Example: modelreg analyze --env prod --prometheus http://prometheus:9090 --record --on-fail
    abort --push
    """
    from modelreg.handle import open_registry

    if every == (env is not None):
        raise click.UsageError("give --env ENV or --all (one of them)")
    if every and model is not None:
        raise click.UsageError("--model goes with --env")
    registry = open_registry(repo, refresh=push)
    if push:  # judge the canary the remote's deploy branch runs
        from modelreg import target

        target.fetch(registry)
    targets = [(env, model)] if env is not None else _running(registry)
    if not targets:
        return emit_json([]) if as_json else click.echo("No canary runs: nothing to analyze.")
    results = [
        _judge(registry, where, name, url, interval, count, on_fail, record, push, as_json)
        for where, name in targets
    ]
    if as_json:
        emit_json(results if every else results[0])
    sys.stdout.flush()
    verdicts = {r["verdict"] for r in results}
    worst = next((v for v in (FAILED, INCONCLUSIVE) if v in verdicts), PASSED)
    raise SystemExit(EXIT_CODES[worst])


def _running(registry: Registry) -> list[tuple[str, str | None]]:
    """(env, model) of every running canary."""
    from modelreg import target
    from modelreg.policy import canaries

    return [(c.env, c.model) for c in canaries(target.read_log(registry))]


def _judge(
    registry: Registry,
    env: str,
    model: str | None,
    url: str,
    interval: str | None,
    count: int | None,
    on_fail: str,
    record: bool,
    push: bool,
    as_json: bool,
) -> dict[str, Any]:
    """Analyze one canary, print it, record it and abort it as asked; its JSON."""
    from modelreg.analysis import analyze as run

    def shown(number: int, measured: Measurement) -> None:
        if as_json:
            return
        click.echo(f"measurement {number}: {measured.verdict}")
        for check in measured.checks:
            click.echo(f"  {check.line()}")

    result = run(registry, env, model, url, interval, count, on_measurement=shown)
    data = result.to_json()
    if record:
        from modelreg.analysis import record as commit_record

        data["record"] = commit_record(registry, result, push)
    if result.verdict == FAILED and on_fail == "abort":
        from modelreg.canary import abort

        reason = f"canary analysis failed: {result.summary}"
        data["aborted"] = abort(registry, env, result.model, reason, push).commit
    if as_json:
        return data
    click.echo(
        f"Verdict for {result.tag} at {result.weight}% in {env}: {result.verdict.upper()} "
        f"({result.summary})"
    )
    if "record" in data:
        click.echo(f"Recorded: commit {short(data['record'])}")
    if "aborted" in data:
        click.echo(
            f"Aborted: {result.stable} takes all the traffic, {result.candidate} is "
            f"quarantined (commit {short(data['aborted'])})"
        )
    if push and ("record" in data or "aborted" in data):
        click.echo("Pushed the deploy branch.")
    if result.verdict != PASSED and "aborted" not in data:
        note(
            f"The canary stays at {result.weight}%: step and promote refuse until an "
            "analysis passes."
        )
    return data
