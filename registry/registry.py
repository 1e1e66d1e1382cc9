"""The registry a command works on: the repo root and its validated config."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelreg import git
from modelreg.config import Config, load_config


@dataclass(frozen=True)
class Registry:
    root: Path
    config: Config

    def model_dir(self, model: str) -> str:
        """The model's folder, relative to the root, POSIX style."""
        return f"{self.config.models_dir.strip('/')}/{model}"


def open_registry(cwd: Path | str = ".") -> Registry:
    """Find the enclosing git repo and load its modelreg.yaml."""
    root = git.toplevel(cwd)
    return Registry(root=root, config=load_config(root))
