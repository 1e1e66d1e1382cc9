"""init, register, list, show, history, diff, find, lineage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelreg.cli.output import (
    byte_progress,
    emit_json,
    handle_errors,
    json_option,
    note,
    short,
    table,
    when,
    who,
)

if TYPE_CHECKING:
    from modelreg.compare import Diff
    from modelreg.policy import Deprecation, Mark
    from modelreg.versions import VersionInfo


@click.command()
@click.option(
    "--remote", metavar="URL", help="DVC remote for artifacts: a directory, s3://bucket/prefix, ..."
)
@click.option("--default-model", metavar="NAME", help="Model that bare version tags (v3) refer to.")
@click.option("--force", is_flag=True, help="Overwrite scaffolded files you have changed.")
@click.option(
    "--upgrade",
    is_flag=True,
    help="Move the workflow to this modelreg's version (it pins the one that wrote it); shows the "
    "diff.",
)
@json_option()
@click.pass_obj
@handle_errors
def init(
    repo: str,
    remote: str | None,
    default_model: str | None,
    force: bool,
    upgrade: bool,
    as_json: bool,
) -> None:
    """Make this git repo (git-init'ing it if needed) a model registry.

    Sets up DVC, writes modelreg.yaml, copies the manifest templates to templates/ and the
    GitHub Actions workflow to .github/workflows/modelreg.yml (installing exactly this modelreg
    version), and commits them. Running it again changes nothing but the workflow's environment
    list; files you changed are kept unless --force. --upgrade moves the workflow to the installed
    modelreg version and prints the diff.

    Example: modelreg init --remote /mnt/models-store --default-model churn
    """
    from modelreg.init import init as run_init

    result = run_init(
        Path(repo), remote=remote, default_model=default_model, force=force, upgrade=upgrade
    )
    if as_json:
        return emit_json(result.to_json())
    for diff in result.diffs.values():
        click.echo(diff, nl=False)
    if result.asked is not None:
        note(
            f"{result.asked} is inside the git repository {result.root}: the registry is set up at "
            "its top level "
            "(git init the folder first for a registry of its own)"
        )
    for rel in result.created:
        click.echo(f"created  {rel}")
    for rel in result.updated:
        click.echo(f"updated  {rel}")
    for rel in result.kept:
        note(f"kept     {rel} (you changed it; --force overwrites)")
    if result.commit:
        click.echo(f"Registry ready at {result.root} (commit {short(result.commit)}).")
    else:
        click.echo(f"{result.root} is already a modelreg registry: nothing changed.")
    if not result.has_remote and result.created:
        note(
            "No DVC remote yet: artifacts stay in the local cache. Add one with `modelreg init "
            "--remote URL`."
        )


@click.command()
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--version", "version", metavar="VERSION", help="Version to register (default: the next one)."
)
@click.option(
    "--bump",
    type=click.Choice(["major", "minor", "patch"]),
    help="Semver part to bump (semver registries).",
)
@click.option("-m", "--message", default="", help="What changed in this version.")
@click.option(
    "--metric", "metrics", multiple=True, metavar="K=V", help="A metric to record (repeatable)."
)
@click.option(
    "--param", "params", multiple=True, metavar="K=V", help="A parameter to record (repeatable)."
)
@click.option(
    "--card",
    "card_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A YAML file merged into the model card (description, signature, lineage...).",
)
@click.option("--no-push", is_flag=True, help="Do not push the artifact to the DVC remote.")
@click.option(
    "--no-inspect",
    is_flag=True,
    help="Skip the torch inspection (format, tensors, dtypes) of the artifact.",
)
@click.option(
    "--allow-duplicate", is_flag=True, help="Register bytes that an earlier version already holds."
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="PATH may be a symbolic link: register the file it points to.",
)
@click.option(
    "--sign",
    is_flag=True,
    help="Sign the tag with git's signing settings (SSH or GPG: gpg.format, user.signingKey).",
)
@click.option(
    "--sign-artifact",
    is_flag=True,
    help="Sign the artifact's bytes (OpenSSF model signing, extra `sign`): with --key, else "
    "keyless "
    "Sigstore with an OIDC identity token (SIGSTORE_ID_TOKEN, or GitHub Actions' id-token).",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The EC private key (PEM) for --sign-artifact (implies it); password in "
    "MODELREG_SIGNING_KEY_PASSWORD. The signature goes beside the card as model.sig.",
)
@click.option(
    "--lineage-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The folder of the DVC pipeline (its dvc.lock) whose stage made PATH: the card records "
    "the "
    "stage's inputs (path, md5), params, outputs and the code commit. Default: the registry's "
    "own dvc.lock, when one of its stages outputs PATH.",
)
@json_option()
@click.pass_obj
@handle_errors
def register(
    repo: str,
    name: str,
    path: Path,
    version: str | None,
    bump: str | None,
    message: str,
    metrics: tuple[str, ...],
    params: tuple[str, ...],
    card_file: Path | None,
    no_push: bool,
    no_inspect: bool,
    allow_duplicate: bool,
    follow_symlinks: bool,
    sign: bool,
    sign_artifact: bool,
    key: Path | None,
    lineage_from: Path | None,
    as_json: bool,
) -> None:
    """Register PATH (a file or a model folder) as a new version of model NAME.

    Every byte is read once (md5 for DVC, SHA-256 for the card) into DVC's cache, pushed to the
    remote, then one commit (card models/NAME/model.yaml and the DVC pointer) and its tag
    NAME@VERSION land together. Runs in one repository wait for each other (the registry lock).
    Re-running after a failure either finishes or says the bytes are already registered.

    Example: modelreg register churn ./model.pt -m "retrained on March data" --metric auc=0.91

    Signed: modelreg register churn ./model.pt --sign --sign-artifact --key release.key
    """
    import os

    from modelreg.digest import size_of
    from modelreg.formats import inspector
    from modelreg.handle import open_registry
    from modelreg.register import RegisterRequest
    from modelreg.register import register as run_register

    registry = open_registry(repo)
    request = RegisterRequest(
        name=name,
        path=path,
        version=version,
        bump=bump,
        message=message,
        metrics=metrics,
        params=params,
        card_file=card_file,
        push=not no_push,
        allow_duplicate=allow_duplicate,
        follow_symlinks=follow_symlinks,
        sign=sign,
        sign_artifact=sign_artifact or key is not None,
        key=key,
        identity_token=os.environ.get("SIGSTORE_ID_TOKEN") or None,
        lineage_from=lineage_from,
    )
    total = size_of(path) if path.is_file() and not path.is_symlink() else 0
    with byte_progress(total, f"Registering {path.name}") as progress:
        result = run_register(
            registry, request, progress=progress, inspect=None if no_inspect else inspector(note)
        )
    for warning in result.warnings:
        note(warning)
    if as_json:
        return emit_json(result.to_json())
    if result.existing:
        return click.echo(
            f"{result.tag} already holds these bytes (sha256 {result.sha256[:12]}, commit "
            f"{short(result.commit)}): nothing to do. --allow-duplicate registers them again."
        )
    click.echo(
        f"Registered {result.tag} ({result.pointer.size} bytes, sha256 {result.sha256[:12]}) "
        f"in commit {short(result.commit)}."
    )
    if result.signed_by:
        signer = (
            result.signed_by.get("identity") or f"key sha256:{result.signed_by.get('key', '')[:16]}"
        )
        click.echo(f"Artifact signed by {signer} (models/{result.model}/model.sig).")
    if result.pushed:
        click.echo("Artifact pushed to the DVC remote.")
    elif not result.has_remote:
        note(
            "No DVC remote configured: the artifact is only in the local cache. "
            "Add one: `dvc remote add -d storage URL` (or `modelreg init --remote URL`), then `dvc "
            "push`."
        )
    else:
        note("Not pushed (--no-push): run `dvc push` before others use this version.")
    click.echo(f"Publish it: git push origin HEAD {result.tag}")


@click.command(name="list")
@json_option("Print as JSON: a list of {model, latest, versions, invalid}.")
@click.pass_obj
@handle_errors
def list_(repo: str, as_json: bool) -> None:
    """List the models: latest version, when and by whom, how many versions."""
    from modelreg.handle import open_registry
    from modelreg.summaries import list_models

    models = list_models(open_registry(repo))
    if as_json:
        return emit_json([m.to_json() for m in models])
    if not models:
        return click.echo("No models yet. Register one: modelreg register NAME PATH")
    table(
        [
            "model",
            "latest",
            "registered",
            "by",
            "versions",
            "invalid",
            "quarantined",
            "deprecated",
            "moved",
        ],
        [
            [
                m.model,
                m.latest.version if m.latest else "-",
                when(m.latest.timestamp) if m.latest else "-",
                who(m.latest.author) if m.latest else "-",
                m.count,
                m.invalid or "",
                ",".join(m.quarantined),
                ",".join(m.deprecated),
                ",".join(m.moved),
            ]
            for m in models
        ],
    )
    for m in models:
        if m.moved:
            note(
                f"WARNING: {m.model} {', '.join(m.moved)}: the tag names another object than at "
                "its first deploy "
                "(versions are immutable): `modelreg verify --all` says which, deploy refuses it"
            )


@click.command()
@click.argument("ref")
@json_option("Print as JSON: {version, card, pointer, versions}.")
@click.pass_obj
@handle_errors
def show(repo: str, ref: str, as_json: bool) -> None:
    """Show the card of a version (NAME, NAME@VERSION or a bare VERSION) and the model's
    versions."""
    import yaml

    from modelreg.handle import open_registry
    from modelreg.policy import canaries, deprecations, quarantines
    from modelreg.target import analysis_records, moved, read_log
    from modelreg.verdict import check_line
    from modelreg.versions import resolve

    registry = open_registry(repo)
    found = resolve(registry, ref)
    log = read_log(registry, found.info.model)
    running = [c for c in canaries(log) if c.tag == found.info.tag]
    analyses = [r for r in log if r.action == "analysis" and r.version == str(found.info.version)][
        :SHOWN_ANALYSES
    ]
    measured = analysis_records(registry, analyses)
    held_back = {v: mark for (_, v), mark in quarantines(registry, found.info.model).items()}
    retiring = {v: mark for (_, v), mark in deprecations(registry, found.info.model).items()}
    shifted = {v for _, v in moved(registry, read_log(registry, found.info.model))}
    if as_json:
        return emit_json(
            {
                "version": found.info.to_json(),
                "card": found.card,
                "pointer": found.pointer.__dict__,
                "versions": [v.to_json() for v in found.versions],
                "quarantined": {v: mark.to_json() for v, mark in held_back.items()},
                "deprecated": {v: mark.to_json() for v, mark in retiring.items()},
                "moved": sorted(shifted),
                "canaries": [c.to_json() for c in running],
                "analyses": [{**r.to_json(), "record": m} for r, m in zip(analyses, measured)],
            }
        )
    click.echo(
        f"{found.info.tag}  commit {short(found.info.commit)}  {when(found.info.timestamp)}  "
        f"{who(found.info.author)}"
    )
    click.echo(yaml.safe_dump(found.card, sort_keys=False, allow_unicode=True).rstrip())
    click.echo("")
    table(
        ["version", "tag", "registered", "by", "status"],
        [
            [
                v.version,
                v.tag,
                when(v.timestamp),
                who(v.author),
                _state(
                    v,
                    held_back.get(str(v.version)),
                    str(v.version) in shifted,
                    retiring.get(str(v.version)),
                ),
            ]
            for v in reversed(found.versions)
        ],
    )
    for c in running:
        click.echo(f"\nCanary in {c.env} at {c.weight}% beside {c.stable} since {when(c.since)}")
    for record, full in zip(analyses, measured):
        click.echo(
            f"\nAnalysis in {record.env} at {record.weight}%: {record.verdict.upper()}  "
            f"{when(record.timestamp)}  {who(record.author)}  commit {short(record.commit)}"
        )
        for number, measurement in enumerate((full or {}).get("measurements", []), start=1):
            click.echo(f"  measurement {number}: {measurement.get('verdict')}")
            for check in measurement.get("checks", []):
                line = check_line(
                    str(check.get("name")),
                    check.get("value"),
                    str(check.get("condition")),
                    str(check.get("outcome")),
                )
                click.echo(f"    {line}")


SHOWN_ANALYSES = 5  # the newest analyses of the version `show` prints, with their measurements


def _state(
    info: VersionInfo, mark: Mark | None, shifted: bool, retiring: Deprecation | None = None
) -> str:
    if not info.valid:
        return f"invalid: {info.problem}"
    if shifted:
        return "MOVED: the tag names another object than at its first deploy (deploy refuses it)"
    if mark:
        return f"QUARANTINED: {mark.reason} ({who(mark.by)}, {when(mark.since)})"
    return (
        f"DEPRECATED: sunset {retiring.sunset}"
        + (f", use {retiring.replacement}" if retiring.replacement else "")
        if retiring
        else "ok"
    )


@click.command()
@click.argument("model", required=False)
@click.option("--env", help="Only deploys and rollbacks in this environment.")
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), default=None, help="Show at most this many events."
)
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help='With --env: what was live then (2026-03-01T14:00Z, 2026-03-01, "2 days ago", "yesterday '
    '14:00", @EPOCH).',
)
@json_option("Print as JSON: a list of events, newest first.")
@click.pass_obj
@handle_errors
def history(
    repo: str, model: str | None, env: str | None, limit: int | None, at: str | None, as_json: bool
) -> None:
    """Registrations, deploys, rollbacks, quarantines and releases, newest first (of one MODEL, or
    all).

    With --env ENV --at TIME: what was live in ENV at that moment, per model (version, tag object,
    artifact SHA-256, deploy commit, who, and whether it was a rollback).
    """
    from modelreg.handle import open_registry
    from modelreg.history import history as run_history

    if at is not None:
        return _live_at(repo, model, env, at, as_json)
    events = run_history(open_registry(repo), model=model, env=env)[:limit]
    if as_json:
        return emit_json([e.to_json() for e in events])
    if not events:
        return click.echo("No history yet.")
    table(
        ["when", "action", "model", "version", "env", "by", "commit", "note"],
        [
            [
                when(e.timestamp),
                e.action,
                e.model,
                e.version,
                e.env or "",
                who(e.author),
                short(e.commit),
                e.note,
            ]
            for e in events
        ],
    )


def _live_at(repo: str, model: str | None, env: str | None, at: str, as_json: bool) -> None:
    from modelreg.handle import open_registry
    from modelreg.history import live_at, parse_time

    if env is None:
        raise click.UsageError("--at needs --env ENV")
    registry = open_registry(repo)
    states = [
        s for s in live_at(registry, env, parse_time(at)) if model is None or s.model == model
    ]
    if as_json:
        return emit_json([s.to_json() for s in states])
    if not states:
        return click.echo(f"Nothing was live in {env} at {at}.")
    table(
        ["model", "version", "since", "by", "action", "commit", "tag object", "sha256"],
        [
            [
                s.model,
                s.version,
                when(s.timestamp),
                who(s.author),
                s.action,
                short(s.commit),
                s.tag_object[:12] or "-",
                (s.sha256 or "-")[:12],
            ]
            for s in states
        ],
    )
    for s in states:
        if s.canary:
            c = s.canary
            verdict = f"last analysis {c['verdict']}" if c["verdict"] else "not analysed yet"
            click.echo(
                f"{s.model}: a canary of {c['tag']} ran at {c['weight']}% beside it ({verdict})"
            )


@click.command("diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "--env",
    "envs",
    multiple=True,
    help="Also diff the manifests each would get in ENV (repeatable).",
)
@click.option("--check", is_flag=True, help="Exit 1 when NEW breaks OLD's callers (for CI).")
@json_option(
    "Print as JSON: {old, new, verdict, reasons, card, metrics, params, artifact, "
    "validation_p50_ms, manifests}."
)
@click.pass_obj
@handle_errors
def diff(repo: str, old: str, new: str, envs: tuple[str, ...], check: bool, as_json: bool) -> None:
    """What changed from OLD to NEW, and whether NEW can replace OLD for OLD's callers.

    Card fields, metrics with deltas, params, the artifact (per file for folders, from DVC's
    listings), validation latency, and with --env the rendered manifests. The compatibility
    verdict reads the signatures: breaking when an input is removed or added without a default,
    a dtype, a rank or a fixed dimension changes, or an output is removed; compatible when an
    output is added or a dimension relaxed to -1. An environment with `schema: compatible`
    refuses a breaking version (deploy --force overrides it, recorded).

    Examples: modelreg diff churn@v3 churn@v4; modelreg diff v3 v4 --check; modelreg diff v3 v4
    --env prod
    """
    from modelreg.compare import diff as run_diff
    from modelreg.handle import open_registry
    from modelreg.versions import resolve

    registry = open_registry(repo)
    for env in envs:
        registry.config.env(env)
    result = run_diff(registry, resolve(registry, old), resolve(registry, new), list(envs))
    if as_json:
        emit_json(result.to_json())
    else:
        _print_diff(result)
    if check and result.verdict.breaking:
        raise SystemExit(1)


def _print_diff(result: Diff) -> None:
    click.echo(f"{result.old} -> {result.new}: {result.verdict.word}")
    for reason in result.verdict.reasons:
        click.echo(f"  {'!' if reason.kind == 'breaking' else '+'} {reason.where}: {reason.text}")
    if result.card:
        table(
            ["card", "old", "new"], [[k, _cell(a), _cell(b)] for k, (a, b) in result.card.items()]
        )
    if result.metrics:
        table(
            ["metric", "old", "new", "delta"],
            [
                [
                    k,
                    _cell(m["old"]),
                    _cell(m["new"]),
                    "" if m["delta"] is None else f"{m['delta']:+g}",
                ]
                for k, m in result.metrics.items()
            ],
        )
    if result.params:
        table(
            ["param", "old", "new"],
            [[k, _cell(a), _cell(b)] for k, (a, b) in result.params.items()],
        )
    artifact = result.artifact
    if artifact.get("same"):
        click.echo("artifact: the same bytes")
    else:
        click.echo(
            f"artifact: sha256 {str(artifact['sha256']['old'])[:12]} -> "
            f"{str(artifact['sha256']['new'])[:12]}, "
            f"{artifact['size']['old']} -> {artifact['size']['new']} bytes"
        )
        files = artifact.get("files")
        if isinstance(files, dict):
            for kind in ("added", "removed", "changed"):
                for name in files[kind]:
                    click.echo(f"  {kind}: {name}")
        elif files:
            click.echo(f"  files {files}")
    for device, p50 in result.latency.items():
        click.echo(
            f"validation p50 on {device}: {p50['old']} -> {p50['new']} ms ({p50['delta']:+g})"
        )
    for env, text in result.manifests.items():
        click.echo(text if text else f"manifests for {env}: the same")


@click.command("lineage")
@click.argument("ref")
@json_option("Print as JSON: the card's lineage, or null.")
@click.pass_obj
@handle_errors
def lineage(repo: str, ref: str, as_json: bool) -> None:
    """How REF was made: the DVC stage, its inputs (path, md5), params, outputs and code commit.

    Recorded at register from the dvc.lock of the pipeline that made the artifact
    (`register --lineage-from DIR`). `modelreg find 'uses == "data/train.csv"'` lists the versions
    trained on a file.

    Example: modelreg lineage churn@v3
    """
    from modelreg.card import section
    from modelreg.handle import open_registry
    from modelreg.versions import resolve

    found = resolve(open_registry(repo), ref)
    made = found.card.get("lineage") if isinstance(found.card.get("lineage"), dict) else None
    if as_json:
        return emit_json(made)
    if made is None:
        return click.echo(
            f"{found.info.tag} records no lineage (register it with --lineage-from DIR)."
        )
    click.echo(
        f"{found.info.tag}: stage {made.get('stage')} of {made.get('lock')}, code commit "
        f"{made.get('code_commit') or '-'}"
    )
    table(["input", "md5"], [[d.get("path"), d.get("md5")] for d in made.get("deps", [])])
    for file, values in section(made, "params").items():
        click.echo(f"params {file}: " + ", ".join(f"{k}={v}" for k, v in (values or {}).items()))
    table(["output", "md5"], [[o.get("path"), o.get("md5")] for o in made.get("outs", [])])


@click.command("find")
@click.argument("expression")
@json_option(
    "Print as JSON: [{model, version, tag, author, date, metrics, params, live, was_live, "
    "quarantined, deprecated, signed, uses}]."
)
@click.pass_obj
@handle_errors
def find(repo: str, expression: str, as_json: bool) -> None:
    """Versions matching EXPRESSION (no eval: a small language of its own).

    Comparisons (== != < <= > >= and ~ for contains) of fields with values, joined by and, or,
    not and parentheses. Fields: model, version, tag, author, date, metrics.NAME, params.NAME,
    live and was_live (environments), quarantined, deprecated, signed, uses and uses_md5 (the
    lineage's inputs). A field alone tests truth.

    Examples: modelreg find 'metrics.auc >= 0.9 and live == prod';
    modelreg find 'date >= 2026-01-01 and not quarantined'; modelreg find 'uses == "data/train.csv"'
    """
    from modelreg.find import find as run_find
    from modelreg.handle import open_registry

    found = run_find(open_registry(repo), expression)
    if as_json:
        return emit_json([f.to_json() for f in found])
    if not found:
        return click.echo("No version matches.")
    table(
        ["tag", "registered", "by", "live", "metrics", "flags"],
        [
            [
                f.tag,
                f.date[:10] or "-",
                who(f.author),
                ",".join(sorted(f.live)) or "-",
                " ".join(f"{k}={v}" for k, v in sorted(f.metrics.items()))[:60] or "-",
                ",".join(
                    n
                    for n, on in (("quarantined", f.quarantined), ("deprecated", f.deprecated))
                    if on
                )
                or "-",
            ]
            for f in found
        ],
    )


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
