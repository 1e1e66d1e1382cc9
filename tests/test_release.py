"""Issue #19, installing modelreg from a release: the release workflow's build and check steps run
here as the runner would run them (no PyPI or GHCR: the publishing jobs are GitHub's), the dists
they make install into a clean venv and run a real flow, two builds of one commit are
byte-identical, and every workflow the project has or writes passes actionlint and zizmor.

Invariants: an installed release renders its server image by digest and its scaffolded workflow
installs exactly that release; a development install says once that it names the image by tag."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import Env, git
from modelreg.deploy import deploy
from modelreg.errors import ModelregError
from modelreg.image import modelreg_version
from modelreg.render import render
from modelreg.versions import resolve

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
DIGEST = "sha256:" + "ab" * 32


def source_copy(dest: Path) -> Path:
    """The project as a fresh clone of the working tree would have it (tracked and new files)."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "release candidate")
    return dest


def run_job(job: str, workspace: Path, variables: dict[str, str]) -> str:
    """Each `run:` step of a release.yml job in bash, as the runner runs it, but the tool install
    (this venv has the tools); the `${{ ... }}` of a step's env are given in VARIABLES."""
    flow = yaml.safe_load(RELEASE.read_text())
    base = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        **flow.get("env", {}),
        **variables,
    }
    printed = []
    for step in flow["jobs"][job]["steps"]:
        if "run" not in step or step.get("id") == "tools":
            continue
        step_env = {
            k: variables.get(k, "") for k, v in step.get("env", {}).items() if "${{" in str(v)
        }
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
            cwd=workspace,
            env={**base, **step_env},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, (
            f"step {step.get('name')}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        printed.append(done.stdout)
    return "\n".join(printed)


def test_the_release_build_makes_checked_dists_that_install_and_run_with_the_digest(
    tmp_path: Path,
) -> None:
    workspace = source_copy(tmp_path / "src")
    version = modelreg_version()
    out = run_job(
        "build",
        workspace,
        {
            "DIGEST": DIGEST,
            "RUNNER_TEMP": str(tmp_path / "runner"),
            "GITHUB_REF_NAME": f"v{version}",
        },
    )
    dist = workspace / "dist"
    wheel = next(dist.glob("modelreg-*.whl"))
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        [wheel.name, f"modelreg-{version}.tar.gz", "SHA256SUMS"]
    )
    sums = dict(line.split()[::-1] for line in (dist / "SHA256SUMS").read_text().splitlines())
    assert sums[wheel.name] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    with zipfile.ZipFile(wheel) as archive:
        assert json.loads(archive.read("modelreg/release.json"))["digest"] == DIGEST
        assert (
            "modelreg/py.typed" in archive.namelist()
            and "modelreg/templates/modelreg.yml" in archive.namelist()
        )
    assert "smoke test passed" in out
    assert (
        f"ghcr.io/modelreg/modelreg:{version}@{DIGEST}" in out
    )  # the installed release names its image by digest
    assert "PASSED" in out  # twine check --strict
    smoke = tmp_path / "runner" / "smoke" / "registry" / ".github" / "workflows" / "modelreg.yml"
    assert f"MODELREG_PACKAGE: modelreg=={version}\n" in smoke.read_text()


def test_two_builds_of_one_commit_give_the_same_wheel(tmp_path: Path) -> None:
    workspace = source_copy(tmp_path / "src")
    wheels = []
    for n in (1, 2):
        done = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / f"out{n}"), "."],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "SOURCE_DATE_EPOCH": "1767225600"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        wheels.append(next((tmp_path / f"out{n}").glob("*.whl")).read_bytes())
    assert wheels[0] == wheels[1]


def test_a_tag_that_is_not_the_version_stops_the_release(tmp_path: Path) -> None:
    script = ROOT / ".github" / "scripts" / "check-version.py"
    ok = subprocess.run(
        [sys.executable, str(script), f"v{modelreg_version()}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0
    wrong = subprocess.run(
        [sys.executable, str(script), "v9.9.9"], cwd=ROOT, capture_output=True, text=True
    )
    assert wrong.returncode == 1 and "is not v" in wrong.stderr
    flow = yaml.safe_load(RELEASE.read_text())
    assert (
        flow["jobs"]["image"]["needs"] == "version"
    )  # nothing is built or published before the check


def test_the_release_workflow_is_least_privilege_and_pinned() -> None:
    flow = yaml.safe_load(RELEASE.read_text())
    assert flow["permissions"] == {}
    text = RELEASE.read_text()
    for line in text.splitlines():
        if "uses:" in line:
            ref = line.split("uses:")[1].split("#")[0].strip()
            assert len(ref.split("@")[1]) == 40 and "# v" in line, (
                line
            )  # a full commit, its version beside it
    assert "secrets." not in text
    writers = {
        name
        for name, job in flow["jobs"].items()
        if job.get("permissions", {}).get("id-token") == "write"
    }
    assert writers == {"image", "provenance", "pypi"}
    assert flow["jobs"]["pypi"]["steps"][-1]["with"]["attestations"] is True


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / ".github" / "workflows").glob("*.yml")) + ["scaffolded"],
    ids=lambda p: getattr(p, "name", p),
)
def test_every_workflow_passes_actionlint_and_zizmor(path: object, env: Env) -> None:
    target = (
        env.root / ".github/workflows/modelreg.yml" if path == "scaffolded" else Path(str(path))
    )
    lint = subprocess.run(
        [str(BIN / "actionlint"), str(target)], capture_output=True, text=True, timeout=120
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    audit = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0 and "No findings" in audit.stdout + audit.stderr, (
        audit.stdout + audit.stderr
    )


def test_a_development_install_names_the_image_by_tag_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.register("churn", 1)
    rendered = render(env.registry, resolve(env.registry, "churn@v1"), "staging")
    image = f"ghcr.io/modelreg/modelreg:{modelreg_version()}"
    assert image in rendered.files["deployment.yaml"].decode()
    assert len(rendered.warnings) == 1 and "by its tag" in rendered.warnings[0]
    landed = deploy(env.registry, "churn@v1", "staging")
    assert sum("by its tag" in w for w in landed.warnings) == 1
    monkeypatch.setattr("modelreg.image.released", lambda: ("ghcr.io/modelreg/modelreg", DIGEST))
    pinned = render(env.registry, resolve(env.registry, "churn@v1"), "staging")
    assert f"{image}@{DIGEST}" in pinned.files["deployment.yaml"].decode() and not pinned.warnings


def test_an_environment_can_require_an_image_by_digest(env: Env) -> None:
    text = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        text.replace("    replicas: 1\n", "    replicas: 1\n    require_image_digest: true\n", 1)
    )
    git(env.root, "commit", "-qam", "staging runs images by digest only")
    env.register("churn", 1)
    with pytest.raises(
        ModelregError, match=r"\[image digest\] the manifests would name ghcr.io/modelreg/modelreg:"
    ):
        deploy(env.registry, "churn@v1", "staging")
    text = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        text.replace("  port: 8080\n", f"  port: 8080\n  image: registry.example/server@{DIGEST}\n")
    )
    git(env.root, "commit", "-qam", "our own server image, by digest")
    landed = deploy(env.registry, "churn@v1", "staging")
    assert ("image digest", True) in [(g["gate"], g["passed"]) for g in landed.gates] and not any(
        "by its tag" in w for w in landed.warnings
    )
