"""The caches in `<git dir>/modelreg/`, one helper for all of them.

Each cache holds what modelreg derived from immutable git objects, under the ids it was derived
from: a whole file under one key (the deploy logs by the commit they start from, the quarantines
by the deploy branch's tip, find's table by a digest of the tag refs), or one line per object (what
each tag object says, each model's summary by the digest of its refs). A file is read whole and
believed only under its key, so it can never disagree with git; one that is missing, damaged or
written by another modelreg is rebuilt, and one that cannot be written only makes the next call
slower. Files are replaced through a temporary one: a reader sees the old or the new.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from modelreg import git

FOLDER = "modelreg"


def path(cwd: Path | str, name: str) -> Path:
    """`<git dir>/modelreg/NAME` (the common git dir: linked worktrees share it)."""
    return git.common_dir(cwd) / FOLDER / name


def read(file: Path) -> str | None:
    """The cache's text, or None when there is none (or it cannot be read)."""
    try:
        return file.read_text("utf-8", "surrogateescape")
    except OSError:
        return None


def write(file: Path, text: str) -> None:
    """Replace the cache with TEXT; best effort."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, "utf-8", "surrogateescape")
        os.replace(tmp, file)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_keyed(file: Path, key: str) -> str | None:
    """The body of a cache written under KEY by `write_keyed`; None under another key, or none."""
    text = read(file)
    if text is None:
        return None
    head, _, body = text.partition("\n")
    return body if head == key else None


def write_keyed(file: Path, key: str, body: str) -> None:
    """Replace the cache with BODY under KEY (one line, no newline)."""
    write(file, f"{key}\n{body}")
