"""`modelreg gc`: remove the artifacts nobody can need any more, and never one somebody can.

Kept, always: every version live in an environment, every rollback target within the window (each
version live in an environment at any moment of the last WINDOW), the candidate of every canary
running or run within the window, the version each held environment is held at, every quarantined
version (the evidence), and the last N versions of each model. Only the DVC objects of the other
versions are candidates, and of those only the ones no kept version shares are removed (from the
version's DVC remote and the local cache): objects outside any version (other DVC data in the same
remote) are never touched. Files go before the folder listings that name them, so a gc killed
midway, run again, finds what is left; a kill never touches a kept version.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from modelreg import faults
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.policy import CANARY_MOVES, Policy, canaries
from modelreg.target import DeployRecord


@dataclass(frozen=True)
class Version:
    """What the plan needs of a version: who it is and where it stands in its model's order."""

    model: str
    version: str
    tag: str
    order: Any  # its sort key among the model's versions


def kept_versions(
    versions: list[Version], records: list[DeployRecord], rules: Policy, keep_last: int, since: int
) -> dict[str, str]:
    """tag -> why it is kept (a pure function: the property tests drive it). RECORDS newest first;
    SINCE: the window's start (a Unix time)."""
    by_key = {(v.model, v.version): v.tag for v in versions}
    why: dict[str, str] = {}

    def keep(model: str, version: str, reason: str) -> None:
        tag = by_key.get((model, version))
        if tag is not None:
            why.setdefault(tag, reason)

    deploys = [r for r in records if r.changes_manifests]
    current: set[tuple[str, str]] = set()
    for r in deploys:  # newest first: the first of each (env, model) is live now
        if (r.env, r.model) not in current:
            current.add((r.env, r.model))
            keep(r.model, r.version, f"live in {r.env}")
    at_start: set[tuple[str, str]] = set()
    for r in deploys:
        if r.timestamp >= since:
            keep(r.model, r.version, f"deployed to {r.env} within the window")
        elif (r.env, r.model) not in at_start:  # live in that environment when the window opened
            at_start.add((r.env, r.model))
            keep(r.model, r.version, f"live in {r.env} when the window opened")
    for c in canaries(records):  # a running canary's candidate has pods fetching its bytes
        keep(c.model, c.candidate, f"a canary in {c.env}")
    for r in records:
        if r.action in CANARY_MOVES and r.timestamp >= since:
            keep(r.model, r.version, f"a canary in {r.env} within the window")
    for (env, model), mark in rules.holds.items():
        keep(model, mark.version, f"{env} is held at it")
    for model, version in rules.quarantined:
        keep(model, version, "quarantined (evidence)")
    models: dict[str, list[Version]] = {}
    for v in versions:
        models.setdefault(v.model, []).append(v)
    for mine in models.values():
        for v in sorted(mine, key=lambda v: v.order)[-keep_last:] if keep_last > 0 else []:
            why.setdefault(v.tag, f"one of the last {keep_last}")
    return why


@dataclass
class Collection(JsonFields):
    kept: dict[str, str]
    collected: list[str]
    objects: int = 0  # DVC objects removed (or that would be)
    bytes: int = 0
    shared: int = 0  # objects of collected versions kept because a kept version has them too
    dry_run: bool = False
    missing: list[str] = field(default_factory=list)  # objects already gone


def gc(
    registry: Registry, keep_last: int = 3, window_seconds: int = 30 * 86400, dry_run: bool = False
) -> Collection:
    from modelreg import policy, target
    from modelreg.remote import version_store
    from modelreg.versions import read_version, scan

    infos = [v for v in scan(registry) if v.valid]
    records = target.read_log(registry)
    why = kept_versions(
        [Version(v.model, str(v.version), v.tag, v.version.key) for v in infos],
        records,
        policy.derive(records),
        keep_last,
        int(time.time()) - window_seconds,
    )
    resolved = {v.tag: read_version(registry, v, infos) for v in infos}
    keep_objects: set[str] = set()
    for tag in why:
        keep_objects |= set(_objects(registry, resolved[tag]))
    result = Collection(
        kept=why, collected=sorted(t for t in resolved if t not in why), dry_run=dry_run
    )
    cache = _cache_dir(registry)
    done: set[str] = set()
    for tag in result.collected:
        found = resolved[tag]
        objects = _objects(registry, found)
        result.shared += len([o for o in objects if o in keep_objects and o not in done])
        doomed = [o for o in objects if o not in keep_objects and o not in done]
        done.update(objects)
        if not doomed:
            continue
        with version_store(registry, found) as remote:
            for md5 in sorted(doomed, key=lambda o: o.endswith(".dir")):  # listings last
                size = _size(remote, md5, cache)
                if size is None:
                    result.missing.append(md5)
                    continue
                result.objects += 1
                result.bytes += size
                if not dry_run:
                    _remove(remote, md5, cache)
                    faults.step("gc-object")
    return result


def _objects(registry: Registry, found: Any) -> list[str]:
    """The DVC objects a version's artifact is made of: its file, or its folder's listing and
    files."""
    pointer = found.pointer
    if not pointer.is_dir:
        return [pointer.md5]
    from modelreg.remote import dir_listing

    try:
        return [pointer.md5, *dir_listing(registry, found).values()]
    except (
        Exception
    ):  # the listing is gone (a gc killed after it): the listing alone is what is left
        return [pointer.md5]


def _cache_dir(registry: Registry) -> Any:
    from modelreg.store import cache_objects_dir

    return cache_objects_dir(registry.root)


def _size(remote: Any, md5: str, cache: Any) -> int | None:
    local = cache / md5[:2] / md5[2:]
    path = remote.path(md5)
    try:
        if hasattr(remote.fs, "size"):
            return int(remote.fs.size(path))
        return os.stat(path).st_size
    except (FileNotFoundError, OSError):
        return os.stat(local).st_size if local.exists() else None


def _remove(remote: Any, md5: str, cache: Any) -> None:
    path = remote.path(md5)
    try:
        if hasattr(remote.fs, "rm"):
            remote.fs.rm(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    (cache / md5[:2] / md5[2:]).unlink(missing_ok=True)
