"""The deploy target: a branch whose commits hold rendered manifests under `<env>/<model>/`,
each with `Modelreg-*` trailers. Written with git plumbing through a private index, so the
user's working tree, index and checked-out branch are never touched.

Every move of the branch is a compare-and-swap against the commit the new one was built on: a
local move is `update-ref NEW OLD`; a push is a fast-forward of the remote branch, and the local
branch follows only once the remote has accepted it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from modelreg import cache, faults, git
from modelreg.errors import DeployError, GitError, RefConflict
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.trailers import parse as trailers_of


@dataclass(frozen=True)
class DeployRecord(JsonFields):
    """One modelreg commit on the deploy branch."""

    commit: str
    timestamp: int
    author: str
    action: str
    model: str
    version: str
    env: str
    tag: str
    source_commit: str
    previous_version: str
    tag_object: str = ""
    restored_from: str = ""  # a rollback: the deploy commit whose manifests it restored
    rolled_back: str = (
        ""  # a rollback: the version it moved away from (suspect in this env from now on)
    )
    forced: bool = False
    reason: str = ""  # quarantine, unquarantine, release, deprecate: why
    sunset: str = ""  # deprecate: the date (YYYY-MM-DD) after which deploys refuse the version
    replacement: str = ""  # deprecate: the tag callers should move to
    weight: str = ""  # canary-*, analysis: the candidate's share of traffic, in percent
    verdict: str = ""  # analysis: passed, failed or inconclusive

    @property
    def changes_manifests(self) -> bool:
        return self.action in MANIFEST_ACTIONS


@dataclass(frozen=True)
class Live(JsonFields):
    """A version live in an environment: the deploy-branch commit that put it there."""

    env: str
    model: str
    version: str
    tag: str
    commit: str
    action: str  # deploy, promote or rollback


# the commits that put a version live (a canary's start, steps and abort change manifests too, but
# what runs is still the stable version: `policy.canary_of` reads them)
MANIFEST_ACTIONS = ("deploy", "promote", "rollback", "canary-promote")
EVENTS_DIR = ".modelreg"  # per model, a plain-text log of the commits that change no manifest


R = TypeVar("R")


@dataclass(frozen=True)
class Landing(Generic[R]):
    """What one attempt decided: a result, and the commit to move the branch to (None: nothing to
    land)."""

    result: R
    commit: str | None = None
    title: str = ""


ATTEMPTS = 20
BACKOFF_CAP = 1.0  # seconds; the n-th retry waits a random time up to min(cap, 0.05 * 2**n)


@dataclass(frozen=True)
class Base:
    """Where a deploy builds: `commit` (the new commit's parent) and the local branch as it was
    read."""

    commit: str | None
    local: str | None


@dataclass(frozen=True)
class Snapshot:
    """The deploy branch as one attempt saw it: where it stood, its records from there (newest
    first) and which attempt this is."""

    at: Base
    records: list[DeployRecord]
    attempt: int


def deploy_path(registry: Registry, env: str, model: str) -> str:
    return registry.config.deploy.path.format(env=env, model=model).strip("/")


def branch_ref(registry: Registry) -> str:
    return f"refs/heads/{registry.config.deploy.branch}"


def remote_ref(registry: Registry) -> str:
    return f"refs/remotes/{registry.config.deploy.remote}/{registry.config.deploy.branch}"


def base(registry: Registry, for_push: bool = False) -> Base:
    """The deploy branch's commit: the local branch, or the remote-tracking one when the local is
    missing or behind it (a fresh CI clone has only `origin/deploy`). For a push, a local branch
    that
    has diverged from the remote one is an error: its extra commits would never fast-forward."""
    local = git.rev_parse(branch_ref(registry), registry.root)
    remote = git.rev_parse(remote_ref(registry), registry.root)
    if remote is None or remote == local:
        return Base(local, local)
    if local is None or git.git_ok("merge-base", "--is-ancestor", local, remote, cwd=registry.root):
        return Base(remote, local)
    if for_push and not git.git_ok("merge-base", "--is-ancestor", remote, local, cwd=registry.root):
        branch, tracking = (
            registry.config.deploy.branch,
            remote_ref(registry).removeprefix("refs/remotes/"),
        )
        raise DeployError(
            f"the local branch {branch} and {tracking} have diverged (see `git log "
            f"{tracking}...{branch}`); "
            f"keep the remote's: `git branch -f {branch} {tracking}`, then re-run"
        )
    return Base(local, local)


def tip(registry: Registry) -> str | None:
    return base(registry).commit


def read_log(
    registry: Registry,
    model: str | None = None,
    start: str | None = None,
    events_only: bool = False,
) -> list[DeployRecord]:
    """Every modelreg commit on the deploy branch from START (default: its tip), newest first: only
    MODEL's when given (its `Modelreg-Model` trailer), only the event commits (quarantines,
    deprecations, releases, approvals: `.modelreg/`) with `events_only`.

    The whole log is kept in `<git dir>/modelreg/deploy-log`, and each model's in
    `deploy-logs/<model>`, by the commit they start from: the history below a commit never changes,
    so a later call reads from git only the commits added since (`git log CACHED..START`), and all
    of it again when the branch was reset. One model's records then cost its own file, however many
    deploy commits the other models have."""
    start = start or tip(registry)
    if start is None:
        return []
    records = _cached_log(registry, start, model)
    return [r for r in records if not r.changes_manifests] if events_only else records


LOG_FORMAT = "--format=%H%x1f%ct%x1f%an <%ae>%x1f%P%x1f%(trailers:only,unfold)%x1e"
LOG_CACHE = "deploy-log"
MODEL_LOGS = "deploy-logs"  # one file per model


def _git_log(registry: Registry, revisions: str, paths: list[str]) -> str:
    return git.run_git(
        "log", LOG_FORMAT, revisions, *(["--", *paths] if paths else []), cwd=registry.root
    )


def _parse_log(out: str, model: str | None, merges: list[str] | None = None) -> list[DeployRecord]:
    records = []
    for chunk in out.split("\x1e"):
        chunk = chunk.strip("\n")
        if not chunk:
            continue
        commit, stamp, author, parents, trailers = chunk.split("\x1f")
        if merges is not None and " " in parents.strip():
            merges.append(commit)
        fields = trailers_of(trailers)
        if "Action" not in fields or "Model" not in fields or (model and fields["Model"] != model):
            continue
        records.append(
            DeployRecord(
                commit=commit,
                timestamp=int(stamp),
                author=author,
                action=fields["Action"],
                model=fields["Model"],
                version=fields.get("Version", ""),
                env=fields.get("Env", ""),
                tag=fields.get("Tag", ""),
                source_commit=fields.get("Source-Commit", ""),
                previous_version=fields.get("Previous-Version", ""),
                tag_object=fields.get("Tag-Object", ""),
                restored_from=fields.get("Restored-From", ""),
                rolled_back=fields.get("Rolled-Back", ""),
                forced=fields.get("Forced", "") == "true",
                reason=fields.get("Reason", ""),
                sunset=fields.get("Sunset", ""),
                replacement=fields.get("Replacement", ""),
                weight=fields.get("Weight", ""),
                verdict=fields.get("Verdict", ""),
            )
        )
    return records


def _cached_log(registry: Registry, start: str, model: str | None) -> list[DeployRecord]:
    """The log from START (one MODEL's, or all), from its cache file and the commits added since;
    read once per process (`list` asks for the whole log three times)."""
    name = LOG_CACHE if model is None else f"{MODEL_LOGS}/{model}"
    path = cache.path(registry.root, name)
    key = (path, start)
    if key not in _READ:
        if len(_READ) >= READ_KEPT:  # `modelreg ui` lives on while the branch moves
            del _READ[next(iter(_READ))]
        _READ[key] = _read_log_at(registry, path, start, model)
    return list(_READ[key])


# (cache file, start) -> its records: the history below a commit never changes, so what was read
# for it holds for the life of the process; the oldest of READ_KEPT goes first
_READ: dict[tuple[Path, str], list[DeployRecord]] = {}
READ_KEPT = 8


def _read_log_at(
    registry: Registry, path: Path, start: str, model: str | None
) -> list[DeployRecord]:
    cached_start, cached = _load_log(path)
    if cached_start == start and cached is not None:
        return cached
    if (
        cached_start
        and cached is not None
        and git.git_ok("merge-base", "--is-ancestor", cached_start, start, cwd=registry.root)
    ):
        merges: list[str] = []
        added = _parse_log(_git_log(registry, f"{cached_start}..{start}", []), model, merges)
        if not merges:  # a linear extension: the new commits, then what was below
            records = added + cached
            _save_log(path, start, records)
            return records
    if model is None:
        records = _parse_log(_git_log(registry, start, []), None)
    else:  # a model's first call (or a reset branch): filtered from the whole log
        records = [r for r in _cached_log(registry, start, None) if r.model == model]
    _save_log(path, start, records)
    return records


def _load_log(path: Path) -> tuple[str | None, list[DeployRecord] | None]:
    """(the commit the cached log starts from, its records); (None, None) when there is none, or it
    was written for other fields than DeployRecord has now."""
    text = cache.read(path)
    if text is None:
        return None, None
    head, _, body = text.partition("\n")
    start, _, names = head.partition(" ")
    if names != _FIELDS:
        return None, None
    try:
        return start, [DeployRecord(*row) for row in json.loads(body)]
    except (ValueError, TypeError):
        return None, None


def _save_log(path: Path, start: str, records: list[DeployRecord]) -> None:
    rows = [[getattr(r, f.name) for f in dataclasses.fields(DeployRecord)] for r in records]
    cache.write_keyed(path, f"{start} {_FIELDS}", json.dumps(rows, separators=(",", ":")))


_FIELDS = ",".join(f.name for f in dataclasses.fields(DeployRecord))


def events_path(model: str) -> str:
    return f"{EVENTS_DIR}/{model}/events"


def analysis_path(model: str, env: str) -> str:
    """Where an analysis commit (`modelreg analyze --record`) keeps its whole record."""
    return f"{EVENTS_DIR}/{model}/analyses/{env}.json"


def analysis_records(registry: Registry, records: list[DeployRecord]) -> list[dict | None]:
    """The whole records of these analysis commits (one `cat-file --batch` for all); None where
    one cannot be read."""
    specs = [f"{r.commit}:{analysis_path(r.model, r.env)}" for r in records]
    found: list[dict | None] = []
    for blob in git.read_objects(registry.root, specs):
        try:
            data = json.loads(blob[1]) if blob is not None else None
        except ValueError:
            data = None
        found.append(data if isinstance(data, dict) else None)
    return found


def land(
    registry: Registry,
    model: str | None,
    push: bool,
    attempt: Callable[[Snapshot], Landing[R]],
) -> R:
    """The one compare-and-swap of the deploy branch: read a snapshot, let ATTEMPT decide from it
    (raising to refuse) and build the commit, move the branch only if it is still where the
    snapshot saw it (pushing first with `push`), and start over from a fresh read when another
    process won."""
    checked_out = git.checked_out_at(registry.root, branch_ref(registry))
    if checked_out is not None and not push:
        raise DeployError(
            f"the deploy branch {registry.config.deploy.branch} is checked out in {checked_out}: "
            "moving it "
            "would leave that working tree behind its branch; switch it to another branch "
            f"(git -C {checked_out} switch --detach), or deploy with --push"
        )
    for number in range(1, ATTEMPTS + 1):
        if push:
            fetch(registry)
        at = base(registry, for_push=push)
        records = read_log(registry, model, start=at.commit) if at.commit else []
        landing = attempt(Snapshot(at, records, number))
        if landing.commit is None:
            if push and at.commit and at.local != at.commit:
                catch_up(registry, at)
            return landing.result
        faults.step("deploy-built")
        if push and push_commit(registry, landing.commit, at, landing.title):
            return landing.result
        if not push:
            try:
                advance(registry, landing.commit, at, landing.title)
                faults.step("deploy-landed")
                return landing.result
            except RefConflict:
                pass
        time.sleep(random.uniform(0, min(BACKOFF_CAP, 0.05 * 2**number)))
    raise DeployError(
        f"the {registry.config.deploy.branch} branch kept moving: gave up after {ATTEMPTS} "
        "attempts, "
        "nothing was committed; re-run the same command"
    )


def first_pin(records: list[DeployRecord], model: str, version: str) -> DeployRecord | None:
    """The first deploy of MODEL@VERSION that recorded its tag object (records are newest first)."""
    return next(
        (
            r
            for r in reversed(records)
            if r.model == model and r.version == version and r.tag_object
        ),
        None,
    )


def first_pins(records: list[DeployRecord]) -> dict[tuple[str, str], DeployRecord]:
    """`first_pin` of every (model, version) at once, in one pass over the records."""
    pins: dict[tuple[str, str], DeployRecord] = {}
    for record in reversed(records):
        if record.tag_object:
            pins.setdefault((record.model, record.version), record)
    return pins


def moved(registry: Registry, records: list[DeployRecord]) -> dict[tuple[str, str], str]:
    """(model, version) -> the object its tag names now, for each deployed version whose tag names
    another object than at its first deploy (one `cat-file --batch-check` for every pinned tag)."""
    pins = first_pins(records)
    now = git.object_ids(registry.root, [f"refs/tags/{pin.tag}" for pin in pins.values()])
    return {
        key: found
        for (key, pin), found in zip(pins.items(), now)
        if found is not None and pin.tag and found != pin.tag_object
    }


def live(records: list[DeployRecord], env: str, model: str) -> DeployRecord | None:
    """The record of what runs in ENV for MODEL: its newest manifest-changing commit."""
    return next(
        (r for r in records if r.env == env and r.model == model and r.changes_manifests), None
    )


def files_at(registry: Registry, commit: str | None, path: str) -> dict[str, str]:
    """Blob ids of the files under `path` at `commit` ({} when there is none)."""
    return git.ls_tree(registry.root, commit, path) if commit else {}


def blob_id(data: bytes) -> str:
    """The id git gives a blob with these bytes (sha1 of `blob <len>\\0<data>`)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def build_commit(
    registry: Registry, parent: str | None, path: str, files: dict[str, bytes], message: str
) -> str:
    """A commit on top of `parent` whose `path` holds exactly `files`; no ref moves."""
    return git.build_commit(
        registry.root,
        parent,
        {f"{path}/{name}": data for name, data in files.items()},
        message,
        replace=(path,),
    )


def advance(registry: Registry, commit: str, at: Base, title: str) -> None:
    """Move the local branch to COMMIT if it is still where `at` read it; else RefConflict. A branch
    checked out in a working tree is left where it is (after a push, origin/<branch> holds the
    truth)."""
    if git.checked_out_at(registry.root, branch_ref(registry)) is not None:
        return
    git.update_refs(registry.root, [(branch_ref(registry), commit, at.local)], f"modelreg: {title}")


def catch_up(registry: Registry, at: Base) -> None:
    """Fast-forward the local branch to the remote's tip it is behind (a no-op deploy with
    --push)."""
    assert at.commit is not None
    with contextlib.suppress(RefConflict):  # moved meanwhile: leave it to the next command
        advance(registry, at.commit, at, "fast-forward to the remote's deploy branch")


def fetch(registry: Registry) -> None:
    """Bring the remote's deploy branch into `origin/<branch>` (absent on the remote: the
    tracking ref goes)."""
    deploy = registry.config.deploy
    remote = git.ls_remote_refs(registry.root, deploy.remote, [branch_ref(registry)])
    if remote is None:
        raise DeployError(
            f"cannot reach the remote {deploy.remote!r} to read its {deploy.branch} branch; "
            "check `git remote -v` and your access, or deploy without --push"
        )
    if remote:
        git.run_git(
            "fetch",
            "-q",
            deploy.remote,
            f"+{branch_ref(registry)}:{remote_ref(registry)}",
            cwd=registry.root,
        )
    elif git.rev_parse(remote_ref(registry), registry.root):
        git.run_git("update-ref", "-d", remote_ref(registry), cwd=registry.root)


def push_commit(registry: Registry, commit: str, at: Base, title: str) -> bool:
    """Fast-forward the remote branch to COMMIT; then the remote-tracking and local branches follow.
    False when the remote refused (it moved: fetch and rebuild); nothing local has moved then."""
    deploy = registry.config.deploy
    try:
        git.run_git(
            "push", "-q", deploy.remote, f"{commit}:{branch_ref(registry)}", cwd=registry.root
        )
    except GitError as exc:
        if re.search(
            r"rejected|non-fast-forward|fetch first|failed to update ref|cannot lock", exc.stderr
        ):
            return False
        raise DeployError(
            f"pushing {deploy.branch} to {deploy.remote} failed, nothing was kept locally: "
            f"{exc.stderr.splitlines()[-1] if exc.stderr else exc}"
        ) from None
    faults.step("deploy-pushed")
    git.run_git("update-ref", remote_ref(registry), commit, cwd=registry.root)
    # the local branch moved meanwhile (another local deploy): origin/<branch> holds the truth
    with contextlib.suppress(RefConflict):
        advance(registry, commit, at, title)
    faults.step("deploy-landed")
    return True
