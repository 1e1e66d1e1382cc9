"""Serving benchmarks for `make bench`: latency and throughput of `modelreg serve` against calling
the same TorchScript model in-process (the floor), and the time to ready for a large artifact
against fetching it alone. Load comes from this process, a different one from the server, on
127.0.0.1 only, bounded in count and time."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

SIGNATURE = {
    "signature": {
        "inputs": [{"name": "features", "shape": [-1, 64], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [-1, 2], "dtype": "float32"}],
    }
}
REQUESTS = 1000
LOAD_SECONDS = 5.0


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _registry(work: Path, name: str, model: Any) -> Path:
    import torch

    repo = work / name
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.com")):
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)
    mr = shutil.which("modelreg") or "modelreg"
    subprocess.run(
        [mr, "init", "--remote", str(work / f"{name}-remote")],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    torch.jit.script(model).save(str(work / f"{name}.pt"))
    (work / f"{name}.yaml").write_text(yaml.safe_dump(SIGNATURE))
    subprocess.run(
        [
            mr,
            "register",
            "m",
            str(work / f"{name}.pt"),
            "--card",
            str(work / f"{name}.yaml"),
            "--no-inspect",
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    return repo


def _start(repo: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [shutil.which("modelreg") or "modelreg", "serve", "m@v1", "--port", str(port)],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return proc, time.perf_counter() - started
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - started > 600:
            raise RuntimeError("modelreg serve did not become ready")
        time.sleep(0.05)


def _body(batch: int) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [batch, 64],
                    "datatype": "FP32",
                    "data": [0.5] * (batch * 64),
                }
            ]
        }
    ).encode()


def _latencies(port: int, body: bytes, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("POST", "/v2/models/m/infer", body, headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        timings.append(time.perf_counter() - start)
    return timings


def _throughput(port: int, body: bytes, clients: int = 4) -> float:
    done = [0] * clients
    stop = time.perf_counter() + LOAD_SECONDS

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop:
            conn.request("POST", "/v2/models/m/infer", body, {"content-type": "application/json"})
            conn.getresponse().read()
            done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / LOAD_SECONDS


def _in_process(model: Any, batch: int) -> list[float]:
    import torch

    program = torch.jit.script(model)
    x = torch.full((batch, 64), 0.5)
    timings = []
    with torch.inference_mode():
        for _ in range(REQUESTS):
            start = time.perf_counter()
            program(x)
            timings.append(time.perf_counter() - start)
    return timings


def _ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return 1000 * values[min(len(values) - 1, int(len(values) * q))]


def bench_serving(work: Path, rows: list[list[str]]) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2))
    repo = _registry(work, "small", model)
    port = _port()
    proc, ready_s = _start(repo, port)
    try:
        for batch in (1, 32):
            floor = _in_process(model, batch)
            served = _latencies(port, _body(batch), REQUESTS)
            overhead = _ms(served, 0.5) - _ms(floor, 0.5)
            rows.append(
                [
                    "small MLP",
                    f"in-process call, batch {batch}",
                    f"p50 {_ms(floor, 0.5):.3f} ms",
                    f"p99 {_ms(floor, 0.99):.3f} ms",
                    "",
                ]
            )
            rows.append(
                [
                    "small MLP",
                    f"serve, batch {batch}",
                    f"p50 {_ms(served, 0.5):.3f} ms",
                    f"p99 {_ms(served, 0.99):.3f} ms",
                    f"+{overhead:.2f} ms over the call",
                ]
            )
            rows.append(
                [
                    "small MLP",
                    f"serve, batch {batch}, 4 clients",
                    f"{_throughput(port, _body(batch)):.0f} req/s",
                    "",
                    f"{LOAD_SECONDS:.0f} s of load",
                ]
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows.append(
        [
            "small MLP",
            "serve: start to ready",
            f"{ready_s:.2f} s",
            "",
            "pull + verify + load + server",
        ]
    )
    megabytes = int(os.environ.get("BENCH_SERVE_MB", "1024"))
    if megabytes:
        _bench_ready(work, megabytes, rows)


def _bench_ready(work: Path, megabytes: int, rows: list[list[str]]) -> None:
    import torch

    side = int((megabytes * 1024 * 1024 / 4) ** 0.5) // 64 * 64
    model = torch.nn.Sequential(
        torch.nn.Linear(64, side), torch.nn.Linear(side, side), torch.nn.Linear(side, 2)
    )
    repo = _registry(work, "large", model)
    card = yaml.safe_load((repo / "models/m/model.yaml").read_text())
    md5 = card["artifact"]["md5"]
    url = f"{work / 'large-remote'}/files/md5/{md5[:2]}/{md5[2:]}"
    start = time.perf_counter()
    subprocess.run(
        [
            shutil.which("modelreg") or "modelreg",
            "fetch",
            "--url",
            url,
            "--md5",
            card["artifact"]["md5"],
            "--sha256",
            card["artifact"]["sha256"],
            "--out",
            str(work / "fetched.pt"),
        ],
        check=True,
        capture_output=True,
    )
    fetch_s = time.perf_counter() - start
    proc, ready_s = _start(repo, _port())
    proc.terminate()
    proc.wait(timeout=30)
    label = f"{card['artifact']['size'] / 2**20:.0f} MiB model"
    rows.append([label, "fetch alone", f"{fetch_s:.2f} s", "", ""])
    rows.append(
        [
            label,
            "serve: start to ready",
            f"{ready_s:.2f} s",
            "",
            f"{ready_s / fetch_s:.2f}x the fetch",
        ]
    )
