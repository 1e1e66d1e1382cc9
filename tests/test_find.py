"""modelreg find (issue #23, item 2): an expression language of its own, never eval.

A real registry with metrics, params, deploys, a quarantine and a deprecation; each expression is
checked against the versions it must return. Bad expressions are one line naming the position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import Env, modelreg
from modelreg.deploy import deploy
from modelreg.errors import ModelregError
from modelreg.find import find, parse
from modelreg.marks import deprecate, quarantine


@pytest.fixture
def varied(env: Env) -> Env:
    for seed, auc, lr in ((1, 0.81, 0.1), (2, 0.92, 0.05), (3, 0.95, 0.01)):
        env.register("churn", seed, metrics=(f"auc={auc}",), params=(f"lr={lr}", f"arch=mlp{seed}"))
    env.register("fraud", 4, metrics=("auc=0.99",))
    deploy(env.registry, "churn@v1", "staging")
    deploy(env.registry, "churn@v2", "staging")
    deploy(env.registry, "churn@v2", "prod")
    quarantine(env.registry, "churn@v3", "bad calibration")
    deprecate(env.registry, "churn@v1", "old", "2099-01-01")
    return env


EXPECTED = [
    ("metrics.auc >= 0.9", ["churn@v2", "churn@v3", "fraud@v1"]),
    ("metrics.auc >= 0.9 and live == prod", ["churn@v2"]),
    ("live == staging", ["churn@v2"]),
    ("was_live == staging", ["churn@v1", "churn@v2"]),
    ("live != staging and model == churn", ["churn@v1", "churn@v3"]),
    ("quarantined", ["churn@v3"]),
    ("not quarantined and not deprecated and model == churn", ["churn@v2"]),
    ("deprecated == true", ["churn@v1"]),
    ("params.lr < 0.05", ["churn@v3"]),
    ("params.arch == mlp2 or params.arch == 'mlp3'", ["churn@v2", "churn@v3"]),
    ("params.arch ~ MLP", ["churn@v1", "churn@v2", "churn@v3"]),
    ("metrics.missing > 0", []),
    ("version >= v2 and model == churn", ["churn@v2", "churn@v3"]),
    ("model == fraud or (metrics.auc < 0.85 and not quarantined)", ["churn@v1", "fraud@v1"]),
    ("date >= 2000-01-01 and date <= 2999-12-31", ["churn@v1", "churn@v2", "churn@v3", "fraud@v1"]),
    ("date < 2000-01-01", []),
    ("author ~ 'TEST author'", ["churn@v1", "churn@v2", "churn@v3", "fraud@v1"]),
    ("signed", []),
]


def test_each_expression_finds_what_it_says(varied: Env) -> None:
    for expression, tags in EXPECTED:
        assert [f.tag for f in find(varied.registry, expression)] == tags, expression


def test_find_on_the_command_line(varied: Env) -> None:
    result = modelreg(varied.root, "find", "metrics.auc >= 0.9 and live == prod", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["tag"] for d in data] == ["churn@v2"] and data[0]["live"] == ["prod", "staging"]
    assert data[0]["metrics"] == {"auc": 0.92}
    table = modelreg(varied.root, "find", "quarantined").stdout
    assert "churn@v3" in table and "quarantined" in table
    assert modelreg(varied.root, "find", "metrics.auc > 2").stdout.strip() == "No version matches."


@pytest.mark.parametrize(
    "expression,message",
    [
        ("metrics.auc >= ", "expected a value after >= at position 16"),
        ("metrics.auc >= 0.9 and", "the expression ends too early"),
        ("(live == prod", "expected ')'"),
        ("foo == 1", "unknown field 'foo' at position 1"),
        ("metrics.auc >= 0.9 garbage", "unexpected 'garbage' at position 20"),
        ("metrics.auc $ 1", "unexpected character at position 13"),
        ("live > prod", "live takes ==, != or ~"),
        ("", "an empty expression"),
        ("__import__('os').system('id')", "unexpected character at position 17"),
        ("__import__ == 1", "unknown field '__import__'"),
        ("x" * 3000, "over 2000 characters"),
    ],
)
def test_bad_expressions_name_the_position(varied: Env, expression: str, message: str) -> None:
    with pytest.raises(ModelregError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(expression)
    result = modelreg(varied.root, "find", expression)
    assert (
        result.returncode == 1
        and message in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_signer_names_who_signed_the_artifact(env: Env, tmp_path: Path) -> None:
    pytest.importorskip("model_signing")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    key = tmp_path / "release.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    env.register("churn", 1)
    signed = env.register("churn", 2, sign_artifact=True, key=key)
    signer = next(f.signer for f in find(env.registry, "signed"))
    assert [f.tag for f in find(env.registry, "signed")] == [signed.tag]
    assert signer.startswith("key:") and [
        f.tag for f in find(env.registry, f"signer == '{signer}'")
    ] == ["churn@v2"]
