"""Lineage at register (issue #23, item 3), from a real DVC pipeline run by `dvc repro`.

Invariants: the card records the stage that output the artifact with the md5 of each input exactly
as dvc.lock has it, the params, the outputs and the code commit; `lineage` shows it; `find 'uses ==
...'` lists the versions trained on a file; `require_lineage` refuses a version without it; a
`--lineage-from` whose dvc.lock does not make the artifact is one clear error and registers
nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import Env, git, modelreg, signature_card
from modelreg.deploy import deploy
from modelreg.errors import DeployError
from modelreg.find import find

pytest.importorskip("torch")
DVC = str(Path(sys.executable).parent / "dvc")
TRAIN = """\
import sys, torch, yaml
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
rows = open("data/train.csv").read().count("\\n")
torch.manual_seed(rows)
model = torch.nn.Sequential(torch.nn.Linear(4, 2))
torch.jit.script(model).save("model.pt")
"""


def pipeline(tmp: Path, rows: int) -> Path:
    """A git repo with a one-stage DVC pipeline (data/train.csv, params.yaml -> model.pt),
    reproduced."""
    folder = tmp / "pipeline"
    if not folder.exists():
        folder.mkdir()
        git(folder, "init", "-q")
        subprocess.run([DVC, "init", "-q"], cwd=folder, check=True)
        (folder / "data").mkdir()
        (folder / "train.py").write_text(TRAIN)
        (folder / "params.yaml").write_text("train:\n  lr: 0.01\n")
        (folder / "dvc.yaml").write_text(
            yaml.safe_dump(
                {
                    "stages": {
                        "train": {
                            "cmd": f"{sys.executable} train.py",
                            "deps": ["data/train.csv", "train.py"],
                            "params": ["train.lr"],
                            "outs": ["model.pt"],
                        }
                    }
                }
            )
        )
    (folder / "data" / "train.csv").write_text("a,b,c,d\n" + "1,2,3,4\n" * rows)
    done = subprocess.run(
        [DVC, "repro", "-q"], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", f"train on {rows} rows")
    return folder


def test_register_records_the_stage_that_made_the_artifact(env: Env) -> None:
    folder = pipeline(env.work, 10)
    lock = yaml.safe_load((folder / "dvc.lock").read_text())["stages"]["train"]
    result = modelreg(
        env.root,
        "register",
        "churn",
        str(folder / "model.pt"),
        "--lineage-from",
        str(folder),
        "--card",
        str(signature_card(env.work)),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(modelreg(env.root, "lineage", "churn@v1", "--json").stdout)
    assert shown["stage"] == "train"
    assert shown["deps"] == [{"path": d["path"], "md5": d["md5"]} for d in lock["deps"]]
    assert shown["params"] == {"params.yaml": {"train.lr": 0.01}}
    assert shown["outs"] == [{"path": "model.pt", "md5": lock["outs"][0]["md5"]}]
    assert shown["code_commit"] == git(folder, "rev-parse", "HEAD").strip()
    text = modelreg(env.root, "lineage", "churn@v1").stdout
    assert "stage train" in text and "data/train.csv" in text and "train.lr=0.01" in text
    first_md5 = next(d["md5"] for d in lock["deps"] if d["path"] == "data/train.csv")
    pipeline(env.work, 20)  # new data: a new model
    assert (
        modelreg(
            env.root,
            "register",
            "churn",
            str(folder / "model.pt"),
            "--lineage-from",
            str(folder),
            "--card",
            str(signature_card(env.work)),
        ).returncode
        == 0
    )
    assert [f.tag for f in find(env.registry, 'uses == "data/train.csv"')] == [
        "churn@v1",
        "churn@v2",
    ]
    assert [f.tag for f in find(env.registry, f'uses_md5 == "{first_md5}"')] == ["churn@v1"]
    assert find(env.registry, 'uses == "data/other.csv"') == []


def test_require_lineage_and_a_lock_that_does_not_make_the_artifact(env: Env) -> None:
    text = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        text.replace("    replicas: 1\n", "    replicas: 1\n    require_lineage: true\n", 1)
    )
    git(env.root, "commit", "-qam", "staging wants lineage")
    env.register("churn", 1)  # no pipeline: no lineage
    with pytest.raises(DeployError, match=r"\[lineage\] its card records no lineage"):
        deploy(env.registry, "churn@v1", "staging")
    folder = pipeline(env.work, 5)
    before = git(env.root, "for-each-ref")
    other = env.work / "elsewhere.pt"
    other.write_bytes((folder / "model.pt").read_bytes() + b"x")
    refused = modelreg(env.root, "register", "churn", str(other), "--lineage-from", str(folder))
    assert refused.returncode == 1 and "no stage of its dvc.lock outputs" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and git(env.root, "for-each-ref") == before
    assert (
        modelreg(
            env.root,
            "register",
            "churn",
            str(folder / "model.pt"),
            "--lineage-from",
            str(folder),
            "--card",
            str(signature_card(env.work)),
        ).returncode
        == 0
    )
    landed = deploy(env.registry, "churn@v2", "staging")
    assert ("lineage", True) in [(g["gate"], g["passed"]) for g in landed.gates]
