"""remote add, pull, verify."""

from __future__ import annotations

from pathlib import Path

import click

from modelreg.cli.output import (
    byte_progress,
    emit_json,
    handle_errors,
    json_option,
    note,
    short,
    table,
)


@click.group()
def remote() -> None:
    """The DVC remote that holds the artifacts."""


@remote.command(name="add")
@click.argument("url")
@click.option(
    "--name", default="storage", show_default=True, help="Name of the remote in .dvc/config."
)
@click.option("--endpoint-url", help="S3-compatible endpoint (MinIO, a local moto server...).")
@click.pass_obj
@handle_errors
def remote_add(repo: str, url: str, name: str, endpoint_url: str | None) -> None:
    """Make URL (a directory, s3://bucket/prefix, gs://..., ...) the default DVC remote and commit
    it.

    Credentials are not stored: DVC reads them from the environment (AWS_ACCESS_KEY_ID...) or
    from `dvc remote modify --local`.

    Example: modelreg remote add s3://acme-models/registry
    """
    from modelreg.handle import open_registry
    from modelreg.remote_config import add_remote

    commit = add_remote(open_registry(repo), url, name, endpoint_url)
    click.echo(
        f"Remote {name} is {url}"
        + (f" (commit {short(commit)})." if commit else ": nothing changed.")
    )


@click.command()
@click.argument("ref")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the artifact (default: its file or folder name, here).",
)
@json_option()
@click.pass_obj
@handle_errors
def pull(repo: str, ref: str, output: Path | None, as_json: bool) -> None:
    """Fetch a version's artifact from the DVC remote (not the local cache), verified.

    Every object's md5 and the whole artifact's SHA-256 are checked while it streams; on any
    mismatch nothing is left at the output path.

    Example: modelreg pull churn@v3 -o /tmp/churn-v3.pt
    """
    from modelreg.handle import open_registry
    from modelreg.policy import deprecations
    from modelreg.remote import pull as run_pull
    from modelreg.versions import resolve

    registry = open_registry(repo)
    found = resolve(registry, ref)
    retiring = deprecations(registry, found.info.model).get(
        (found.info.model, str(found.info.version))
    )
    if retiring is not None:
        note(f"WARNING: {found.info.tag} is {retiring.summary()}")
    dest = output or Path(found.pointer.path)
    with byte_progress(found.pointer.size, f"Pulling {found.info.tag}") as progress:
        result = run_pull(registry, found, dest, progress)
    if as_json:
        return emit_json(result.to_json())
    click.echo(
        f"Pulled {result.tag} to {result.path} ({result.size} bytes, {result.files} file(s), "
        f"sha256 {result.sha256[:12]} verified)."
    )


