"""modelreg serve and modelreg fetch, for real: a server process on 127.0.0.1 answering a stock Open
Inference Protocol client (tritonclient.http) and plain HTTP; fetch from a local and a moto S3
remote.

Invariants: every endpoint answers per the protocol with model_version; a bad request is a 4xx with
{"error": ...}, never a 500; the server runs only bytes whose SHA-256 matches the card; a failed
fetch leaves nothing at its output path."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import MODELREG, Env, free_port, write_model_dir
from modelreg.deploy import deploy
from modelreg.register import RegisterRequest, register
from modelreg.remote_config import add_remote
from modelreg.store import object_url
from modelreg.versions import resolve

torch = pytest.importorskip("torch")
pytest.importorskip("kserve")

SIGNATURE = {
    "signature": {
        "inputs": [{"name": "features", "shape": [-1, 4], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [-1, 2], "dtype": "float32"}],
    }
}


def torchscript(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model).save(str(path))
    return path


def register_model(env: Env, seed: int) -> str:
    card = env.work / f"card-{seed}.yaml"
    card.write_text(yaml.safe_dump(SIGNATURE))
    source = torchscript(env.work / f"v{seed}" / "model.pt", seed)
    return register(env.registry, RegisterRequest("churn", source, card_file=card)).tag


class Server:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port, self.url = proc, port, f"http://127.0.0.1:{port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path,
            data=body,
            method=method,
            headers={"content-type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, json.loads(
                    raw
                ) if resp.headers.get_content_type() == "application/json" else raw.decode()
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def start_server(root: Path, *args: str) -> Generator[Server, None, None]:
    port = free_port()
    proc = subprocess.Popen(
        [MODELREG, "-C", str(root), "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(proc, port)
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"modelreg serve exited {proc.returncode}: "
                    f"{proc.stdout.read() if proc.stdout else ''}"
                )  # type: ignore[union-attr]
            try:
                if server.request("GET", "/v2/health/ready")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the server was not ready within 90 s"
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def served(env: Env) -> Iterator[tuple[Env, Server]]:
    register_model(env, 1)
    yield from ((env, s) for s in start_server(env.root, "churn@v1", "--max-body", "4096"))


def infer_body(rows: list[list[float]], **overrides: Any) -> bytes:
    tensor = {
        "name": "features",
        "shape": [len(rows), 4],
        "datatype": "FP32",
        "data": [x for r in rows for x in r],
    }
    tensor.update(overrides)
    return json.dumps({"inputs": [tensor]}).encode()


def test_a_stock_oip_client_checks_health_reads_metadata_and_infers(
    served: tuple[Env, Server],
) -> None:
    import numpy as np
    import tritonclient.http as httpclient

    env, server = served
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("churn")
    metadata = client.get_model_metadata("churn")
    assert metadata["versions"] == ["v1"]
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}]
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    given = httpclient.InferInput("features", list(rows.shape), "FP32")
    given.set_data_from_numpy(rows, binary_data=False)
    result = client.infer(
        "churn", [given], outputs=[httpclient.InferRequestedOutput("logits", binary_data=False)]
    )
    expected = (
        torch.jit.load(str(env.work / "v1" / "model.pt"))(torch.from_numpy(rows)).detach().numpy()
    )
    logits = result.as_numpy("logits")
    assert logits is not None and np.allclose(logits, expected, atol=1e-6)
    assert result.get_response()["model_version"] == "v1"


def test_every_endpoint_and_every_bad_request(served: tuple[Env, Server]) -> None:
    _, server = served
    assert server.request("GET", "/v2/health/live") == (200, {"live": True})
    assert server.request("GET", "/v2/health/ready")[0] == 200
    assert server.request("GET", "/v2")[1]["name"] == "kserve"
    assert server.request("GET", "/v2/models/churn/ready")[1] == {
        "name": "churn",
        "ready": True,
        "model_version": "v1",
    }
    assert server.request("GET", "/v2/models/churn/versions/v1")[1]["versions"] == ["v1"]
    code, answer = server.request(
        "POST", "/v2/models/churn/versions/v1/infer", infer_body([[1, 2, 3, 4]])
    )
    assert (
        code == 200 and answer["model_version"] == "v1" and answer["outputs"][0]["shape"] == [1, 2]
    )
    bad = {
        "not json": (b"{not json", 400),
        "wrong datatype": (infer_body([[1, 2, 3, 4]], datatype="INT64"), 400),
        "wrong shape": (infer_body([[1, 2, 3, 4]], shape=[1, 3], data=[1, 2, 3]), 400),
        "data short of the shape": (infer_body([[1, 2, 3, 4]], shape=[2, 4]), 400),
        "unknown input": (infer_body([[1, 2, 3, 4]], name="nope"), 400),
        "no inputs": (json.dumps({"inputs": []}).encode(), 400),
        "too large": (infer_body([[1.5, 2.5, 3.5, 4.5]] * 400), 413),
    }
    for what, (body, status) in bad.items():
        code, answer = server.request("POST", "/v2/models/churn/infer", body)
        assert (
            (code, what) == (status, what)
            and isinstance(answer.get("error"), str)
            and answer["error"]
        ), answer
    for path in ("/v2/models/nope/infer", "/v2/models/churn/versions/v9/infer"):
        code, answer = server.request("POST", path, infer_body([[1, 2, 3, 4]]))
        assert code == 404 and answer["error"]
    assert server.request("GET", "/v2/models/nope")[0] == 404
    assert server.proc.poll() is None  # nothing above crashed it
    metrics = server.request("GET", "/metrics")[1]
    assert 'modelreg_requests_total{code="200",model="churn",version="v1"}' in metrics
    assert 'modelreg_requests_total{code="400",model="churn",version="v1"} 6.0' in metrics
    assert 'modelreg_requests_total{code="413",model="churn",version="v1"} 1.0' in metrics
    assert (
        'modelreg_request_duration_seconds_bucket{le="0.005",model="churn",version="v1"}' in metrics
    )
    sha = resolve(served[0].registry, "churn@v1").card["artifact"]["sha256"]
    assert f'modelreg_model_info{{model="churn",sha256="{sha}",version="v1"}} 1.0' in metrics


def test_inputs_the_model_cannot_answer_are_400_and_urls_cannot_grow_metrics(
    served: tuple[Env, Server],
) -> None:
    """Issue #18 (12, 4): NaN, overflow, negative request shapes, booleans or strings as numbers,
    unknown requested outputs, chunked bodies over the limit and deep JSON are each a 400/413 with
    {"error": ...}; a model name in a URL is never a metric label, and a long one is refused."""
    import http.client

    _, server = served
    nan = (
        b'{"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [NaN, 1, '
        b"2, 3]}]}"
    )
    bad = {
        "NaN": (nan, 400, "NaN or infinity"),
        "overflow": (infer_body([[1e39, 2, 3, 4]]), 400, "NaN or infinity"),
        "infinity literal": (nan.replace(b"NaN", b"Infinity"), 400, "NaN or infinity"),
        "negative shape": (infer_body([[1, 2, 3, 4]], shape=[-1, 4]), 400, "negative size"),
        "booleans as FP32": (
            infer_body([[1, 2, 3, 4]], data=[True, False, True, False]),
            400,
            "not a number",
        ),
        "strings as FP32": (
            infer_body([[1, 2, 3, 4]], data=["1", "2", "3", "4"]),
            400,
            "not a number",
        ),
        "unknown output": (
            json.dumps(
                {**json.loads(infer_body([[1, 2, 3, 4]])), "outputs": [{"name": "zzz"}]}
            ).encode(),
            400,
            "unknown output 'zzz'",
        ),
        "deep JSON": (b'{"inputs": ' + b"[" * 1500 + b"]" * 1500 + b"}", 400, "deeper than"),
    }
    for what, (body, status, said) in bad.items():
        code, answer = server.request("POST", "/v2/models/churn/infer", body)
        assert (code, what) == (status, what) and said in answer.get("error", ""), (what, answer)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = (
        b"[" + b"1.5," * 3000 + b"1]" for _ in range(2)
    )  # about 18 KB, chunked: no Content-Length
    connection.request(
        "POST",
        "/v2/models/churn/infer",
        body=chunks,
        encode_chunked=True,
        headers={"content-type": "application/json"},
    )
    answer = connection.getresponse()
    assert answer.status == 413 and "error" in json.loads(answer.read())
    connection.close()
    for i in range(30):
        server.request("POST", f"/v2/models/random-{i}/infer", infer_body([[1, 2, 3, 4]]))
    code, answer = server.request(
        "POST", "/v2/models/" + "x" * 5000 + "/infer", infer_body([[1, 2, 3, 4]])
    )
    assert code == 404 and "5000 characters" in answer["error"]
    metrics = server.request("GET", "/metrics")[1]
    assert "random-" not in metrics and "xxxx" not in metrics
    assert 'modelreg_requests_total{code="404",model="other",version=""} 31.0' in metrics
    assert 'modelreg_requests_total{code="400",model="churn",version="v1"} 8.0' in metrics
    assert server.proc.poll() is None


def test_the_grpc_protocol_answers_too(env: Env) -> None:
    import asyncio

    import numpy as np
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    register_model(env, 1)
    grpc_port = free_port()

    async def ask() -> tuple[bool, str | None, list[int]]:
        client = InferenceGRPCClient(url=f"127.0.0.1:{grpc_port}")
        given = InferInput("features", [2, 4], "FP32")
        given.set_data_from_numpy(np.ones((2, 4), dtype=np.float32))
        answer = await client.infer(InferRequest(model_name="churn", infer_inputs=[given]))
        ready = await client.is_model_ready("churn")
        await client.close()
        return ready, answer.model_version, list(answer.outputs[0].as_numpy().shape)

    for _ in start_server(env.root, "churn@v1", "--grpc-port", str(grpc_port)):
        assert asyncio.run(ask()) == (True, "v1", [2, 2])


def test_serve_env_runs_what_is_live(env: Env) -> None:
    register_model(env, 1)
    register_model(env, 2)
    deploy(env.registry, "churn@v2", "staging")
    for server in start_server(env.root, "--env", "staging"):
        assert server.request("GET", "/v2/models/churn")[1]["versions"] == ["v2"]


def test_weights_alone_cannot_be_served(env: Env) -> None:
    card = env.work / "card.yaml"
    card.write_text(yaml.safe_dump(SIGNATURE))
    weights = env.work / "w" / "model.pt"
    weights.parent.mkdir()
    torch.save(torch.nn.Linear(4, 2).state_dict(), weights)
    register(env.registry, RegisterRequest("churn", weights, card_file=card))
    result = subprocess.run(
        [MODELREG, "-C", str(env.root), "serve", "churn@v1", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "need a program, not weights" in result.stderr and "Traceback" not in result.stderr


def test_the_pod_side_refuses_bytes_that_do_not_match_the_card(env: Env, tmp_path: Path) -> None:
    register_model(env, 1)
    card = resolve(env.registry, "churn@v1").card
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card))
    models = tmp_path / "models"
    torchscript(models / "model.pt", 99)  # other bytes under the registered name
    result = subprocess.run(
        [
            MODELREG,
            "serve",
            "--model-dir",
            str(models),
            "--card",
            str(tmp_path / "card.yaml"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "does not match the card" in result.stderr


def fetch(
    url: str, md5: str, sha256: str, out: Path, *args: str, **environ: str
) -> subprocess.CompletedProcess[str]:
    """`modelreg fetch` of one artifact, as the init container runs it (--json, ARGS added)."""
    import os

    return subprocess.run(
        [MODELREG, "fetch", "--url", url, "--md5", md5, "--sha256", sha256, "--out", str(out),
         "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environ},
    )  # fmt: skip


@pytest.mark.parametrize("remote", ["local", "s3"])
def test_fetch_a_file_and_a_folder(
    env: Env, tmp_path: Path, remote: str, request: pytest.FixtureRequest
) -> None:
    base = str(env.store)
    environ = {}
    if remote == "s3":
        endpoint = request.getfixturevalue("s3")
        add_remote(env.registry, "s3://models/registry", endpoint_url=endpoint)
        base, environ = "s3://models/registry", {"AWS_ENDPOINT_URL": endpoint}
    file_tag = register_model(env, 1)
    folder = write_model_dir(env.work / "llm", 3)
    register(env.registry, RegisterRequest("llm", folder))
    for tag, original in ((file_tag, env.work / "v1" / "model.pt"), ("llm@v1", folder)):
        found = resolve(env.registry, tag)
        out = tmp_path / remote / found.pointer.path
        url = object_url(base, found.pointer.md5)
        result = fetch(url, found.pointer.md5, found.card["artifact"]["sha256"], out, **environ)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["sha256"] == found.card["artifact"]["sha256"]
        if original.is_dir():
            for rel in ("config.json", "weights/shard-0.bin", "weights/shard-1.bin"):
                assert (out / rel).read_bytes() == (original / rel).read_bytes()
            assert "verified" in result.stderr  # one log line per object when not on a terminal
        else:
            assert out.read_bytes() == original.read_bytes()


def test_fetch_of_a_corrupt_or_missing_object_leaves_nothing(env: Env, tmp_path: Path) -> None:
    register_model(env, 1)
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    found = resolve(env.registry, "churn@v1")
    url, md5, sha = (
        object_url(str(env.store), found.pointer.md5),
        found.pointer.md5,
        found.card["artifact"]["sha256"],
    )
    wrong_sha = fetch(url, md5, hashlib.sha256(b"other").hexdigest(), tmp_path / "a.pt")
    assert wrong_sha.returncode == 1 and "does not match the registered" in wrong_sha.stderr
    stored = Path(url)
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    corrupt = fetch(url, md5, sha, tmp_path / "b.pt")
    assert corrupt.returncode == 1 and "corrupt in the remote" in corrupt.stderr
    stored.unlink()
    missing = fetch(url, md5, sha, tmp_path / "c.pt")
    assert missing.returncode == 1 and "is not in the remote" in missing.stderr
    assert (
        sorted(p.name for p in tmp_path.iterdir()) == []
    )  # nothing at the paths, no temporary leftovers
