"""Signed artifacts with a model-signing key pair made in the test: `register --sign-artifact
--key`,
an environment with `require_artifact_signature: true` and a trusted key, `verify`, and the pod-side
`modelreg fetch` run with the arguments the rendered manifests give it.

Invariants: a version lands in such an environment only when the trusted key signed exactly the
bytes the remote holds; the pod puts bytes in place only when they match the signature; the
signature is model-signing's own format (its stock verifier accepts it); every refusal leaves the
repo as it was."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import (
    MODELREG,
    Env,
    git,
    modelreg,
    signature_card,
    snapshot,
    write_artifact,
    write_model_dir,
)
from modelreg.deploy import DeployOptions, deploy, rollback
from modelreg.errors import ModelregError
from modelreg.remote import verify
from modelreg.versions import resolve

pytest.importorskip("model_signing")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402


def key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A throwaway P-256 key pair in PEM, as `openssl ecparam -genkey` makes it."""
    private = ec.generate_private_key(ec.SECP256R1())
    key, pub = folder / f"{name}.key", folder / f"{name}.pub"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pub


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {"release": key_pair(folder, "release"), "stranger": key_pair(folder, "stranger")}


def trust_in_staging(env: Env, public: Path) -> None:
    """staging takes signed artifacts only, from the key committed at .modelreg/release.pub."""
    (env.root / ".modelreg").mkdir(exist_ok=True)
    (env.root / ".modelreg" / "release.pub").write_bytes(public.read_bytes())
    config = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        config.replace(
            "  staging:\n    replicas: 1\n",
            "  staging:\n    replicas: 1\n    require_artifact_signature: true\n    artifact_key: "
            ".modelreg/release.pub\n",
        )
    )
    git(env.root, "add", ".modelreg", "modelreg.yaml")
    git(env.root, "commit", "-qm", "staging takes signed artifacts only")


