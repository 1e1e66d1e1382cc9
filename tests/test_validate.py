"""The validation gate on tiny TorchScript models."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helpers import Env, git, snapshot
from modelreg.cli.main import cli
from modelreg.deploy import deploy
from modelreg.errors import ModelregError
from modelreg.register import RegisterRequest, register
from modelreg.validate import passed, read_records, validate
from modelreg.versions import resolve

torch = pytest.importorskip("torch")

SIGNATURE = {
    "signature": {
        "inputs": [{"name": "features", "shape": [-1, 4], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [-1, 2], "dtype": "float32"}],
    }
}


def scripted(path: Path, outputs: int) -> Path:
    torch.manual_seed(0)
    torch.jit.script(
        torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, outputs))
    ).save(str(path))
    return path


def register_model(env: Env, tmp_path: Path, outputs: int, card: dict | None = None) -> str:
    card_file = tmp_path / f"card-{outputs}.yaml"
    card_file.write_text(yaml.safe_dump(card or SIGNATURE))
    folder = tmp_path / f"model-{outputs}"
    folder.mkdir()
    return register(
        env.registry,
        RegisterRequest("churn", scripted(folder / "model.pt", outputs), card_file=card_file),
    ).tag


def test_a_model_that_keeps_its_signature_passes(env: Env, tmp_path: Path) -> None:
    tag = register_model(env, tmp_path, 2)
    result = validate(env.registry, resolve(env.registry, tag), runs=5)
    assert result.passed and result.outputs == [{"shape": [2, 2], "dtype": "float32"}]
    assert 0 < result.p50_ms <= result.p95_ms


def test_a_model_that_breaks_its_signature_is_rejected(env: Env, tmp_path: Path) -> None:
    tag = register_model(env, tmp_path, 3)
    result = CliRunner().invoke(cli, ["-C", str(env.root), "validate", tag, "--runs", "3"])
    assert (
        result.exit_code == 1
        and "FAILED: output logits: shape [2, 3], signature says [-1, 2]" in result.stdout
    )


def test_the_example_input_is_used(env: Env, tmp_path: Path) -> None:
    tag = register_model(env, tmp_path, 2, {**SIGNATURE, "example": [[0.1, 0.2, 0.3, 0.4]] * 3})
    assert validate(env.registry, resolve(env.registry, tag), runs=2).outputs[0]["shape"] == [3, 2]


def test_record_and_the_deploy_gate(env: Env, tmp_path: Path) -> None:
    config = env.root / "modelreg.yaml"
    config.write_text(
        config.read_text().replace(
            "  staging:\n    replicas: 1\n", "  staging:\n    replicas: 1\n    validate: true\n"
        )
    )
    git(env.root, "commit", "-qam", "staging validates")
    good = register_model(env, tmp_path, 2)
    before = snapshot(env.root)
    with pytest.raises(
        ModelregError,
        match=r"may not go to staging: \[validate\] churn@.* has no passed validation",
    ):
        deploy(env.registry, good, "staging")
    assert snapshot(env.root) == before
    result = CliRunner().invoke(
        cli, ["-C", str(env.root), "validate", good, "--record", "--runs", "2"]
    )
    assert result.exit_code == 0, result.output
    found = resolve(env.registry, good)
    assert (
        passed(env.registry, found)
        and read_records(env.registry, found.info.commit)[good]["cpu"]["passed"]
    )
    assert git(env.root, "tag", "--points-at", found.info.commit).split() == [
        good
    ]  # the tag did not move
    assert deploy(env.registry, good, "staging").commit


def test_a_card_without_signature_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    tag = register_model(env, tmp_path, 2, {"description": "no signature"})
    with pytest.raises(ModelregError, match="declares no signature.inputs"):
        validate(env.registry, resolve(env.registry, tag))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_validate_on_cuda(env: Env, tmp_path: Path) -> None:
    tag = register_model(env, tmp_path, 2)
    result = validate(env.registry, resolve(env.registry, tag), device="cuda", runs=10)
    assert result.passed and result.device == "cuda"
