"""deploy, promote and rollback: one commit on the deploy branch per change; the branch only grows.

A rollback works as `helm rollback`: it picks the target (by default the version live before the
current one) and commits again, byte for byte, the manifests that target's deploy committed.

Every attempt reads the branch once (its tip, and the log from that tip), decides everything from
that snapshot (what is live, `requires`, hand edits, no-op), builds a commit on it and moves the
branch only if it is still there. A lost race starts the attempt again from a fresh read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from modelreg import gates, git, policy, target
from modelreg.errors import DeployError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.refs import check_name, parse_version, qualify
from modelreg.render import Rendered, render
from modelreg.target import DeployRecord, Landing, Snapshot
from modelreg.trailers import message as trailers_message
from modelreg.versions import Resolved, VersionInfo, resolve, scan


@dataclass(frozen=True)
class DeployResult(JsonFields):
    action: str
    model: str
    version: str
    tag: str
    env: str
    commit: str | None
    previous_version: str | None
    files: list[str]
    noop: bool
    pushed: bool
    dry_run: bool
    warnings: list[str]
    attempts: int = 1
    gates: list[dict[str, Any]] = field(
        default_factory=list
    )  # each gate the environment set: passed, and why


@dataclass(frozen=True)
class DeployOptions:
    push: bool = False
    dry_run: bool = False
    force: bool = False
    allow_missing: bool = False
    automated: bool = False  # the tag-push path: respects holds


class Held(DeployError):
    """An automated deploy met a hold: nothing to do until someone releases it."""


@dataclass(frozen=True)
class Change:
    """What one attempt decided to commit."""

    resolved: Resolved
    files: dict[str, bytes]
    warnings: list[str]
    forced: bool = False  # a rolled-back version deployed again with --force
    restored_from: str = ""  # a rollback: the deploy commit whose manifests come back
    rolled_back: str = ""  # a rollback: the version it moves away from
    signer: str | None = None  # who signed the tag, when the environment requires it
    gates: list[gates.Gate] = field(default_factory=list)


def deploy(
    registry: Registry,
    ref: str,
    env: str,
    options: DeployOptions = DeployOptions(),
    action: str = "deploy",
) -> DeployResult:
    """Render REF for ENV and commit the manifests to the deploy branch."""
    registry.config.env(env)
    resolved = resolve(registry, ref)
    checked_artifact = check_artifact(registry, resolved, options)
    gate_cache: dict[tuple[str, ...], gates.Gate] = {}  # results keyed by immutable ids
    renders: dict[policy.Deprecation | None, Rendered] = {}  # by what the manifests announce

    def attempt(snapshot: Snapshot) -> Landing[DeployResult]:
        rules = policy.derive(snapshot.records)
        info = resolved.info
        try:
            policy.refuse_canary(snapshot.records, env, info.model)
        except DeployError as exc:
            raise (Held(str(exc)) if options.automated else exc) from None
        policy.refuse_quarantined(rules, info)
        sunset = policy.refuse_sunset(rules, info)
        if options.automated and (mark := policy.held(rules, env, info.model)) is not None:
            raise Held(policy.hold_message(env, info.model, mark))
        evaluated = gates.evaluate(registry, snapshot.records, resolved, env, memo=gate_cache)
        checked, overridden = gates.override(evaluated, options.force)
        signer = gates.enforce(checked, resolved, env)
        # rendered after the gates, so that a refusal names every gate that failed
        deprecation = rules.deprecated.get((info.model, str(info.version)))
        if deprecation not in renders:
            renders[deprecation] = render(registry, resolved, env, deprecation=deprecation)
        done = renders[deprecation]
        change = Change(
            resolved,
            done.files,
            [*checked_artifact, *done.warnings, *([sunset] if sunset else [])],
            forced=policy.needs_force(rules, env, info, options.force) or overridden,
            signer=signer,
            gates=checked,
        )
        return build(registry, snapshot, change, env, action, options)

    return target.land(registry, resolved.info.model, options.push, attempt)


def rollback(
    registry: Registry,
    version: str | None = None,
    env: str | None = None,
    model: str | None = None,
    options: DeployOptions = DeployOptions(),
) -> DeployResult:
    """Put ENV back to VERSION, or by default to the last good version: the newest earlier version
    live in ENV that is neither rolled back there nor quarantined. The version moved away from is
    marked rolled back in ENV, and ENV is held against automatic deploys."""
    env = env or list(registry.config.environments)[-1]
    registry.config.env(env)
    if model is not None:
        check_name(model)
    if model is None and registry.config.default_model is None and options.push:
        target.fetch(
            registry
        )  # which models run in ENV is read from the remote's branch; land() fetches again
    model = model or _pick_model(registry, env)
    wanted = None if version is None else resolve(registry, qualify(version, model))
    checked_artifacts: dict[str, list[str]] = {}  # by tag
    gate_cache: dict[tuple[str, ...], gates.Gate] = {}

    def attempt(snapshot: Snapshot) -> Landing[DeployResult]:
        rules = policy.derive(snapshot.records)
        policy.refuse_canary(snapshot.records, env, model)
        mine = [
            r for r in snapshot.records if r.env == env and r.model == model and r.changes_manifests
        ]
        earlier = _rollback_target(registry, mine, rules, env, model, wanted)
        resolved = wanted or resolve(registry, earlier.tag or f"{model}@{earlier.version}")
        policy.refuse_quarantined(rules, resolved.info)
        # the version gates only: it ran there before
        checked = gates.evaluate(
            registry, snapshot.records, resolved, env, only=gates.VERSION_GATES, memo=gate_cache
        )
        signer = gates.enforce(checked, resolved, env)
        path = target.deploy_path(registry, env, model)
        blobs = target.files_at(registry, earlier.commit, path)
        contents = git.read_objects(registry.root, list(blobs.values()))
        if resolved.info.tag not in checked_artifacts:
            checked_artifacts[resolved.info.tag] = check_artifact(registry, resolved, options)
        change = Change(
            resolved,
            {name: blob[1] for name, blob in zip(blobs, contents) if blob is not None},
            checked_artifacts[resolved.info.tag],
            forced=policy.needs_force(rules, env, resolved.info, options.force),
            restored_from=earlier.commit,
            rolled_back=mine[0].version,
            signer=signer,
            gates=checked,
        )
        return build(registry, snapshot, change, env, "rollback", options)

    return target.land(registry, model, options.push, attempt)


def _rollback_target(
    registry: Registry,
    mine: list[DeployRecord],
    rules: policy.Policy,
    env: str,
    model: str,
    wanted: Resolved | None,
) -> DeployRecord:
    if not mine:
        raise DeployError(f"nothing to roll back: {model} was never deployed to {env}")
    current = mine[0].version
    if wanted is not None:
        earlier = next((r for r in mine if r.version == str(wanted.info.version)), None)
        if earlier is None:
            raise DeployError(
                f"{wanted.info.tag} was never deployed to {env}: use `modelreg deploy` for a new "
                "version"
            )
        return earlier
    if all(r.version == current for r in mine):
        raise DeployError(f"nothing to roll back to: {model} has had only {current} in {env}")
    skipped: list[str] = []
    for record in mine:
        if record.version == current or record.version in skipped:
            continue
        if rules.is_rolled_back(env, model, record.version) or rules.quarantine_of(
            model, record.version
        ):
            skipped.append(record.version)
            continue
        return record
    older = [v for v in skipped if parse_version(v).key < parse_version(current).key]
    if (
        not older
    ):  # only later versions were live besides it: there is nothing before it to go back to
        raise DeployError(
            f"nothing to roll back to: {current} is the earliest version of {model} live in {env} "
            f"({', '.join(skipped)} came later and {'was' if len(skipped) == 1 else 'were'} rolled "
            f"back or quarantined); deploy the version you want: modelreg deploy {model}@VERSION "
            f"--env {env}"
        )
    raise DeployError(
        f"nothing to roll back to: no good version of {model} was live in {env} before {current} "
        f"({', '.join(skipped)} rolled back or quarantined); to go back to one of those anyway: "
        f"modelreg rollback VERSION --env {env} --force"
    )


def build(
    registry: Registry,
    snapshot: Snapshot,
    change: Change,
    env: str,
    action: str,
    options: DeployOptions,
) -> Landing[DeployResult]:
    """From one snapshot of the branch and what was decided on it: the result, and the commit to
    land (none for a no-op or a dry run)."""
    info = change.resolved.info
    check_pinned(registry, snapshot.records, info, options.push)
    path = target.deploy_path(registry, env, info.model)
    current = target.live(snapshot.records, env, info.model)
    on_branch = target.files_at(registry, snapshot.at.commit, path)
    if current is not None and not options.force:
        committed = target.files_at(registry, current.commit, path)
        if committed != on_branch:
            raise DeployError(
                f"{registry.config.deploy.branch}:{path} was edited by hand since {current.tag} "
                f"was deployed (commit {current.commit[:8]}); inspect it, then pass --force to "
                "overwrite"
            )
    result = DeployResult(
        action=action,
        model=info.model,
        version=str(info.version),
        tag=info.tag,
        env=env,
        commit=None,
        previous_version=current.version if current else None,
        files=sorted(change.files),
        noop=False,
        pushed=False,
        dry_run=options.dry_run,
        warnings=change.warnings,
        attempts=snapshot.attempt,
        gates=[g.to_json() for g in change.gates],
    )
    wanted = {name: target.blob_id(data) for name, data in change.files.items()}
    unchanged = current is not None and current.version == str(info.version) and not change.forced
    if unchanged and wanted == on_branch:
        assert current is not None
        return Landing(replace(result, commit=current.commit, noop=True))
    if options.dry_run:
        return Landing(result)
    message = _message(action, change, env, current)
    commit = target.build_commit(registry, snapshot.at.commit, path, change.files, message)
    if change.restored_from:
        mine, theirs = git.object_ids(
            registry.root, [f"{commit}:{path}", f"{change.restored_from}:{path}"]
        )
        if mine != theirs:
            raise DeployError(
                f"the rollback would not restore {path} of {change.restored_from[:8]} exactly "
                f"(tree {mine} against {theirs}); nothing was committed"
            )
    landed = replace(result, commit=commit, pushed=options.push)
    return Landing(landed, commit, message.splitlines()[0])


def check_pinned(
    registry: Registry, records: list[DeployRecord], info: VersionInfo, push: bool
) -> None:
    """A version is immutable: refuse it when its tag names another object than at its first deploy,
    or (pushing) than the remote's tag; pushing, the remote must have the tag (and so its
    commit)."""
    first = target.first_pin(records, info.model, str(info.version))
    if first is not None and first.tag_object != info.object:
        raise DeployError(
            f"{info.tag} was moved: at its first deploy (commit {first.commit[:8]}) it named "
            f"{first.tag_object} "
            f"(source commit {first.source_commit[:12]}), now it names {info.object} (commit "
            f"{info.commit[:12]}). "
            f"Versions are immutable: put it back (git update-ref refs/tags/{info.tag} "
            f"{first.tag_object}) "
            "or register a new version"
        )
    if push:
        remote = registry.config.deploy.remote
        theirs = (git.ls_remote_refs(registry.root, remote, [f"refs/tags/{info.tag}"]) or {}).get(
            f"refs/tags/{info.tag}"
        )
        if theirs is None:
            raise DeployError(
                f"{info.tag} is not on {remote}: a pushed deploy would name a version nobody else "
                "can "
                f"see; push it first (git push {remote} {info.tag}), then deploy"
            )
        if theirs != info.object:
            raise DeployError(
                f"{info.tag} differs between here and {remote}: {remote}'s tag names {theirs}, "
                f"yours names {info.object}; find out who moved it before deploying either"
            )


def check_artifact(registry: Registry, resolved: Resolved, options: DeployOptions) -> list[str]:
    """Refuse a version whose bytes the remote lacks: pods would fail to fetch them."""
    from modelreg.remote import missing

    lacking = missing(registry, resolved)
    if not lacking:
        return []
    what = (
        f"{resolved.info.tag}: {len(lacking)} object(s) of {resolved.pointer.path} are not in the "
        "DVC remote"
    )
    if not options.allow_missing:
        raise DeployError(f"{what}; push them (dvc push), or pass --allow-missing to deploy anyway")
    return [
        f"WARNING: {what}; deploying anyway (--allow-missing): pods will fail to fetch the model"
    ]


def _pick_model(registry: Registry, env: str) -> str:
    if registry.config.default_model:
        return registry.config.default_model
    records = target.read_log(registry)
    models = sorted({r.model for r in records if r.env == env}) or sorted(
        {v.model for v in scan(registry)}
    )
    if len(models) == 1:
        return models[0]
    if not models:
        raise DeployError(f"nothing to roll back: no model was ever deployed to {env}")
    raise DeployError(f"which model? {env} runs {', '.join(models)}: pass --model NAME")


def version_trailers(
    action: str, info: VersionInfo, env: str, previous: str
) -> list[tuple[str, str]]:
    """The trailers of a commit that puts INFO's manifests in ENV (a deploy, a canary's step): what
    the version is (its tag object pins it) and what ran before (PREVIOUS)."""
    return [
        ("Action", action),
        ("Model", info.model),
        ("Version", str(info.version)),
        ("Env", env),
        ("Tag", info.tag),
        ("Tag-Object", info.object),
        ("Source-Commit", info.commit),
        ("Previous-Version", previous),
    ]


def _message(action: str, change: Change, env: str, current: DeployRecord | None) -> str:
    info = change.resolved.info
    verb = {
        "deploy": "Deploy",
        "promote": "Promote",
        "rollback": "Roll back",
        "canary-promote": "Promote the canary",
    }[action]
    title = (
        f"{verb} {info.tag} to {env}"
        if action != "rollback"
        else f"Roll back {info.model} in {env} to {info.version}"
    )
    trailers = version_trailers(action, info, env, current.version if current else "none")
    if change.restored_from:
        trailers += [("Restored-From", change.restored_from), ("Rolled-Back", change.rolled_back)]
    if change.forced:
        trailers.append(("Forced", "true"))
    if change.signer:
        trailers.append(("Signer", change.signer))
    return trailers_message(title, trailers)
