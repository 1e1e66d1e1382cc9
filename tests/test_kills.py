"""kill -9 at every named step of register and deploy (MODELREG_TEST_KILL_AFTER=<step>).

Invariants: a kill leaves either the state before (no tag, no commit, no file in the working tree)
or a complete version / deploy; re-running the same command then completes it or reports it, never
makes a duplicate; nothing is left behind (no staging files, no backups in .git).
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest

from helpers import Env, git, modelreg, snapshot, write_artifact
from modelreg.store import object_url
from modelreg.versions import resolve

BEFORE_REFS = ["locked", "stage-write", "staged", "pushed", "objects"]
AFTER_REFS = ["refs", "worktree"]


def kill_after(step: str) -> dict[str, str]:
    return {"MODELREG_TEST_KILL_AFTER": step}


def leftovers(root: Path) -> list[Path]:
    staging = root / ".dvc" / "cache" / "modelreg-staging"
    found = list(staging.iterdir()) if staging.is_dir() else []
    found += list((root / ".git").glob("modelreg-backup-*"))
    found += [p for p in (root / "models").rglob("*") if ".modelreg-" in p.name]
    return found


@pytest.mark.parametrize("step", BEFORE_REFS + AFTER_REFS)
def test_register_killed_at_each_step(env: Env, tmp_path: Path, step: str) -> None:
    env.register("churn", 1)
    source = write_artifact(tmp_path / "new" / "model.pt", 2, 64 * 1024)
    before = snapshot(env.root)
    killed = modelreg(
        env.root, "register", "churn", str(source), "--no-inspect", env=kill_after(step)
    )
    assert killed.returncode == -signal.SIGKILL
    if step in BEFORE_REFS:
        assert snapshot(env.root) == before  # no commit, no tag, nothing in the working tree
    else:
        found = resolve(
            env.registry, "churn@v2"
        )  # complete: card, pointer and the remote's bytes agree
        data = Path(object_url(str(env.store), found.pointer.md5)).read_bytes()
        assert (
            hashlib.sha256(data).hexdigest()
            == found.card["artifact"]["sha256"]
            == hashlib.sha256(source.read_bytes()).hexdigest()
        )
    again = modelreg(env.root, "register", "churn", str(source), "--no-inspect", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["tag"] == "churn@v2" and result["existing"] == (step in AFTER_REFS)
    assert git(env.root, "tag", "--list", "churn@*").split() == [
        "churn@v1",
        "churn@v2",
    ]  # no duplicate version
    assert git(env.root, "status", "--porcelain", "--untracked-files=all") == ""
    assert (env.root / "models/churn/model.pt").read_bytes() == source.read_bytes()
    assert leftovers(env.root) == []


@pytest.mark.parametrize("step", ["deploy-built", "deploy-pushed", "deploy-landed"])
def test_deploy_push_killed_at_each_step(env: Env, step: str) -> None:
    env.register("churn", 1)
    git(env.root, "push", "-q", "origin", "HEAD", "--tags")
    killed = modelreg(
        env.root, "deploy", "churn@v1", "--env", "staging", "--push", env=kill_after(step)
    )
    assert killed.returncode == -signal.SIGKILL
    on_origin = git(
        env.origin, "for-each-ref", "--format=%(objectname)", "refs/heads/deploy"
    ).strip()
    assert bool(on_origin) == (step != "deploy-built")
    if step == "deploy-built":
        assert (
            git(env.root, "for-each-ref", "refs/heads/deploy", "refs/remotes/origin/deploy") == ""
        )
    again = modelreg(env.root, "deploy", "churn@v1", "--env", "staging", "--push", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["noop"] == (step != "deploy-built")
    commits = git(env.origin, "log", "--format=%H", "deploy").split()
    assert commits == [result["commit"]]  # one deploy on the origin, whatever the kill
    assert git(env.root, "rev-parse", "deploy").strip() == result["commit"]