@click.command()
@click.argument("ref", required=False)
@click.option("--all", "every", is_flag=True, help="Every valid version of every model.")
@click.option("--deep", is_flag=True, help="Also check each artifact's SHA-256 against its card.")
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check artifact signatures against this public key "
    "(default: the keys environments trust).",
)
@json_option("Print as JSON: a list of {tag, state, problems, files, size, signature}.")
@click.pass_obj
@handle_errors
def verify(
    repo: str, ref: str | None, every: bool, deep: bool, public_key: Path | None, as_json: bool
) -> None:
    """Check that versions' artifacts are in the DVC remote, intact; exit 1 if any is not.

    A version with an artifact signature (model.sig) has it checked against the bytes read from the
    remote, with --public-key or the key (or identity) an environment in modelreg.yaml trusts.

    REF is NAME@VERSION, NAME (all its versions) or a bare VERSION; --all checks everything.

    Example: modelreg verify --all --deep
    """
    from modelreg.errors import RefError
    from modelreg.handle import open_registry
    from modelreg.refs import parse_ref
    from modelreg.remote import verify as run_verify
    from modelreg.versions import read_version, resolve, scan

    if bool(ref) == every:
        raise click.UsageError("give a REF or --all")
    registry = open_registry(repo)
    parsed = None if ref is None else parse_ref(ref, registry.config.default_model)
    if parsed is None or parsed.version is None:
        versions = scan(registry, None if parsed is None else parsed.model)
        if parsed is not None and not versions:
            raise RefError(f"no model named {parsed.model!r} in this registry")
        targets = [read_version(registry, v, versions) for v in versions if v.valid]
    else:
        targets = [resolve(registry, ref)]  # type: ignore[arg-type]
    trusted = None
    if public_key is not None:
        from modelreg.artifact_signature import Trust, key_id

        key_id(public_key.read_bytes())
        trusted = [Trust(public_key=public_key.read_bytes())]
    results = run_verify(registry, targets, deep, trusted)
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        table(
            ["version", "state", "files", "bytes", "signature", "problem"],
            [
                [r.tag, r.state, r.files, r.size, r.signature, "; ".join(r.problems)]
                for r in results
            ],
        )
    if any(r.state != "ok" for r in results):
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("ref")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--runs",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="Timed runs after a warm-up.",
)
@click.option(
    "--record",
    "keep",
    is_flag=True,
    help="Record the result as a git note on the version (refs/notes/modelreg-validation).",
)
@json_option()
@click.pass_obj
@handle_errors
def validate(repo: str, ref: str, device: str, runs: int, keep: bool, as_json: bool) -> None:
    """Smoke-test a version: load it (TorchScript or .pt2), run it, check its signature, time it.

    Inputs are the card's `example`, or random data of `signature.inputs` shapes (-1 = 2).
    Exit 1 when the outputs break the signature. Environments with `validate: true` deploy only
    versions with a recorded pass. Needs the torch extra.

    Example: modelreg validate churn@v3 --record
    """
    from modelreg.formats import torch_available
    from modelreg.handle import open_registry
    from modelreg.validate import record
    from modelreg.validate import validate as run_validate
    from modelreg.versions import resolve

    if not torch_available():
        raise click.ClickException("validate needs torch: pip install 'modelreg[torch]'")
    registry = open_registry(repo)
    found = resolve(registry, ref)
    result = run_validate(registry, found, device, runs)
    if keep:
        record(registry, found, result)
    if as_json:
        emit_json(result.to_json())
    else:
        verdict = "passed" if result.passed else "FAILED: " + "; ".join(result.problems)
        click.echo(
            f"{result.tag} on {result.device}: {verdict}. p50 {result.p50_ms} ms, p95 "
            f"{result.p95_ms} ms "
            f"over {result.runs} runs" + (" (recorded)." if keep else ".")
        )
    if not result.passed:
        raise click.exceptions.Exit(1)


@click.command()
@click.option(
    "--keep-last",
    default=3,
    show_default=True,
    type=click.IntRange(0),
    help="Versions of each model kept whatever else holds (the newest N).",
)
@click.option(
    "--window",
    default="30d",
    show_default=True,
    help="Keep every version live in an environment at any moment of this last span (30m, 12h, "
    "30d): "
    "the rollback targets.",
)
@click.option(
    "--dry-run", is_flag=True, help="Say what would go and the bytes it frees; remove nothing."
)
@json_option(
    "Print as JSON: {kept: {tag: why}, collected, objects, bytes, shared, dry_run, missing}."
)
@click.pass_obj
@handle_errors
def gc(repo: str, keep_last: int, window: str, dry_run: bool, as_json: bool) -> None:
    """Remove from the DVC remote and the local cache the artifacts no kept version needs.

    Kept: every version live anywhere, every version live in an environment during --window (the
    rollback targets), held environments' versions, quarantined versions (the evidence) and the
    last --keep-last of each model. Objects shared with a kept version stay; DVC data that is not
    a version's is never touched. Killed midway, run it again. Tags and cards stay: a collected
    version can be listed and shown, not pulled or deployed.

    Example: modelreg gc --dry-run; modelreg gc --keep-last 5 --window 90d
    """
    from modelreg.collection import gc as run_gc
    from modelreg.config import duration_seconds
    from modelreg.handle import open_registry

    seconds = duration_seconds(window, "--window")
    result = run_gc(open_registry(repo), keep_last, seconds, dry_run)
    if as_json:
        return emit_json(result.to_json())
    table(["version", "kept because"], [[tag, why] for tag, why in sorted(result.kept.items())])
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {result.objects} object(s), {result.bytes} bytes, of {len(result.collected)} "
        "version(s)"
        + (f": {', '.join(result.collected)}" if result.collected else "")
        + (f"; {result.shared} object(s) kept, shared with kept versions" if result.shared else "")
        + "."
    )
