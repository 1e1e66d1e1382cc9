"""`register`: artifact into DVC's cache and remote, then card, pointer, commit and tag in one step.

Under the registry lock, in this order (each a named step for the kill tests):
  locked   the lock is held; leftovers of killed runs are cleared
  staged   every byte read once: md5 + SHA-256, objects written into DVC's cache
  pushed   the objects are in the DVC remote (no version ever names bytes the remote lacks)
  objects  blobs, tree, commit and tag object written into git's object store (no ref yet)
  refs     HEAD's branch and the tag move in one `update-ref --stdin` transaction: all or nothing
  worktree models/NAME/ in the working tree and index catch up with the new commit
A kill before `refs` leaves no new version (and only content-addressed objects); a kill after it
leaves a complete version, and a re-run reports it ("already registered") and finishes the tree.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from modelreg import artifact_signature, faults, git, remote, signing, store, target
from modelreg.card import CARD_FILE, check_finite, dump_card, parse_card, parse_pairs, section
from modelreg.digest import Progress, check_regular
from modelreg.errors import ArtifactError, ModelregError, RefError, RenderError
from modelreg.handle import Registry
from modelreg.lineage import read_lineage
from modelreg.lock import registry_lock
from modelreg.refs import Version, check_name, format_tag, next_version, parse_tag, parse_version
from modelreg.store import Pointer, Staged
from modelreg.versions import Resolved, VersionInfo, latest_valid, read_version, scan

CARRIED_OVER = ("description", "framework", "signature", "example", "lineage")
ARTIFACT_NAME = "[A-Za-z0-9][A-Za-z0-9._+-]{0,199}"


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
    existing: bool = False  # the same bytes were already the latest version: nothing new was made
    warnings: tuple[str, ...] = ()
    signed_by: dict[str, str] | None = None  # the artifact signature's signer (--sign-artifact)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": str(self.version),
            "tag": self.tag,
            "commit": self.commit,
            "artifact": self.artifact,
            "md5": self.pointer.md5,
            "size": self.pointer.size,
            "sha256": self.sha256,
            "pushed": self.pushed,
            "remote": self.has_remote,
            "inspection": self.inspection,
            "existing": self.existing,
            "warnings": list(self.warnings),
            "signed_by": self.signed_by,
        }


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
    allow_duplicate: bool = False
    follow_symlinks: bool = False
    sign: bool = (
        False  # a signed tag, with git's own signing settings (gpg.format, user.signingKey)
    )
    sign_artifact: bool = (
        False  # an OpenSSF model signature of the bytes, committed beside the card
    )
    key: Path | None = (
        None  # its EC private key (PEM); None: keyless Sigstore with an identity token
    )
    identity_token: str | None = None
    lineage_from: Path | None = (
        None  # the folder of the dvc.lock whose stage made the artifact (default: the registry's)
    )


Inspector = Callable[[Path], dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    """What one register decided before it wrote anything: the request checked and parsed, then
    (under the registry lock) the commit it stands on, the model's versions and the new one."""

    request: RegisterRequest
    name: str
    author: str
    source: Path  # the artifact, resolved and checked
    extra_card: dict[str, Any]  # --card, with the lineage read from dvc.lock
    metrics: dict[str, Any]
    params: dict[str, Any]
    head: str = ""
    versions: list[VersionInfo] = field(default_factory=list)
    version: Version | None = None
    warnings: tuple[str, ...] = ()
    inspection: dict[str, Any] | None = None


def plan_version(
    registry: Registry,
    name: str,
    requested: str | None,
    bump: str | None,
    versions: list[VersionInfo],
    used: dict[Version, str],
) -> Version:
    """The version to register: the one asked for (checked never used), or the next one after every
    version ever used (here, on the remote, or in the deploy log)."""
    scheme = registry.config.versions
    latest = max([v.version for v in versions] + list(used), default=None)
    if requested is not None:
        version = parse_version(requested)
        if version.scheme != scheme:
            raise RefError(
                f"version {requested} does not fit `versions: {scheme}` in modelreg.yaml"
            )
    else:
        version = next_version(latest, scheme, bump)
    for existing in versions:
        if existing.version == version:
            raise RefError(
                f"{name}@{version} already exists (tag {existing.tag}); versions are immutable, "
                "register a new one"
            )
    if version in used:
        raise RefError(
            f"{name}@{version} was used before ({used[version]}); versions are never reused, "
            "register a new one"
        )
    return version


