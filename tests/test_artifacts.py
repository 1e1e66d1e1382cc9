"""Artifacts you can trust: verify and pull against a real local remote and moto's S3 server,
deploy refusing missing bytes, unsafe pickles refused, unchanged bytes stored once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import Env, snapshot, write_artifact, write_model_dir
from modelreg.cli.main import cli
from modelreg.deploy import DeployOptions, deploy
from modelreg.errors import ModelregError
from modelreg.register import RegisterRequest, register
from modelreg.remote import pull, verify
from modelreg.remote_config import add_remote
from modelreg.store import object_url
from modelreg.versions import resolve


def remote_objects(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file())


def damage(path: Path, data: bytes | None) -> None:
    path.chmod(0o644)
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)


def test_verify_finds_deleted_and_corrupt_objects(env: Env) -> None:
    env.register("churn", 1)
    env.register("churn", 2)
    registry = env.registry
    assert [
        r.state
        for r in verify(
            registry, [resolve(registry, "churn@v1"), resolve(registry, "churn@v2")], deep=True
        )
    ] == ["ok", "ok"]
    damage(Path(object_url(str(env.store), resolve(registry, "churn@v1").pointer.md5)), None)
    damage(Path(object_url(str(env.store), resolve(registry, "churn@v2").pointer.md5)), b"bit rot")
    result = CliRunner().invoke(cli, ["-C", str(env.root), "verify", "--all", "--json"])
    assert result.exit_code == 1
    import json

    states = {r["tag"]: r for r in json.loads(result.stdout)}
    assert states["churn@v1"]["state"] == "missing" and states["churn@v2"]["state"] == "corrupt"
    assert "md5" in states["churn@v2"]["problems"][0]


def test_deploy_refuses_a_missing_artifact_unless_allowed(env: Env) -> None:
    env.register("churn", 1)
    registry = env.registry
    damage(Path(object_url(str(env.store), resolve(registry, "churn@v1").pointer.md5)), None)
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match="not in the DVC remote"):
        deploy(registry, "churn@v1", "staging")
    assert snapshot(env.root) == before
    forced = deploy(registry, "churn@v1", "staging", DeployOptions(allow_missing=True))
    assert forced.commit and "pods will fail" in forced.warnings[0]


def test_pull_a_file_and_a_directory_from_the_remote(env: Env, tmp_path: Path) -> None:
    env.register("churn", 1)
    register(env.registry, RegisterRequest("llm", write_model_dir(env.work / "llm-model", 4)))
    (env.root / ".dvc" / "cache").rename(
        tmp_path / "cache-aside"
    )  # proves the bytes come from the remote
    pulled = pull(env.registry, resolve(env.registry, "churn"), tmp_path / "out" / "model.pt")
    assert Path(pulled.path).read_bytes() == (env.work / "churn-1/model.pt").read_bytes()
    folder = pull(env.registry, resolve(env.registry, "llm"), tmp_path / "llm")
    assert (
        folder.files == 3
        and (tmp_path / "llm/weights/shard-1.bin").read_bytes()
        == (env.work / "llm-model/weights/shard-1.bin").read_bytes()
    )


def test_pull_of_a_corrupt_object_leaves_nothing(env: Env, tmp_path: Path) -> None:
    env.register("churn", 1)
    damage(
        Path(object_url(str(env.store), resolve(env.registry, "churn").pointer.md5)), b"x" * 4096
    )
    with pytest.raises(ModelregError, match="corrupt in the remote"):
        pull(env.registry, resolve(env.registry, "churn"), tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".modelreg-pull-")]


class Exploit:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(env: Env, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from modelreg.formats import inspect_artifact

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": Exploit(marker)}, evil)
    assert not marker.exists()
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match="refused to load"):
        register(env.registry, RegisterRequest("churn", evil), inspect=inspect_artifact)
    assert not marker.exists() and snapshot(env.root) == before
    with open(evil, "rb") as handle:  # the file really is an exploit: plain unpickling would run it
        assert b"system" in handle.read()


def test_inspection_records_formats(env: Env, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from modelreg.formats import inspect_artifact

    model = torch.nn.Linear(4, 3)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.jit.script(model).save(str(tmp_path / "ts.pt"))
    save_file({"w": torch.zeros(3, 4, dtype=torch.float16)}, str(tmp_path / "w.safetensors"))
    assert inspect_artifact(tmp_path / "sd.pt") | {"torch_version": "-"} == {
        "format": "state_dict",
        "tensors": 2,
        "parameters": 15,
        "dtypes": ["float32"],
        "tensor_bytes": 60,
        "torch_version": "-",
    }
    assert inspect_artifact(tmp_path / "ts.pt")["format"] == "torchscript"
    assert inspect_artifact(tmp_path / "w.safetensors")["dtypes"] == ["f16"]
    assert inspect_artifact(tmp_path / "w.safetensors")["parameters"] == 12


def test_unchanged_bytes_are_stored_once(env: Env) -> None:
    env.register("churn", 1)
    objects = remote_objects(env.store)
    again = write_artifact(env.work / "same" / "model.pt", 1)
    register(env.registry, RegisterRequest("churn", again))
    assert remote_objects(env.store) == objects
    register(env.registry, RegisterRequest("llm", write_model_dir(env.work / "a" / "llm", 1)))
    before = remote_objects(env.store)
    changed = write_model_dir(env.work / "b" / "llm", 1)
    write_artifact(changed / "config.json", 99, 64)  # one file of three changes
    register(env.registry, RegisterRequest("llm", changed))
    added = sorted(set(remote_objects(env.store)) - set(before))
    assert len(added) == 2 and any(
        p.name.endswith(".dir") for p in added
    )  # the new file and the new listing


# --- S3, for real, against moto's server on 127.0.0.1 -------------------------------------------


def test_s3_register_verify_pull_and_deploy(env: Env, s3: str, tmp_path: Path) -> None:
    import boto3

    add_remote(env.registry, "s3://models/registry", endpoint_url=s3)
    result = env.register("churn", 1)
    md5 = result.pointer.md5  # type: ignore[attr-defined]
    key = f"registry/files/md5/{md5[:2]}/{md5[2:]}"
    client = boto3.client("s3", endpoint_url=s3)
    data = (env.work / "churn-1/model.pt").read_bytes()
    assert client.get_object(Bucket="models", Key=key)["Body"].read() == data
    registry = env.registry
    assert verify(registry, [resolve(registry, "churn")], deep=True)[0].state == "ok"
    assert (
        Path(pull(registry, resolve(registry, "churn"), tmp_path / "m.pt").path).read_bytes()
        == data
    )
    rendered = deploy(registry, "churn@v1", "staging")
    assert rendered.commit
    from modelreg.render import render

    kinds = {o["kind"]: o for o in render(registry, resolve(registry, "churn"), "staging").objects}
    args = kinds["Deployment"]["spec"]["template"]["spec"]["initContainers"][0]["args"]
    assert args[args.index("--url") + 1] == f"s3://models/{key}"
    client.put_object(Bucket="models", Key=key, Body=b"corrupt")
    assert verify(registry, [resolve(registry, "churn")])[0].state == "corrupt"
    client.delete_object(Bucket="models", Key=key)
    assert verify(registry, [resolve(registry, "churn")])[0].state == "missing"
    with pytest.raises(ModelregError, match="not in the DVC remote"):
        deploy(registry, "churn@v1", "prod", DeployOptions(force=True))
    assert hashlib.sha256(data).hexdigest() == resolve(registry, "churn").card["artifact"]["sha256"]


def test_deploy_checks_a_plain_remote_without_importing_dvc(env: Env) -> None:
    import subprocess
    import sys

    env.register("churn", 1)
    script = (
        "import sys\nfrom modelreg.deploy import deploy\nfrom modelreg.handle import "
        "open_registry\n"
        f"print(deploy(open_registry({str(env.root)!r}), 'churn@v1', 'staging').version, 'dvc' in "
        "sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["v1", "False"], done.stderr
    from modelreg.remote import light_store

    assert light_store(env.registry) is not None
    (env.root / ".dvc" / "config.local").write_text(
        "['remote \"storage\"']\n    ssh_key_file = /nonexistent\n"
    )
    assert light_store(env.registry) is None  # a setting only DVC knows: DVC answers
