"""Lineage at register: what DVC already knows of how an artifact was made, kept in its card.

A DVC pipeline's `dvc.lock` records, per stage, the md5 of every input (`deps`), the parameters
it read and the md5 of every output. When the artifact being registered is an output of a stage
of the `dvc.lock` in `--lineage-from DIR` (or the registry's own), the card gets

    lineage: {stage, lock, deps: [{path, md5}], params: {file: {key: value}}, outs: [{path, md5}],
              code_commit}

`code_commit` is the commit of the git repository holding that `dvc.lock` (with `+dirty` when
its working tree has changes). Nothing is run: the lock file is read as DVC wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelreg import git, safe_yaml
from modelreg.card import section
from modelreg.errors import ModelregError

LOCK = "dvc.lock"


def read_lineage(
    source: Path, lineage_from: Path | None, registry_root: Path
) -> dict[str, Any] | None:
    """The lineage of SOURCE from LINEAGE_FROM's dvc.lock (an error when it says nothing of SOURCE),
    else from the registry's (None when there is none or it does not make SOURCE)."""
    folder = lineage_from if lineage_from is not None else registry_root
    lock = folder / LOCK
    if not lock.is_file():
        if lineage_from is not None:
            raise ModelregError(
                f"--lineage-from {lineage_from}: no {LOCK} there (run `dvc repro` first)"
            )
        return None
    data = safe_yaml.load(lock.read_bytes(), str(lock))
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise ModelregError(f"{lock}: not a DVC lock file (no `stages`)")
    wanted = os.path.realpath(source)
    for name, stage in sorted(stages.items()):
        outs = _entries(stage, "outs")
        if any(os.path.realpath(folder / o["path"]) == wanted for o in outs):
            return {
                "stage": str(name),
                "lock": str(lock.resolve()),
                "deps": _entries(stage, "deps"),
                "params": section(stage, "params"),
                "outs": outs,
                "code_commit": _code_commit(folder),
            }
    if lineage_from is not None:
        raise ModelregError(
            f"--lineage-from {lineage_from}: no stage of its {LOCK} outputs {source} "
            f"(stages: {', '.join(sorted(map(str, stages))) or 'none'})"
        )
    return None


def _entries(stage: Any, key: str) -> list[dict[str, str]]:
    items = stage.get(key) if isinstance(stage, dict) else None
    return [
        {"path": str(e["path"]), "md5": str(e.get("md5", ""))}
        for e in items or []
        if isinstance(e, dict) and "path" in e
    ]


def _code_commit(folder: Path) -> str | None:
    if not git.git_ok("rev-parse", "--verify", "-q", "HEAD", cwd=folder):
        return None
    commit = git.run_git("rev-parse", "HEAD", cwd=folder).strip()
    dirty = git.run_git("status", "--porcelain", "--untracked-files=no", cwd=folder).strip()
    return commit + ("+dirty" if dirty else "")


def problems(card: dict[str, Any]) -> str | None:
    """Why a card has no usable lineage (the `require_lineage` gate), or None."""
    lineage = card.get("lineage")
    if not isinstance(lineage, dict) or not lineage.get("deps"):
        return (
            "its card records no lineage: register it from a DVC pipeline's output "
            "(`modelreg register NAME PATH --lineage-from DIR`, DIR holding the dvc.lock)"
        )
    return None