def used_versions(registry: Registry, name: str) -> tuple[dict[Version, str], list[str]]:
    """Versions of NAME that exist or existed outside the local tags: the remote's tags and the
    deploy log. A version whose local tag was deleted is still used."""
    used: dict[Version, str] = {}
    for record in target.read_log(registry, name):
        ref = parse_tag(record.tag, registry.config.default_model) if record.tag else None
        if ref is not None and ref.version is not None:
            used.setdefault(ref.version, f"deployed to {record.env} in commit {record.commit[:8]}")
    origin = registry.config.deploy.remote
    patterns = [f"refs/tags/{name}@*"] + (
        ["refs/tags/v*"] if name == registry.config.default_model else []
    )
    tags = git.ls_remote_refs(registry.root, origin, patterns)
    warnings = []
    if tags is None and git.git_ok("remote", "get-url", origin, cwd=registry.root):
        warnings.append(
            f"WARNING: could not read the tags of {origin}: the version was checked against local "
            "tags only"
        )
    for ref_name in tags or {}:
        ref = parse_tag(ref_name.removeprefix("refs/tags/"), registry.config.default_model)
        if ref is not None and ref.model == name and ref.version is not None:
            used.setdefault(ref.version, f"tag {ref_name.removeprefix('refs/tags/')} on {origin}")
    return used, warnings


def check_source(registry: Registry, path: Path, follow_symlinks: bool = False) -> Path:
    """The artifact's real path: it exists, is a regular file or folder, and is not part of the
    repo's machinery."""
    if not path.exists() and not path.is_symlink():
        raise ArtifactError(f"{path}: no such file or directory")
    if path.is_symlink() and not follow_symlinks:
        raise ArtifactError(
            f"{path} is a symbolic link (to {os.readlink(path)}): register the file itself, "
            "or pass --follow-symlinks to copy what it points to"
        )
    resolved = path.resolve()
    if not resolved.exists():
        raise ArtifactError(f"{path}: the link points nowhere ({os.readlink(path)})")
    check_regular(resolved, str(path))
    root = registry.root.resolve()
    for special in (".git", ".dvc"):
        inside = root / special
        if resolved == inside or inside in resolved.parents:
            raise ArtifactError(
                f"{path} is inside {special}: register an artifact, not the repository's own files"
            )
    if resolved == root or resolved in root.parents:
        raise ArtifactError(f"{path} holds the registry itself: register a model file or folder")
    if not re.fullmatch(ARTIFACT_NAME, resolved.name):
        raise ArtifactError(
            f"artifact name {resolved.name[:60]!r}: use letters, digits, '.', '_', '+' and '-' "
            "(it becomes a file name in git and DVC)"
        )
    if resolved.is_dir() and not any(resolved.iterdir()):
        raise ArtifactError(f"{path} is an empty folder")
    return resolved


def register(
    registry: Registry,
    request: RegisterRequest,
    progress: Progress | None = None,
    inspect: Inspector | None = None,
) -> Registration:
    """Register `request.path` as the next (or given) version of `request.name`."""
    name = check_name(request.name)
    if request.version is not None:
        parse_version(request.version)
    author = git.identity(registry.root)
    source = check_source(registry, request.path, request.follow_symlinks)
    if not (registry.root / ".dvc").is_dir():
        raise ModelregError("DVC is not set up in this repository: run `modelreg init`")
    extra_card = (
        parse_card(request.card_file.read_bytes(), str(request.card_file))
        if request.card_file
        else {}
    )
    check_finite(extra_card.get("metrics"), "--card metrics")
    made_by = read_lineage(source, request.lineage_from, registry.root)
    if made_by is not None:
        extra_card = {**extra_card, "lineage": made_by}
    plan = Plan(
        request,
        name,
        author,
        source,
        extra_card,
        parse_pairs(request.metrics, "metric"),
        parse_pairs(request.params, "param"),
    )
    with registry_lock(registry.root, f"register {name}"):
        faults.step("locked")
        return _register_locked(registry, plan, progress, inspect)


