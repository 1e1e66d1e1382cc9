"""`modelreg analyze` against a real Prometheus (Debian's `prometheus`) scraping real
`modelreg serve` processes on 127.0.0.1 while a bounded load sends them requests (issue #22).

The servers run as pods do (`serve --card --model-dir`): v1 (the stable version), v2 (healthy), v3
(raises on the requests whose features sum over 100: about a third of the load), v4 (its pod
serves v2's bytes: modelreg_model_info reports another SHA-256 than v4's card) and v5 (healthy, no
traffic). Every test registers the same five files in a registry of its own, so versions and
SHA-256 agree with the servers'.

Invariants: a failing candidate is aborted (the deploy tree after the abort is the stable deploy's
tree, by id; the candidate is quarantined; the record holds the failing measurement); a healthy
one steps 10 -> 50 -> promote; too little traffic is inconclusive and nothing moves; other bytes
fail the bytes check. Exit codes: 0 passed, 4 failed, 5 inconclusive."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import MODELREG, Env, free_port, git, modelreg
from modelreg import prometheus
from modelreg.deploy import deploy
from modelreg.register import RegisterRequest, register

pytest.importorskip("torch")
pytest.importorskip("kserve")
import torch  # noqa: E402

from helpers.models import Fussy, healthy  # noqa: E402

pytestmark = pytest.mark.xdist_group("prometheus")  # one Prometheus and one set of servers

PROMETHEUS = shutil.which("prometheus")
SIGNATURE = {
    "inputs": [{"name": "features", "shape": [-1, 4], "dtype": "float32"}],
    "outputs": [{"name": "logits", "shape": [-1, 2], "dtype": "float32"}],
}
POLICY = """\
default_model: churn
environments:
  prod:
    replicas: 1
    canary:
      gateway: public
      steps: [10, 50]
      interval: 1s
      count: 2
      window: 10s
      min_requests: 20
      max_p99_seconds: 2
      max_p99_ratio: 20
deploy:
  branch: deploy
