"""Signed releases: tags signed with whatever git is set to use (SSH or GPG), checked with
`git verify-tag` against the registry's allowed signers.

The allowed signers live beside modelreg.yaml and are read as policy is (the default branch as the
origin has it, see settings.py): `.modelreg/allowed_signers` in git's SSH format (`principal
namespaces="git" ssh-ed25519 AAAA...`) and `.modelreg/allowed_gpg`, one GPG fingerprint per line
(the keys themselves in the verifier's keyring). Protect the default branch that holds them as you
protect modelreg.yaml.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg import git
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.versions import VersionInfo

ALLOWED_SSH = ".modelreg/allowed_signers"
ALLOWED_GPG = ".modelreg/allowed_gpg"


def sign_tag_object(root: Path, name: str, commit: str, message: str) -> str:
    """A signed annotated tag object NAME for COMMIT, written into ROOT's object store with no ref.

    `git tag -s` signs with the user's own configuration (gpg.format, user.signingKey, ...), but it
    also creates a ref: it runs in a scratch repository that borrows ROOT's objects (alternates) and
    the signed object is copied back byte for byte, so the tag ref lands in register's one
    transaction like an unsigned one."""
    settings = git.run_git(
        "config", "--get-regexp", r"^(user|gpg|tag)\.", cwd=root, check=False
    ).splitlines()
    options = [
        arg for line in settings if " " in line for arg in ("-c", "=".join(line.split(" ", 1)))
    ]
    objects = git.common_dir(root) / "objects"
    with tempfile.TemporaryDirectory(prefix="modelreg-sign-") as tmp:
        scratch = Path(tmp) / "scratch.git"
        git.run_git("init", "-q", "--bare", str(scratch), cwd=tmp)
        (scratch / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        try:
            git.run_git(
                "--git-dir",
                str(scratch),
                *options,
                "tag",
                "-s",
                "-F",
                "-",
                name,
                commit,
                cwd=tmp,
                input=message.encode(),
            )
        except ModelregError as exc:
            raise ModelregError(
                f"signing the tag failed ({exc}); check `git config gpg.format` and "
                "`git config user.signingKey`"
            ) from None
        tag_object = git.run_git_bytes(
            "--git-dir", str(scratch), "cat-file", "tag", f"refs/tags/{name}", cwd=tmp
        )
    return git.run_git(
        "hash-object", "-t", "tag", "-w", "--stdin", cwd=root, input=tag_object
    ).strip()


@dataclass(frozen=True)
class Signature:
    signer: str | None  # the allowed principal or GPG fingerprint; None: unsigned or not allowed
    detail: str  # what git said, in a line


def verify(registry: Registry, info: VersionInfo) -> Signature:
    """Who signed INFO's tag, when an allowed signer did (`git verify-tag`)."""
    if not info.annotated:
        return Signature(None, "a lightweight tag cannot be signed")
    signer, said = _signer(
        registry,
        "verify-tag",
        info.object,
        registry.policy_file(ALLOWED_SSH) or b"",
        _gpg_allowed(registry),
    )
    if signer is not None:
        return Signature(signer, said)
    if "no signature found" in said or not said:
        return Signature(None, "nobody signed it")
    who = re.search(r"(?:signature for|key|VALIDSIG|GOODSIG) (\S+)", said)
    return Signature(
        None,
        f"signed by {who.group(1) if who else 'someone'} who is not an allowed signer "
        f"({ALLOWED_SSH} / {ALLOWED_GPG} at {registry.policy.ref})",
    )


def commit_signer(registry: Registry, commit: str) -> str | None:
    """The allowed signer of a commit (`git verify-commit`), or None."""
    ssh_signers = registry.policy_file(ALLOWED_SSH) or b""
    gpg_allowed = _gpg_allowed(registry)
    return _signer(registry, "verify-commit", commit, ssh_signers, gpg_allowed)[0]


def _gpg_allowed(registry: Registry) -> set[str]:
    return {
        line.strip().upper().replace(" ", "")
        for line in (registry.policy_file(ALLOWED_GPG) or b"").decode().splitlines()
        if line.strip() and not line.startswith("#")
    }


def _signer(
    registry: Registry, command: str, obj: str, ssh_signers: bytes, gpg_allowed: set[str]
) -> tuple[str | None, str]:
    """(allowed signer or None, what git said) for `git verify-tag|verify-commit` of OBJ."""
    with tempfile.NamedTemporaryFile("wb", prefix="modelreg-signers-", delete=False) as handle:
        handle.write(ssh_signers)
    try:
        proc = git.run_git_result(
            "-c",
            f"gpg.ssh.allowedSignersFile={handle.name}",
            command,
            "--raw",
            obj,
            cwd=registry.root,
            timeout=60,
        )
    finally:
        os.unlink(handle.name)
    said = " ".join((proc.stderr or proc.stdout).split())
    ssh = re.search(r'Good "git" signature for (\S+) with', said)
    if proc.returncode == 0 and ssh:
        return ssh.group(1), said
    gpg = re.search(r"\[GNUPG:\] VALIDSIG ([0-9A-F]{40})", proc.stderr or "")
    if proc.returncode == 0 and gpg and gpg.group(1) in gpg_allowed:
        return gpg.group(1), said
    return None, said


def approvals(
    registry: Registry, records: list[Any], info: VersionInfo, env: str
) -> tuple[list[str], list[str]]:
    """(distinct allowed signers who approved INFO for ENV, excluding the tag's author; why
    others do not count)."""
    author = info.author.rsplit("<", 1)[-1].rstrip(">").strip().lower()
    counted: list[str] = []
    ignored: list[str] = []
    for record in records:
        if (
            record.action != "approve"
            or record.env != env
            or record.model != info.model
            or record.version != str(info.version)
        ):
            continue
        if record.tag_object and record.tag_object != info.object:
            ignored.append(f"{record.commit[:8]} approved another object of the tag")
            continue
        signer = commit_signer(registry, record.commit)
        if signer is None:
            ignored.append(
                f"{record.commit[:8]} ({record.author}) is not signed by an allowed signer"
            )
        elif signer.lower() == author:
            ignored.append(f"{signer} is the tag's author")
        elif signer not in counted:
            counted.append(signer)
    return sorted(counted), ignored
