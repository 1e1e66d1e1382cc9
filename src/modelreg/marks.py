"""The commits that set what may run (read back by `policy`): quarantine and unquarantine,
deprecate and undeprecate, release (lift a rollback's hold) and approve. Each is one linear
action: read a snapshot of the deploy branch, decide from `policy.derive` of it, build one commit
that appends a line to `.modelreg/<model>/events`, and land it through `target.land`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from modelreg import git, target
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.policy import Mark, derive
from modelreg.refs import check_name
from modelreg.target import Base, Landing, Snapshot
from modelreg.trailers import message as trailers_message
from modelreg.versions import VersionInfo, resolve


@dataclass(frozen=True)
class PolicyChange(JsonFields):
    action: str
    model: str
    version: str | None
    env: str | None
    reason: str
    commit: str | None
    noop: bool
    pushed: bool


def quarantine(
    registry: Registry, ref: str, reason: str, lift: bool = False, push: bool = False
) -> PolicyChange:
    """Quarantine REF in every environment (or, with `lift`, lift its quarantine): one commit on the
    deploy branch that `git push` shares. Quarantining twice, or lifting what is not set, changes
    nothing."""
    reason = reason_text(reason)
    info = resolve(registry, ref).info
    action = "unquarantine" if lift else "quarantine"

    def attempt(snapshot: Snapshot) -> Landing[PolicyChange]:
        at, records = snapshot.at, snapshot.records
        present = derive(records).quarantine_of(info.model, str(info.version)) is not None
        change = PolicyChange(
            action, info.model, str(info.version), None, reason, None, present != lift, False
        )
        if present != lift:
            return Landing(change)
        title = f"{'Lift the quarantine of' if lift else 'Quarantine'} {info.tag}"
        return _version_event(registry, at, action, info, title, [("Reason", reason)], push)

    return target.land(registry, info.model, push, attempt)


def deprecate(
    registry: Registry,
    ref: str,
    reason: str,
    sunset: str = "",
    replacement: str = "",
    lift: bool = False,
    push: bool = False,
) -> PolicyChange:
    """Deprecate REF (callers told until SUNSET, YYYY-MM-DD, then deploys refuse it; REPLACEMENT:
    the version to use instead), or with `lift` undo it. Deprecating again with the same terms, or
    lifting what is not set, changes nothing; new terms replace the old ones."""
    reason = reason_text(reason)
    info = resolve(registry, ref).info
    action = "undeprecate" if lift else "deprecate"
    terms: list[tuple[str, str]] = []
    if not lift:
        terms = [("Sunset", _sunset(sunset))]
        if replacement:
            substitute = resolve(registry, replacement).info
            if substitute.tag == info.tag:
                raise ModelregError(f"--replacement {replacement}: that is {info.tag} itself")
            terms.append(("Replacement", substitute.tag))

    def attempt(snapshot: Snapshot) -> Landing[PolicyChange]:
        at, records = snapshot.at, snapshot.records
        present = derive(records).deprecated.get((info.model, str(info.version)))
        same = (
            present is not None
            and [("Sunset", present.sunset)]
            + ([("Replacement", present.replacement)] if present.replacement else [])
            == terms
        )
        if (present is None) if lift else same:
            return Landing(
                PolicyChange(action, info.model, str(info.version), None, reason, None, True, False)
            )
        title = f"{'Lift the deprecation of' if lift else 'Deprecate'} {info.tag}"
        trailers = [*terms, ("Reason", reason)]
        return _version_event(registry, at, action, info, title, trailers, push)

    return target.land(registry, info.model, push, attempt)


def _sunset(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ModelregError(f"--sunset {text[:40]!r}: expected a date, YYYY-MM-DD") from None


def release(
    registry: Registry, env: str, model: str | None, reason: str = "", push: bool = False
) -> PolicyChange:
    """Lift the hold a rollback put on ENV (for MODEL, or the only model held there)."""
    registry.config.env(env)
    if model is not None:
        check_name(model)
    reason = reason.strip() or "released by hand"

    def attempt(snapshot: Snapshot) -> Landing[PolicyChange]:
        at, records = snapshot.at, snapshot.records
        holds = derive(records).holds
        name = model or _only_held(holds, env)
        if (env, name) not in holds:
            return Landing(PolicyChange("release", name, None, env, reason, None, True, False))
        title = f"Release {env} for {name}"
        trailers = [("Action", "release"), ("Model", name), ("Env", env), ("Reason", reason)]
        commit = _event_commit(registry, at, name, title, trailers)
        return Landing(
            PolicyChange(
                "release", name, holds[(env, name)].version, env, reason, commit, False, push
            ),
            commit,
            title,
        )

    return target.land(registry, model, push, attempt)


def approve(registry: Registry, ref: str, env: str, push: bool = False) -> PolicyChange:
    """Approve REF for ENV: a commit on the deploy branch signed with your git signing key. An
    environment with `approvals: N` takes versions approved by N distinct allowed signers, none of
    them the tag's author. Approving twice changes nothing."""
    registry.config.env(env)
    info = resolve(registry, ref).info
    me = git.identity(registry.root)

    def attempt(snapshot: Snapshot) -> Landing[PolicyChange]:
        at, records = snapshot.at, snapshot.records
        done = any(
            r.action == "approve"
            and r.env == env
            and r.model == info.model
            and r.version == str(info.version)
            and r.author == me
            for r in records
        )
        if done:
            return Landing(
                PolicyChange("approve", info.model, str(info.version), env, "", None, True, False)
            )
        title = f"Approve {info.tag} for {env}"
        trailers = [
            ("Action", "approve"),
            ("Model", info.model),
            ("Version", str(info.version)),
            ("Env", env),
            ("Tag", info.tag),
            ("Tag-Object", info.object),
        ]
        commit = _event_commit(registry, at, info.model, title, trailers, sign=True)
        return Landing(
            PolicyChange("approve", info.model, str(info.version), env, "", commit, False, push),
            commit,
            title,
        )

    return target.land(registry, info.model, push, attempt)


