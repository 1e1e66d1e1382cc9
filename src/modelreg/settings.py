"""Where settings come from: one rule, applied here and read by every command.

- **Policy** — everything in `modelreg.yaml` (environments and their gates, the deploy target,
  serving) and the trust files beside it (`.modelreg/allowed_signers`, `allowed_gpg`, trusted
  artifact keys) — is read from the registry's default branch *as the origin has it*: the commit
  `refs/remotes/<remote>/HEAD` names (set by `git clone`, or by `refresh` from the remote's own
  answer), else the remote-tracking branch `main` or `master`. Only a registry whose origin has no
  branch yet (or that has no origin) reads its local `main` or `master`, and only one with neither
  reads HEAD. Never the working tree, a feature branch, or the ref a workflow dispatch picked: a
  person who can push a branch cannot change what may run where.
- **A version** — its card, bytes (the `.dvc` pointer and `.dvc/config`'s remote) and templates —
  is read from its tag's tree (see `versions.resolve`, `render.read_templates`, `remote`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelreg import git
from modelreg.config import CONFIG_FILE, Config, parse_config
from modelreg.errors import ConfigError, GitError

DEFAULT_NAMES = ("main", "master")
DEFAULT_REMOTE = "origin"


@dataclass(frozen=True)
class Source:
    """Where policy was read: a commit and the ref that named it (`origin/main`), or the working
    tree."""

    commit: str | None
    ref: str

    def describe(self) -> str:
        return (
            f"modelreg.yaml at {self.ref}" if self.commit else "modelreg.yaml in the working tree"
        )


def candidates(root: Path, remote: str) -> list[tuple[str, str]]:
    """(ref shown, commit) in the order the rule prefers them, from one `for-each-ref`."""
    wanted = (
        [f"refs/remotes/{remote}/HEAD"]
        + [f"refs/remotes/{remote}/{n}" for n in DEFAULT_NAMES]
        + [f"refs/heads/{n}" for n in DEFAULT_NAMES]
    )
    out = git.run_git(
        "for-each-ref", "--format=%(refname)%09%(objectname)%09%(symref)", *wanted, cwd=root
    )
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        name, commit, symref = line.split("\t")
        if name in wanted:
            shown = (symref or name).removeprefix("refs/remotes/").removeprefix("refs/heads/")
            found[name] = (shown, commit)
    ordered = [found[name] for name in wanted if name in found]
    head = git.rev_parse("HEAD^{commit}", root)
    return ordered + ([("HEAD", head)] if head else [])


def refresh(root: Path, remote: str = DEFAULT_REMOTE) -> bool:
    """Ask REMOTE which branch is its default and fetch it (`refs/remotes/<remote>/HEAD` then names
    it): what a push or a CI run reads policy from. False when the remote cannot be asked or has no
    default branch; the refs already here are used then."""
    if not git.git_ok("remote", "get-url", remote, cwd=root):
        return False
    head = git.remote_head(root, remote)
    if head is None:
        return False
    branch = head.removeprefix("refs/heads/")
    try:
        git.run_git("fetch", "-q", remote, f"+{head}:refs/remotes/{remote}/{branch}", cwd=root)
        git.run_git(
            "symbolic-ref",
            f"refs/remotes/{remote}/HEAD",
            f"refs/remotes/{remote}/{branch}",
            cwd=root,
        )
    except GitError:
        return False
    return True


def load(root: Path, remote: str | None = None) -> tuple[Config, Source]:
    """The policy config and where it was read: the first commit of `candidates` whose tree has a
    modelreg.yaml; the working tree's file only when no commit has one (a registry not committed
    yet)."""
    remote = remote or DEFAULT_REMOTE
    found = candidates(root, remote)
    blobs = git.read_objects(root, [f"{commit}:{CONFIG_FILE}" for _, commit in found])
    for (ref, commit), blob in zip(found, blobs):
        if blob is not None and blob[0] == "blob":
            source = Source(commit, ref)
            config = _parse(blob[1], source)
            if config.deploy.remote != remote and git.git_ok(
                "remote", "get-url", config.deploy.remote, cwd=root
            ):
                return load(root, config.deploy.remote)
            return config, source
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{root} is not a modelreg registry: no {CONFIG_FILE} (run `modelreg init`)"
        )
    source = Source(None, "working tree")
    return _parse(path.read_bytes(), source), source


def _parse(text: bytes, source: Source) -> Config:
    try:
        return parse_config(text, source.describe())
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({source.describe()})") from None


def read_file(root: Path, source: Source, path: str) -> bytes | None:
    """A policy file (allowed signers, a trusted key) as the policy commit has it."""
    if source.commit is None:
        local = root / path
        return local.read_bytes() if local.is_file() and not local.is_symlink() else None
    return git.read_file(root, source.commit, path)


def local_differs(root: Path, source: Source) -> bool:
    """True when the working tree's modelreg.yaml is not the one in force (an edit not yet on the
    default branch): worth a remark, since it does not apply until it is pushed there."""
    path = root / CONFIG_FILE
    if source.commit is None or not path.is_file():
        return False
    return git.read_file(root, source.commit, CONFIG_FILE) != path.read_bytes()
