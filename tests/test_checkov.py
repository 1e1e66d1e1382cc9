"""checkov, a checker nobody here wrote, on every manifest modelreg renders (issue #20).

Every serving kind, every environment, in a default registry and in one with every option on, as a
released modelreg renders them (the image by digest: a development install names it by tag, which
checkov's CKV_K8S_43 rightly fails and `render` says). Invariant: zero failed checks; every skip is
written in the template with a reason and listed in the README.

checkov lives in its own venv (`make test` builds .tools/checkov): its pins (boto3, packaging,
networkx, dpath) cannot share one environment with DVC's S3 extra and moto. The test fails, never
skips, when it is missing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import Env, git
from modelreg.config import parse_config
from modelreg.render import Track, render
from modelreg.versions import resolve

ROOT = Path(__file__).resolve().parents[1]
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
DIGEST = "sha256:" + "5" * 64
EVERY_OPTION = {
    "replicas": 3,
    "min_replicas": 3,
    "max_replicas": 9,
    "gpu": 1,
    "network_policy": True,
    "storage_port": 9000,
    "startup_seconds": 900,
    "termination_grace_seconds": 90,
    "require_image_digest": True,
    "require_artifact_signature": True,
    "artifact_key": ".modelreg/release.pub",
    "monitoring": True,
    "canary": {"gateway": "public"},
}


def every_option_on(env: Env, tmp_path: Path, network_policy: bool) -> dict[str, object]:
    """Every environment with every option on (the NetworkPolicy is the deployment kind's); a signed
    version (the init container checks it)."""
    private = ec.generate_private_key(ec.SECP256R1())
    key = tmp_path / "release.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (env.root / ".modelreg").mkdir(exist_ok=True)
    (env.root / ".modelreg" / "release.pub").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = yaml.safe_load((env.root / "modelreg.yaml").read_text())
    for settings in config["environments"].values():
        settings.update(EVERY_OPTION, network_policy=network_policy)
    (env.root / "modelreg.yaml").write_text(yaml.safe_dump(config))
    git(env.root, "add", "-A")
    git(env.root, "commit", "-qm", "every option on")
    return {"sign_artifact": True, "key": key}


def set_kind(env: Env, kind: str) -> None:
    config = yaml.safe_load((env.root / "modelreg.yaml").read_text())
    config.setdefault("serving", {})["kind"] = kind
    (env.root / "modelreg.yaml").write_text(yaml.safe_dump(config))
    git(env.root, "commit", "-qam", f"serving.kind {kind}")


def kserve_pods(out: Path) -> None:
    """checkov reads built-in kinds only: beside each InferenceService, the Pod KServe makes of it
    (the
    predictor's pod fields, the runtime's container with the model's fields over it), so that
    checkov judges what will run. KServe's own storage-initializer container is KServe's, not
    ours."""
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        docs = [
            d
            for path in sorted(folder.glob("*.yaml"))
            for d in yaml.safe_load_all(path.read_text())
            if d
        ]
        runtime = next(d for d in docs if d["kind"] == "ClusterServingRuntime")["spec"]
        for isvc in (d for d in docs if d["kind"] == "InferenceService"):
            predictor = dict(isvc["spec"]["predictor"])
            model = predictor.pop("model")
            for field in ("minReplicas", "maxReplicas"):
                predictor.pop(field, None)
            container = {
                **runtime["containers"][0],
                **{
                    k: v
                    for k, v in model.items()
                    if k not in ("modelFormat", "runtime", "storageUri")
                },
            }
            container["env"] = runtime["containers"][0].get("env", []) + model.get("env", [])
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": isvc["metadata"]["name"] + "-predictor",
                    "namespace": isvc["metadata"]["namespace"],
                    "labels": isvc["metadata"].get("labels", {}),
                    "annotations": isvc["metadata"].get("annotations", {}),
                },
                "spec": {
                    **predictor,
                    "volumes": runtime.get("volumes", []),
                    "containers": [container],
                },
            }
            (folder / f"{isvc['metadata']['name']}-pod.yaml").write_text(yaml.safe_dump(pod))


@pytest.mark.parametrize("options", ["default", "every option on"])
@pytest.mark.parametrize("kind", ["deployment", "kserve"])
def test_checkov_passes_every_rendered_manifest(
    env: Env, tmp_path: Path, kind: str, options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make test` (or `make tools`) builds it"
    monkeypatch.setattr("modelreg.image.released", lambda: ("ghcr.io/modelreg/modelreg", DIGEST))
    if kind != "deployment":
        set_kind(env, kind)
    extra = (
        every_option_on(env, tmp_path, network_policy=kind == "deployment")
        if options != "default"
        else {}
    )
    env.register("churn", 1, **extra)
    out = tmp_path / "manifests"
    environments = parse_config((env.root / "modelreg.yaml").read_text()).environments
    for name in environments:
        rendered = render(env.registry, resolve(env.registry, "churn@v1"), name)
        assert not rendered.warnings, rendered.warnings
        for file, data in rendered.files.items():
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / file).write_bytes(data)
        if options != "default":  # a canary's candidate, as `modelreg canary start` renders it
            track = render(
                env.registry, resolve(env.registry, "churn@v1"), name, track=Track(10, 1)
            )
            for file, data in track.files.items():
                (out / name / "canary").mkdir(parents=True, exist_ok=True)
                (out / name / "canary" / file).write_bytes(data)
    kinds = {
        doc["kind"]
        for path in out.rglob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    expected = {
        "deployment": {"Deployment", "Service", "ConfigMap"},
        "kserve": {"InferenceService", "ClusterServingRuntime"},
    }[kind]
    assert expected <= kinds, kinds
    if options != "default" and kind == "deployment":
        assert {"NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds, kinds
        assert {"HTTPRoute", "PodMonitor", "PrometheusRule"} <= kinds, kinds
    if kind == "kserve":
        kserve_pods(out)
    run = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(out),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        (c["check_id"], c["resource"], c["file_path"])
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, failed
    assert sum(r["summary"]["passed"] for r in reports) > 50, "checkov checked almost nothing"
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`(CKV2?_K8S_\d+)`", readme))
    assert skipped <= listed, f"skips the README does not list: {skipped - listed}"
