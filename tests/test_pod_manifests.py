"""What the rendered pod asks of the cluster (issue #20): a startup probe sized from the artifact or
the setting, a drain shorter than the grace period, a PodDisruptionBudget only where there is more
than one replica, the NetworkPolicy's ports, and settings that cannot work refused with one line."""

from __future__ import annotations

import yaml

from helpers import Env, git, modelreg
from modelreg.render import render, startup_probe
from modelreg.versions import resolve


def set_env(env: Env, name: str, **settings: object) -> None:
    config = yaml.safe_load((env.root / "modelreg.yaml").read_text())
    config["environments"][name].update(settings)
    (env.root / "modelreg.yaml").write_text(yaml.safe_dump(config))
    git(env.root, "commit", "-qam", f"{name}: {settings}")


def objects(env: Env, name: str) -> dict[str, dict]:
    return {
        o["kind"]: o for o in render(env.registry, resolve(env.registry, "churn@v1"), name).objects
    }


def test_the_startup_probe_is_sized_from_the_artifact_or_the_setting() -> None:
    assert startup_probe(4096, 0) == {"period": 5, "failures": 12, "seconds": 60}
    ten_gib = startup_probe(10 * 1024**3, 0)
    assert ten_gib["seconds"] == 60 + 512 and ten_gib["failures"] * ten_gib["period"] >= 572
    assert startup_probe(4096, 900) == {"period": 5, "failures": 180, "seconds": 900}


def test_probes_drain_and_disruption_budget_in_the_pod(env: Env) -> None:
    env.register("churn", 1)
    set_env(env, "staging", startup_seconds=601, termination_grace_seconds=45)
    staging = objects(env, "staging")
    spec = staging["Deployment"]["spec"]["template"]["spec"]
    server = spec["containers"][0]
    assert (
        server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] >= 601
    )
    assert (
        "initialDelaySeconds" not in server["livenessProbe"]
    )  # the startup probe holds liveness off
    drain = int(server["args"][server["args"].index("--drain-seconds") + 1])
    assert spec["terminationGracePeriodSeconds"] == 45 and 0 < drain < 45
    assert (
        "PodDisruptionBudget" not in staging
    )  # one replica: a budget would block every node drain
    prod = objects(env, "prod")
    assert prod["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert prod["PodDisruptionBudget"]["spec"]["selector"] == prod["Deployment"]["spec"]["selector"]
    for box in spec["initContainers"] + spec["containers"]:
        assert box["resources"]["requests"] and box["resources"]["limits"], box["name"]
    assert "NetworkPolicy" not in prod
    set_env(env, "prod", network_policy=True, storage_port=9000)
    policy = objects(env, "prod")["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    assert {"protocol": "TCP", "port": 9000} in [
        p for rule in policy["egress"] for p in rule["ports"]
    ]


def test_settings_that_cannot_work_are_one_line_errors(env: Env) -> None:
    env.register("churn", 1)
    text = (env.root / "modelreg.yaml").read_text()
    for setting, message in (
        ("network_policy: true", "rendered for serving.kind deployment only"),
        ("storage_port: 70000", "expected a port"),
        ("termination_grace_seconds: 100000", "expected 0 to 86400 seconds"),
    ):
        changed = text.replace("    replicas: 1\n", f"    replicas: 1\n    {setting}\n", 1)
        if "network_policy" in setting:
            changed = changed.replace("  kind: deployment ", "  kind: kserve ")
        (env.root / "modelreg.yaml").write_text(changed)
        git(env.root, "commit", "-qam", setting)  # settings are read from the committed policy
        result = modelreg(env.root, "render", "churn@v1", "--env", "staging")
        assert result.returncode == 1 and message in result.stderr, (setting, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        git(env.root, "reset", "-q", "--hard", "HEAD~1")
