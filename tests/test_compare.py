"""modelreg diff and the `schema: compatible` gate (issue #23, item 1).

The verdict, table-driven: each breaking and each compatible change of a signature on its own, with
the reason it must give. Then real registries: `diff` of two registered versions (card, metrics,
params, per-file changes of folders, manifests), `--check`'s exit code, and an environment with
`schema: compatible` refusing a breaking version against what is live there, `--force` overriding it
with `Modelreg-Forced: true` on the deploy commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import Env, git, modelreg, write_model_dir
from modelreg.compare import compatibility
from modelreg.deploy import DeployOptions, deploy
from modelreg.errors import DeployError
from modelreg.register import RegisterRequest, register

X = {"name": "x", "dtype": "float32", "shape": [-1, 4]}
Y = {"name": "y", "dtype": "float32", "shape": [-1, 2]}
BASE = {"signature": {"inputs": [X], "outputs": [Y]}}


def card(inputs: list[dict] | None = None, outputs: list[dict] | None = None) -> dict:
    return {
        "signature": {
            "inputs": [X] if inputs is None else inputs,
            "outputs": [Y] if outputs is None else outputs,
        }
    }


CASES = [
    # (what, new card, verdict, where, words in the reason)
    ("the same signature", card(), "compatible", None, None),
    ("an input removed", card(inputs=[]), "breaking", "inputs.x", "removed"),
    (
        "an input added without a default",
        card(inputs=[X, {"name": "z", "dtype": "int64", "shape": [-1]}]),
        "breaking",
        "inputs.z",
        "without a default",
    ),
    (
        "an input added with a default",
        card(inputs=[X, {"name": "z", "dtype": "int64", "shape": [-1], "default": 0}]),
        "compatible",
        "inputs.z",
        "optional input",
    ),
    (
        "an input's dtype changed",
        card(inputs=[{**X, "dtype": "float64"}]),
        "breaking",
        "inputs.x",
        "dtype float32 -> float64",
    ),
    (
        "an output's dtype changed",
        card(outputs=[{**Y, "dtype": "float16"}]),
        "breaking",
        "outputs.y",
        "dtype",
    ),
    (
        "a fixed dimension changed",
        card(inputs=[{**X, "shape": [-1, 8]}]),
        "breaking",
        "inputs.x",
        "dimension 1 changed: 4 -> 8",
    ),
    (
        "a rank changed",
        card(inputs=[{**X, "shape": [-1, 4, 1]}]),
        "breaking",
        "inputs.x",
        "rank 2 -> 3",
    ),
    (
        "an input's free dimension fixed",
        card(inputs=[{**X, "shape": [1, 4]}]),
        "breaking",
        "inputs.x",
        "fixed: -1 -> 1",
    ),
    ("an output removed", card(outputs=[]), "breaking", "outputs.y", "removed"),
    (
        "an output added",
        card(outputs=[Y, {"name": "p", "dtype": "float32", "shape": [-1]}]),
        "compatible",
        "outputs.p",
        "added",
    ),
    (
        "a fixed dimension relaxed to -1",
        card(inputs=[{**X, "shape": [-1, -1]}]),
        "compatible",
        "inputs.x",
        "relaxed: 4 -> -1",
    ),
    (
        "an output's fixed dimension relaxed",
        card(outputs=[{**Y, "shape": [-1, -1]}]),
        "compatible",
        "outputs.y",
        "relaxed",
    ),
    (
        "an output's free dimension fixed",
        card(outputs=[{**Y, "shape": [8, 2]}]),
        "compatible",
        "outputs.y",
        "fixed",
    ),
]


@pytest.mark.parametrize("what,new,verdict,where,words", CASES, ids=[c[0] for c in CASES])
def test_the_compatibility_verdict(
    what: str, new: dict, verdict: str, where: str | None, words: str | None
) -> None:
    found = compatibility(BASE, new)
    assert found.word == verdict
    if where is None:
        assert found.reasons == []
    else:
        assert [(r.where, r.kind) for r in found.reasons] == [(where, verdict)]
        assert words is not None and words in found.reasons[0].text


def test_every_reason_is_listed_not_only_the_first() -> None:
    new = card(inputs=[{**X, "dtype": "int64", "shape": [-1, 8]}], outputs=[])
    found = compatibility(BASE, new)
    assert (
        found.breaking
        and {r.where for r in found.reasons} == {"inputs.x", "outputs.y"}
        and len(found.reasons) == 3
    )


def register_card(
    env: Env, seed: int, signature: dict, folder: bool = False, **metrics: float
) -> str:
    path = env.work / f"card-{seed}.yaml"
    path.write_text(yaml.safe_dump({**signature, "description": f"seed {seed}"}))
    if folder:
        source = write_model_dir(env.work / f"dir-{seed}", seed)
    else:
        source = env.work / f"m-{seed}" / "model.pt"
        source.parent.mkdir(parents=True)
        source.write_bytes(bytes([seed]) * 4096)
    request = RegisterRequest(
        "churn", source, card_file=path, metrics=tuple(f"{k}={v}" for k, v in metrics.items())
    )
    return register(env.registry, request).tag  # type: ignore[attr-defined]


def test_diff_of_two_registered_versions(env: Env) -> None:
    old = register_card(env, 1, BASE, auc=0.9)
    new = register_card(env, 2, card(inputs=[{**X, "shape": [-1, 8]}]), auc=0.93)
    result = modelreg(env.root, "diff", old, new, "--json", "--env", "staging")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verdict"] == "breaking" and data["reasons"][0]["where"] == "inputs.x"
    assert data["metrics"]["auc"] == {"old": 0.9, "new": 0.93, "delta": pytest.approx(0.03)}
    assert data["card"]["description"] == {"old": "seed 1", "new": "seed 2"}
    assert not data["artifact"]["same"]
    assert '-    "modelreg.io/version": "v1"' in data["manifests"]["staging"]
    checked = modelreg(env.root, "diff", old, new, "--check")
    assert (
        checked.returncode == 1
        and "breaking" in checked.stdout
        and "dimension 1 changed" in checked.stdout
    )
    assert modelreg(env.root, "diff", new, new, "--check").returncode == 0
    assert modelreg(env.root, "site", "-o", str(env.work / "site")).returncode == 0
    page = (env.work / "site" / "version-churn-v2.html").read_text()
    assert "Against churn@v1: breaking" in page and "dimension 1 changed: 4 -&gt; 8" in page
    missing = modelreg(env.root, "diff", old, "churn@v9")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


def test_diff_of_two_folders_names_each_changed_file(env: Env) -> None:
    old = register_card(env, 1, BASE, folder=True)
    source = env.work / "dir-1"
    (source / "config.json").write_text('{"changed": true}')
    (source / "extra.txt").write_text("new file")
    (source / "weights" / "shard-1.bin").unlink()
    path = env.work / "card-9.yaml"
    path.write_text(yaml.safe_dump(BASE))
    new = register(env.registry, RegisterRequest("churn", source, card_file=path)).tag
    data = json.loads(modelreg(env.root, "diff", old, new, "--json").stdout)
    assert data["artifact"]["files"] == {
        "added": ["extra.txt"],
        "removed": ["weights/shard-1.bin"],
        "changed": ["config.json"],
    }
    assert data["verdict"] == "compatible"


def test_an_environment_with_schema_compatible_refuses_a_breaking_version(env: Env) -> None:
    text = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        text.replace("    replicas: 1\n", "    replicas: 1\n    schema: compatible\n", 1)
    )
    git(env.root, "commit", "-qam", "staging keeps its callers")
    v1 = register_card(env, 1, BASE)
    assert deploy(env.registry, v1, "staging").commit  # nothing live: nothing to compare with
    v2 = register_card(env, 2, card(outputs=[Y, {"name": "p", "dtype": "float32", "shape": [-1]}]))
    landed = deploy(env.registry, v2, "staging")  # compatible: an output added
    assert ("schema compatible", True) in [(g["gate"], g["passed"]) for g in landed.gates]
    v3 = register_card(env, 3, card(inputs=[{**X, "dtype": "int64"}], outputs=[Y]))
    with pytest.raises(
        DeployError,
        match=r"\[schema compatible\] breaks the callers of live churn@v2: "
        r"inputs.x: dtype float32 -> int64; outputs.p: output 'p' removed",
    ):
        deploy(env.registry, v3, "staging")
    forced = deploy(env.registry, v3, "staging", DeployOptions(force=True))
    assert forced.commit and "Modelreg-Forced: true" in git(
        env.root, "log", "-1", "--format=%B", forced.commit
    )
    assert any(
        g["gate"] == "schema compatible" and "overridden with --force" in g["detail"]
        for g in forced.gates
    )
    cli = modelreg(env.root, "deploy", register_card(env, 4, card(inputs=[])), "--env", "staging")
    assert (
        cli.returncode == 1
        and "schema compatible" in cli.stderr
        and len(cli.stderr.strip().splitlines()) == 1
    )


def test_a_schema_setting_that_is_not_known_is_refused(env: Env, tmp_path: Path) -> None:
    text = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        text.replace("    replicas: 1\n", "    replicas: 1\n    schema: loose\n", 1)
    )
    git(env.root, "commit", "-qam", "typo")
    result = modelreg(env.root, "status")
    assert result.returncode == 1 and "schema: expected compatible" in result.stderr
