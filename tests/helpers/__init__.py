"""Test helpers: real git repos, real DVC, a real local-directory DVC remote; nothing of git or
DVC is mocked. The fixtures here are registered by conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelreg.handle import Registry, open_registry
from modelreg.init import init
from modelreg.register import RegisterRequest, Registration, register


@pytest.fixture(autouse=True, scope="session")
def isolated_git(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One HOME, git config and identity for the whole run; no system config, no hooks templates."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text(
        "[user]\n\tuseConfigOnly = true\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead "
        "= false\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    templates = tmp_path_factory.mktemp("git-template")
    os.environ.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TEMPLATE_DIR": str(templates),
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+0000",
            "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+0000",
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),
        }
    )
    os.environ.pop("MODELREG_DEBUG", None)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ("git",) + args, cwd=root, check=True, capture_output=True, text=True
    ).stdout


def write_artifact(path: Path, seed: int, size: int = 4096) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((seed * 31 + i * 7) % 251 for i in range(size)))
    return path


def write_model_dir(path: Path, seed: int) -> Path:
    write_artifact(path / "config.json", seed, 64)
    write_artifact(path / "weights" / "shard-0.bin", seed, 2048)
    write_artifact(path / "weights" / "shard-1.bin", 1000 + seed, 2048)
    return path


@dataclass
class Env:
    root: Path
    store: Path
    origin: Path
    work: Path

    @property
    def registry(self) -> Registry:
        return open_registry(self.root)

    def register(self, name: str, seed: int, **kwargs: Any) -> Registration:
        source = write_artifact(self.work / f"{name}-{seed}" / "model.pt", seed)
        kwargs.setdefault("card_file", signature_card(self.work))
        return register(self.registry, RegisterRequest(name=name, path=source, **kwargs))


SIGNATURE = (
    "signature:\n  inputs:\n    - {name: x, dtype: float32, shape: [-1, 4]}\n"
    "  outputs:\n    - {name: y, dtype: float32, shape: [-1, 2]}\n"
)


def signature_card(folder: Path) -> Path:
    """A card file with the input/output signature modelreg's server needs (the servable gate)."""
    path = folder / "signature-card.yaml"
    if not path.exists():
        path.write_text(SIGNATURE)
    return path


def snapshot(root: Path) -> dict[str, str]:
    """Everything an error must leave as it was: status (with untracked), tags, branches, HEAD."""
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--ignored").splitlines()
    return {
        # DVC's cache is content-addressed scratch, not repo state: an object left there is harmless
        "status": "\n".join(line for line in status if not line.startswith("!! .dvc/")),
        "refs": git(root, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(root, "rev-parse", "HEAD"),
    }


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """A registry cloned from a bare origin, with a local-directory DVC remote and default model
    churn."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    root = tmp_path / "registry"
    subprocess.run(["git", "clone", "-q", str(origin), str(root)], check=True, capture_output=True)
    store = tmp_path / "dvc-remote"
    store.mkdir()
    init(root, remote=str(store), default_model="churn")
    work = tmp_path / "work"
    work.mkdir()
    return Env(root=root, store=store, origin=origin, work=work)


MODELREG = str(Path(sys.executable).parent / "modelreg")


def modelreg(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The installed `modelreg` command in a process of its own (for races and kills)."""
    return subprocess.run(
        [MODELREG, "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MODELREG, "-C", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def clone(origin: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True, capture_output=True)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pytest.importorskip("dvc_s3")
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as error:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from error
                time.sleep(0.1)
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="models")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
