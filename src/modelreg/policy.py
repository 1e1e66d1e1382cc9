"""What may run, derived from the deploy branch alone: quarantines, rolled-back versions and
holds (the commits that set them are written by `marks`).

- A quarantine is a commit on the deploy branch (`Modelreg-Action: quarantine`, `-Model`,
  `-Version`, `-Reason`; its author is who), lifted by an `unquarantine` commit. It holds in
  every environment. Both append a line to `.modelreg/<model>/events` (a plain-text file: GitOps
  controllers only read manifests), so the commit is never empty and `git push` shares it with
  the deploys, in one order.
- A rollback marks the version it moved away from (`Modelreg-Rolled-Back`) as rolled back in that
  environment; deploying it there again takes --force (recorded as `Modelreg-Forced: true`), which
  clears the mark.
- A rollback holds its environment for that model: the tag-push path (`modelreg ci`) does not deploy
  over it. A `release` commit, or any deploy or promotion by hand, lifts the hold.
- A canary (`canary-start`, `canary-step`) runs until a `canary-promote`, a `canary-abort` or any
  deploy, promotion or rollback of the model in that environment. An abort quarantines the
  candidate (its reason quotes the failed measurement) and holds the environment as a rollback does.
- A deprecation is a commit like a quarantine (`Modelreg-Action: deprecate`, with `-Sunset` and
  `-Replacement`), lifted by `undeprecate`: until the sunset a deploy warns and the pods it renders
  answer with `Deprecation` and `Sunset` headers; after it, deploy and promote refuse the version.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from dataclasses import dataclass, field

from modelreg import cache, target
from modelreg.errors import DeployError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.target import DeployRecord
from modelreg.verdict import PASSED
from modelreg.versions import VersionInfo


@dataclass(frozen=True)
class Mark(JsonFields):
    """Who set a quarantine or a hold, when, why, and in which commit."""

    version: str
    by: str
    since: int
    reason: str
    commit: str


@dataclass(frozen=True)
class Deprecation(JsonFields):
    """A deprecation in force: who, when, why, until when, and what to use instead."""

    version: str
    by: str
    since: int
    reason: str
    commit: str
    sunset: str  # YYYY-MM-DD: the first day deploys refuse it
    replacement: str = ""

    def since_iso(self) -> str:
        return datetime.datetime.fromtimestamp(self.since, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )

    def past(self, today: datetime.date | None = None) -> bool:
        today = today or datetime.datetime.now(datetime.timezone.utc).date()
        return today >= datetime.date.fromisoformat(self.sunset)

    def summary(self) -> str:
        instead = f", use {self.replacement}" if self.replacement else ""
        return f"deprecated, sunset {self.sunset}{instead}: {self.reason}"


@dataclass(frozen=True)
class Policy:
    quarantined: dict[tuple[str, str], Mark] = field(default_factory=dict)  # (model, version)
    deprecated: dict[tuple[str, str], Deprecation] = field(default_factory=dict)  # (model, version)
    rolled_back: dict[tuple[str, str], set[str]] = field(
        default_factory=dict
    )  # (env, model) -> versions
    holds: dict[tuple[str, str], Mark] = field(default_factory=dict)  # (env, model)

    def quarantine_of(self, model: str, version: str) -> Mark | None:
        return self.quarantined.get((model, version))

    def is_rolled_back(self, env: str, model: str, version: str) -> bool:
        return version in self.rolled_back.get((env, model), set())


def derive(records: list[DeployRecord]) -> Policy:
    """The policy the records (newest first, as `target.read_log` returns them) add up to."""
    policy = Policy()
    for r in reversed(records):
        key = (r.env, r.model)
        if r.action == "quarantine":
            policy.quarantined[(r.model, r.version)] = Mark(
                r.version, r.author, r.timestamp, r.reason, r.commit
            )
        elif r.action == "unquarantine":
            policy.quarantined.pop((r.model, r.version), None)
        elif r.action == "deprecate":
            policy.deprecated[(r.model, r.version)] = Deprecation(
                r.version, r.author, r.timestamp, r.reason, r.commit, r.sunset, r.replacement
            )
        elif r.action == "undeprecate":
            policy.deprecated.pop((r.model, r.version), None)
        elif r.action == "release":
            policy.holds.pop(key, None)
        elif r.action == "canary-abort":
            policy.quarantined[(r.model, r.version)] = Mark(
                r.version, r.author, r.timestamp, r.reason, r.commit
            )
            policy.holds[key] = Mark(r.previous_version, r.author, r.timestamp, r.reason, r.commit)
        elif r.action == "rollback":
            if r.rolled_back:
                policy.rolled_back.setdefault(key, set()).add(r.rolled_back)
            policy.holds[key] = Mark(
                r.version, r.author, r.timestamp, r.reason or "rolled back by hand", r.commit
            )
        elif r.changes_manifests:
            policy.holds.pop(key, None)
            if r.forced:
                policy.rolled_back.get(key, set()).discard(r.version)
    return policy


CANARY_MOVES = ("canary-start", "canary-step")


@dataclass(frozen=True)
class Canary(JsonFields):
    """A canary running in an environment: the candidate beside the stable version, at `weight`
    percent of the traffic, and the newest analysis at that weight (none yet: empty)."""

    env: str
    model: str
    candidate: str  # version
    tag: str  # the candidate's tag
    stable: str  # version
    weight: int
    since: int  # when the canary reached this weight
    by: str
    commit: str  # the start or step commit that set the weight
    started: str  # the canary-start commit
    stable_commit: str  # the deploy commit of the stable version (what an abort restores)
    verdict: str = ""  # of the newest analysis at this weight
    analysis: str = ""  # that analysis' commit
    summary: str = ""  # and what it measured, in a line

    @property
    def passed(self) -> bool:
        return self.verdict == PASSED


def canary_of(records: list[DeployRecord], env: str, model: str) -> Canary | None:
    """The canary of MODEL running in ENV, from the records (newest first), or None."""
    newest: DeployRecord | None = None
    started: DeployRecord | None = None
    analysis: DeployRecord | None = None
    for r in records:
        if r.env != env or r.model != model:
            continue
        if r.action == "analysis":
            if newest is None and analysis is None:
                analysis = r
            continue
        if r.action not in CANARY_MOVES:
            if newest is None and (r.changes_manifests or r.action == "canary-abort"):
                return None
            if r.changes_manifests:
                break
            continue
        if newest is None:
            newest = r
        if r.action == "canary-start":
            started = r
            break
    if newest is None or started is None:
        return None
    stable = target.live(records, env, model)
    if analysis is not None and (
        analysis.version != newest.version or analysis.weight != newest.weight
    ):
        analysis = None
    return Canary(
        env=env,
        model=model,
        candidate=newest.version,
        tag=newest.tag,
        stable=newest.previous_version,
        weight=int(newest.weight or 0),
        since=newest.timestamp,
        by=newest.author,
        commit=newest.commit,
        started=started.commit,
        stable_commit=stable.commit if stable else "",
        verdict=analysis.verdict if analysis else "",
        analysis=analysis.commit if analysis else "",
        summary=analysis.reason if analysis else "",
    )


def canaries(records: list[DeployRecord]) -> list[Canary]:
    """Every canary running, by environment and model."""
    pairs = sorted({(r.env, r.model) for r in records if r.action in CANARY_MOVES})
    found = [canary_of(records, env, model) for env, model in pairs]
    return [c for c in found if c is not None]


def refuse_canary(records: list[DeployRecord], env: str, model: str) -> None:
    """A deploy, promotion or rollback of MODEL in ENV while a canary runs there is refused: the
    canary is promoted or aborted first."""
    running = canary_of(records, env, model)
    if running is not None:
        raise DeployError(
            f"a canary of {running.tag} runs in {env} at {running.weight}% beside "
            f"{running.stable}: finish it first (`modelreg canary promote --env {env} --model "
            f"{model}` or `modelreg canary abort --env {env} --model {model} --reason ...`)"
        )


def quarantines(registry: Registry, model: str | None = None) -> dict[tuple[str, str], Mark]:
    """(model, version) -> the quarantine in force, from the quarantine commits alone (one `git
    log`). Every model's are kept in `<git dir>/modelreg/quarantines` by the deploy branch's tip:
    the log below a commit never changes, so the entry is right until the tip moves."""
    if model is not None:
        return derive(target.read_log(registry, model, events_only=True)).quarantined
    tip = target.tip(registry)
    path = cache.path(registry.root, QUARANTINES)
    saved = cache.read_keyed(path, tip) if tip else None
    if saved is not None:
        with contextlib.suppress(ValueError, TypeError):
            return {(m, v): Mark(**fields) for m, v, fields in json.loads(saved)}
    found = derive(target.read_log(registry, None, events_only=True)).quarantined
    if tip:
        cache.write_keyed(
            path, tip, json.dumps([[m, v, mark.to_json()] for (m, v), mark in found.items()])
        )
    return found


QUARANTINES = "quarantines"


def refuse_quarantined(policy: Policy, info: VersionInfo) -> None:
    mark = policy.quarantine_of(info.model, str(info.version))
    if mark is not None:
        raise DeployError(
            f"{info.tag} is quarantined ({mark.reason}; by {_who(mark.by)} on {_day(mark.since)}, "
            f"commit {mark.commit[:8]}): lift it with `modelreg unquarantine {info.tag} --reason "
            "...`"
        )


def deprecations(
    registry: Registry, model: str | None = None
) -> dict[tuple[str, str], Deprecation]:
    """(model, version) -> the deprecation in force, from the event commits alone."""
    return derive(target.read_log(registry, model, events_only=True)).deprecated


def refuse_sunset(policy: Policy, info: VersionInfo) -> str | None:
    """An error after the version's sunset; before it, the warning a deploy prints (None: not
    deprecated)."""
    mark = policy.deprecated.get((info.model, str(info.version)))
    if mark is None:
        return None
    if mark.past():
        instead = (
            f"deploy {mark.replacement} instead" if mark.replacement else "deploy a newer version"
        )
        raise DeployError(
            f"{info.tag} reached its sunset on {mark.sunset} ({mark.reason}; deprecated by "
            f"{_who(mark.by)}, commit {mark.commit[:8]}): {instead}, or `modelreg undeprecate "
            f"{info.tag}`"
        )
    return f"WARNING: {info.tag} is {mark.summary()}"


def needs_force(policy: Policy, env: str, info: VersionInfo, force: bool) -> bool:
    """True when deploying INFO to ENV is a forced re-deploy of a rolled-back version; an error
    when it is one and --force was not given."""
    if not policy.is_rolled_back(env, info.model, str(info.version)):
        return False
    if not force:
        raise DeployError(
            f"{info.tag} was rolled back in {env}: deploy it there again only deliberately, with "
            "--force"
        )
    return True


def held(policy: Policy, env: str, model: str) -> Mark | None:
    return policy.holds.get((env, model))


def hold_message(env: str, model: str, mark: Mark) -> str:
    return (
        f"{env} is held for {model} at {mark.version} since a rollback by {_who(mark.by)} on "
        f"{_day(mark.since)} "
        f"(commit {mark.commit[:8]}): release it with `modelreg release {env} --model {model}`, "
        "or deploy by hand"
    )


def _who(author: str) -> str:
    return author.split(" <")[0] or "?"


def _day(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
