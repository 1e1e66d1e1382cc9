"""The image, run as the rendered pod runs it (`make image-test`; skipped unless MODELREG_IMAGE is
set).

The init container's command and arguments and the server's come from the rendered Deployment, byte
for byte, and so do their security settings (user, read-only root, no capabilities, no new
privileges, /tmp an emptyDir); the container fetches from a local directory remote and from an S3
(moto) remote on 127.0.0.1, then serves, and the host sends an inference. podman is driven from the
pod spec rather than with `podman kube play`: this machine's podman 4.3 has been seen to fail
removing a finished init container, and a restart of one container is what the test needs to
control. Invariant: what answers is the version the manifests name, with the SHA-256 the card names,
after each restart too."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import Env, free_port
from modelreg.register import RegisterRequest, register
from modelreg.remote_config import add_remote
from modelreg.render import render
from modelreg.versions import resolve

IMAGE = os.environ.get("MODELREG_IMAGE")
CONTAINER = os.environ.get("MODELREG_CONTAINER", "podman")
pytestmark = pytest.mark.skipif(
    not IMAGE, reason="set MODELREG_IMAGE (make image-test) to run the image"
)


def container(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONTAINER, *args], capture_output=True, text=True, timeout=timeout)


def registered(env: Env) -> None:
    import torch

    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    source = env.work / "model.pt"
    torch.jit.script(model).save(str(source))
    card = env.work / "card.yaml"
    card.write_text(
        yaml.safe_dump(
            {
                "signature": {
                    "inputs": [{"name": "features", "shape": [-1, 4], "dtype": "float32"}],
                    "outputs": [{"name": "logits", "shape": [-1, 2], "dtype": "float32"}],
                }
            }
        )
    )
    register(env.registry, RegisterRequest("churn", source, card_file=card))


def pod(env: Env) -> tuple[dict, dict, dict, dict]:
    objects = {
        o["kind"]: o
        for o in render(env.registry, resolve(env.registry, "churn@v1"), "staging").objects
    }
    spec = objects["Deployment"]["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"] == spec["containers"][0]["image"] == IMAGE
    return spec["initContainers"][0], spec["containers"][0], objects["ConfigMap"], spec


def security(spec: dict, box: dict) -> list[str]:
    """podman flags for what the pod's and the container's securityContext say, as a kubelet applies
    them: the user and group, a read-only root, no capabilities, no new privileges, the runtime's
    default seccomp profile (podman's default), emptyDirs the spec mounts at /tmp as a tmpfs. Each
    setting is required here: a template that drops one fails this test."""
    pod_ctx, ctx = spec["securityContext"], box["securityContext"]
    assert (
        pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        and spec["automountServiceAccountToken"] is False
    )
    assert (
        ctx["runAsNonRoot"]
        and ctx["allowPrivilegeEscalation"] is False
        and ctx["capabilities"] == {"drop": ["ALL"]}
    )
    assert ctx["readOnlyRootFilesystem"] is True
    tmp = {m["name"]: m["mountPath"] for m in box["volumeMounts"]}.get("tmp")
    assert tmp == "/tmp" and {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in spec["volumes"]
    return [
        "--user",
        f"{ctx['runAsUser']}:{ctx['runAsGroup']}",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "--tmpfs",
        "/tmp:rw,size=1g,mode=1777",
        *[f"--env={e['name']}={e['value']}" for e in box.get("env", [])],
    ]


@pytest.mark.parametrize("remote", ["local", "s3"])
def test_the_rendered_pod_fetches_serves_and_answers(
    env: Env, tmp_path: Path, remote: str, request: pytest.FixtureRequest
) -> None:
    """The pod with its security settings; then what a cluster does to it: the server container
    killed and started again, the init container run again over the same volume (nothing downloaded:
    the store is not even mounted), and the whole pod played again."""
    environ: list[str] = []
    if remote == "s3":
        endpoint = request.getfixturevalue("s3")
        add_remote(env.registry, "s3://models/registry", endpoint_url=endpoint)
        environ = [
            f"--env=AWS_ENDPOINT_URL={endpoint}",
            "--env=AWS_ACCESS_KEY_ID=testing",
            "--env=AWS_SECRET_ACCESS_KEY=testing",
            "--env=AWS_DEFAULT_REGION=us-east-1",
        ]
    registered(env)
    init, server, configmap, spec = pod(env)
    models, card = tmp_path / "models", tmp_path / "card"
    models.mkdir()
    os.chown(
        models, spec["securityContext"]["runAsUser"], spec["securityContext"]["fsGroup"]
    )  # what fsGroup does
    card.mkdir()
    (card / "model.yaml").write_text(configmap["data"]["model.yaml"])
    store = ["-v", f"{env.store}:{env.store}:ro"]
    fetched = container(
        "run",
        "--rm",
        *security(spec, init),
        *store,
        *environ,
        "-v",
        f"{models}:/models",
        init["image"],
        *init["command"],
        *init["args"],
    )
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "verified" in fetched.stdout + fetched.stderr
    port = free_port()
    args = [str(port) if a == "8080" else a for a in server["args"]]
    name = f"modelreg-test-{port}"
    started = container(
        "run",
        "-d",
        "--name",
        name,
        *security(spec, server),
        "-v",
        f"{models}:/models:ro",
        "-v",
        f"{card}:/etc/modelreg:ro",
        server["image"],
        *server["command"],
        *args,
    )
    assert started.returncode == 0, started.stderr
    sha = resolve(env.registry, "churn@v1").card["artifact"]["sha256"]
    try:
        check_answers(port, sha)
        assert (
            container("kill", name).returncode == 0
        )  # the server container dies: the kubelet starts it again
        container("wait", name, timeout=60)
        assert container("start", name).returncode == 0
        check_answers(port, sha)
        assert (
            container("stop", "-t", "30", name).returncode == 0
        )  # the pod sandbox restarts: init runs again
        again = container(
            "run",
            "--rm",
            *security(spec, init),
            *environ,
            "-v",
            f"{models}:/models",
            init["image"],
            *init["command"],
            *init["args"],
        )
        assert (
            again.returncode == 0
            and "already holds the registered bytes" in again.stdout + again.stderr
        ), again.stdout + again.stderr
        assert container("start", name).returncode == 0
        check_answers(port, sha)
    finally:
        shown = container("logs", name)
        logs = shown.stdout + shown.stderr
        container("rm", "-f", name)
    assert logs.count("Serving churn@v1") == 3, logs


def check_answers(port: int, sha: str) -> None:
    answer = infer_when_ready(port)
    assert answer["model_name"] == "churn" and answer["model_version"] == "v1"
    assert answer["outputs"][0]["shape"] == [1, 2]
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert f'sha256="{sha}"' in metrics


def test_the_rendered_init_container_checks_the_artifact_signature(
    env: Env, tmp_path: Path
) -> None:
    """With require_artifact_signature, the init container checks the signature against the key the
    ConfigMap carries: the trusted key lets the bytes in, another key leaves /models empty."""
    pytest.importorskip("model_signing")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = {}
    for name in ("release", "stranger"):
        private = ec.generate_private_key(ec.SECP256R1())
        keys[name] = (
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
    (env.root / ".modelreg").mkdir()
    (env.root / ".modelreg" / "release.pub").write_bytes(keys["release"][1])
    config = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        config.replace(
            "  staging:\n    replicas: 1\n",
            "  staging:\n    replicas: 1\n    require_artifact_signature: true\n    artifact_key: "
            ".modelreg/release.pub\n",
        )
    )
    subprocess.run(["git", "add", "-A"], cwd=env.root, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "signed artifacts in staging"], cwd=env.root, check=True
    )
    key = tmp_path / "release.key"
    key.write_bytes(keys["release"][0])
    source = env.work / "model.pt"
    source.write_bytes(os.urandom(50_000))
    register(env.registry, RegisterRequest("churn", source, sign_artifact=True, key=key))
    init, _, configmap, spec = pod(env)
    assert (
        "--signature" in init["args"]
        and {"name": "card", "mountPath": "/etc/modelreg", "readOnly": True} in init["volumeMounts"]
    )
    card = tmp_path / "card"
    card.mkdir()
    for name, text in configmap["data"].items():
        (card / name).write_text(text)
    for trusted, expected in ((keys["release"][1], 0), (keys["stranger"][1], 1)):
        (card / "artifact.pub").write_bytes(trusted)
        models = tmp_path / f"models-{expected}"
        models.mkdir()
        os.chown(models, spec["securityContext"]["runAsUser"], spec["securityContext"]["fsGroup"])
        fetched = container(
            "run",
            "--rm",
            *security(spec, init),
            "-v",
            f"{env.store}:{env.store}:ro",
            "-v",
            f"{models}:/models",
            "-v",
            f"{card}:/etc/modelreg:ro",
            init["image"],
            *init["command"],
            *init["args"],
        )
        said = fetched.stdout + fetched.stderr
        assert fetched.returncode == expected, said
        if expected == 0:
            assert "signature by key sha256:" in said
            assert (models / "model.pt").read_bytes() == source.read_bytes()
        else:
            assert "not valid for key" in said and list(models.iterdir()) == []


def infer_when_ready(port: int) -> dict:
    body = json.dumps(
        {
            "inputs": [
                {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
            ]
        }
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5)
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v2/models/churn/infer",
                data=body.encode(),
                headers={"content-type": "application/json"},
            )
            return json.loads(urllib.request.urlopen(req, timeout=30).read())
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "the container did not answer within 120 s"
            time.sleep(0.5)