def _only_held(holds: dict[tuple[str, str], Mark], env: str) -> str:
    models = sorted(m for e, m in holds if e == env)
    if len(models) == 1:
        return models[0]
    if not models:
        raise ModelregError(f"nothing to release: {env} is not held")
    raise ModelregError(f"{env} is held for {', '.join(models)}: pass --model NAME")


def reason_text(reason: str) -> str:
    """REASON on one line, required, at most 500 characters."""
    text = " ".join(reason.split())
    if not text:
        raise ModelregError("--reason is required: say why (it is recorded with your name)")
    if len(text) > 500:
        raise ModelregError("--reason: at most 500 characters")
    return text


def _version_event(
    registry: Registry,
    at: Base,
    action: str,
    info: VersionInfo,
    title: str,
    more: list[tuple[str, str]],
    push: bool,
) -> Landing[PolicyChange]:
    """The landing of an event about one version: its commit names the version (model, version,
    tag and the tag's object), then MORE (the reason last)."""
    trailers = [
        ("Action", action),
        ("Model", info.model),
        ("Version", str(info.version)),
        ("Tag", info.tag),
        ("Tag-Object", info.object),
        *more,
    ]
    commit = _event_commit(registry, at, info.model, title, trailers)
    reason = dict(more).get("Reason", "")
    change = PolicyChange(action, info.model, str(info.version), None, reason, commit, False, push)
    return Landing(change, commit, title)


def event_line(
    registry: Registry, at: Base, model: str, title: str, reason: str
) -> tuple[str, bytes]:
    """`.modelreg/<model>/events` as it is at AT with one line more: (its path, its bytes)."""
    path = target.events_path(model)
    old = git.read_file(registry.root, at.commit, path) if at.commit else None
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    line = f"{now}  {title}  ({f'Reason: {reason}' if reason else ''})\n"
    return path, (old or b"") + line.encode()


def _event_commit(
    registry: Registry,
    at: Base,
    model: str,
    title: str,
    trailers: list[tuple[str, str]],
    sign: bool = False,
) -> str:
    """A commit on AT that appends one line to `.modelreg/<model>/events` and carries the
    trailers."""
    path, events = event_line(registry, at, model, title, dict(trailers).get("Reason", ""))
    message = trailers_message(title, trailers)
    try:
        return git.build_commit(registry.root, at.commit, {path: events}, message, sign=sign)
    except ModelregError as exc:
        if not sign:
            raise
        raise ModelregError(
            f"signing the commit failed ({exc}); check `git config gpg.format` and "
            "`git config user.signingKey`"
        ) from None
