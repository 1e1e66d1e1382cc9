"""`register`: artifact into models/<name>/, DVC-tracked, pushed, carded, committed and tagged.

The bytes reach the remote before the commit and tag exist; any failure puts every
touched file back and leaves no commit and no tag.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from modelreg import git, store
from modelreg.card import CARD_FILE, dump_card, parse_card, parse_pairs
from modelreg.digest import Progress, copy_with_sha256, sha256_of
from modelreg.errors import ModelregError, RefError
from modelreg.refs import Version, check_name, format_tag, next_version, parse_version
from modelreg.registry import Registry
from modelreg.store import Pointer
from modelreg.versions import VersionInfo, read_version, scan

CARRIED_OVER = ("description", "framework", "signature", "example", "lineage")


@dataclass(frozen=True)
class Registration:
    model: str
    version: Version
    tag: str
    commit: str
    artifact: str
    pointer: Pointer
    sha256: str
    pushed: bool
    has_remote: bool
    inspection: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": str(self.version), "tag": self.tag, "commit": self.commit,
                "artifact": self.artifact, "md5": self.pointer.md5, "size": self.pointer.size,
                "sha256": self.sha256, "pushed": self.pushed, "remote": self.has_remote,
                "inspection": self.inspection}


@dataclass(frozen=True)
class RegisterRequest:
    name: str
    path: Path
    version: str | None = None
    bump: str | None = None
    message: str = ""
    metrics: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    card_file: Path | None = None
    push: bool = True


Inspector = Callable[[Path], dict[str, Any]]


def plan_version(registry: Registry, name: str, requested: str | None, bump: str | None,
                 versions: list[VersionInfo]) -> Version:
    """The version to register: the one asked for (checked free), or the next one."""
    scheme = registry.config.versions
    latest = max((v.version for v in versions), default=None)
    if requested is not None:
        version = parse_version(requested)
        if version.scheme != scheme:
            raise RefError(f"version {requested} does not fit `versions: {scheme}` in modelreg.yaml")
    else:
        version = next_version(latest, scheme, bump)
    for existing in versions:
        if existing.version == version:
            raise RefError(f"{name}@{version} already exists (tag {existing.tag}); versions are immutable, "
                           "register a new one")
    tag = format_tag(name, version)
    if git.rev_parse(f"refs/tags/{tag}", registry.root):
        raise RefError(f"tag {tag} already exists")
    return version


def check_source(registry: Registry, path: Path) -> Path:
    if not path.exists():
        raise ModelregError(f"{path}: no such file or directory")
    resolved = path.resolve()
    git_dir = (registry.root / ".git").resolve()
    if resolved == git_dir or git_dir in resolved.parents:
        raise ModelregError(f"{path} is inside .git: register an artifact, not git's own files")
    if resolved == registry.root.resolve():
        raise ModelregError(f"{path} is the registry itself: register a model file or folder")
    return resolved


def register(registry: Registry, request: RegisterRequest, progress: Progress | None = None,
             inspect: Inspector | None = None) -> Registration:
    """Register `request.path` as the next (or given) version of `request.name`."""
    name = check_name(request.name)
    author = git.identity(registry.root)
    head = git.head_commit(registry.root)
    source = check_source(registry, request.path)
    if not (registry.root / ".dvc").is_dir():
        raise ModelregError("DVC is not set up in this repository: run `modelreg init`")
    extra_card = parse_card(request.card_file.read_bytes(), str(request.card_file)) if request.card_file else {}
    metrics = parse_pairs(request.metrics, "metric")
    params = parse_pairs(request.params, "param")
    versions = scan(registry, name)
    version = plan_version(registry, name, request.version, request.bump, versions)
    inspection = inspect(source) if inspect else None
    parent = next((v for v in reversed(versions) if v.valid), None)
    previous = read_version(registry, parent, versions).card if parent else {}

    model_dir = registry.root / registry.model_dir(name)
    dest = model_dir / source.name
    touched = [dest, dest.with_name(dest.name + ".dvc"), model_dir / CARD_FILE, model_dir / ".gitignore"]
    old_artifact = (previous.get("artifact") or {}).get("path")
    stale = ([model_dir / old_artifact, model_dir / f"{old_artifact}.dvc"]
             if old_artifact and old_artifact != source.name else [])
    with _restore_on_failure(registry.root, touched + stale, keep=source if source == dest else None,
                             made_dir=None if model_dir.exists() else model_dir):
        model_dir.mkdir(parents=True, exist_ok=True)
        sha256 = sha256_of(dest, progress) if source == dest else copy_with_sha256(source, dest, progress)
        pointer = store.track(registry.root, dest)
        card = _card(name, version, dest.name, pointer, sha256, author, request, previous, extra_card,
                     metrics, params, parent, inspection)
        (model_dir / CARD_FILE).write_text(dump_card(card))
        remote = store.has_remote(registry.root)
        pushed = False
        if remote and request.push:
            store.push(registry.root, dest.with_name(dest.name + ".dvc"))
            pushed = True
        tag = format_tag(name, version)
        paths = [p for p in touched[1:] if p.exists()]
        commit = git.commit_paths(registry.root, head, paths, stale, f"Register {tag}" + (f": {request.message}" if request.message else ""))
        try:
            git.run_git("tag", "-a", tag, "-m", _tag_message(tag, request.message, dest.name, pointer, sha256),
                        commit, cwd=registry.root)
        except ModelregError:
            git.run_git("update-ref", "HEAD", head, commit, cwd=registry.root)
            raise
    git.run_git("reset", "-q", commit, "--", registry.model_dir(name), cwd=registry.root)
    return Registration(model=name, version=version, tag=tag, commit=commit, artifact=dest.name, pointer=pointer,
                        sha256=sha256, pushed=pushed, has_remote=remote, inspection=inspection)


def _card(name: str, version: Version, artifact: str, pointer: Pointer, sha256: str, author: str,
          request: RegisterRequest, previous: dict[str, Any], extra: dict[str, Any], metrics: dict[str, Any],
          params: dict[str, Any], parent: VersionInfo | None, inspection: dict[str, Any] | None) -> dict[str, Any]:
    card: dict[str, Any] = {k: previous[k] for k in CARRIED_OVER if k in previous}
    card.update(extra)
    card.update({
        "name": name, "version": str(version),
        "artifact": {"path": artifact, "md5": pointer.md5, "size": pointer.size, "sha256": sha256,
                     **({"nfiles": pointer.nfiles} if pointer.nfiles else {})},
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "author": author,
        "message": request.message,
        "parent": str(parent.version) if parent else None,
        "metrics": {**(extra.get("metrics") or {}), **metrics},
        "params": {**(extra.get("params") or {}), **params},
    })
    if inspection is not None:
        card["inspection"] = inspection
    return card


def _tag_message(tag: str, message: str, artifact: str, pointer: Pointer, sha256: str) -> str:
    body = yaml.safe_dump({"artifact": artifact, "md5": pointer.md5, "size": pointer.size, "sha256": sha256},
                          sort_keys=False)
    return f"Register {tag}" + (f": {message}" if message else "") + "\n\n" + body


@contextlib.contextmanager
def _restore_on_failure(root: Path, paths: list[Path], keep: Path | None, made_dir: Path | None) -> Iterator[None]:
    """Move `paths` aside; on failure put them back (removing what was made), on success drop them."""
    backup = Path(tempfile.mkdtemp(prefix="modelreg-backup-", dir=root / ".git"))
    saved: dict[Path, Path] = {}
    try:
        for i, path in enumerate(paths):
            if path.exists() or path.is_symlink():
                saved[path] = backup / str(i)
                if path == keep and path.is_file():
                    shutil.copy2(path, saved[path])
                elif path == keep:
                    shutil.copytree(path, saved[path], symlinks=True)
                else:
                    path.rename(saved[path])
        yield
    except BaseException:
        for path in paths:
            _remove(path)
            if path in saved:
                saved[path].rename(path)
        if made_dir is not None:
            shutil.rmtree(made_dir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _make_writable(path)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _make_writable(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
