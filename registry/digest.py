"""SHA-256 of artifacts, computed while they are copied into the registry.

File: the SHA-256 of its bytes. Directory: the SHA-256 of a manifest with one line
per file, sorted by relative POSIX path, `<sha256 hex>  <relative path>\\n` (the
format `sha256sum` prints), so `cd DIR && find . -type f | sort | xargs sha256sum`
reproduces it after stripping the leading `./`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

CHUNK = 4 * 1024 * 1024
Progress = Callable[[int], None]


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


def files_of(root: Path) -> list[str]:
    """Relative POSIX paths of the files under a directory, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            found.append((Path(dirpath) / name).relative_to(root).as_posix())
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
