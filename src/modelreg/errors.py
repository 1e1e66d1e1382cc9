"""The one family of errors the library raises; the CLI prints them as one line."""

from __future__ import annotations


class ModelregError(Exception):
    """A problem the user can fix: printed as one line, exit code 1."""


class ConfigError(ModelregError):
    """modelreg.yaml is missing or invalid."""


class RefError(ModelregError):
    """A model name, version or reference is malformed or unknown."""


class GitError(ModelregError):
    """A git command failed."""

    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        self.command = ("git",) + tuple(args)
        self.code = code
        self.stderr = stderr.strip()
        last = self.stderr.splitlines()[-1] if self.stderr else "no output"
        super().__init__(f"git {' '.join(args[:3])} failed (exit {code}): {last}")


class RefConflict(ModelregError):
    """A ref was not where a compare-and-swap update expected it: another process moved it."""


class StoreError(ModelregError):
    """DVC could not add, push or fetch an artifact."""


class RenderError(ModelregError):
    """A template could not be rendered into valid Kubernetes manifests."""


class DeployError(ModelregError):
    """A deploy, promote or rollback was refused."""


class ArtifactError(ModelregError):
    """An artifact is unsafe, unreadable or does not match its digests."""