def _register_locked(
    registry: Registry, plan: Plan, progress: Progress | None, inspect: Inspector | None
) -> Registration:
    root = registry.root
    name, source = plan.name, plan.source
    head = git.head_commit(root)
    _check_clean(registry, name, head, source)
    versions = scan(registry, name)
    used, warnings = used_versions(registry, name)
    plan = replace(
        plan,
        head=head,
        versions=versions,
        version=plan_version(
            registry, name, plan.request.version, plan.request.bump, versions, used
        ),
        warnings=tuple(warnings),
        inspection=inspect(source) if inspect else None,
    )
    in_place = source == (root / registry.model_dir(name) / source.name).resolve()
    staged = store.stage(root, source, progress, worktree_copy=not in_place)
    try:
        return _register_staged(registry, plan, staged)
    finally:
        if staged.prepared is not None:
            store.remove(staged.prepared)


def _register_staged(registry: Registry, plan: Plan, staged: Staged) -> Registration:
    request, name, head, versions = plan.request, plan.name, plan.head, plan.versions
    assert plan.version is not None
    version = plan.version
    warnings = list(plan.warnings)
    root = registry.root
    faults.step("staged")
    parent = latest_valid(registry, versions)
    same = _same_bytes(versions, staged.sha256, request.allow_duplicate)
    if same is not None:
        found = read_version(registry, same, versions)
        if head == same.commit:
            _update_worktree(
                registry, name, same.commit, found.pointer, [], staged.cache, staged.prepared
            )
        return Registration(
            model=name,
            version=same.version,
            tag=same.tag,
            commit=same.commit,
            artifact=found.pointer.path,
            pointer=found.pointer,
            sha256=staged.sha256,
            pushed=False,
            has_remote=store.has_remote(root),
            inspection=None,
            existing=True,
            warnings=tuple(warnings),
        )
    previous = read_version(registry, parent, versions) if parent else None
    stale = _stale_pointers(registry, name, head, staged.pointer.path)
    signature, signed_by = None, None
    if request.sign_artifact:
        digests = artifact_signature.signed_names(staged.files, staged.pointer.is_dir)
        signature, signed_by = artifact_signature.sign(
            staged.pointer.path, digests, request.key, request.identity_token
        )
    card = _card(plan, staged, previous.card if previous else {}, parent, signed_by)
    has_remote = store.has_remote(root)
    if has_remote and request.push:
        remote.push_objects(registry, staged.objects, staged.cache)
    faults.step("pushed")
    tag = format_tag(name, version)
    title = f"Register {tag}" + (f": {request.message}" if request.message else "")
    commit = _write_commit(registry, name, head, staged.pointer, stale, card, title, signature)
    write_tag = signing.sign_tag_object if request.sign else git.write_tag_object
    tag_object = write_tag(root, tag, commit, _tag_message(title, staged))
    faults.step("objects")
    info = VersionInfo(
        model=name,
        version=version,
        tag=tag,
        object=tag_object,
        commit=commit,
        timestamp=0,
        author=plan.author,
        message=title,
        annotated=True,
        problem=None,
        sha256=staged.sha256,
    )
    warnings += _check_renders(registry, Resolved(info, card, staged.pointer, versions))
    git.update_refs(
        root, [("HEAD", commit, head), (f"refs/tags/{tag}", tag_object, None)], f"modelreg: {title}"
    )
    faults.step("refs")
    _update_worktree(registry, name, commit, staged.pointer, stale, staged.cache, staged.prepared)
    faults.step("worktree")
    return Registration(
        model=name,
        version=version,
        tag=tag,
        commit=commit,
        artifact=staged.pointer.path,
        pointer=staged.pointer,
        sha256=staged.sha256,
        pushed=has_remote and request.push,
        has_remote=has_remote,
        inspection=plan.inspection,
        warnings=tuple(warnings),
        signed_by=signed_by,
    )


def _same_bytes(versions: list[VersionInfo], sha256: str, allow: bool) -> VersionInfo | None:
    """The latest version when it holds exactly these bytes (a re-run: report it); an error when an
    older one does (a duplicate: refused unless allowed)."""
    if allow:
        return None
    twins = [v for v in versions if v.valid and v.sha256 == sha256]
    valid = [v for v in versions if v.valid]
    if not twins:
        return None
    if valid and twins[-1] == valid[-1]:
        return twins[-1]
    raise RefError(
        f"these bytes are already registered as {twins[-1].tag} (sha256 {sha256[:12]}); "
        "pass --allow-duplicate to register them again as a new version"
    )