def register(env: Env, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return modelreg(
        env.root,
        "register",
        "churn",
        str(path),
        "--no-inspect",
        "--card",
        str(signature_card(env.work)),
        *args,
    )


def remote_object(env: Env, md5: str) -> Path:
    return env.store / "files" / "md5" / md5[:2] / md5[2:]


def test_a_signed_register_commits_a_signature_model_signing_itself_accepts(
    env: Env, keys: dict
) -> None:
    key, pub = keys["release"]
    single = register(
        env, write_artifact(env.work / "one" / "model.pt", 1), "--key", str(key), "--json"
    )
    assert single.returncode == 0, single.stderr
    folder = register(
        env, write_model_dir(env.work / "bert", 2), "--sign-artifact", "--key", str(key)
    )
    assert folder.returncode == 0, folder.stderr
    assert "Artifact signed by key sha256:" in folder.stdout
    model = env.root / "models" / "churn"
    card = yaml.safe_load((model / "model.yaml").read_text())
    expected_id = json.loads(single.stdout)["signed_by"]["key"]
    assert card["artifact"]["signed_by"] == {"key": expected_id}
    assert git(env.root, "ls-tree", "--name-only", "churn@v2", "models/churn/").split() == [
        "models/churn/.gitignore",
        "models/churn/bert.dvc",
        "models/churn/model.sig",
        "models/churn/model.yaml",
    ]
    for tag, artifact in (("churn@v1", "model.pt"), ("churn@v2", "bert")):
        git(env.root, "checkout", "-q", tag, "--", "models/churn")
        subprocess.run(
            [str(Path(sys.executable).parent / "dvc"), "checkout", "-q"], cwd=env.root, check=True
        )
        stock = subprocess.run(
            [
                sys.executable,
                "-m",
                "model_signing",
                "verify",
                "key",
                str(model / artifact),
                "--signature",
                str(model / "model.sig"),
                "--public_key",
                str(pub),
            ],
            capture_output=True,
            text=True,
        )
        assert stock.returncode == 0 and "Verification succeeded" in stock.stdout, (
            stock.stdout + stock.stderr
        )
        wrong = subprocess.run(
            [
                sys.executable,
                "-m",
                "model_signing",
                "verify",
                "key",
                str(model / artifact),
                "--signature",
                str(model / "model.sig"),
                "--public_key",
                str(keys["stranger"][1]),
            ],
            capture_output=True,
            text=True,
        )
        assert "Verification succeeded" not in wrong.stdout
    git(env.root, "checkout", "-q", "HEAD", "--", "models/churn")
    # an unsigned version after a signed one carries no signature of its predecessor
    assert register(env, write_artifact(env.work / "three" / "model.pt", 3)).returncode == 0
    assert "model.sig" not in git(env.root, "ls-tree", "--name-only", "churn@v3", "models/churn/")
    assert not (model / "model.sig").exists()
    assert "signed_by" not in yaml.safe_load((model / "model.yaml").read_text())["artifact"]


def test_bad_signing_input_is_one_line_and_changes_nothing(
    env: Env, keys: dict, tmp_path: Path
) -> None:
    source = write_artifact(env.work / "m" / "model.pt", 1)
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    before = snapshot(env.root)
    for args, said in (
        (("--key", str(not_a_key)), "cannot use it to sign"),
        (("--key", str(keys["release"][1])), "cannot use it to sign"),  # a public key
        (("--sign-artifact",), "needs --key KEY, or an OIDC identity token"),
    ):
        result = modelreg(
            env.root,
            "register",
            "churn",
            str(source),
            "--no-inspect",
            *args,
            env={"SIGSTORE_ID_TOKEN": "", "ACTIONS_ID_TOKEN_REQUEST_URL": ""},
        )
        assert result.returncode == 1, result.stderr
        assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot(env.root) == before
    assert not list(env.store.rglob("*")) or all(
        p.is_dir() for p in env.store.rglob("*")
    )  # nothing pushed


def test_only_the_trusted_key_over_the_remote_bytes_deploys(env: Env, keys: dict) -> None:
    release, stranger = keys["release"], keys["stranger"]
    assert (
        register(env, write_artifact(env.work / "a" / "model.pt", 1)).returncode == 0
    )  # v1 unsigned
    assert (
        register(
            env, write_artifact(env.work / "b" / "model.pt", 2), "--key", str(stranger[0])
        ).returncode
        == 0
    )
    assert (
        register(
            env, write_artifact(env.work / "c" / "model.pt", 3), "--key", str(release[0])
        ).returncode
        == 0
    )
    assert (
        register(
            env, write_artifact(env.work / "d" / "model.pt", 4), "--key", str(release[0])
        ).returncode
        == 0
    )
    trust_in_staging(env, release[1])
    registry = env.registry
    before = snapshot(env.root)
    with pytest.raises(
        ModelregError,
        match=r"\[artifact signed\] staging requires a signed artifact and churn@v1 has none",
    ):
        deploy(registry, "churn@v1", "staging")
    with pytest.raises(
        ModelregError,
        match=r"\[artifact signed\] the artifact signature is not valid for key sha256:",
    ):
        deploy(registry, "churn@v2", "staging")
    assert snapshot(env.root) == before
    landed = deploy(registry, "churn@v3", "staging")
    assert [(g["gate"], g["passed"]) for g in landed.gates] == [
        ("servable", True),
        ("artifact signed", True),
    ]
    deploy(registry, "churn@v4", "staging")
    # a rollback is held to it too: v1 was never live here, v3 was and is signed
    assert rollback(registry, "v3", "staging").version == "v3"

    # bytes swapped in the remote after signing: refused before anything is committed
    v4 = resolve(registry, "churn@v4")
    obj = remote_object(env, v4.pointer.md5)
    obj.chmod(0o644)
    obj.write_bytes(b"swapped" + obj.read_bytes()[7:])
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match=r"churn@v4: model.pt is corrupt in the remote"):
        deploy(
            env.registry, "churn@v4", "staging", DeployOptions(force=True)
        )  # force: it was rolled back
    assert snapshot(env.root) == before
    checked = {
        r.tag: r
        for r in verify(
            env.registry, [resolve(env.registry, t) for t in ("churn@v2", "churn@v3", "churn@v4")]
        )
    }
    assert checked["churn@v3"].state == "ok" and checked["churn@v3"].signature.startswith(
        "verified: key sha256:"
    )
    assert checked["churn@v2"].signature.startswith(
        "not checked: signed by key sha256:"
    )  # a stranger's
    assert checked["churn@v4"].state == "corrupt"
    named = modelreg(env.root, "verify", "churn@v2", "--public-key", str(release[1]), "--json")
    assert named.returncode == 1  # checked against the key named: a stranger's signature is invalid
    assert json.loads(named.stdout)[0]["state"] == "bad-signature"


