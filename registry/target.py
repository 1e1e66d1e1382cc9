"""The deploy target: a branch whose commits hold rendered manifests under `<env>/<model>/`,
each with `Modelreg-*` trailers. Written with git plumbing through a private index, so the
user's working tree, index and checked-out branch are never touched."""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any

from modelreg import git
from modelreg.registry import Registry

TRAILER_RE = re.compile(r"^Modelreg-([A-Za-z-]+):\s*(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class DeployRecord:
    """One modelreg commit on the deploy branch."""

    commit: str
    timestamp: int
    author: str
    action: str
    model: str
    version: str
    env: str
    tag: str
    source_commit: str
    previous_version: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deploy_path(registry: Registry, env: str, model: str) -> str:
    return registry.config.deploy.path.format(env=env, model=model).strip("/")


def branch_ref(registry: Registry) -> str:
    return f"refs/heads/{registry.config.deploy.branch}"


def remote_ref(registry: Registry) -> str:
    return f"refs/remotes/{registry.config.deploy.remote}/{registry.config.deploy.branch}"


def tip(registry: Registry) -> str | None:
    """The deploy branch's commit: the local branch, or the remote-tracking one when the local is
    missing or behind it (a fresh CI clone has only `origin/deploy`)."""
    local = git.rev_parse(branch_ref(registry), registry.root)
    remote = git.rev_parse(remote_ref(registry), registry.root)
    if remote is None or remote == local:
        return local
    if local is None or git.git_ok("merge-base", "--is-ancestor", local, remote, cwd=registry.root):
        return remote
    return local


def read_log(registry: Registry, model: str | None = None) -> list[DeployRecord]:
    """Every modelreg commit on the deploy branch (only those touching MODEL's folders when given),
    newest first, in one `git log`."""
    start = tip(registry)
    if start is None:
        return []
    paths = [deploy_path(registry, env, model) for env in registry.config.environments] if model else []
    out = git.run_git("log", "--format=%H%x1f%ct%x1f%an <%ae>%x1f%(trailers:only,unfold)%x1e", start,
                      *(["--", *paths] if paths else []), cwd=registry.root)
    records = []
    for chunk in out.split("\x1e"):
        chunk = chunk.strip("\n")
        if not chunk:
            continue
        commit, stamp, author, trailers = chunk.split("\x1f")
        fields = dict(TRAILER_RE.findall(trailers))
        if "Action" not in fields or "Model" not in fields or (model and fields["Model"] != model):
            continue
        records.append(DeployRecord(
            commit=commit, timestamp=int(stamp), author=author, action=fields["Action"], model=fields["Model"],
            version=fields.get("Version", ""), env=fields.get("Env", ""), tag=fields.get("Tag", ""),
            source_commit=fields.get("Source-Commit", ""), previous_version=fields.get("Previous-Version", ""),
        ))
    return records


def live(records: list[DeployRecord], env: str, model: str) -> DeployRecord | None:
    return next((r for r in records if r.env == env and r.model == model), None)


def files_at(registry: Registry, commit: str | None, path: str) -> dict[str, str]:
    """Blob ids of the files under `path` at `commit` ({} when there is none)."""
    return git.ls_tree(registry.root, commit, path) if commit else {}


def blob_id(data: bytes) -> str:
    """The id git gives a blob with these bytes (sha1 of `blob <len>\\0<data>`)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_commit(registry: Registry, parent: str | None, path: str, files: dict[str, bytes], message: str) -> str:
    """Commit `files` as the whole content of `path` on top of `parent` and move the branch to it."""
    root = registry.root
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        git.run_git("read-tree", *([parent] if parent else ["--empty"]), cwd=root, env=env)
        git.run_git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", path, cwd=root, env=env)
        entries = []
        for name, data in sorted(files.items()):
            blob = git.run_git("hash-object", "-w", "--stdin", cwd=root, input=data).strip()
            entries.append(f"100644 {blob}\t{path}/{name}")
        git.run_git("update-index", "--add", "--index-info", cwd=root, env=env, input=("\n".join(entries) + "\n").encode())
        tree = git.run_git("write-tree", cwd=root, env=env).strip()
    commit = git.run_git("commit-tree", tree, *(["-p", parent] if parent else []), "-F", "-", cwd=root,
                         input=message.encode()).strip()
    git.run_git("update-ref", "-m", f"modelreg: {message.splitlines()[0]}", branch_ref(registry), commit,
                git.rev_parse(branch_ref(registry), root) or "", cwd=root)
    return commit


def fetch(registry: Registry) -> None:
    """Bring the remote's deploy branch into `origin/<branch>` (absent on the remote is fine)."""
    deploy = registry.config.deploy
    if git.git_ok("ls-remote", "--exit-code", "--heads", deploy.remote, deploy.branch, cwd=registry.root):
        git.run_git("fetch", "-q", deploy.remote, f"+{branch_ref(registry)}:{remote_ref(registry)}", cwd=registry.root)


def push(registry: Registry) -> None:
    deploy = registry.config.deploy
    git.run_git("push", "-q", deploy.remote, f"{branch_ref(registry)}:{branch_ref(registry)}", cwd=registry.root)
