"""status: what is live in each environment, and whether the deploy branch drifted from it."""

from __future__ import annotations

from dataclasses import dataclass

from modelreg import git, policy, target
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.render import render
from modelreg.versions import resolve


@dataclass(frozen=True)
class LiveState(target.Live):
    """A version live now, and what is true of it."""

    since: int
    by: str
    # "none", "edited" (differs from its deploy commit), "stale" (differs from a fresh render), or
    # an error
    drift: str
    # "ok", "moved" (names another object than at its first deploy), "deleted", "not fetched"
    tag_state: str = "ok"
    quarantined: str = ""  # the reason, when the live version is quarantined
    held: bool = False  # a rollback holds this environment against automatic deploys
    deprecated: str = ""  # "deprecated, sunset ...", when the live version is deprecated
    canary: dict | None = None  # a canary beside it: candidate, weight, newest verdict


def status(
    registry: Registry, env: str | None = None, check_render: bool = True
) -> list[LiveState]:
    envs = [registry.config.env(env).name] if env else list(registry.config.environments)
    records = target.read_log(registry)
    tip = target.tip(registry)
    rules = policy.derive(records)
    canaries = {(c.env, c.model): c for c in policy.canaries(records)}
    newest: dict[tuple[str, str], target.DeployRecord] = {}
    for record in records:  # newest first: the first record of an (env, model) is what is live
        if record.changes_manifests:
            newest.setdefault((record.env, record.model), record)
    live = [
        newest[key]
        for key in sorted(newest, key=lambda k: (envs.index(k[0]) if k[0] in envs else -1, k[1]))
        if key[0] in envs
    ]
    paths = [target.deploy_path(registry, r.env, r.model) for r in live if r]
    # one batch: the tree of each deploy path at the branch tip and at the commit that deployed it
    trees = git.object_ids(
        registry.root,
        [
            spec
            for r, path in zip(live, paths)
            if r
            # a canary's commit is what the branch should hold while it runs
            for spec in (f"{tip}:{path}", f"{_expected(canaries, r)}:{path}")
        ],
    )
    tag_objects = git.object_ids(registry.root, [f"refs/tags/{r.tag}" for r in live])
    absent = _absent_tags(registry, [r.tag for r, obj in zip(live, tag_objects) if obj is None])
    pins = target.first_pins(records)
    states = []
    for i, record in enumerate(r for r in live if r):
        edited = trees[2 * i] != trees[2 * i + 1]
        running = canaries.get((record.env, record.model))
        states.append(
            LiveState(
                env=record.env,
                model=record.model,
                version=record.version,
                tag=record.tag,
                since=record.timestamp,
                by=record.author,
                action=record.action,
                commit=record.commit,
                drift="edited"
                if edited
                else _render_drift(registry, record, tip, check_render and running is None, rules),
                tag_state=absent.get(record.tag) or _tag_state(pins, record, tag_objects[i]),
                quarantined=getattr(
                    rules.quarantine_of(record.model, record.version), "reason", ""
                ),
                held=policy.held(rules, record.env, record.model) is not None,
                deprecated=_deprecated(rules, record),
                canary=running.to_json() if running else None,
            )
        )
    return states


def _expected(canaries: dict[tuple[str, str], policy.Canary], record: target.DeployRecord) -> str:
    running = canaries.get((record.env, record.model))
    return running.commit if running else record.commit


def _absent_tags(registry: Registry, tags: list[str]) -> dict[str, str]:
    """Why each tag missing here is missing: "not fetched" when the git remote has it (a shallow or
    stale clone), "deleted" when the remote was asked and lacks it, "unknown" when it cannot be
    asked."""
    if not tags:
        return {}
    remote = registry.config.deploy.remote
    theirs = git.ls_remote_refs(
        registry.root,
        remote,
        [f"refs/tags/{t}" for t in tags] if len(tags) <= 50 else ["refs/tags/*"],
    )
    if theirs is None:
        return {
            t: "deleted"
            if not git.git_ok("remote", "get-url", remote, cwd=registry.root)
            else "unknown"
            for t in tags
        }
    return {t: "not fetched" if f"refs/tags/{t}" in theirs else "deleted" for t in tags}


def _tag_state(
    pins: dict[tuple[str, str], target.DeployRecord], record: target.DeployRecord, now: str | None
) -> str:
    if now is None:
        return "deleted"
    pin = pins.get((record.model, record.version))
    return "moved" if pin is not None and pin.tag_object != now else "ok"


def _render_drift(
    registry: Registry,
    record: target.DeployRecord,
    tip: str | None,
    check_render: bool,
    rules: policy.Policy,
) -> str:
    if not check_render:
        return "none"
    if git.rev_parse(f"refs/tags/{record.tag}", registry.root) is None:
        return "unknown: its tag is not here"
    on_branch = target.files_at(
        registry, tip, target.deploy_path(registry, record.env, record.model)
    )
    try:
        files = render(
            registry,
            resolve(registry, record.tag),
            record.env,
            deprecation=rules.deprecated.get((record.model, record.version)),
        ).files
    except ModelregError as exc:
        return f"unrenderable: {exc}"
    return "none" if {n: target.blob_id(d) for n, d in files.items()} == on_branch else "stale"


def _deprecated(rules: policy.Policy, record: target.DeployRecord) -> str:
    mark = rules.deprecated.get((record.model, record.version))
    return mark.summary() if mark else ""