def test_a_signature_of_other_bytes_is_refused_by_the_gate_verify_and_the_pod(
    env: Env, keys: dict, tmp_path: Path
) -> None:
    """A valid signature by the trusted key, replayed onto another version: the digests disagree."""
    release = keys["release"]
    assert (
        register(
            env, write_artifact(env.work / "a" / "model.pt", 1), "--key", str(release[0])
        ).returncode
        == 0
    )
    v1_sig = (env.root / "models/churn/model.sig").read_bytes()
    assert (
        register(
            env, write_artifact(env.work / "b" / "model.pt", 2), "--key", str(release[0])
        ).returncode
        == 0
    )
    (env.root / "models/churn/model.sig").write_bytes(
        v1_sig
    )  # v3 = v2's bytes under v1's signature
    git(env.root, "commit", "-qam", "replay v1's signature")
    git(env.root, "tag", "-a", "churn@v3", "-m", "Register churn@v3")
    trust_in_staging(env, release[1])
    with pytest.raises(
        ModelregError,
        match=r"the artifact's bytes do not match its signature \(\.: signed [0-9a-f]{12}, bytes "
        r"[0-9a-f]{12}\)",
    ):
        deploy(env.registry, "churn@v3", "staging")
    result = modelreg(env.root, "verify", "churn@v3", "--public-key", str(release[1]), "--json")
    assert result.returncode == 1
    (found,) = json.loads(result.stdout)
    assert found["state"] == "bad-signature" and found["signature"] == "invalid"
    assert "do not match its signature" in found["problems"][0]

    # the pod: the init container's arguments and the ConfigMap's files, from the rendered manifests
    landed = deploy(env.registry, "churn@v2", "staging")
    assert landed.commit is not None
    manifests = {
        name: list(yaml.safe_load_all(text))
        for name, text in landed_files(env, landed.commit).items()
    }
    (configmap,) = manifests["configmap.yaml"]
    card_dir = tmp_path / "etc-modelreg"
    card_dir.mkdir()
    for name, text in configmap["data"].items():
        (card_dir / name).write_text(text)
    assert (card_dir / "artifact.pub").read_bytes() == release[1].read_bytes()
    init = manifests["deployment.yaml"][0]["spec"]["template"]["spec"]["initContainers"][0]
    assert {"name": "card", "mountPath": "/etc/modelreg", "readOnly": True} in init["volumeMounts"]
    args = [
        a.replace("/etc/modelreg", str(card_dir)).replace("/models", str(tmp_path / "models"))
        for a in init["args"]
    ]
    assert args[args.index("--signature") + 1].endswith("model.sig")
    ok = subprocess.run(
        [MODELREG, "fetch", *args, "--json"], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["signed_by"].startswith("key sha256:")
    out = Path(args[args.index("--out") + 1])
    assert out.read_bytes() == (env.work / "b" / "model.pt").read_bytes()

    # the same pod with the replayed signature, or with a stranger's key: nothing at --out
    for name, replacement in (
        ("model.sig", v1_sig),
        ("artifact.pub", keys["stranger"][1].read_bytes()),
    ):
        kept = (card_dir / name).read_bytes()
        (card_dir / name).write_bytes(replacement)
        out.unlink(missing_ok=True)
        refused = subprocess.run(
            [MODELREG, "fetch", *args], capture_output=True, text=True, timeout=60
        )
        assert refused.returncode == 1, refused.stderr
        assert re.search(r"do not match its signature|not valid for key", refused.stderr), (
            refused.stderr
        )
        assert not out.exists() and not [
            p for p in out.parent.iterdir() if p.name.startswith(".modelreg")
        ]
        (card_dir / name).write_bytes(kept)


def landed_files(env: Env, commit: str) -> dict[str, str]:
    names = git(env.root, "ls-tree", "--name-only", f"{commit}:staging/churn").split()
    return {name: git(env.root, "show", f"{commit}:staging/churn/{name}") for name in names}


def test_trust_settings_are_checked(env: Env) -> None:
    config = (env.root / "modelreg.yaml").read_text()
    for settings, said in (
        ("require_artifact_signature: true", "name whom to trust"),
        ("artifact_key: ../outside.pub", "must be a path inside the registry"),
        ("artifact_identity: someone@example.com", "go together"),
    ):
        (env.root / "modelreg.yaml").write_text(
            config.replace(
                "  staging:\n    replicas: 1\n", f"  staging:\n    replicas: 1\n    {settings}\n"
            )
        )
        git(env.root, "commit", "-qam", "trust settings")
        result = modelreg(env.root, "list")
        assert result.returncode == 1 and said in result.stderr, result.stderr
