"""The registry lock: `register` runs one at a time per repository.

An `flock` on `<git common dir>/modelreg.lock`: the kernel drops it when its holder exits, however
it exits (kill -9 included), so a dead holder's lock is simply taken over. The file names the
holder (pid, start time, command) so that a waiter can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from modelreg import git
from modelreg.errors import ModelregError

LOCK_FILE = "modelreg.lock"
DEFAULT_TIMEOUT = 600.0


class LockTimeout(ModelregError):
    """Another modelreg process held the registry lock for too long."""


def lock_path(root: Path) -> Path:
    return git.common_dir(root) / LOCK_FILE


def _holder(handle: int) -> str:
    try:
        info = json.loads(os.pread(handle, 4096, 0) or b"{}")
        return f"pid {info['pid']}, {info['command']}, since {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "another modelreg process"


@contextlib.contextmanager
def registry_lock(root: Path, command: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the registry lock for the block; wait up to `timeout` seconds
    (MODELREG_LOCK_TIMEOUT)."""
    if timeout is None:
        timeout = float(os.environ.get("MODELREG_LOCK_TIMEOUT", DEFAULT_TIMEOUT))
    path = lock_path(root)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"the registry is locked by {_holder(handle)} ({path}); waited {timeout:g} "
                        "s. "
                        "Wait for it to finish, or raise MODELREG_LOCK_TIMEOUT"
                    ) from None
                time.sleep(0.05)
        started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
        os.ftruncate(handle, 0)
        os.pwrite(
            handle,
            json.dumps({"pid": os.getpid(), "command": command, "started": started}).encode(),
            0,
        )
        yield
    finally:
        os.close(handle)  # closing drops the flock