def _stale_pointers(registry: Registry, name: str, head: str, artifact: str) -> list[str]:
    """The artifacts HEAD's models/NAME/ points to other than ARTIFACT: their pointers go, whatever
    commit the register stands on (the latest version's, or another branch's, or a detached
    HEAD's)."""
    names = git.ls_tree(registry.root, head, registry.model_dir(name))
    return sorted(
        n.removesuffix(".dvc")
        for n in names
        if n.endswith(".dvc") and "/" not in n and n != f"{artifact}.dvc"
    )


def _check_clean(registry: Registry, name: str, head: str, source: Path) -> None:
    """Refuse to run over uncommitted changes in models/NAME/ (register rewrites that folder and its
    index entries): edited, staged or deleted files, and untracked files in the names it writes. A
    folder that lags a register commit whose run was killed before the working-tree step is not an
    edit: the re-run finishes it."""
    where = registry.model_dir(name)
    out = git.run_git(
        "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", where, cwd=registry.root
    )
    written = {CARD_FILE, ".gitignore", artifact_signature.SIGNATURE_FILE}
    changed = []
    for entry in out.split("\0"):
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        rel = path.removeprefix(f"{where}/")
        absolute = (registry.root / path).resolve()
        if absolute == source or source in absolute.parents:
            continue
        if code == "??" and rel not in written and not rel.endswith(".dvc"):
            continue
        changed.append(path)
    changed = [p for p in changed if not _lags(registry, head, name, p)]
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        raise ModelregError(
            f"{where}/ has uncommitted changes ({shown}): register rewrites that folder; "
            "commit, stash or discard them first (git stash -- " + where + ")"
        )


def _lags(registry: Registry, head: str, name: str, path: str) -> bool:
    """True when PATH is as the parent of HEAD had it (in the working tree and the index) and HEAD
    is a register commit of NAME: a killed run's commit that the working tree has not caught up
    with."""
    subject = git.run_git("log", "-1", "--format=%s", head, cwd=registry.root)
    ref = parse_tag(
        subject.removeprefix("Register ").split(":")[0].strip(), registry.config.default_model
    )
    if not subject.startswith("Register ") or ref is None or ref.model != name:
        return False
    parent, now = git.object_ids(registry.root, [f"{head}~1:{path}", f"{head}:{path}"])
    file = registry.root / path
    here = git.write_blob_id(file) if file.is_file() and not file.is_symlink() else None
    staged = git.index_blob(registry.root, path)
    return here in (parent, now) and staged in (parent, now)


def _check_renders(registry: Registry, resolved: Resolved) -> list[str]:
    """Render the new version for every environment before it is tagged: a template error refuses
    the register (nothing is tagged) instead of making a version no deploy can render. Returns
    warnings: the servable problems of a version modelreg's server would refuse."""
    from modelreg.render import render
    from modelreg.servable import problems, runs_modelreg_server

    for env in registry.config.environments:
        try:
            render(registry, resolved, env, registering=True)
        except ModelregError as exc:
            raise RenderError(
                f"{resolved.info.tag} would not render for {env}, so nothing was registered: {exc}"
            ) from None
    why = (
        problems(resolved.card, resolved.pointer)
        if runs_modelreg_server(registry.config.serving)
        else []
    )
    if why:
        return [
            f"WARNING: modelreg's server would refuse {resolved.info.tag} ({'; '.join(why)}): "
            "deploys refuse "
            "it (the servable gate) until a version fixes that"
        ]
    return []


