"""The registry a command works on: the repo root, its policy (modelreg.yaml as `settings` finds
it) and where that policy was read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelreg import git, settings
from modelreg.config import Config


@dataclass(frozen=True)
class Registry:
    root: Path
    config: Config
    policy: settings.Source = field(default_factory=lambda: settings.Source(None, "working tree"))

    def model_dir(self, model: str) -> str:
        """The model's folder, relative to the root, POSIX style."""
        return f"{self.config.models_dir.strip('/')}/{model}"

    def policy_file(self, path: str) -> bytes | None:
        """A trust file beside modelreg.yaml (allowed signers, a public key), as policy has it."""
        return settings.read_file(self.root, self.policy, path)


def open_registry(cwd: Path | str = ".", refresh: bool = False) -> Registry:
    """Find the enclosing git repo and load its policy. REFRESH (a push, a CI run) first asks the
    origin for its default branch, so that policy is the origin's as of now."""
    root = git.toplevel(cwd)
    if refresh:
        settings.refresh(root)
    config, source = settings.load(root)
    return Registry(root=root, config=config, policy=source)
