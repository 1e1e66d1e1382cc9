"""Canaries on a real deploy branch (issue #22): start, step, promote and abort, each one commit
through the deploy compare-and-swap; the split rendered per serving kind and judged by checkers
nobody here wrote (the Gateway API and Prometheus Operator CRD schemas, `promtool check rules`).
The analyses here are records written by hand (their verdict is the input); tests/test_analysis.py
measures real servers on a real Prometheus.

Invariants: a canary's start leaves every stable manifest but the route byte for byte; step and
promote move only after a passed analysis at the current weight; an abort puts back the stable
deploy's tree (same tree id), quarantines the candidate and holds the environment; a refused step
leaves the branch where it was."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import Env, git, modelreg, start
from modelreg import canary
from modelreg.analysis import Analysis, Measurement, fill, judge, record
from modelreg.analysis import Check as AnalysisCheck
from modelreg.deploy import deploy

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / ".tools" / "k8s-models"
CONFIG = """\
default_model: churn
environments:
  staging:
    replicas: 1
  prod:
    replicas: 4
    monitoring: true
    canary:
      gateway: public
      gateway_namespace: gateways
      steps: [10, 50]
deploy:
  branch: deploy
serving:
  kind: {kind}
"""


def configure(env: Env, kind: str = "deployment", extra: str = "") -> None:
    (env.root / "modelreg.yaml").write_text(CONFIG.format(kind=kind) + extra)
    git(env.root, "commit", "-qam", "canary policy")


def live_v1_with_v2_in_staging(env: Env) -> None:
    env.register("churn", 1)
    env.register("churn", 2)
    deploy(env.registry, "churn@v1", "staging")
    deploy(env.registry, "churn@v1", "prod")
    deploy(env.registry, "churn@v2", "staging")


@pytest.fixture
def prod(env: Env) -> Env:
    configure(env)
    live_v1_with_v2_in_staging(env)
    return env


def tree(env: Env, rev: str = "deploy", path: str = "prod/churn") -> dict[str, str]:
    out = git(env.root, "ls-tree", "-r", rev, "--", path)
    return {line.split("\t")[1]: line.split()[2] for line in out.splitlines()}


def show(env: Env, path: str, rev: str = "deploy") -> Any:
    return yaml.safe_load(git(env.root, "show", f"{rev}:{path}"))


def judged(env: Env, verdict: str) -> str:
    """Record an analysis of the running canary with this verdict (the input of the gates)."""
    registry = env.registry
    running = canary.running(registry, "prod")
    analysis = Analysis(
        model=running.model, env="prod", candidate=running.candidate, tag=running.tag,
        stable=running.stable, weight=running.weight, prometheus="http://127.0.0.1:9",
        window="5m", interval="1m", count=1, failure_limit=0, policy_blob="", policy_source="",
        started=0.0, finished=0.0, by="test", verdict=verdict, summary=f"{verdict} by hand",
    )  # fmt: skip
    return record(registry, analysis)


def test_start_keeps_the_stable_manifests_and_adds_the_candidate_with_the_split(prod: Env) -> None:
    before = tree(prod)
    result = modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod", "--weight", "10")
    assert result.returncode == 0, result.stderr
    assert "Started a canary of churn@v2 in prod at 10% beside v1" in result.stdout
    after = tree(prod)
    route = "prod/churn/route.yaml"
    assert {k: v for k, v in after.items() if not k.startswith("prod/churn/canary/")} == {
        **before,
        route: after[route],
    }, "a stable manifest other than the route changed"
    assert show(prod, route)["spec"]["rules"][0]["backendRefs"] == [
        {"name": "churn-prod", "port": 80, "weight": 90},
        {"name": "churn-prod-canary", "port": 80, "weight": 10},
    ]
    assert show(prod, route)["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    candidate = show(prod, "prod/churn/canary/deployment.yaml")
    assert candidate["metadata"]["name"] == "churn-prod-canary"
    assert candidate["spec"]["replicas"] == math.ceil(4 * 10 / 100)
    labels = candidate["spec"]["template"]["metadata"]["labels"]
    assert labels["modelreg.io/version"] == "v2" and labels["modelreg.io/track"] == "canary"
    service = show(prod, "prod/churn/canary/service.yaml")
    assert service["metadata"]["name"] == "churn-prod-canary"
    assert service["spec"]["selector"]["app.kubernetes.io/instance"] == "churn-prod-canary"
    trailers = git(prod.root, "log", "-1", "--format=%(trailers:only,unfold)", "deploy")
    for line in ("Action: canary-start", "Version: v2", "Previous-Version: v1", "Weight: 10"):
        assert f"Modelreg-{line}" in trailers
    status = json.loads(modelreg(prod.root, "status", "--env", "prod", "--json").stdout)
    assert status[0]["version"] == "v1" and status[0]["drift"] == "none"
    assert status[0]["canary"]["candidate"] == "v2" and status[0]["canary"]["weight"] == 10


def test_step_and_promote_move_only_after_a_passed_analysis(prod: Env) -> None:
    assert modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod").returncode == 0
    tip = git(prod.root, "rev-parse", "deploy").strip()
    refused = modelreg(prod.root, "canary", "step", "--env", "prod")
    assert refused.returncode == 1 and "no analysis was recorded at 10%" in refused.stderr
    judged(prod, "failed")
    refused = modelreg(prod.root, "canary", "step", "--env", "prod", "--weight", "50")
    assert refused.returncode == 1 and "said failed (failed by hand)" in refused.stderr
    judged(prod, "inconclusive")
    assert modelreg(prod.root, "canary", "promote", "--env", "prod").returncode == 1
    assert git(prod.root, "rev-list", "--count", f"{tip}..deploy").strip() == "2"  # the records
    judged(prod, "passed")
    early = modelreg(prod.root, "canary", "promote", "--env", "prod")
    assert early.returncode == 1 and "final weight, 50%" in early.stderr
    stepped = modelreg(prod.root, "canary", "step", "--env", "prod", "--json")
    assert stepped.returncode == 0, stepped.stderr
    assert json.loads(stepped.stdout)["weight"] == 50
    assert show(prod, "prod/churn/canary/deployment.yaml")["spec"]["replicas"] == 2
    refused = modelreg(prod.root, "canary", "promote", "--env", "prod")
    assert refused.returncode == 1 and "no analysis was recorded at 50%" in refused.stderr
    judged(prod, "passed")
    promoted = modelreg(prod.root, "canary", "promote", "--env", "prod")
    assert promoted.returncode == 0, promoted.stderr
    tip = git(prod.root, "rev-parse", "deploy")
    rerun = modelreg(prod.root, "canary", "promote", "--env", "prod")  # a re-run: nothing to do
    assert rerun.returncode == 0 and "was promoted already" in rerun.stdout
    assert git(prod.root, "rev-parse", "deploy") == tip
    # the candidate is now deployed as any version is: a deploy of it renders the same bytes
    files = tree(prod)
    assert not any("/canary/" in name for name in files)
    assert (
        show(prod, "prod/churn/deployment.yaml")["metadata"]["labels"]["modelreg.io/version"]
        == "v2"
    )
    assert show(prod, "prod/churn/route.yaml")["spec"]["rules"][0]["backendRefs"] == [
        {"name": "churn-prod", "port": 80, "weight": 100}
    ]
    again = modelreg(prod.root, "deploy", "churn@v2", "--env", "prod", "--json")
    assert json.loads(again.stdout)["noop"] is True
    status = json.loads(modelreg(prod.root, "status", "--env", "prod", "--json").stdout)
    assert status[0]["version"] == "v2" and status[0]["action"] == "canary-promote"
    assert status[0]["canary"] is None
    history = modelreg(prod.root, "history", "--env", "prod").stdout
    for action in ("canary-start", "canary-step", "canary-promote", "analysis"):
        assert action in history
    assert "passed at 50%: passed by hand" in history


def test_abort_restores_the_stable_tree_quarantines_the_candidate_and_holds(prod: Env) -> None:
    live = json.loads(modelreg(prod.root, "status", "--env", "prod", "--json").stdout)
    stable_commit = live[0]["commit"]
    assert modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod").returncode == 0
    judged(prod, "passed")
    assert modelreg(prod.root, "canary", "step", "--env", "prod").returncode == 0
    reason = "success_rate 0.71 >= 0.99 (min_success_rate): failed"
    aborted = modelreg(prod.root, "canary", "abort", "--env", "prod", "--reason", reason, "--json")
    assert aborted.returncode == 0, aborted.stderr
    assert git(prod.root, "rev-parse", "deploy:prod/churn") == git(
        prod.root, "rev-parse", f"{stable_commit}:prod/churn"
    )
    trailers = git(prod.root, "log", "-1", "--format=%(trailers:only,unfold)", "deploy")
    assert f"Modelreg-Restored-From: {stable_commit}" in trailers
    assert (
        "churn@v2 is quarantined (success_rate 0.71"
        in modelreg(prod.root, "deploy", "churn@v2", "--env", "staging").stderr
    )
    status = json.loads(modelreg(prod.root, "status", "--env", "prod", "--json").stdout)
    assert status[0]["version"] == "v1" and status[0]["held"] is True
    assert status[0]["drift"] == "none" and status[0]["canary"] is None
    show_json = json.loads(modelreg(prod.root, "show", "churn@v2", "--json").stdout)
    assert show_json["quarantined"]["v2"]["reason"] == reason
    assert "Abort the canary of churn@v2 in prod" in git(
        prod.root, "show", "deploy:.modelreg/churn/events"
    )
    tip = git(prod.root, "rev-parse", "deploy")
    again = modelreg(prod.root, "canary", "abort", "--env", "prod", "--reason", "again", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["noop"] is True  # a re-run
    assert git(prod.root, "rev-parse", "deploy") == tip
    step = modelreg(prod.root, "canary", "step", "--env", "prod")
    assert step.returncode == 1 and "no canary of churn runs in prod" in step.stderr


def test_what_a_canary_cannot_do_is_refused_and_changes_nothing(prod: Env) -> None:
    tip = git(prod.root, "rev-parse", "deploy")
    cases = [
        (("canary", "start", "churn@v2", "--env", "prod", "--weight", "0"), "from 1 to 99"),
        (("canary", "start", "churn@v2", "--env", "prod", "--weight", "100"), "from 1 to 99"),
        (("canary", "start", "churn@v2", "--env", "staging"), "needs a Gateway"),
        (("canary", "start", "churn@v1", "--env", "prod"), "is what runs in prod"),
        (("canary", "step", "--env", "prod"), "no canary of churn runs in prod"),
        (("canary", "promote", "--env", "prod"), "no canary of churn runs in prod"),
        (("canary", "abort", "--env", "prod", "--reason", "x"), "no canary of churn runs in prod"),
        (("canary", "abort", "--env", "prod", "--reason", " "), "--reason is required"),
        (("canary", "start", "churn@v9", "--env", "prod"), "churn@v9"),
        (("canary", "start", "churn@v2", "--env", "nowhere"), "unknown environment 'nowhere'"),
    ]
    for args, message in cases:
        result = modelreg(prod.root, *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    prod.register("churn", 3, push=False)  # its bytes never reached the DVC remote
    unpushed = modelreg(prod.root, "canary", "start", "churn@v3", "--env", "prod")
    assert unpushed.returncode == 1 and "are not in the DVC remote" in unpushed.stderr
    assert git(prod.root, "rev-parse", "deploy") == tip
    assert modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod").returncode == 0
    tip = git(prod.root, "rev-parse", "deploy")
    for args, message in [
        (("canary", "start", "churn@v2", "--env", "prod", "--weight", "20"), "already runs in"),
        (("deploy", "churn@v2", "--env", "prod"), "a canary of churn@v2 runs in prod"),
        (("rollback", "--env", "prod"), "a canary of churn@v2 runs in prod"),
        (("canary", "step", "--env", "prod", "--weight", "5"), "only raises the weight"),
    ]:
        result = modelreg(prod.root, *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
    assert git(prod.root, "rev-parse", "deploy") == tip
    usage = modelreg(prod.root, "analyze", "--env", "prod", "--prometheus", "x", "--count", "0")
    assert usage.returncode == 2
    for url, message in [
        ("ftp://x", "expected the server's base URL"),
        ("http://127.0.0.1:9", "cannot reach Prometheus at http://127.0.0.1:9"),
    ]:
        result = modelreg(
            prod.root, "analyze", "--env", "prod", "--prometheus", url, "--count", "1"
        )
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert git(prod.root, "rev-parse", "deploy") == tip


def test_kserve_splits_with_canary_traffic_percent_and_refuses_raw_deployments(env: Env) -> None:
    configure(env, "kserve")
    live_v1_with_v2_in_staging(env)
    stable = git(env.root, "rev-parse", "deploy:prod/churn")
    rules = tree(env)["prod/churn/prometheusrule.yaml"]
    started = modelreg(env.root, "canary", "start", "churn@v2", "--env", "prod", "--weight", "20")
    assert started.returncode == 0, started.stderr
    # the stable version's alerts stay; the candidate's go beside them
    assert tree(env)["prod/churn/prometheusrule.yaml"] == rules
    rule = show(env, "prod/churn/canary/prometheusrule.yaml")
    assert rule["metadata"]["name"] == "churn-prod-canary"
    service = show(env, "prod/churn/inferenceservice.yaml")
    assert service["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert service["metadata"]["labels"]["modelreg.io/version"] == "v2"
    assert [n for n in tree(env) if "/canary/" in n] == ["prod/churn/canary/prometheusrule.yaml"]
    assert (
        modelreg(env.root, "canary", "abort", "--env", "prod", "--reason", "test").returncode == 0
    )
    assert git(env.root, "rev-parse", "deploy:prod/churn") == stable
    raw = (
        (env.root / "templates" / "inferenceservice.yaml.j2")
        .read_text()
        .replace(
            '    serving.kserve.io/enable-prometheus-scraping: "true"\n',
            '    serving.kserve.io/enable-prometheus-scraping: "true"\n'
            '    serving.kserve.io/deploymentMode: "RawDeployment"\n',
        )
    )
    (env.root / "templates" / "inferenceservice.yaml.j2").write_text(raw)
    git(env.root, "commit", "-qam", "raw deployment mode")
    env.register("churn", 3)
    deploy(env.registry, "churn@v3", "staging")
    refused = modelreg(env.root, "canary", "start", "churn@v3", "--env", "prod")
    assert refused.returncode == 1 and "RawDeployment mode cannot split traffic" in refused.stderr


def rendered_objects(env: Env) -> list[dict[str, Any]]:
    """Every object modelreg renders itself in a canary: route, PodMonitor, both PrometheusRules."""
    paths = [
        p for p in tree(env) if p.endswith(("route.yaml", "podmonitor.yaml", "prometheusrule.yaml"))
    ]
    assert len(paths) == 4, paths
    return [show(env, p) for p in paths]


def test_the_route_and_the_monitoring_pass_the_crd_schemas_and_promtool(
    prod: Env, tmp_path: Path
) -> None:
    assert modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod").returncode == 0
    objects = rendered_objects(prod)
    assert {o["kind"] for o in objects} == {"HTTPRoute", "PodMonitor", "PrometheusRule"}
    node = shutil.which("node")
    assert node and (MODELS / "node_modules").is_dir(), (
        "the CRD validators are missing: `make tools` (needs node and npm: apt-get install "
        "nodejs npm)"
    )
    judge = [node, str(ROOT / "tests" / "crd" / "validate.mjs"), str(MODELS)]
    result = subprocess.run(
        judge, input=json.dumps(objects), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = {o["kind"]: o for o in json.loads(json.dumps(objects))}
    broken["HTTPRoute"]["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    broken["PodMonitor"]["spec"]["podMetricsEndpoints"] = [{"interval": "soon"}]
    broken["PrometheusRule"]["spec"]["groups"] = "none"
    result = subprocess.run(
        judge, input=json.dumps(list(broken.values())), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and len(result.stdout.splitlines()) == 3, (
        result.stdout
    )  # the judge can fail
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus"
    for number, rule in enumerate(o for o in objects if o["kind"] == "PrometheusRule"):
        path = tmp_path / f"rules-{number}.yaml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        checked = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, (
            checked.stdout + checked.stderr
        )


def test_history_at_status_show_and_the_site_show_the_canary_and_its_verdicts(
    prod: Env, tmp_path: Path
) -> None:
    before = git(prod.root, "log", "-1", "--format=%ct", "deploy").strip()
    later = {"GIT_COMMITTER_DATE": "2026-01-02T00:00:00+0000"}  # the tests' clock stands still
    started = modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod", env=later)
    assert started.returncode == 0, started.stderr
    judged(prod, "passed")
    at = modelreg(prod.root, "history", "--env", "prod", "--at", "now", "--json")
    assert json.loads(at.stdout)[0]["canary"] == {
        "candidate": "v2", "tag": "churn@v2", "weight": 10, "verdict": "passed",
        "summary": "passed by hand",
    }  # fmt: skip
    printed = modelreg(prod.root, "history", "--env", "prod", "--at", "now").stdout
    assert "churn: a canary of churn@v2 ran at 10% beside it (last analysis passed)" in printed
    earlier = json.loads(
        modelreg(prod.root, "history", "--env", "prod", "--at", f"@{before}", "--json").stdout
    )
    assert earlier[0]["version"] == "v1" and earlier[0]["canary"] is None
    status = modelreg(prod.root, "status", "--env", "prod").stdout
    assert "canary:v2@10%" in status and "canary of churn@v2 at 10% beside v1" in status
    shown = modelreg(prod.root, "show", "churn@v2").stdout
    assert "Canary in prod at 10% beside v1" in shown and "Analysis in prod at 10%: PASSED" in shown
    site = tmp_path / "site"
    assert modelreg(prod.root, "site", "-o", str(site)).returncode == 0
    page = (site / "version-churn-v2.html").read_text()
    assert "Canary analyses" in page and "prod at 10%: passed" in page
    assert "canary-start" in (site / "env-prod.html").read_text()


def test_gc_keeps_the_candidate_a_canary_runs(prod: Env) -> None:
    assert modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod").returncode == 0
    # v2 is also live in staging: a third version, in a canary alone, shows the canary's own rule
    prod.register("churn", 3)
    deploy(prod.registry, "churn@v3", "staging")
    assert modelreg(prod.root, "canary", "abort", "--env", "prod", "--reason", "r").returncode == 0
    git(prod.root, "update-ref", "-d", "refs/heads/deploy")  # start over: only v3's canary left
    deploy(prod.registry, "churn@v1", "prod")
    assert modelreg(prod.root, "canary", "start", "churn@v3", "--env", "prod").returncode == 0
    deploy(prod.registry, "churn@v1", "staging")  # v3 is live nowhere but in the canary
    planned = modelreg(prod.root, "gc", "--keep-last", "0", "--window", "0s", "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    kept = json.loads(planned.stdout)["kept"]
    assert kept.get("churn@v3") == "a canary in prod", kept


def measurement(*outcomes: str, key: bool = False) -> Measurement:
    found = [
        AnalysisCheck(f"c{i}", "q", 1.0, "<= 2", outcome, key=key)
        for i, outcome in enumerate(outcomes)
    ]
    return Measurement(
        0.0, next((o for o in ("failed", "inconclusive") if o in outcomes), "passed"), found
    )


def test_the_verdict_of_measurements_follows_argos_model() -> None:
    passed, failed = measurement("passed", "passed"), measurement("passed", "failed")
    unsure = measurement("passed", "inconclusive")
    assert judge([passed, passed, passed], 0, 3)[0] == "passed"
    assert judge([passed, failed], 0, 3) == (
        "failed",
        "c1 = 1, needs <= 2: failed (measurement 2 of 3; 1 failed, 0 tolerated)",
    )
    assert judge([failed, passed, passed], 1, 3) == (
        "passed",
        "2 of 3 measurements passed (1 failed, 1 tolerated)",
    )
    assert judge([failed, failed], 1, 3)[0] == "failed"
    assert judge([passed, unsure, passed], 0, 3)[0] == "inconclusive"
    assert judge([unsure, failed], 1, 2)[0] == "inconclusive"  # tolerated, but not all judged
    key = measurement("passed", "failed", key=True)
    assert judge([passed, key], 5, 3)[0] == "failed"
    assert "a key check fails the analysis alone" in judge([key], 5, 3)[1]


def test_canary_starts_at_once_land_one_canary(prod: Env) -> None:
    """Four `canary start`s of two candidates started together: exactly one lands; the others are
    refused because a canary runs (they lost the compare-and-swap and read the winner's commit)."""
    prod.register("churn", 3)
    deploy(prod.registry, "churn@v3", "staging")
    tip = git(prod.root, "rev-parse", "deploy").strip()
    procs = [
        start(
            prod.root,
            "canary",
            "start",
            f"churn@v{2 + i % 2}",
            "--env",
            "prod",
            "--weight",
            str(10 + i),
        )  # fmt: skip
        for i in range(4)
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1], results
    for code, (_, err) in results:
        assert code == 0 or "already runs in prod at 1" in err, err
    log = git(
        prod.root, "log", "--format=%(trailers:key=Modelreg-Action,valueonly)", f"{tip}..deploy"
    )
    assert log.split() == ["canary-start"]


def test_a_checks_query_keeps_promqls_braces_and_the_record_stays_strict_json() -> None:
    query = 'max(q{namespace="{namespace}",v="{version}"}) / count(r{m="{model}"}) > {0}'
    assert fill(query, "churn", 'v"2', "prod") == (
        'max(q{namespace="prod",v="v\\"2"}) / count(r{m="churn"}) > {0}'
    )
    check = AnalysisCheck("p99", "q", float("inf"), "<= 1s", "failed")
    analysis = Analysis(
        model="churn", env="prod", candidate="v2", tag="churn@v2", stable="v1", weight=10,
        prometheus="http://p", window="5m", interval="1m", count=1, failure_limit=0,
        policy_blob="", policy_source="", started=0.0, finished=0.0, by="t", verdict="failed",
        summary=check.line(), measurements=[Measurement(0.0, "failed", [check])],
    )  # fmt: skip
    text = json.dumps(analysis.to_json(), allow_nan=False)
    assert json.loads(text)["measurements"][0]["checks"][0]["value"] == "+Inf"
    assert analysis.summary == "p99 = inf, needs <= 1s: failed"


@pytest.mark.parametrize("step", ["deploy-built", "deploy-pushed", "deploy-landed"])
@pytest.mark.parametrize("action", ["start", "abort"])
def test_a_canary_step_killed_at_each_step_lands_once(prod: Env, step: str, action: str) -> None:
    """kill -9 after each named step of a pushed canary start or abort: the origin holds the commit
    or not, never half of it; the same command again lands it exactly once (or says it is done)."""
    git(prod.root, "push", "-q", "origin", "main", "deploy", "--tags")
    if action == "abort":
        assert (
            modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod", "--push").returncode
            == 0
        )
    args = {
        "start": ("canary", "start", "churn@v2", "--env", "prod", "--push"),
        "abort": ("canary", "abort", "--env", "prod", "--reason", "killed", "--push"),
    }[action]
    before = git(prod.root, "ls-remote", "origin", "refs/heads/deploy").split()[0]
    killed = modelreg(prod.root, *args, env={"MODELREG_TEST_KILL_AFTER": step})
    assert killed.returncode == -9, killed.stderr
    after = git(prod.root, "ls-remote", "origin", "refs/heads/deploy").split()[0]
    assert (after == before) == (step == "deploy-built")
    again = modelreg(prod.root, *args)
    assert again.returncode == 0, again.stderr
    git(prod.root, "fetch", "-q", "origin", "+refs/heads/deploy:refs/remotes/origin/deploy")
    actions = git(
        prod.root,
        "log",
        "--format=%(trailers:key=Modelreg-Action,valueonly)",
        f"{before}..origin/deploy",
    ).split()
    assert actions == [f"canary-{action}"], actions


def test_a_candidate_quarantined_meanwhile_goes_no_further(prod: Env) -> None:
    assert modelreg(prod.root, "canary", "start", "churn@v2", "--env", "prod").returncode == 0
    judged(prod, "passed")
    assert modelreg(prod.root, "quarantine", "churn@v2", "--reason", "bad batch").returncode == 0
    step = modelreg(prod.root, "canary", "step", "--env", "prod")
    assert step.returncode == 1 and "churn@v2 is quarantined (bad batch" in step.stderr
    assert modelreg(prod.root, "unquarantine", "churn@v2", "--reason", "fine").returncode == 0
    assert modelreg(prod.root, "canary", "step", "--env", "prod").returncode == 0
    judged(prod, "passed")
    assert modelreg(prod.root, "quarantine", "churn@v2", "--reason", "bad again").returncode == 0
    promote = modelreg(prod.root, "canary", "promote", "--env", "prod")
    assert promote.returncode == 1 and "churn@v2 is quarantined (bad again" in promote.stderr
    aborted = modelreg(prod.root, "canary", "abort", "--env", "prod", "--reason", "quarantined")
    assert aborted.returncode == 0, aborted.stderr
