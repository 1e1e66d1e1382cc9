"""SHA-256 of artifacts, computed while they are copied into the registry.

File: the SHA-256 of its bytes. Directory: the SHA-256 of a manifest with one line
per file, sorted by relative POSIX path, `<sha256 hex>  <relative path>\\n` (the
format `sha256sum` prints), so `cd DIR && find . -type f | sort | xargs sha256sum`
reproduces it after stripping the leading `./`.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable

from modelreg.errors import ArtifactError

CHUNK = 4 * 1024 * 1024
Progress = Callable[[int], None]
SAFE_REL = re.compile(r"[^\x00-\x1f\x7f\\]+")


def md5_sha256_copy(src: Path, out: BinaryIO, progress: Progress | None) -> tuple[str, str, int]:
    """Copy `src` into `out` in one read, returning (md5, sha256, size) of the bytes read. SHA-256 runs
    in a second thread (hashlib releases the GIL on large buffers) one chunk behind md5 and the write,
    so the two hashes cost about the time of the slower one; at most two chunks are in memory."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    with open(src, "rb") as reader, ThreadPoolExecutor(max_workers=1) as hasher:
        pending: Future[None] | None = None
        while chunk := reader.read(CHUNK):
            if pending is not None:
                pending.result()
            pending = hasher.submit(sha.update, chunk)
            md5.update(chunk)
            out.write(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
        if pending is not None:
            pending.result()
    return md5.hexdigest(), sha.hexdigest(), size


def _stream(src: Path, dst: Path | None, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as reader:
        writer = open(dst, "wb") if dst is not None else None
        try:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                if writer is not None:
                    writer.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        finally:
            if writer is not None:
                writer.close()
    if dst is not None:
        shutil.copystat(src, dst)
    return digest.hexdigest()


def check_regular(path: Path, shown: str) -> None:
    """Refuse anything but a regular file or folder: a symlink would carry bytes from outside
    the artifact (`/etc/passwd`) to the shared remote; a fifo or device never ends."""
    if path.is_symlink():
        raise ArtifactError(f"{shown} is a symbolic link (to {os.readlink(path)}): an artifact holds only "
                            "its own files; copy the target in instead")
    mode = path.lstat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ArtifactError(f"{shown} is not a regular file (a fifo, socket or device): it cannot be registered")


def files_of(root: Path) -> list[str]:
    """Relative POSIX paths of the files under a directory, sorted; symlinks and special files refused."""
    found = []

    def fail(exc: OSError) -> None:
        raise ArtifactError(f"{root.name}: cannot read {exc.filename}: {exc.strerror}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        dirnames.sort()
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            check_regular(path, f"{root.name}/{rel}")
            if not SAFE_REL.fullmatch(rel):
                raise ArtifactError(f"{root.name}/{rel!r}: file names in an artifact may not hold control "
                                    "characters or backslashes")
        found.extend((Path(dirpath) / name).relative_to(root).as_posix() for name in filenames)
    return sorted(found)


def manifest_digest(file_digests: dict[str, str]) -> str:
    lines = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(file_digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    """SHA-256 of a file or directory artifact, by the rule above."""
    if path.is_dir():
        return manifest_digest({rel: _stream(path / rel, None, progress) for rel in files_of(path)})
    return _stream(path, None, progress)


def copy_with_sha256(src: Path, dst: Path, progress: Progress | None = None) -> str:
    """Copy a file or directory artifact to `dst` and return its SHA-256, reading the source once."""
    if src.is_dir():
        digests = {}
        for rel in files_of(src):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            digests[rel] = _stream(src / rel, dst / rel, progress)
        dst.mkdir(parents=True, exist_ok=True)
        return manifest_digest(digests)
    return _stream(src, dst, progress)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum((path / rel).stat().st_size for rel in files_of(path))
    return path.stat().st_size
