"""DVC: tracking, pushing and locating artifacts. dvc is imported only inside the functions that
need it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

if TYPE_CHECKING:
    from dvc.repo import Repo

from modelreg import faults, safe_yaml
from modelreg.digest import Progress, files_of, locked_progress, manifest_digest, md5_sha256_copy
from modelreg.errors import StoreError


@dataclass(frozen=True)
class Pointer:
    """What a `.dvc` file says about its artifact."""

    path: str
    md5: str
    size: int
    nfiles: int | None

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(".dir")


MD5_RE = re.compile(r"[0-9a-f]{32}(\.dir)?")


def parse_pointer(text: bytes | str, where: str) -> Pointer:
    data = safe_yaml.load(text, where, StoreError, max_bytes=64 * 1024)
    try:
        out = data["outs"][0]
        pointer = Pointer(
            path=str(out["path"]),
            md5=str(out["md5"]),
            size=int(out.get("size", 0)),
            nfiles=out.get("nfiles"),
        )
    except (KeyError, IndexError, TypeError, ValueError):
        raise StoreError(
            f"{where} is not a valid DVC pointer (expected outs: [{{md5, size, path}}])"
        ) from None
    if not MD5_RE.fullmatch(pointer.md5) or "/" in pointer.path or pointer.path in ("", ".", ".."):
        raise StoreError(
            f"{where} is not a valid DVC pointer (md5 {pointer.md5[:40]!r}, path "
            f"{pointer.path[:40]!r})"
        )
    return pointer


def pointer_text(pointer: Pointer) -> str:
    """The `.dvc` file `dvc add` writes for this artifact, byte for byte."""
    out: dict[str, object] = {"md5": pointer.md5, "size": pointer.size}
    if pointer.nfiles is not None:
        out["nfiles"] = pointer.nfiles
    out.update({"hash": "md5", "path": pointer.path})
    return yaml.safe_dump({"outs": [out]}, sort_keys=False)


def parse_remote_url(dvc_config: bytes | str | None, remote: str | None = None) -> str | None:
    """The URL of the default (or named) remote in the text of `.dvc/config`, without importing
    dvc."""
    return remote_settings(dvc_config, remote).get("url")


def remote_settings(*configs: bytes | str | None, remote: str | None = None) -> dict[str, str]:
    """The default (or named) remote's settings (url, endpointurl, ...) from the texts of
    `.dvc/config` and `.dvc/config.local`, later texts overriding earlier ones, as DVC merges them;
    {} when none."""
    sections = config_sections(*configs)
    name = remote or sections.get("core", {}).get("remote")
    return dict(sections.get(f"remote:{name}", {})) if name else {}


SECTION = re.compile(r"\[\s*'?([A-Za-z]+)(?:\s+\"([^\"]+)\")?'?\s*\]")


def config_sections(*configs: bytes | str | None) -> dict[str, dict[str, str]]:
    """The sections of DVC config texts (`core`, `cache`, `remote:NAME`), each {key: value}, later
    texts overriding earlier ones."""
    sections: dict[str, dict[str, str]] = {}
    for config in configs:
        if not config:
            continue
        text = config.decode() if isinstance(config, bytes) else config
        section = None
        for raw in text.splitlines():
            line = raw.strip()
            header = SECTION.fullmatch(line)
            if header:
                section = header.group(1) + (f":{header.group(2)}" if header.group(2) else "")
                continue
            key, sep, value = line.partition("=")
            if sep and section is not None:
                sections.setdefault(section, {})[key.strip()] = value.strip()
    return sections


def object_url(remote_url: str, md5: str) -> str:
    """The content-addressed URL of an object in a DVC 3 remote."""
    return f"{remote_url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"


def one_line(exc: BaseException) -> str:
    """DVC's multi-line messages folded into the one line the CLI prints."""
    return " ".join(str(exc).split())


@contextlib.contextmanager
def open_repo(root: Path, **settings: Any) -> Iterator[Repo]:
    """An in-process DVC repo with DVC's own logging kept quiet (SETTINGS: DVC's `remote` and
    `remote_config`, merged over its config files)."""
    logging.getLogger("dvc").setLevel(logging.ERROR)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(str(root), **settings)
    except DvcException as exc:
        raise StoreError(f"DVC could not open {root}: {one_line(exc)}") from None
    try:
        yield repo
    finally:
        repo.close()


def init_dvc(root: Path) -> bool:
    """`dvc init` when `.dvc/` is missing; True when it did."""
    if (root / ".dvc").is_dir():
        return False
    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(
        logging.ERROR
    )  # its "Initialized DVC repository" is a log line
    with contextlib.redirect_stdout(io.StringIO()):
        Repo.init(str(root))
    return True