def _write_commit(
    registry: Registry,
    name: str,
    head: str,
    pointer: Pointer,
    stale: list[str],
    card: dict[str, Any],
    title: str,
    signature: bytes | None,
) -> str:
    """The register commit on HEAD: card, pointer, .gitignore and artifact signature (when signed)
    of models/NAME; every other pointer HEAD had there gone (STALE), the old signature when this
    version is not signed. Only git's object store is written."""
    where = registry.model_dir(name)
    ignore = git.read_file(registry.root, head, f"{where}/.gitignore") or b""
    line = f"/{pointer.path}".encode()
    if line not in ignore.splitlines():
        ignore = ignore + (b"" if not ignore or ignore.endswith(b"\n") else b"\n") + line + b"\n"
    files = {
        f"{where}/{CARD_FILE}": dump_card(card).encode(),
        f"{where}/{pointer.path}.dvc": store.pointer_text(pointer).encode(),
        f"{where}/.gitignore": ignore,
    }
    removed = tuple(f"{where}/{old}.dvc" for old in stale)
    if signature is not None:
        files[f"{where}/{artifact_signature.SIGNATURE_FILE}"] = signature
    else:
        removed += (f"{where}/{artifact_signature.SIGNATURE_FILE}",)
    return git.build_commit(registry.root, head, files, title + "\n", remove=removed)


def _update_worktree(
    registry: Registry,
    name: str,
    commit: str,
    pointer: Pointer,
    stale: list[str],
    cache: Path,
    prepared: Path | None = None,
) -> None:
    """Bring models/NAME/ of the working tree and index to COMMIT: card, pointer, .gitignore from
    git, the artifact from PREPARED (the copy stage wrote in its one read) or else DVC's cache.
    Every file goes through a temporary name or a rename: a kill leaves old or new."""
    where = registry.model_dir(name)
    folder = registry.root / where
    folder.mkdir(parents=True, exist_ok=True)
    names = (CARD_FILE, f"{pointer.path}.dvc", ".gitignore", artifact_signature.SIGNATURE_FILE)
    for file_name, found in zip(
        names, git.read_objects(registry.root, [f"{commit}:{where}/{n}" for n in names])
    ):
        if found is not None:
            tmp = folder / f".{file_name}.modelreg-{os.getpid()}"
            tmp.write_bytes(found[1])
            os.replace(tmp, folder / file_name)
        elif file_name == artifact_signature.SIGNATURE_FILE:
            (folder / file_name).unlink(missing_ok=True)
    for old in stale:
        for leftover in (folder / old, folder / f"{old}.dvc"):
            store.remove(leftover)
    git.run_git("reset", "-q", commit, "--", where, cwd=registry.root)
    artifact = folder / pointer.path
    if prepared is not None and store.place(prepared, artifact):
        return
    if not _holds(artifact, pointer):
        store.materialize(registry.root, pointer, artifact, cache)


def _holds(path: Path, pointer: Pointer) -> bool:
    """True when the working tree's artifact is already these bytes (registered in place)."""
    if (
        pointer.is_dir
        or not path.is_file()
        or path.is_symlink()
        or path.stat().st_size != pointer.size
    ):
        return False
    import hashlib

    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest() == pointer.md5


def _card(
    plan: Plan,
    staged: Staged,
    previous: dict[str, Any],
    parent: VersionInfo | None,
    signed_by: dict[str, str] | None = None,
) -> dict[str, Any]:
    pointer, extra = staged.pointer, plan.extra_card
    card: dict[str, Any] = {k: previous[k] for k in CARRIED_OVER if k in previous}
    card.update(extra)
    card.update(
        {
            "name": plan.name,
            "version": str(plan.version),
            "artifact": {
                "path": pointer.path,
                "md5": pointer.md5,
                "size": pointer.size,
                "sha256": staged.sha256,
                **({"nfiles": pointer.nfiles} if pointer.nfiles else {}),
                **({"signed_by": signed_by} if signed_by else {}),
            },
            "created": datetime.datetime.now(datetime.timezone.utc)
            .replace(microsecond=0)
            .isoformat(),
            "author": plan.author,
            "message": plan.request.message,
            "parent": str(parent.version) if parent else None,
            "metrics": {**section(extra, "metrics"), **plan.metrics},
            "params": {**section(extra, "params"), **plan.params},
        }
    )
    if plan.inspection is not None:
        card["inspection"] = plan.inspection
    return card


def _tag_message(title: str, staged: Staged) -> str:
    pointer = staged.pointer
    body = yaml.safe_dump(
        {
            "artifact": pointer.path,
            "md5": pointer.md5,
            "size": pointer.size,
            "sha256": staged.sha256,
        },
        sort_keys=False,
    )
    return title + "\n\n" + body
