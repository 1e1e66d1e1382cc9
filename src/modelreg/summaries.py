"""What `list` shows of each model (latest valid version, how many valid and invalid versions), kept
in `<git dir>/modelreg/summaries` by the digest of that model's tag refs.

A summary is a function of the model's tag names and the objects they name (immutable: a moved or
new tag changes the digest) and of modelreg.yaml's `models_dir` and `default_model` (in the digest
too), so an entry can never go stale. `list` then reads tag names and ids with one `for-each-ref`
(git opens no tag object), recomputes only the models whose refs changed, and parses no tag message
of the others: at 100,000 tags that is the difference between seconds and a fraction of one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import cache, git
from modelreg.handle import Registry
from modelreg.policy import deprecations, quarantines
from modelreg.refs import group_tags, parse_version
from modelreg.target import moved, read_log
from modelreg.versions import VersionInfo, latest_valid_of, scan

CACHE = "summaries"
FORMAT = "%(refname:strip=2)%00%(objectname)"
Summary = tuple[
    dict[str, Any] | None, int, int
]  # (latest as VersionInfo fields, valid count, invalid count)
Compute = Callable[[list[str]], dict[str, Summary]]


def summaries(registry: Registry, compute: Compute) -> dict[str, Summary]:
    """Every model's summary: from the cache where its refs are unchanged, from COMPUTE (given the
    models to work out) for the others, which then join the cache."""
    root = registry.root
    out = git.run_git("for-each-ref", f"--format={FORMAT}", "refs/tags", cwd=root)
    salt = f"{registry.config.models_dir}\0{registry.config.default_model}\n"
    groups = group_tags(out.splitlines(), registry.config.default_model)
    digests = {
        model: hashlib.sha1(
            (salt + "\n".join(lines)).encode("utf-8", "surrogateescape")
        ).hexdigest()
        for model, lines in groups.items()
    }
    path = cache.path(root, CACHE)
    cached = _load(path)
    found: dict[str, Summary] = {}
    for model, digest in digests.items():
        entry = cached.get(model)
        if entry is not None and entry[0] == digest:
            found[model] = _decode(entry[1])
    stale = sorted(set(groups) - set(found))
    if stale:
        fresh = compute(stale)
        found.update(fresh)
        _save(path, {m: (digests[m], _encode(found[m])) for m in found})
    return {model: summary for model, summary in found.items() if _real(model, summary)}


def _real(model: str, summary: Summary) -> bool:
    """A group of tags that held no version tag (`foo@bar`, `vendor`) is not a model."""
    latest, valid, invalid = summary
    return latest is not None or valid + invalid > 0


def _encode(summary: Summary) -> str:
    return json.dumps(summary, separators=(",", ":"))


def _decode(text: str) -> Summary:
    latest, valid, invalid = json.loads(text)
    return latest, int(valid), int(invalid)


def _load(path: Path) -> dict[str, tuple[str, str]]:
    entries: dict[str, tuple[str, str]] = {}
    for line in (cache.read(path) or "").split("\n"):
        parts = line.split("\0")
        if len(parts) == 3 and len(parts[1]) == 40:
            entries[parts[0]] = (parts[1], parts[2])
    return entries


def _save(path: Path, entries: dict[str, tuple[str, str]]) -> None:
    cache.write(path, "".join(f"{m}\0{d}\0{s}\n" for m, (d, s) in sorted(entries.items())))


@dataclass(frozen=True)
class ModelSummary:
    model: str
    latest: VersionInfo | None
    count: int
    invalid: int
    quarantined: tuple[str, ...] = ()
    moved: tuple[
        str, ...
    ] = ()  # versions whose tag names another object than at their first deploy
    deprecated: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "latest": self.latest.to_json() if self.latest else None,
            "versions": self.count,
            "invalid": self.invalid,
            "quarantined": list(self.quarantined),
            "moved": list(self.moved),
            "deprecated": list(self.deprecated),
        }


def list_models(registry: Registry) -> list[ModelSummary]:
    """Each model with its latest valid version and how many versions it has (see `summaries`: only
    the models whose tags changed since the last call are worked out again)."""
    found = summaries(registry, lambda models: _summarize(registry, models))
    held_back = quarantines(registry)
    retiring = deprecations(registry)
    shifted = moved(registry, read_log(registry))
    result = []
    for model, (latest, count, invalid) in sorted(found.items()):
        bad = tuple(
            sorted({v for m, v in held_back if m == model}, key=lambda v: parse_version(v).key)
        )
        gone = tuple(
            sorted({v for m, v in shifted if m == model}, key=lambda v: parse_version(v).key)
        )
        old = tuple(
            sorted({v for m, v in retiring if m == model}, key=lambda v: parse_version(v).key)
        )
        result.append(
            ModelSummary(
                model=model,
                latest=_from_fields(latest) if latest else None,
                count=count,
                invalid=invalid,
                quarantined=bad,
                moved=gone,
                deprecated=old,
            )
        )
    return result


def _summarize(
    registry: Registry, models: list[str]
) -> dict[str, tuple[dict[str, Any] | None, int, int]]:
    """(latest valid version's fields, valid count, invalid count) of MODELS: one scan per model
    when few changed, one scan of every tag when many did."""
    by_model: dict[str, list[VersionInfo]] = {m: [] for m in models}
    if len(models) <= 20:
        for model in models:
            by_model[model] = scan(registry, model)
    else:
        for info in scan(registry):
            if info.model in by_model:
                by_model[info.model].append(info)
    latest = latest_valid_of(registry, by_model)
    return {
        model: (
            _fields(info) if (info := latest[model]) else None,
            sum(v.valid for v in versions),
            sum(not v.valid for v in versions),
        )
        for model, versions in by_model.items()
    }


def _fields(info: VersionInfo) -> dict[str, Any]:
    return {**info.to_json(), "sha256": info.sha256}


def _from_fields(fields: dict[str, Any]) -> VersionInfo:
    return VersionInfo(
        model=fields["model"],
        version=parse_version(fields["version"]),
        tag=fields["tag"],
        object=fields["object"],
        commit=fields["commit"],
        timestamp=int(fields["timestamp"]),
        author=fields["author"],
        message=fields["message"],
        annotated=bool(fields["annotated"]),
        problem=None,
        sha256=fields.get("sha256"),
    )