def set_remote(
    root: Path, url: str, name: str = "storage", endpoint_url: str | None = None
) -> None:
    """Add (or replace) the default DVC remote in `.dvc/config`; credentials never go there."""
    from dvc.config import ConfigError as DvcConfigError

    with open_repo(root) as repo:
        try:
            with repo.config.edit("repo") as edited:
                conf = cast("dict[str, Any]", edited)
                conf["remote"][name] = {
                    "url": url,
                    **({"endpointurl": endpoint_url} if endpoint_url else {}),
                }
                conf["core"]["remote"] = name
        except DvcConfigError as exc:
            raise StoreError(f"DVC refused remote {url!r}: {one_line(exc)}") from None


def has_remote(root: Path) -> bool:
    text = (root / ".dvc" / "config").read_bytes() if (root / ".dvc" / "config").exists() else None
    local = root / ".dvc" / "config.local"
    return bool(parse_remote_url(text) or (local.exists() and parse_remote_url(local.read_bytes())))


@dataclass(frozen=True)
class Staged:
    """An artifact written into DVC's cache: its pointer, SHA-256 and the cache objects it is made
    of."""

    pointer: Pointer
    sha256: str
    objects: tuple[str, ...]  # md5 ids: each file, then the folder listing (`.dir`) last
    cache: Path  # DVC's `files/md5` folder the objects are in
    files: dict[
        str, str
    ]  # SHA-256 per file: relative paths in a folder, the file's name for one file
    prepared: Path | None = (
        None  # a copy for the working tree, written in the same read (staging area)
    )


# DVC's own config files outside the repo (system, then global): a cache set there is DVC's to find
OUTSIDE_CONFIGS = (Path("/etc/xdg/dvc/config"), Path.home() / ".config" / "dvc" / "config")


def cache_objects_dir(root: Path) -> Path:
    """`<cache>/files/md5`, wherever the repo's DVC config puts the cache. Read from `.dvc/config`
    and `config.local` when they set nothing about the cache but its `dir` (DVC is not imported);
    else DVC answers (a shared or linked cache, or one set in the global config)."""
    config = root / ".dvc"
    texts = plain_configs(root)
    settings = config_sections(*texts).get("cache", {}) if texts is not None else {"unreadable": ""}
    if set(settings) <= {"dir"} and not any(path.is_file() for path in OUTSIDE_CONFIGS):
        where = Path(settings["dir"]) if "dir" in settings else Path("cache")
        return ((config / where) if not where.is_absolute() else where).resolve() / "files" / "md5"
    with open_repo(root) as repo:
        return Path(repo.cache.local.path)  # type: ignore[attr-defined]


CONFIG_LINE = re.compile(r"\s*(?:[#;].*|\[[^\]\n]+\]|[A-Za-z0-9_.-]+\s*=.*)?")


def plain_configs(root: Path) -> list[str] | None:
    """The texts of `.dvc/config` and `.dvc/config.local` when every line is a section, a `key =
    value` or a comment (what modelreg reads without DVC); None otherwise: DVC reads them and says
    what is wrong."""
    texts = []
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        if path.is_file():
            text = path.read_text("utf-8", "replace")
            if not all(CONFIG_LINE.fullmatch(line) for line in text.splitlines()):
                return None
            texts.append(text)
    return texts


STAGE_WORKERS = min(4, os.cpu_count() or 1)  # files of a folder read, hashed and written at once


def stage(
    root: Path, source: Path, progress: Progress | None = None, worktree_copy: bool = False
) -> Staged:
    """Put SOURCE (a file or folder) into DVC's cache exactly as `dvc add` would, reading every byte
    once: md5 (DVC's address) and SHA-256 come from the same read, and with WORKTREE_COPY the same
    read also writes the copy the working tree gets (`Staged.prepared`, renamed into place later).
    Each object is written to a private staging file and renamed into place, so a kill leaves no
    partial object, only staging debris that the next run clears."""
    objects_dir = cache_objects_dir(root)
    staging = objects_dir.parent.parent / "modelreg-staging"
    clear_staging(staging)
    staging.mkdir(parents=True, exist_ok=True)
    prepared = _staging_file(staging).with_suffix(".worktree") if worktree_copy else None
    if not source.is_dir():
        md5, sha, size = _put_file(objects_dir, staging, source, progress, prepared)
        return Staged(
            Pointer(path=source.name, md5=md5, size=size, nfiles=None),
            sha,
            (md5,),
            objects_dir,
            {source.name: sha},
            prepared,
        )
    rels = files_of(source)
    if prepared is not None:
        for rel in rels:
            (prepared / rel).parent.mkdir(parents=True, exist_ok=True)
    shared = locked_progress(progress)
    with ThreadPoolExecutor(
        max_workers=min(STAGE_WORKERS, len(rels))
    ) as pool:  # files in parallel, bounded
        results = list(
            pool.map(
                lambda rel: _put_file(
                    objects_dir,
                    staging,
                    source / rel,
                    shared,
                    prepared / rel if prepared is not None else None,
                ),
                rels,
            )
        )
    entries = [{"md5": md5, "relpath": rel} for rel, (md5, _, _) in zip(rels, results)]
    digests = {rel: sha for rel, (_, sha, _) in zip(rels, results)}
    total = sum(size for _, _, size in results)
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")  # dvc_data's Tree.as_bytes()
    dir_md5 = hashlib.md5(listing).hexdigest() + ".dir"
    _put_bytes(objects_dir, staging, dir_md5, listing)
    pointer = Pointer(path=source.name, md5=dir_md5, size=total, nfiles=len(entries))
    return Staged(
        pointer,
        manifest_digest(digests),
        tuple(e["md5"] for e in entries) + (dir_md5,),
        objects_dir,
        digests,
        prepared,
    )


