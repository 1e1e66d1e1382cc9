"""SHA-256 (and DVC's md5) of artifacts, computed while they are copied or downloaded.

File: the SHA-256 of its bytes. Directory: the SHA-256 of a manifest with one line
per file, sorted by relative POSIX path, `<sha256 hex>  <relative path>\\n` (the
format `sha256sum` prints), so `cd DIR && find . -type f | sort | xargs sha256sum`
reproduces it after stripping the leading `./`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from modelreg.errors import ArtifactError

CHUNK = 4 * 1024 * 1024
Progress = Callable[[int], None]
SAFE_REL = re.compile(r"[^\x00-\x1f\x7f\\]+")


def locked_progress(progress: Progress | None) -> Progress | None:
    """PROGRESS callable from several threads."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(count: int) -> None:
        with lock:
            progress(count)

    return report


def md5_sha256_copy(
    src: Path, outs: Sequence[BinaryIO], progress: Progress | None
) -> tuple[str, str, int]:
    """Copy `src` into each of OUTS in one read, returning (md5, sha256, size) of the bytes read.

    md5, SHA-256 and every write run in a lane of their own (a one-thread executor: chunks stay in
    order), since hashlib and file writes release the GIL on large buffers: the pass costs about the
    time of its slowest lane, SHA-256, not the sum. The reader runs at most two chunks ahead of the
    slowest lane, so memory stays at a few chunks whatever the size."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    sinks: list[Callable[[bytes], object]] = [sha.update, md5.update, *(out.write for out in outs)]
    lanes = [ThreadPoolExecutor(max_workers=1) for _ in sinks]
    size = 0
    pending: deque[list[Future[object]]] = deque()
    try:
        with open(src, "rb") as reader:
            while chunk := reader.read(CHUNK):
                while len(pending) >= 2:
                    for done in pending.popleft():
                        done.result()
                pending.append([lane.submit(sink, chunk) for lane, sink in zip(lanes, sinks)])
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        while pending:
            for done in pending.popleft():
                done.result()
    finally:
        for lane in lanes:
            lane.shutdown(wait=True, cancel_futures=True)
    return md5.hexdigest(), sha.hexdigest(), size


class Hashes:
    """md5 and SHA-256 of one stream fed chunk by chunk, SHA-256 in a lane of its own (hashlib
    releases the GIL on large buffers), one chunk behind md5."""

    def __init__(self) -> None:
        self.md5, self.sha = hashlib.md5(), hashlib.sha256()
        self.lane = ThreadPoolExecutor(max_workers=1)
        self.pending: Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        if self.pending is not None:
            self.pending.result()
        self.pending = self.lane.submit(self.sha.update, chunk)
        self.md5.update(chunk)

    def hexdigests(self) -> tuple[str, str]:
        """(md5, sha256); the lane is shut down."""
        if self.pending is not None:
            self.pending.result()
        self.lane.shutdown()
        return self.md5.hexdigest(), self.sha.hexdigest()


def md5_sha256_stream(
    chunks: Iterable[bytes], out: BinaryIO | None, progress: Progress | None
) -> tuple[str, str, int]:
    """md5, SHA-256 and size of a stream of chunks (a download), each chunk written to OUT when
    given."""
    hashes = Hashes()
    size = feed(hashes, chunks, out, progress)
    md5, sha = hashes.hexdigests()
    return md5, sha, size


def feed(
    hashes: Hashes, chunks: Iterable[bytes], out: BinaryIO | None, progress: Progress | None
) -> int:
    """Hash each chunk into HASHES, write it to OUT (when given) and report it: the bytes fed."""
    size = 0
    for chunk in chunks:
        hashes.update(chunk)
        if out is not None:
            out.write(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return size


def _stream(src: Path, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as reader:
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def check_regular(path: Path, shown: str) -> None:
    """Refuse anything but a regular file or folder: a symlink would carry bytes from outside
    the artifact (`/etc/passwd`) to the shared remote; a fifo or device never ends."""
    if path.is_symlink():
        raise ArtifactError(
            f"{shown} is a symbolic link (to {os.readlink(path)}): an artifact holds only "
            "its own files; copy the target in instead"
        )
    mode = path.lstat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ArtifactError(
            f"{shown} is not a regular file (a fifo, socket or device): it cannot be registered"
        )


def files_of(root: Path) -> list[str]:
    """Relative POSIX paths of the files under a directory, sorted; symlinks and special files
    refused."""
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
                raise ArtifactError(
                    f"{root.name}/{rel!r}: file names in an artifact may not hold control "
                    "characters or backslashes"
                )
        found.extend((Path(dirpath) / name).relative_to(root).as_posix() for name in filenames)
    return sorted(found)


def manifest_digest(file_digests: dict[str, str]) -> str:
    lines = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(file_digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    """SHA-256 of a file or directory artifact, by the rule above."""
    if path.is_dir():
        return manifest_digest({rel: _stream(path / rel, progress) for rel in files_of(path)})
    return _stream(path, progress)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum((path / rel).stat().st_size for rel in files_of(path))
    return path.stat().st_size
