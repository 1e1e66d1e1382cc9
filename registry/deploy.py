"""deploy, promote and rollback: one commit on the deploy branch per change; the branch only grows.

A rollback works as `helm rollback`: it picks the target (by default the version live before the
current one) and commits again, byte for byte, the manifests that target's deploy committed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg import git, target
from modelreg.errors import DeployError
from modelreg.registry import Registry
from modelreg.render import render
from modelreg.target import DeployRecord
from modelreg.versions import Resolved, resolve, scan


@dataclass(frozen=True)
class DeployResult:
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

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DeployOptions:
    push: bool = False
    dry_run: bool = False
    force: bool = False
    allow_missing: bool = False


def deploy(registry: Registry, ref: str, env: str, options: DeployOptions = DeployOptions(),
           action: str = "deploy") -> DeployResult:
    """Render REF for ENV and commit the manifests to the deploy branch."""
    registry.config.env(env)
    resolved = resolve(registry, ref)
    if options.push:
        target.fetch(registry)
    records = target.read_log(registry, resolved.info.model)
    _check_requirements(registry, records, resolved, env)
    files = render(registry, resolved, env).files
    warnings = _check_artifact(registry, resolved, options)
    return _commit(registry, records, resolved, env, files, action, options, warnings)


def rollback(registry: Registry, version: str | None = None, env: str | None = None, model: str | None = None,
             options: DeployOptions = DeployOptions()) -> DeployResult:
    """Put ENV back to VERSION (default: the version live before the current one)."""
    env = env or list(registry.config.environments)[-1]
    registry.config.env(env)
    if options.push:
        target.fetch(registry)
    records = target.read_log(registry, model)
    model = model or _pick_model(registry, records, env)
    mine = [r for r in records if r.env == env and r.model == model]
    if not mine:
        raise DeployError(f"nothing to roll back: {model} was never deployed to {env}")
    current = mine[0].version
    if version is None:
        earlier = next((r for r in mine if r.version != current), None)
        if earlier is None:
            raise DeployError(f"nothing to roll back to: {model} has had only {current} in {env}")
        resolved = resolve(registry, earlier.tag or f"{model}@{earlier.version}")
    else:
        resolved = resolve(registry, version if "@" in version else f"{model}@{version}")
        earlier = next((r for r in mine if r.version == str(resolved.info.version)), None)
        if earlier is None:
            raise DeployError(f"{resolved.info.tag} was never deployed to {env}: use `modelreg deploy` for a new version")
    path = target.deploy_path(registry, env, model)
    blobs = target.files_at(registry, earlier.commit, path)
    contents = git.read_objects(registry.root, list(blobs.values()))
    files = {name: blob[1] for name, blob in zip(blobs, contents) if blob is not None}
    warnings = _check_artifact(registry, resolved, options)
    return _commit(registry, records, resolved, env, files, "rollback", options, warnings)


def _check_artifact(registry: Registry, resolved: Resolved, options: DeployOptions) -> list[str]:
    """Refuse a version whose bytes the remote lacks: pods would fail to fetch them."""
    from modelreg.remote import missing

    lacking = missing(registry, resolved)
    if not lacking:
        return []
    what = f"{resolved.info.tag}: {len(lacking)} object(s) of {resolved.pointer.path} are not in the DVC remote"
    if not options.allow_missing:
        raise DeployError(f"{what}; push them (dvc push), or pass --allow-missing to deploy anyway")
    return [f"WARNING: {what}; deploying anyway (--allow-missing): pods will fail to fetch the model"]


def _pick_model(registry: Registry, records: list[DeployRecord], env: str) -> str:
    if registry.config.default_model:
        return registry.config.default_model
    models = sorted({r.model for r in records if r.env == env}) or sorted({v.model for v in scan(registry)})
    if len(models) == 1:
        return models[0]
    if not models:
        raise DeployError(f"nothing to roll back: no model was ever deployed to {env}")
    raise DeployError(f"which model? {env} runs {', '.join(models)}: pass --model NAME")


def _check_requirements(registry: Registry, records: list[DeployRecord], resolved: Resolved, env: str) -> None:
    info = resolved.info
    if registry.config.env(env).validate:
        from modelreg.validate import passed

        if not passed(registry, resolved):
            raise DeployError(f"{env} requires a passed validation and {info.tag} has none: "
                              f"run `modelreg validate {info.tag} --record` first")
    required = registry.config.env(env).requires
    if required is None:
        return
    if not any(r.env == required and r.model == info.model and r.version == str(info.version) for r in records):
        raise DeployError(f"{info.tag} was never live in {required}, which {env} requires: "
                          f"deploy it to {required} first (modelreg deploy {info.tag} --env {required})")


def _commit(registry: Registry, records: list[DeployRecord], resolved: Resolved, env: str,
            files: dict[str, bytes], action: str, options: DeployOptions, warnings: list[str]) -> DeployResult:
    info = resolved.info
    parent = target.tip(registry)
    path = target.deploy_path(registry, env, info.model)
    current = target.live(records, env, info.model)
    on_branch = target.files_at(registry, parent, path)
    if current is not None and not options.force:
        committed = target.files_at(registry, current.commit, path)
        if committed != on_branch:
            raise DeployError(f"{registry.config.deploy.branch}:{path} was edited by hand since {current.tag} was "
                              f"deployed (commit {current.commit[:8]}); inspect it, then pass --force to overwrite")
    wanted = {name: target.blob_id(data) for name, data in files.items()}
    result = dict(action=action, model=info.model, version=str(info.version), tag=info.tag, env=env,
                  previous_version=current.version if current else None, files=sorted(files),
                  dry_run=options.dry_run, warnings=warnings)
    if current is not None and current.version == str(info.version) and wanted == on_branch:
        return DeployResult(commit=current.commit, noop=True, pushed=False, **result)
    if options.dry_run:
        return DeployResult(commit=None, noop=False, pushed=False, **result)
    message = _message(action, resolved, env, current)
    commit = target.write_commit(registry, parent, path, files, message)
    if options.push:
        target.push(registry)
    return DeployResult(commit=commit, noop=False, pushed=options.push, **result)


def _message(action: str, resolved: Resolved, env: str, current: DeployRecord | None) -> str:
    info = resolved.info
    verb = {"deploy": "Deploy", "promote": "Promote", "rollback": "Roll back"}[action]
    title = f"{verb} {info.tag} to {env}" if action != "rollback" else f"Roll back {info.model} in {env} to {info.version}"
    trailers = [("Action", action), ("Model", info.model), ("Version", str(info.version)), ("Env", env),
                ("Tag", info.tag), ("Source-Commit", info.commit),
                ("Previous-Version", current.version if current else "none")]
    return title + "\n\n" + "\n".join(f"Modelreg-{k}: {v}" for k, v in trailers) + "\n"