def _object_path(objects_dir: Path, md5: str) -> Path:
    return objects_dir / md5[:2] / md5[2:]


def _staging_file(staging: Path) -> Path:
    return staging / f"{os.getpid()}-{uuid.uuid4().hex}"


def _settle(objects_dir: Path, tmp: Path, md5: str) -> None:
    """Move a staged object into the cache (read-only, as DVC keeps it); an existing one is kept."""
    final = _object_path(objects_dir, md5)
    if final.exists():
        tmp.unlink()
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o444)
    os.replace(tmp, final)


def _put_file(
    objects_dir: Path, staging: Path, path: Path, progress: Progress | None, copy: Path | None
) -> tuple[str, str, int]:
    tmp = _staging_file(staging)
    try:
        with (
            open(tmp, "wb") as out,
            open(copy, "wb") if copy is not None else contextlib.nullcontext() as extra,
        ):
            md5, sha, size = md5_sha256_copy(
                path, [out] + ([extra] if extra is not None else []), progress
            )
        faults.step("stage-write")
        _settle(objects_dir, tmp, md5)
    finally:
        tmp.unlink(missing_ok=True)
    return md5, sha, size


def _put_bytes(objects_dir: Path, staging: Path, md5: str, data: bytes) -> None:
    tmp = _staging_file(staging)
    try:
        tmp.write_bytes(data)
        _settle(objects_dir, tmp, md5)
    finally:
        tmp.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Remove a file, a link or a folder with what it holds; nothing when it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clear_staging(staging: Path) -> None:
    """Remove staging files of processes that are gone (a killed register)."""
    if not staging.is_dir():
        return
    for leftover in staging.iterdir():
        pid = leftover.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            remove(leftover)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def push_objects(root: Path, objects: tuple[str, ...]) -> int:
    """Send an artifact's objects (each file's md5, then its `.dir` listing) from the cache to the
    default remote; return how many were sent (those already there are skipped)."""
    from dvc.exceptions import DvcException
    from dvc_data.hashfile.hash_info import HashInfo

    with open_repo(root) as repo:
        try:
            result = repo.cloud.push([HashInfo("md5", md5) for md5 in objects])
        except (DvcException, OSError) as exc:
            raise StoreError(f"dvc push to the remote failed: {one_line(exc)}") from None
    if result.failed:
        raise StoreError(f"dvc push to the remote failed for {len(result.failed)} object(s)")
    return len(result.transferred)


def place(prepared: Path, dest: Path) -> bool:
    """Rename a copy PREPARED in the staging area to DEST (replacing what is there); False when they
    are on different filesystems (the caller copies from the cache instead)."""
    if os.stat(prepared).st_dev != os.stat(dest.parent).st_dev:
        return False
    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.modelreg-{os.getpid()}-old")
        os.rename(
            dest, old
        )  # a folder cannot be replaced in one rename: old aside, new in, old out
        os.rename(prepared, dest)
        shutil.rmtree(old)
    else:
        if prepared.is_dir() and (dest.exists() or dest.is_symlink()):
            dest.unlink()
        os.replace(prepared, dest)
    return True


def materialize(root: Path, pointer: Pointer, dest: Path, objects_dir: Path | None = None) -> None:
    """Write the artifact from the cache (OBJECTS_DIR, found through DVC when not given) to its
    place in the working tree, through a temporary path: a kill never leaves half a file under the
    real name."""
    objects_dir = objects_dir or cache_objects_dir(root)
    tmp = dest.with_name(f".{dest.name}.modelreg-{os.getpid()}")
    try:
        if pointer.is_dir:
            listing = json.loads(_object_path(objects_dir, pointer.md5).read_bytes())
            for entry in listing:
                target = tmp / entry["relpath"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(_object_path(objects_dir, entry["md5"]), target)
        else:
            shutil.copyfile(_object_path(objects_dir, pointer.md5), tmp)
        remove(dest)
        os.replace(tmp, dest)
    finally:
        remove(tmp)