"""
LOAD_SECONDS = 600  # the load stops by itself after this, whatever happens to the tests
RATE = 8  # requests a second to each loaded server


@dataclass
class Stack:
    files: list[Path]  # v1..v5's artifacts, in registration order
    card: Path
    prometheus: str
    servers: dict[str, str]  # version -> URL


def _wait(url: str, deadline: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    while True:
        assert proc.poll() is None, f"{what} exited {proc.returncode}"
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, OSError),
            urllib.request.urlopen(url, timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        assert time.monotonic() < deadline, f"{what} was not ready in time"
        time.sleep(0.3)


def _load(urls: list[str], stop: threading.Event) -> None:
    """RATE requests a second to each URL, every third one with features that sum over 100."""
    body = {
        False: json.dumps(
            {
                "inputs": [
                    {"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
                ]
            }
        ).encode(),  # fmt: skip
        True: json.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": [1, 4],
                        "datatype": "FP32",
                        "data": [100, 2, 3, 4],
                    }
                ]
            }
        ).encode(),  # fmt: skip
    }
    ends = time.monotonic() + LOAD_SECONDS
    number = 0
    while not stop.is_set() and time.monotonic() < ends:
        started = time.monotonic()
        for url in urls:
            request = urllib.request.Request(
                f"{url}/v2/models/churn/infer",
                data=body[number % 3 == 0],
                headers={"content-type": "application/json"},
            )
            with contextlib.suppress(urllib.error.URLError, OSError):
                urllib.request.urlopen(request, timeout=5).read()
        number += 1
        stop.wait(max(0.0, 1 / RATE - (time.monotonic() - started)))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if PROMETHEUS is None:
        pytest.fail("Prometheus is missing: apt-get install prometheus (.ci/run installs it)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        modules = [healthy(1), healthy(2), Fussy(), healthy(4), healthy(5)]
        files = []
        for number, module in enumerate(modules, start=1):
            path = tmp / f"v{number}" / "model.pt"
            path.parent.mkdir()
            torch.jit.script(module).save(str(path))
            files.append(path)
        card = tmp / "card.yaml"
        card.write_text(yaml.safe_dump({"signature": SIGNATURE}))
        # v4's pod holds v2's bytes, and a card that says so: it reports v2's SHA-256 as v4
        served = {"v1": files[0], "v2": files[1], "v3": files[2], "v4": files[1], "v5": files[4]}
        procs: list[subprocess.Popen[bytes]] = []
        servers: dict[str, str] = {}
        stop = threading.Event()
        try:
            for version, artifact in served.items():
                pod = tmp / f"pod-{version}"
                pod.mkdir()
                shutil.copy(artifact, pod / "model.pt")
                sha = hashlib.sha256(artifact.read_bytes()).hexdigest()
                pod_card = {"name": "churn", "version": version, "signature": SIGNATURE,
                            "artifact": {"path": "model.pt", "sha256": sha}}  # fmt: skip
                (pod / "card.yaml").write_text(yaml.safe_dump(pod_card))
                port = free_port()
                procs.append(subprocess.Popen(
                    [MODELREG, "serve", "--card", str(pod / "card.yaml"), "--model-dir", str(pod),
                     "--host", "127.0.0.1", "--port", str(port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
                servers[version] = f"http://127.0.0.1:{port}"
            port = free_port()
            targets = [u.removeprefix("http://") for u in servers.values()]
            config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{
                    "job_name": "modelreg",
                    "static_configs": [{"targets": targets, "labels": {"namespace": "prod"}}],
                }],
            }  # fmt: skip
            (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
            procs.append(subprocess.Popen(
                [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            _wait(f"{url}/-/ready", deadline, "prometheus", procs[-1])
            for (version, server), proc in zip(servers.items(), procs):
                _wait(f"{server}/v2/health/ready", deadline, f"modelreg serve ({version})", proc)
            loaded = [servers[v] for v in ("v1", "v2", "v3", "v4")]
            threading.Thread(target=_load, args=(loaded, stop), daemon=True).start()
            # until Prometheus has seen a window's worth of traffic on every loaded server
            query = 'min(sum by (version) (increase(modelreg_requests_total{version!="v5"}[10s])))'
            while (prometheus.query(url, query) or 0) < 30:
                assert time.monotonic() < deadline + 60, "Prometheus saw too little traffic"
                time.sleep(1)
            yield Stack(files, card, url, servers)
        finally:
            stop.set()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def registry(env: Env, stack: Stack) -> Env:
    (env.root / "modelreg.yaml").write_text(POLICY)
    git(env.root, "commit", "-qam", "canary policy")
    for path in stack.files:
        register(env.registry, RegisterRequest("churn", path, card_file=stack.card))
    deploy(env.registry, "churn@v1", "prod")
    return env


def analyze(env: Env, stack: Stack, *more: str) -> tuple[int, dict]:
    result = modelreg(env.root, "analyze", "--env", "prod", "--prometheus", stack.prometheus,
                      "--json", *more)  # fmt: skip
    assert result.returncode in (0, 4, 5), result.stderr
    return result.returncode, json.loads(result.stdout)


def checks(analysis: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for measurement in analysis["measurements"]:
        for check in measurement["checks"]:
            found.setdefault(check["name"], []).append(check)
    return found


def start(env: Env, ref: str) -> None:
    result = modelreg(env.root, "canary", "start", ref, "--env", "prod", "--weight", "10")
    assert result.returncode == 0, result.stderr


def test_a_candidate_that_fails_on_real_traffic_is_aborted(registry: Env, stack: Stack) -> None:
    stable_tree = git(registry.root, "rev-parse", "deploy:prod/churn")
    start(registry, "churn@v3")
    code, analysis = analyze(registry, stack, "--record", "--on-fail", "abort")
    assert code == 4 and analysis["verdict"] == "failed", analysis["summary"]
    rate = checks(analysis)["success_rate"][0]
    assert rate["outcome"] == "failed" and 0.4 < rate["value"] < 0.9, rate
    assert git(registry.root, "rev-parse", "deploy:prod/churn") == stable_tree
    record = git(registry.root, "log", "-1", "--format=%(trailers:only,unfold)", "deploy~1")
    assert "Modelreg-Action: analysis" in record and "Modelreg-Verdict: failed" in record
    kept = json.loads(
        git(registry.root, "show", f"{analysis['record']}:.modelreg/churn/analyses/prod.json")
    )
    kept_rate = checks(kept)["success_rate"][0]
    assert kept_rate["value"] == rate["value"] and kept_rate["condition"].startswith(">= 0.99")
    assert kept["prometheus"] == stack.prometheus and kept["policy_blob"]
    assert kept["stable"] == "v1" and kept["candidate"] == "v3" and kept["weight"] == 10
    shown = json.loads(modelreg(registry.root, "show", "churn@v3", "--json").stdout)
    assert shown["quarantined"]["v3"]["reason"].startswith("canary analysis failed: success_rate")
    status = json.loads(modelreg(registry.root, "status", "--json").stdout)
    assert status[0]["version"] == "v1" and status[0]["held"] and status[0]["canary"] is None
    printed = modelreg(registry.root, "show", "churn@v3").stdout
    assert "Analysis in prod at 10%: FAILED" in printed and "success_rate" in printed


def test_a_healthy_candidate_steps_from_10_to_50_and_is_promoted(
    registry: Env, stack: Stack
) -> None:
    start(registry, "churn@v2")
    code, analysis = analyze(registry, stack, "--record")
    assert code == 0 and analysis["verdict"] == "passed", analysis["summary"]
    assert {c["outcome"] for cs in checks(analysis).values() for c in cs} == {"passed"}
    stepped = modelreg(registry.root, "canary", "step", "--env", "prod", "--weight", "50")
    assert stepped.returncode == 0, stepped.stderr
    code, analysis = analyze(registry, stack, "--record", "--on-fail", "abort")
    assert code == 0 and analysis["weight"] == 50, analysis["summary"]
    promoted = modelreg(registry.root, "canary", "promote", "--env", "prod")
    assert promoted.returncode == 0, promoted.stderr
    status = json.loads(modelreg(registry.root, "status", "--json").stdout)
    assert status[0]["version"] == "v2" and status[0]["action"] == "canary-promote"
    history = modelreg(registry.root, "history", "--env", "prod").stdout
    assert history.count("analysis") == 2 and "passed at 50%" in history


def test_too_little_traffic_is_inconclusive_and_nothing_moves(registry: Env, stack: Stack) -> None:
    start(registry, "churn@v5")
    before = git(registry.root, "rev-parse", "deploy:prod/churn")
    code, analysis = analyze(registry, stack, "--record", "--on-fail", "abort")
    assert code == 5 and analysis["verdict"] == "inconclusive", analysis["summary"]
    assert analysis["summary"].startswith("requests = no data, needs >= 20 (min_requests)")
    assert "aborted" not in analysis
    assert git(registry.root, "rev-parse", "deploy:prod/churn") == before
    status = json.loads(modelreg(registry.root, "status", "--json").stdout)
    assert status[0]["canary"]["weight"] == 10 and status[0]["canary"]["verdict"] == "inconclusive"
    refused = modelreg(registry.root, "canary", "step", "--env", "prod")
    assert refused.returncode == 1 and "said inconclusive" in refused.stderr
    assert (
        "v5"
        not in json.loads(modelreg(registry.root, "show", "churn@v5", "--json").stdout)[
            "quarantined"
        ]
    )


def test_a_pod_serving_other_bytes_fails_the_bytes_check(registry: Env, stack: Stack) -> None:
    start(registry, "churn@v4")
    code, analysis = analyze(registry, stack, "--count", "1")
    assert code == 4, analysis["summary"]
    found = checks(analysis)
    assert found["bytes"][0]["outcome"] == "failed" and found["bytes"][0]["value"] == 1
    assert found["success_rate"][0]["outcome"] == "passed"  # the traffic itself was fine
    assert "record" not in analysis  # without --record nothing is committed
    printed = modelreg(registry.root, "analyze", "--env", "prod", "--prometheus", stack.prometheus,
                       "--count", "1")  # fmt: skip
    assert printed.returncode == 4 and "bytes = 1, needs == 0" in printed.stdout
    assert "Verdict for churn@v4 at 10% in prod: FAILED" in printed.stdout
    assert os.environ.get("MODELREG_PROMETHEUS_URL") is None


def test_your_own_checks_the_failure_limit_and_key_checks(registry: Env, stack: Stack) -> None:
    own = (
        "      failure_limit: 3\n      checks:\n        - name: pods-in-namespace\n"
        "          query: 'count(modelreg_model_info{namespace=\"{namespace}\"})'\n"
        "          max: 1\n"
    )
    policy = POLICY.replace("      max_p99_ratio: 20\n", "      max_p99_ratio: 20\n" + own)
    (registry.root / "modelreg.yaml").write_text(policy)
    git(registry.root, "commit", "-qam", "a check of our own, tolerated")
    start(registry, "churn@v2")
    code, analysis = analyze(registry, stack)
    mine = checks(analysis)["pods-in-namespace"]
    assert [c["value"] for c in mine] == [5, 5] and {c["outcome"] for c in mine} == {"failed"}
    assert code == 0 and "2 failed, 3 tolerated" in analysis["summary"], analysis["summary"]
    (registry.root / "modelreg.yaml").write_text(
        policy.replace("max: 1\n", "max: 1\n          key: true\n")
    )
    git(registry.root, "commit", "-qam", "the same check, key")
    code, analysis = analyze(registry, stack)
    assert code == 4 and len(analysis["measurements"]) == 1, analysis  # stopped at the first
    assert "a key check fails the analysis alone" in analysis["summary"]
