"""`init`: make a git repo a modelreg registry (DVC, modelreg.yaml, templates, workflow), in one
commit."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from modelreg import git, store
from modelreg.config import CONFIG_FILE, default_config_text, parse_config
from modelreg.errors import ModelregError
from modelreg.refs import check_name

WORKFLOW = ".github/workflows/modelreg.yml"


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    commit: str | None = None
    git_initialized: bool = False
    dvc_initialized: bool = False
    remote: str | None = None
    has_remote: bool = False  # a DVC remote is set (now or before)
    diffs: dict[str, str] = field(
        default_factory=dict
    )  # --upgrade: what it changed in the workflow
    asked: Path | None = (
        None  # the folder init was pointed at, when the repository's top level is above it
    )

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.git_initialized or self.dvc_initialized)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "created": self.created,
            "updated": self.updated,
            "kept": self.kept,
            "commit": self.commit,
            "remote": self.remote,
            "has_remote": self.has_remote,
            "diffs": self.diffs,
        }


def package_templates() -> dict[str, str]:
    """The manifest templates shipped with modelreg, by file name."""
    folder = resources.files("modelreg.templates")
    return {p.name: p.read_text() for p in folder.iterdir() if p.name.endswith(".j2")}


PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")


def _workflow_template() -> str:
    return resources.files("modelreg.templates").joinpath("modelreg.yml").read_text()


def workflow_text(config_text: str, version: str | None = None) -> str:
    """The workflow for this modelreg.yaml: the packaged template with the registry's tag patterns,
    environments and deploy branch filled in (what init owns in that file), installing modelreg
    VERSION (default: the installed one) in its jobs."""
    from modelreg.image import modelreg_version

    config = parse_config(config_text)
    envs = list(config.environments)
    tags = ['"*@v*"'] + (['"v*"'] if config.default_model else [])
    values = {
        "@@TAG_PATTERNS@@": ", ".join(tags),
        "@@FIRST_ENV@@": envs[0],
        "@@ENV_OPTIONS@@": ", ".join(envs),
        "@@DEPLOY_BRANCH@@": config.deploy.branch,
        "@@VERSION@@": version or modelreg_version(),
    }
    return PLACEHOLDER.sub(lambda m: values[m.group(0)], _workflow_template())


PINNED = re.compile(r"^  MODELREG_PACKAGE: modelreg==(\S+)$", re.MULTILINE)


def pinned_version(text: str) -> str | None:
    """The modelreg version an existing scaffolded workflow installs."""
    found = PINNED.search(text)
    return found.group(1) if found else None


def generated_workflow(text: str) -> bool:
    """True when TEXT is the packaged workflow with only its generated values differing
    (environments added or renamed since): init rewrites it then, it is not the user's edit."""
    pattern = r"[^\n]*".join(re.escape(piece) for piece in PLACEHOLDER.split(_workflow_template()))
    return re.fullmatch(pattern, text) is not None


def init(
    path: Path,
    remote: str | None = None,
    default_model: str | None = None,
    force: bool = False,
    upgrade: bool = False,
) -> InitResult:
    """Scaffold a registry at `path`; running it again changes nothing but what init owns in the
    workflow (its environment list). UPGRADE moves the workflow to the installed modelreg version;
    otherwise it keeps installing the version it pins."""
    if default_model is not None:
        check_name(default_model)
    path.mkdir(parents=True, exist_ok=True)
    git_initialized = False
    if not git.git_ok("rev-parse", "--git-dir", cwd=path):
        git.run_git("init", "-q", cwd=path)
        git_initialized = True
    root = git.toplevel(path)
    git.identity(root)
    parent = git.rev_parse("HEAD^{commit}", root)
    config_path = root / CONFIG_FILE
    # modelreg.yaml is the user's from the moment it exists: --force re-copies templates, never the
    # config
    config_text = (
        config_path.read_text() if config_path.exists() else default_config_text(default_model)
    )
    _refuse_deploy_branch(root, parse_config(config_text).deploy.branch)
    existing = root / WORKFLOW
    keep = None if upgrade or not existing.is_file() else pinned_version(existing.read_text())
    wanted = {CONFIG_FILE: config_text, WORKFLOW: workflow_text(config_text, keep)}
    wanted.update({f"templates/{name}": text for name, text in package_templates().items()})
    created, updated, kept = [], [], []
    diffs = {
        rel: _diff(root / rel, text)
        for rel, text in wanted.items()
        if (root / rel).is_file() and rel == WORKFLOW and upgrade
    }
    for rel, text in sorted(wanted.items()):
        target = root / rel
        if not target.exists():
            created.append(rel)
        elif target.read_text() != text:
            ours = rel == WORKFLOW and (upgrade or generated_workflow(target.read_text()))
            (updated if force or ours else kept).append(rel)
    dvc_initialized = store.init_dvc(root)
    try:
        for rel in created + updated:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(wanted[rel])
        if remote:
            store.set_remote(root, remote)
        to_commit = [root / rel for rel in created + updated]
        to_commit += [
            root / p
            for p in (".dvc/config", ".dvc/.gitignore", ".dvcignore")
            if (root / p).exists()
        ]
        commit = None
        if parent is None or _differs(root, parent, to_commit):
            commit = git.commit_paths(root, parent, to_commit, [], "Set up modelreg registry")
            git.run_git(
                "reset",
                "-q",
                commit,
                "--",
                *[p.relative_to(root).as_posix() for p in to_commit],
                cwd=root,
            )
    except BaseException:
        for rel in created:
            (root / rel).unlink(missing_ok=True)
        raise
    return InitResult(
        root=root,
        created=created,
        updated=updated,
        kept=kept,
        commit=commit,
        diffs={rel: d for rel, d in diffs.items() if d and rel in updated + kept},
        git_initialized=git_initialized,
        dvc_initialized=dvc_initialized,
        remote=remote,
        has_remote=store.has_remote(root),
        asked=path.resolve() if path.resolve() != root.resolve() else None,
    )


def _diff(path: Path, new: str) -> str:
    import difflib

    old = path.read_text()
    return "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), f"a/{path.name}", f"b/{path.name}"
        )
    )


def _refuse_deploy_branch(root: Path, branch: str) -> None:
    """init commits on the checked-out branch: never on the deploy branch (it holds manifests
    only)."""
    current = git.run_git("symbolic-ref", "-q", "--short", "HEAD", cwd=root, check=False).strip()
    if current == branch:
        raise ModelregError(
            f"{root} has the deploy branch {branch} checked out: it holds rendered manifests only; "
            "check out your main branch (git switch main) and run init there"
        )


def _differs(root: Path, parent: str, paths: list[Path]) -> bool:
    rels = [p.relative_to(root).as_posix() for p in paths]
    blobs = git.read_objects(root, [f"{parent}:{rel}" for rel in rels])
    return any(b is None or b[1] != p.read_bytes() for b, p in zip(blobs, paths))
