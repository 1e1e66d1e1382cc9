"""Canaries: a candidate version beside the stable one, on a share of the traffic, moved by the
verdicts of `modelreg analyze`. Every step is one commit on the deploy branch, landed through
`target.land` as deploys are:

- `start`: the stable manifests stay as they are (under serving.kind deployment, the HTTPRoute's
  weights change); the candidate's are rendered beside them in `<env>/<model>/canary/`, named
  `<model>-<env>-canary`. Under KServe the InferenceService is the candidate's with
  `canaryTrafficPercent` (KServe keeps the last ready revision for the rest).
- `step`: a higher weight, only after a passed analysis at the current one.
- `promote`: the candidate is deployed as any version is (its manifests replace the stable ones,
  the canary folder goes), only after a passed analysis at the final weight.
- `abort`: the stable deploy's tree comes back byte for byte (`Modelreg-Restored-From`), the
  candidate is quarantined with the reason (the failed measurement), the environment is held.

The verdicts the steps are gated on are analysis commits on the same branch (analysis.record).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelreg import gates, git, marks, policy, target
from modelreg.deploy import (
    Change,
    DeployOptions,
    DeployResult,
    build,
    check_artifact,
    check_pinned,
    version_trailers,
)
from modelreg.errors import DeployError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.policy import Canary, canary_of
from modelreg.refs import check_name
from modelreg.render import (
    CANARY_DIR,
    ROUTE_FILE,
    Rendered,
    Track,
    owned_files,
    render,
    route,
)
from modelreg.target import Landing, Snapshot
from modelreg.trailers import message as trailers_message
from modelreg.versions import Resolved, resolve


@dataclass(frozen=True)
class CanaryResult(JsonFields):
    action: str  # canary-start, canary-step, canary-abort
    model: str
    env: str
    candidate: str
    stable: str
    weight: int
    commit: str | None
    files: list[str]
    pushed: bool
    reason: str = ""
    noop: bool = False  # it was so already (a re-run, e.g. after a killed job): nothing committed


def replicas(registry: Registry, env: str, weight: int) -> int:
    """How many pods the candidate runs at WEIGHT percent: its share of the stable replicas, at
    least one (KServe: the environment's min_replicas; KServe scales the revision itself)."""
    settings = registry.config.env(env)
    if registry.config.serving.kind == "kserve":
        return max(1, settings.min_replicas)
    return max(1, math.ceil(settings.replicas * weight / 100))


def check_weight(registry: Registry, env: str, weight: int) -> None:
    """Refuse a weight the target cannot honour: a whole percent from 1 to 99, and under
    serving.kind deployment a Gateway to split traffic at."""
    if not 1 <= weight <= 99:
        raise DeployError(
            f"--weight {weight}: a canary takes a whole percent of the traffic from 1 to 99 "
            "(100 is `modelreg canary promote`)"
        )
    if registry.config.serving.kind == "deployment" and not registry.config.env(env).canary.gateway:
        raise DeployError(
            f"{env} cannot split traffic: a canary under serving.kind deployment needs a Gateway "
            f"API Gateway (environments.{env}.canary.gateway in modelreg.yaml) for its HTTPRoute"
        )


def start(
    registry: Registry, ref: str, env: str, weight: int | None = None, push: bool = False
) -> CanaryResult:
    """Start a canary of REF in ENV at WEIGHT percent (default: the first of canary.steps)."""
    settings = registry.config.env(env)
    weight = settings.canary.steps[0] if weight is None else weight
    check_weight(registry, env, weight)
    resolved = resolve(registry, ref)
    info = resolved.info
    check_artifact(registry, resolved, DeployOptions())  # the candidate's pods fetch its bytes
    gate_cache: dict[tuple[str, ...], gates.Gate] = {}
    rendered: dict[int, dict[str, bytes]] = {}

    def attempt(snapshot: Snapshot) -> Landing[CanaryResult]:
        records = snapshot.records
        rules = policy.derive(records)
        policy.refuse_quarantined(rules, info)
        policy.refuse_sunset(rules, info)
        running = canary_of(records, env, info.model)
        if running is not None and (running.tag, running.weight) == (info.tag, weight):
            return Landing(
                CanaryResult(
                    "canary-start",
                    info.model,
                    env,
                    running.candidate,
                    running.stable,
                    weight,
                    running.commit,
                    [],
                    False,
                    noop=True,
                )  # fmt: skip
            )
        if running is not None:
            raise DeployError(
                f"a canary of {running.tag} already runs in {env} at {running.weight}%: step, "
                "promote or abort it first"
            )
        stable = target.live(records, env, info.model)
        if stable is None:
            raise DeployError(
                f"nothing of {info.model} runs in {env} to compare with: deploy a version there "
                "first (modelreg deploy), then start a canary of the next"
            )
        if stable.version == str(info.version):
            raise DeployError(f"{info.tag} is what runs in {env}: a canary needs another version")
        check_pinned(registry, records, info, push)
        checked, _ = gates.override(
            gates.evaluate(registry, records, resolved, env, memo=gate_cache), False
        )
        gates.enforce(checked, resolved, env)
        _check_untouched(registry, snapshot, env, info.model, stable.commit)
        if weight not in rendered:  # the stable files are read again from each snapshot
            rendered[weight] = _candidate(registry, resolved, env, weight)
        files = _split(registry, snapshot, info.model, env, weight, rendered[weight])
        title = f"Start a canary of {info.tag} in {env} at {weight}%"
        return _land(registry, snapshot, "canary-start", resolved, env, stable.version, weight,
                     files, title, push)  # fmt: skip

    return target.land(registry, info.model, push, attempt)


def step(
    registry: Registry,
    env: str,
    model: str | None = None,
    weight: int | None = None,
    push: bool = False,
) -> CanaryResult:
    """Move the canary of MODEL in ENV to WEIGHT percent (default: the next of canary.steps), once
    an analysis at the current weight has passed."""
    settings = registry.config.env(env)
    name = _model(registry, env, model)
    resolved_by_tag: dict[str, Resolved] = {}
    rendered: dict[tuple[str, int], dict[str, bytes]] = {}

    def attempt(snapshot: Snapshot) -> Landing[CanaryResult]:
        running = require_running(snapshot.records, env, name)
        wanted = weight
        if wanted is None:
            wanted = next((w for w in settings.canary.steps if w > running.weight), None)
            if wanted is None:
                raise DeployError(
                    f"the canary of {running.tag} in {env} is at its last step "
                    f"({running.weight}%): promote it (modelreg canary promote --env {env})"
                )
        check_weight(registry, env, wanted)
        if wanted <= running.weight:
            raise DeployError(
                f"--weight {wanted}: the canary of {running.tag} is at {running.weight}% already; "
                "a step only raises the weight (abort it to go back)"
            )
        _require_pass(running, env, "step")
        if running.tag not in resolved_by_tag:
            resolved_by_tag[running.tag] = resolve(registry, running.tag)
        resolved = resolved_by_tag[running.tag]
        policy.refuse_quarantined(policy.derive(snapshot.records), resolved.info)
        if (running.tag, wanted) not in rendered:
            rendered[(running.tag, wanted)] = _candidate(registry, resolved, env, wanted)
        candidate = rendered[(running.tag, wanted)]
        files = _split(registry, snapshot, running.model, env, wanted, candidate)
        title = f"Step the canary of {running.tag} in {env} to {wanted}%"
        return _land(registry, snapshot, "canary-step", resolved, env, running.stable, wanted,
                     files, title, push)  # fmt: skip

    return target.land(registry, name, push, attempt)


def promote(
    registry: Registry, env: str, model: str | None = None, push: bool = False
) -> DeployResult:
    """Deploy the canary's candidate in ENV as any version is deployed, once an analysis at the
    final weight (the last of canary.steps) has passed."""
    final = registry.config.env(env).canary.steps[-1]
    name = _model(registry, env, model)
    renders: dict[tuple[str, policy.Deprecation | None], Rendered] = {}  # by what they announce
    gate_cache: dict[tuple[str, ...], gates.Gate] = {}

    def attempt(snapshot: Snapshot) -> Landing[DeployResult]:
        ended = _ended(snapshot.records, env, name, "canary-promote")
        if ended is not None:  # promoted already (a re-run): nothing to do
            result = DeployResult(
                "canary-promote", name, ended.version, ended.tag, env, ended.commit,
                ended.previous_version, [], noop=True, pushed=False, dry_run=False, warnings=[],
            )  # fmt: skip
            return Landing(result)
        running = require_running(snapshot.records, env, name)
        if running.weight < final:
            raise DeployError(
                f"the canary of {running.tag} in {env} is at {running.weight}%: promote needs a "
                f"passed analysis at the final weight, {final}% (modelreg canary step --env {env})"
            )
        _require_pass(running, env, "promote")
        resolved = resolve(registry, running.tag)
        info = resolved.info
        # what a deploy would refuse, promote refuses: a quarantine, a sunset, a gate since failed
        rules = policy.derive(snapshot.records)
        policy.refuse_quarantined(rules, info)
        sunset = policy.refuse_sunset(rules, info)
        checked, _ = gates.override(
            gates.evaluate(registry, snapshot.records, resolved, env, memo=gate_cache), False
        )
        signer = gates.enforce(checked, resolved, env)
        deprecation = rules.deprecated.get((info.model, str(info.version)))
        if (info.tag, deprecation) not in renders:
            renders[(info.tag, deprecation)] = render(
                registry, resolved, env, deprecation=deprecation
            )
        done = renders[(info.tag, deprecation)]
        warnings = [*done.warnings, *([sunset] if sunset else [])]
        change = Change(resolved, done.files, warnings, signer=signer, gates=checked)
        # the canary folder and the route's weights are the canary's own: no hand edit to guard
        return build(registry, snapshot, change, env, "canary-promote",
                      DeployOptions(push=push, force=True))  # fmt: skip

    return target.land(registry, name, push, attempt)


def abort(
    registry: Registry, env: str, model: str | None = None, reason: str = "", push: bool = False
) -> CanaryResult:
    """Put ENV back to the stable deploy's tree, byte for byte; quarantine the candidate with
    REASON; hold ENV for the model as a rollback does."""
    reason = marks.reason_text(reason)
    name = _model(registry, env, model)

    def attempt(snapshot: Snapshot) -> Landing[CanaryResult]:
        ended = _ended(snapshot.records, env, name, "canary-abort")
        if ended is not None:  # aborted already (a re-run): nothing to do
            return Landing(
                CanaryResult(
                    "canary-abort",
                    name,
                    env,
                    ended.version,
                    ended.previous_version,
                    int(ended.weight or 0),
                    ended.commit,
                    [],
                    False,
                    ended.reason,
                    noop=True,
                )  # fmt: skip
            )
        running = require_running(snapshot.records, env, name)
        path = target.deploy_path(registry, env, name)
        blobs = target.files_at(registry, running.stable_commit, path)
        contents = git.read_objects(registry.root, list(blobs.values()))
        files = {n: blob[1] for n, blob in zip(blobs, contents) if blob is not None}
        info = resolve(registry, running.tag).info
        title = f"Abort the canary of {running.tag} in {env}"
        trailers = [
            ("Action", "canary-abort"),
            ("Model", name),
            ("Version", running.candidate),
            ("Env", env),
            ("Tag", running.tag),
            ("Tag-Object", info.object),
            ("Previous-Version", running.stable),
            ("Restored-From", running.stable_commit),
            ("Weight", str(running.weight)),
            ("Reason", reason),
        ]
        event_path, event = marks.event_line(registry, snapshot.at, name, title, reason)
        commit = git.build_commit(
            registry.root,
            snapshot.at.commit,
            {**{f"{path}/{n}": data for n, data in files.items()}, event_path: event},
            trailers_message(title, trailers),
            replace=(path,),
        )
        mine, theirs = git.object_ids(
            registry.root, [f"{commit}:{path}", f"{running.stable_commit}:{path}"]
        )
        if mine != theirs:
            raise DeployError(
                f"the abort would not restore {path} of {running.stable_commit[:8]} exactly "
                f"(tree {mine} against {theirs}); nothing was committed"
            )
        result = CanaryResult("canary-abort", name, env, running.candidate, running.stable,
                              running.weight, commit, sorted(files), push, reason)  # fmt: skip
        return Landing(result, commit, title)

    return target.land(registry, name, push, attempt)


def running(registry: Registry, env: str, model: str | None = None) -> Canary:
    """The canary of MODEL (or the only one) running in ENV."""
    name = _model(registry, env, model)
    return require_running(target.read_log(registry, name), env, name)


def require_running(records: list[target.DeployRecord], env: str, model: str) -> Canary:
    """The canary of MODEL running in ENV by these records; an error naming how to start one."""
    found = canary_of(records, env, model)
    if found is None:
        raise DeployError(
            f"no canary of {model} runs in {env}: start one with "
            f"`modelreg canary start {model}@VERSION --env {env}`"
        )
    return found


def _ended(
    records: list[target.DeployRecord], env: str, model: str, action: str
) -> target.DeployRecord | None:
    """The newest record of MODEL's canaries and deploys in ENV, when it is ACTION (the canary has
    ended that way and nothing has moved since)."""
    newest = next(
        (
            r
            for r in records
            if r.env == env
            and r.model == model
            and (r.changes_manifests or r.action in ("canary-start", "canary-step", "canary-abort"))
        ),
        None,
    )
    return newest if newest is not None and newest.action == action else None


def _require_pass(running: Canary, env: str, what: str) -> None:
    if running.passed:
        return
    measured = (
        f"the last analysis at {running.weight}% said {running.verdict} ({running.summary})"
        if running.verdict
        else f"no analysis was recorded at {running.weight}% yet"
    )
    raise DeployError(
        f"cannot {what} the canary of {running.tag} in {env}: {measured}; run `modelreg analyze "
        f"--env {env} --model {running.model} --prometheus URL --record` first"
    )


def _model(registry: Registry, env: str, model: str | None) -> str:
    registry.config.env(env)
    if model is not None:
        check_name(model)
        return model
    if registry.config.default_model:
        return registry.config.default_model
    found = sorted({c.model for c in policy.canaries(target.read_log(registry)) if c.env == env})
    if len(found) == 1:
        return found[0]
    if not found:
        raise DeployError(f"no canary runs in {env}")
    raise DeployError(f"canaries of {', '.join(found)} run in {env}: pass --model NAME")


def _check_untouched(
    registry: Registry, snapshot: Snapshot, env: str, model: str, stable_commit: str
) -> None:
    path = target.deploy_path(registry, env, model)
    if target.files_at(registry, stable_commit, path) != target.files_at(
        registry, snapshot.at.commit, path
    ):
        raise DeployError(
            f"{registry.config.deploy.branch}:{path} was edited by hand since the stable version "
            f"was deployed (commit {stable_commit[:8]}): redeploy it before starting a canary"
        )


def _candidate(registry: Registry, resolved: Resolved, env: str, weight: int) -> dict[str, bytes]:
    """The candidate's manifests at WEIGHT (its own names and replicas; KServe: the split)."""
    track = Track(weight=weight, replicas=replicas(registry, env, weight))
    return render(registry, resolved, env, track=track).files


def _split(
    registry: Registry,
    snapshot: Snapshot,
    model: str,
    env: str,
    weight: int,
    candidate: dict[str, bytes],
) -> dict[str, bytes]:
    """The files of ENV's deploy path with the CANDIDATE's at WEIGHT: the stable ones as they are on
    the branch, the candidate's in the canary folder and the route's weights (Deployments), or the
    candidate's InferenceService with canaryTrafficPercent (KServe)."""
    path = target.deploy_path(registry, env, model)
    blobs = target.files_at(registry, snapshot.at.commit, path)
    stable = {n: b for n, b in blobs.items() if not n.startswith(f"{CANARY_DIR}/")}
    contents = git.read_objects(registry.root, list(stable.values()))
    files = {n: blob[1] for n, blob in zip(stable, contents) if blob is not None}
    if registry.config.serving.kind == "kserve":  # the InferenceService itself splits
        owned = owned_files()
        files.update({n: data for n, data in candidate.items() if n not in owned})
        files.update({f"{CANARY_DIR}/{n}": d for n, d in candidate.items() if n in owned})
        return files
    split = route(registry.config, env, model, weight)
    assert split is not None  # check_weight: a gateway is named
    files.update({f"{CANARY_DIR}/{n}": data for n, data in candidate.items()})
    files[ROUTE_FILE] = split
    return files


def _land(
    registry: Registry,
    snapshot: Snapshot,
    action: str,
    resolved: Resolved,
    env: str,
    stable: str,
    weight: int,
    files: dict[str, bytes],
    title: str,
    push: bool,
) -> Landing[CanaryResult]:
    info = resolved.info
    path = target.deploy_path(registry, env, info.model)
    trailers = [*version_trailers(action, info, env, stable), ("Weight", str(weight))]
    commit = target.build_commit(
        registry, snapshot.at.commit, path, files, trailers_message(title, trailers)
    )
    result = CanaryResult(action, info.model, env, str(info.version), stable, weight, commit,
                          sorted(files), push)  # fmt: skip
    return Landing(result, commit, title)
