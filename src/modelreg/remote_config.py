"""`remote add`: point the registry at a DVC remote and commit `.dvc/config`."""

from __future__ import annotations

from modelreg import git, store
from modelreg.handle import Registry


def add_remote(
    registry: Registry, url: str, name: str = "storage", endpoint_url: str | None = None
) -> str | None:
    """Set the default remote and commit `.dvc/config` alone; None when it was already so."""
    config = registry.root / ".dvc" / "config"
    head = git.head_commit(registry.root)
    before = config.read_bytes() if config.exists() else b""
    store.set_remote(registry.root, url, name, endpoint_url)
    if config.read_bytes() == before:
        return None
    try:
        commit = git.commit_paths(
            registry.root, head, [config], [], f"Set the DVC remote {name} to {url}"
        )
    except BaseException:
        config.write_bytes(before)
        raise
    git.run_git("reset", "-q", commit, "--", ".dvc/config", cwd=registry.root)
    return commit
