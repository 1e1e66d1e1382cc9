"""Moving bytes: the push is a hard link (or one copy) into a directory remote, register and deploy
need no dvc import for a plain remote, and an interrupted download resumes where it stopped.

Invariants: whatever a kill interrupts, `--out` holds either nothing or the verified artifact; a
re-run after a kill reads from the remote only the bytes it lacks; bytes kept from before are hashed
again, never trusted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import MODELREG, Env, modelreg, signature_card, write_model_dir
from modelreg.digest import CHUNK
from modelreg.remote_config import add_remote
from modelreg.store import object_url
from modelreg.versions import resolve


def big_artifact(env: Env, name: str = "model.pt") -> Path:
    path = env.work / "big" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        os.urandom(2 * CHUNK + 12345)
    )  # three chunks: a kill after the first leaves a part
    return path


def fetch(
    found, base: str, out: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            MODELREG,
            "fetch",
            "--url",
            object_url(base, found.pointer.md5),
            "--md5",
            found.pointer.md5,
            "--sha256",
            found.card["artifact"]["sha256"],
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".modelreg-partial-" in p.name]


@pytest.mark.parametrize("remote", ["local", "s3"])
def test_an_interrupted_fetch_resumes_where_it_stopped(
    env: Env, tmp_path: Path, remote: str, request: pytest.FixtureRequest
) -> None:
    base, environ = str(env.store), {}
    if remote == "s3":
        endpoint = request.getfixturevalue("s3")
        add_remote(env.registry, "s3://models/registry", endpoint_url=endpoint)
        base, environ = "s3://models/registry", {"AWS_ENDPOINT_URL": endpoint}
    source = big_artifact(env)
    assert modelreg(env.root, "register", "churn", str(source), "--no-inspect").returncode == 0
    found = resolve(env.registry, "churn@v1")
    out_dir = tmp_path / "pod"
    out = out_dir / "model.pt"
    killed = fetch(found, base, out, {**environ, "MODELREG_TEST_KILL_AFTER": "download-chunk"})
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    (kept,) = partials(out_dir)
    assert kept.stat().st_size == CHUNK
    again = fetch(found, base, out, environ)
    assert again.returncode == 0, again.stderr
    assert f"resumed at byte {CHUNK}" in again.stderr
    assert out.read_bytes() == source.read_bytes()
    assert partials(out_dir) == []


def test_kept_bytes_are_hashed_again_and_a_bad_part_is_dropped(env: Env, tmp_path: Path) -> None:
    source = big_artifact(env)
    assert modelreg(env.root, "register", "churn", str(source), "--no-inspect").returncode == 0
    found = resolve(env.registry, "churn@v1")
    out = tmp_path / "pod" / "model.pt"
    assert (
        fetch(found, str(env.store), out, {"MODELREG_TEST_KILL_AFTER": "download-chunk"}).returncode
        == -signal.SIGKILL
    )
    (kept,) = partials(out.parent)
    kept.write_bytes(b"x" * CHUNK)  # the part on disk changed meanwhile
    refused = fetch(found, str(env.store), out)
    assert refused.returncode == 1 and "corrupt in the remote" in refused.stderr
    assert partials(out.parent) == [] and not out.exists()
    assert fetch(found, str(env.store), out).returncode == 0
    assert out.read_bytes() == source.read_bytes()


def test_an_interrupted_pull_of_a_folder_resumes_too(env: Env, tmp_path: Path) -> None:
    folder = write_model_dir(env.work / "llm", 1)
    (folder / "weights" / "shard-2.bin").write_bytes(os.urandom(2 * CHUNK))
    assert modelreg(env.root, "register", "llm", str(folder), "--no-inspect").returncode == 0
    out = tmp_path / "pulled"
    killed = modelreg(
        env.root, "pull", "llm", "-o", str(out), env={"MODELREG_TEST_KILL_AFTER": "download-chunk"}
    )
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    again = modelreg(env.root, "pull", "llm", "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files"] == 4
    for path in folder.rglob("*"):
        if path.is_file():
            assert (out / path.relative_to(folder)).read_bytes() == path.read_bytes()
    assert partials(tmp_path) == []


def test_a_directory_remote_gets_a_link_not_a_copy(env: Env) -> None:
    """On the cache's filesystem the push costs no write: the remote object is the cache's inode."""
    source = big_artifact(env)
    assert modelreg(env.root, "register", "churn", str(source), "--no-inspect").returncode == 0
    found = resolve(env.registry, "churn@v1")
    remote_object = Path(object_url(str(env.store), found.pointer.md5))
    cache_object = (
        env.root
        / ".dvc"
        / "cache"
        / "files"
        / "md5"
        / found.pointer.md5[:2]
        / found.pointer.md5[2:]
    )
    assert remote_object.stat().st_ino == cache_object.stat().st_ino
    assert (
        oct(remote_object.stat().st_mode & 0o777) == "0o444"
    )  # read-only, as DVC keeps its objects
    assert (
        env.root / "models" / "churn" / "model.pt"
    ).stat().st_ino != cache_object.stat().st_ino  # a copy


def imported(root: Path, *args: str) -> set[str]:
    code = (
        "import sys\nfrom modelreg.cli.main import cli\n"
        "try:\n    cli.main(args=sys.argv[1:], prog_name='modelreg')\nexcept SystemExit as exc:\n  "
        "  code = exc.code\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {m.split(".")[0] for m in done.stderr.split()}


def test_register_deploy_and_pull_need_no_dvc_import_with_a_directory_remote(
    env: Env, tmp_path: Path
) -> None:
    source = big_artifact(env)
    assert "dvc" not in imported(
        env.root,
        "register",
        "churn",
        str(source),
        "--no-inspect",
        "--card",
        str(signature_card(env.work)),
    )
    assert "dvc" not in imported(env.root, "deploy", "churn@v1", "--env", "staging")
    assert "dvc" not in imported(env.root, "pull", "churn", "-o", str(tmp_path / "m.pt"))
    assert (tmp_path / "m.pt").read_bytes() == source.read_bytes()
