"""Signed releases with throwaway keys: `register --sign` with git's own settings (SSH, GPG), and an
environment with `require_signed: true` that deploys, promotes and rolls back only to versions an
allowed signer signed, recording who (Modelreg-Signer).

Invariant: nothing lands in a require_signed environment unless `git verify-tag` accepts its tag
from a signer listed in the registry's own commit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import Env, git, snapshot
from modelreg.deploy import deploy, rollback
from modelreg.errors import ModelregError
from modelreg.marks import PolicyChange
from modelreg.signing import verify
from modelreg.versions import resolve

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


def ssh_key(tmp: Path, name: str) -> tuple[Path, str]:
    key = tmp / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key, (tmp / f"{name}.pub").read_text().strip()


def commit_file(env: Env, rel: str, text: str) -> None:
    (env.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (env.root / rel).write_text(text)
    git(env.root, "add", rel)
    git(env.root, "commit", "-qm", f"edit {rel}")


def require_signed_staging(env: Env) -> None:
    config = (env.root / "modelreg.yaml").read_text()
    commit_file(
        env,
        "modelreg.yaml",
        config.replace(
            "  staging:\n    replicas: 1\n",
            "  staging:\n    replicas: 1\n    require_signed: true\n",
        ),
    )


@pytest.fixture
def keys(env: Env, tmp_path: Path) -> dict[str, Path]:
    alice, alice_pub = ssh_key(tmp_path, "alice")
    mallory, _ = ssh_key(tmp_path, "mallory")
    commit_file(
        env, ".modelreg/allowed_signers", f'alice@example.com namespaces="git" {alice_pub}\n'
    )
    git(env.root, "config", "gpg.format", "ssh")
    return {"alice": alice, "mallory": mallory}


def register_signed(env: Env, seed: int, key: Path | None) -> str:
    if key is not None:
        git(env.root, "config", "user.signingKey", str(key))
    return env.register("churn", seed, sign=key is not None).tag  # type: ignore[attr-defined]


def test_only_an_allowed_signer_deploys_to_a_signed_environment(
    env: Env, keys: dict[str, Path]
) -> None:
    unsigned = register_signed(env, 1, None)
    by_alice = register_signed(env, 2, keys["alice"])
    by_mallory = register_signed(env, 3, keys["mallory"])
    registry = env.registry
    assert (
        'Good "git" signature'
        in subprocess.run(
            [
                "git",
                "-c",
                f"gpg.ssh.allowedSignersFile={env.root / '.modelreg/allowed_signers'}",
                "verify-tag",
                by_alice,
            ],
            cwd=env.root,
            capture_output=True,
            text=True,
        ).stderr
    )  # an ordinary signed tag, as git sees it
    assert verify(registry, resolve(registry, by_alice).info).signer == "alice@example.com"
    require_signed_staging(env)
    registry = env.registry
    before = snapshot(env.root)
    with pytest.raises(
        ModelregError,
        match=r"churn@v1 may not go to staging: \[signed\] a signed version is required and "
        r"churn@v1 is not: nobody signed it",
    ):
        deploy(registry, unsigned, "staging")
    with pytest.raises(
        ModelregError, match="churn@v3 is not: signed by .* who is not an allowed signer"
    ):
        deploy(registry, by_mallory, "staging")
    assert snapshot(env.root) == before
    landed = deploy(registry, by_alice, "staging")
    assert landed.commit is not None
    message = git(env.root, "log", "-1", "--format=%B", landed.commit)
    assert "Modelreg-Signer: alice@example.com" in message
    assert (
        deploy(registry, by_alice, "prod", action="promote").version == "v2"
    )  # prod requires nothing signed


def test_a_rollback_is_held_to_the_signature_rule_too(env: Env, keys: dict[str, Path]) -> None:
    register_signed(env, 1, None)
    register_signed(env, 2, keys["alice"])
    deploy(env.registry, "churn@v1", "staging")
    deploy(env.registry, "churn@v2", "staging")
    require_signed_staging(env)
    with pytest.raises(
        ModelregError, match=r"\[signed\] a signed version is required and churn@v1 is not"
    ):
        rollback(env.registry, "v1", env="staging")


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_a_gpg_signed_tag_from_an_allowed_fingerprint(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Release Bot <bot@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        ["gpg", "--with-colons", "--list-secret-keys"], capture_output=True, text=True
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    git(env.root, "config", "user.signingKey", fingerprint)
    tag = env.register("churn", 1, sign=True).tag  # type: ignore[attr-defined]
    require_signed_staging(env)
    with pytest.raises(ModelregError, match="who is not an allowed signer"):
        deploy(env.registry, tag, "staging")
    commit_file(env, ".modelreg/allowed_gpg", f"# release bot\n{fingerprint}\n")
    landed = deploy(env.registry, tag, "staging")
    assert landed.commit is not None
    assert f"Modelreg-Signer: {fingerprint}" in git(
        env.root, "log", "-1", "--format=%B", landed.commit
    )
    assert "-----BEGIN PGP SIGNATURE-----" in git(
        env.root, "cat-file", "tag", tag
    )  # a GPG signature, not SSH


def test_approvals_by_distinct_allowed_signers_other_than_the_author(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.marks import approve

    keys = {name: ssh_key(tmp_path, name) for name in ("alice", "bob", "author")}
    signers = "".join(
        f'{name}@example.com namespaces="git" {pub}\n' for name, (_, pub) in keys.items()
    )
    commit_file(env, ".modelreg/allowed_signers", signers)
    config = (env.root / "modelreg.yaml").read_text()
    commit_file(
        env,
        "modelreg.yaml",
        config.replace(
            "    requires: staging       # a version must have been live in staging first\n",
            "    requires: staging\n    approvals: 2\n",
        ),
    )
    git(env.root, "config", "gpg.format", "ssh")
    tag = env.register("churn", 1).tag  # type: ignore[attr-defined]  # tagged by author@example.com
    deploy(env.registry, tag, "staging")

    def as_person(name: str) -> PolicyChange:
        for role in ("AUTHOR", "COMMITTER"):
            monkeypatch.setenv(f"GIT_{role}_NAME", name.title())
            monkeypatch.setenv(f"GIT_{role}_EMAIL", f"{name}@example.com")
        git(env.root, "config", "user.signingKey", str(keys[name][0]))
        return approve(env.registry, tag, "prod")

    with pytest.raises(ModelregError, match="prod requires 2 approvals of churn@v1 and it has 0"):
        deploy(env.registry, tag, "prod", action="promote")
    first = as_person("alice")
    assert first.commit is not None
    assert "-----BEGIN SSH SIGNATURE-----" in git(env.root, "cat-file", "commit", first.commit)
    assert as_person("alice").noop  # type: ignore[attr-defined]
    as_person("author")
    with pytest.raises(
        ModelregError,
        match=r"has 1: alice@example.com \(not counted: author@example.com is the tag's author\)",
    ):
        deploy(env.registry, tag, "prod", action="promote")
    as_person("bob")
    promoted = deploy(env.registry, tag, "prod", action="promote")
    assert [(g["gate"], g["passed"]) for g in promoted.gates] == [
        ("servable", True),
        ("requires staging", True),
        ("approvals 2", True),
    ]
    assert "alice@example.com, bob@example.com" in promoted.gates[2]["detail"]


def test_every_failed_gate_is_listed_at_once(env: Env, keys: dict[str, Path]) -> None:
    config = (env.root / "modelreg.yaml").read_text()
    commit_file(
        env,
        "modelreg.yaml",
        config.replace(
            "    requires: staging       # a version must have been live in staging first\n",
            "    requires: staging\n    soak: 1h\n    approvals: 1\n    require_signed: true\n",
        ),
    )
    tag = register_signed(env, 1, None)
    before = snapshot(env.root)
    with pytest.raises(ModelregError) as failure:
        deploy(env.registry, tag, "prod", action="promote")
    message = str(failure.value)
    for gate in (
        "[requires staging]",
        "[soak 1h]",
        "[approvals 1]",
        "[signed] a signed version is required",
    ):
        assert gate in message
    assert snapshot(env.root) == before
