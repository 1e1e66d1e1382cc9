"""Concurrency with real processes: every success reported is recorded exactly once, nothing is
lost.

Invariants:
- deploy --push from N clones at once: every exit-0 deploy's commit is on the origin's deploy
branch,
  the origin holds exactly the commits that were reported, and a failed clone keeps no commit of its
  own.
- N deploys in one clone at once: every reported commit is on the branch, and nothing else is.
- two registers of one model at once: two complete versions, each tag's card, pointer and bytes
agree,
  and the working tree is clean.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from helpers import Env, clone, git, modelreg, start, write_artifact
from modelreg.store import object_url
from modelreg.versions import resolve

N = 10


def register_versions(env: Env, count: int) -> None:
    for seed in range(1, count + 1):
        env.register("churn", seed)
    git(env.root, "push", "-q", "origin", "HEAD", "--tags")


def modelreg_commits(repo: Path, ref: str) -> list[str]:
    out = git(repo, "log", "--format=%H %(trailers:key=Modelreg-Action,valueonly,separator=)", ref)
    return [line.split()[0] for line in out.splitlines() if len(line.split()) > 1]


def local_deploy(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(objectname)", "refs/heads/deploy").strip()


def finish(procs: list) -> list[tuple[int, str, str]]:
    outputs = [p.communicate(timeout=300) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def test_ten_clones_push_deploys_at_once(env: Env, tmp_path: Path) -> None:
    register_versions(env, N)
    clones = [clone(env.origin, tmp_path / f"clone-{i}") for i in range(N)]
    procs = [
        start(c, "deploy", f"churn@v{i + 1}", "--env", "staging", "--push", "--json")
        for i, c in enumerate(clones)
    ]
    results = finish(procs)
    reported = [json.loads(out)["commit"] for code, out, _ in results if code == 0]
    on_origin = modelreg_commits(env.origin, "deploy")
    assert sorted(reported) == sorted(on_origin), (
        results
    )  # each success exactly once, nothing unreported
    for (code, _, err), work in zip(results, clones):
        if code != 0:  # a clear line, and the clone keeps no commit the origin refused
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
            assert local_deploy(work) in ("", *on_origin)
    failed = [(i, work) for i, ((code, _, _), work) in enumerate(zip(results, clones)) if code != 0]
    for i, work in failed:  # a failed clone is as it was: re-running the same command lands
        again = modelreg(work, "deploy", f"churn@v{i + 1}", "--env", "staging", "--push", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["commit"] in modelreg_commits(env.origin, "deploy")
    final = modelreg_commits(env.origin, "deploy")
    assert all(
        local_deploy(work) in final for work in clones
    )  # every clone's branch is the origin's


def test_ten_deploys_in_one_clone_at_once(env: Env) -> None:
    register_versions(env, N)
    procs = [
        start(env.root, "deploy", f"churn@v{i + 1}", "--env", "staging", "--json") for i in range(N)
    ]
    results = finish(procs)
    assert all(code == 0 for code, _, _ in results), results
    reported = [json.loads(out)["commit"] for _, out, _ in results]
    assert sorted(reported) == sorted(modelreg_commits(env.root, "deploy"))
    assert not any("edited by hand" in err for _, _, err in results)


def test_two_registers_of_one_model_at_once(env: Env, tmp_path: Path) -> None:
    env.register("churn", 1)
    sources = [
        write_artifact(tmp_path / f"job-{i}" / "model.pt", 100 + i, 256 * 1024) for i in range(2)
    ]
    procs = [
        start(env.root, "register", "churn", str(s), "--no-inspect", "--json") for s in sources
    ]
    results = finish(procs)
    assert all(code == 0 for code, _, _ in results), results
    tags = sorted(json.loads(out)["tag"] for _, out, _ in results)
    assert tags == ["churn@v2", "churn@v3"]
    by_sha = {hashlib.sha256(s.read_bytes()).hexdigest(): s for s in sources}
    for tag in tags:  # card, pointer and the remote's bytes describe one and the same artifact
        found = resolve(env.registry, tag)
        data = Path(object_url(str(env.store), found.pointer.md5)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == found.card["artifact"]["sha256"]
        assert found.card["artifact"]["sha256"] in by_sha
    assert git(env.root, "status", "--porcelain", "--untracked-files=all") == ""
    card = yaml.safe_load((env.root / "models/churn/model.yaml").read_text())
    assert card["version"] == "v3"
    workspace = (env.root / "models/churn/model.pt").read_bytes()
    assert hashlib.sha256(workspace).hexdigest() == card["artifact"]["sha256"]
