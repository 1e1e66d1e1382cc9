"""The GitHub Actions workflow `init` writes: linted for real, and its run: steps run as a tag push
would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import Env, git
from modelreg.ci import plan
from modelreg.image import modelreg_version

WORKFLOW = ".github/workflows/modelreg.yml"
BIN = Path(sys.executable).parent


def test_workflow_passes_the_schema_and_actionlint(env: Env) -> None:
    path = env.root / WORKFLOW
    schema = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    lint = subprocess.run(
        [str(BIN / "actionlint"), str(path)], capture_output=True, text=True, timeout=120
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_workflow_shape(env: Env) -> None:
    flow = yaml.safe_load((env.root / WORKFLOW).read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["tags"] == ["*@v*", "v*"]  # the fixture's registry has a default model
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"action", "ref", "env"}
    assert flow["permissions"] == {} and flow["jobs"]["deploy"]["permissions"] == {
        "contents": "write"
    }
    assert (
        flow["env"]["MODELREG_PACKAGE"] == f"modelreg=={modelreg_version()}"
    )  # exactly the modelreg that wrote it
    assert "staging" in flow["concurrency"]["group"]
    steps = flow["jobs"]["deploy"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    install = next(s for s in steps if s.get("id") == "install")
    assert "torch" not in install["run"] and "torch" not in flow["env"]["MODELREG_PACKAGE"]


def run_steps(flow: dict, workspace: Path, variables: dict[str, str]) -> None:
    """Run each `run:` step in bash as the runner would, except installing modelreg (this venv has
    it)."""
    base = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        **flow.get("env", {}),
        **variables,
    }
    for step in flow["jobs"]["deploy"]["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue
        step_env = {k: ("" if "${{" in str(v) else str(v)) for k, v in step.get("env", {}).items()}
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=workspace,
            env={**base, **step_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"step {step.get('name')}: {done.stderr}"


def test_a_tag_push_deploys_to_the_first_environment_on_origin(env: Env, tmp_path: Path) -> None:
    env.register("churn", 1)
    git(env.root, "push", "-q", "origin", "HEAD:main", "--tags")
    workspace = tmp_path / "runner" / "registry"
    git(tmp_path, "clone", "-q", str(env.origin), str(workspace))
    git(workspace, "checkout", "-q", "churn@v1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        os.environ.pop(var, None)  # restored below: the workflow must set its own identity
    try:
        run_steps(
            yaml.safe_load((workspace / WORKFLOW).read_text()),
            workspace,
            {
                "GITHUB_EVENT_NAME": "push",
                "GITHUB_REF": "refs/tags/churn@v1",
                "GITHUB_REF_NAME": "churn@v1",
                "GITHUB_REF_TYPE": "tag",
                "GITHUB_WORKSPACE": str(workspace),
                "GITHUB_ACTOR": "octocat",
                "GITHUB_REPOSITORY": "acme/models",
                "GITHUB_SHA": git(workspace, "rev-parse", "HEAD").strip(),
                "CI": "true",
                "GITHUB_ACTIONS": "true",
            },
        )
    finally:
        os.environ.update(
            {
                "GIT_AUTHOR_NAME": "Test Author",
                "GIT_AUTHOR_EMAIL": "author@example.com",
                "GIT_COMMITTER_NAME": "Test Author",
                "GIT_COMMITTER_EMAIL": "author@example.com",
            }
        )
    message = git(env.origin, "log", "-1", "--format=%an%n%B", "deploy")
    assert message.startswith("octocat\nDeploy churn@v1 to staging")
    assert "Modelreg-Tag: churn@v1" in message
    assert "staging/churn/deployment.yaml" in git(
        env.origin, "ls-tree", "-r", "--name-only", "deploy"
    )


def test_ci_plan_reads_github_variables(env: Env) -> None:
    registry = env.registry
    push = plan(
        registry, {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v3"}
    )
    assert (push.action, push.ref, push.env) == ("deploy", "v3", "staging")
    manual = plan(
        registry,
        {
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "MODELREG_ACTION": "rollback",
            "MODELREG_ENV": "prod",
            "GITHUB_REF": "refs/heads/main",
        },
    )
    assert (manual.action, manual.ref, manual.env) == ("rollback", None, "prod")
    import pytest

    from modelreg.errors import ModelregError

    for quiet, notice in [
        (
            {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main"},
            "a push of branch main deploys nothing",
        ),
        (
            {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.2"},
            "tag 'v1.2' is not a version of this registry",
        ),  # an application's release tag
        (
            {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "release-1"},
            "not a version of this registry",
        ),
        ({"GITHUB_EVENT_NAME": "schedule"}, "deploys nothing"),
    ]:
        skipped = plan(registry, quiet)
        assert skipped.action == "skip" and notice in skipped.notice
    dispatch = {
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "MODELREG_ACTION": "deploy",
        "MODELREG_REF": "v1",
    }
    for bad, message in [
        ({**dispatch, "GITHUB_REF": "refs/heads/main", "MODELREG_REF": ""}, "needs a ref"),
        (
            {**dispatch, "GITHUB_REF": "refs/heads/feature"},
            "only from the default branch \\(main\\)",
        ),
        ({**dispatch}, "only from the default branch"),
        ({}, "GITHUB_EVENT_NAME"),
    ]:
        with pytest.raises(ModelregError, match=message):
            plan(registry, bad)


def test_the_workflow_works_from_the_smallest_fetch(env: Env, tmp_path: Path) -> None:
    """Depth 1: only the pushed tag and the deploy branch's tip, no other tags, no history."""
    from modelreg.deploy import deploy

    env.register("churn", 1)
    deploy(env.registry, "churn@v1", "staging")
    env.register("churn", 2)
    git(env.root, "push", "-q", "origin", "HEAD:main", "deploy", "--tags")
    workspace = tmp_path / "shallow"
    git(tmp_path, "init", "-q", str(workspace))
    git(workspace, "remote", "add", "origin", str(env.origin))
    git(
        workspace,
        "fetch",
        "-q",
        "--depth=1",
        "origin",
        "refs/tags/churn@v2:refs/tags/churn@v2",
        "+refs/heads/deploy:refs/remotes/origin/deploy",
    )
    git(workspace, "checkout", "-q", "churn@v2")
    assert git(workspace, "rev-list", "--count", "HEAD").strip() == "1"
    run_steps(
        yaml.safe_load((workspace / WORKFLOW).read_text()),
        workspace,
        {
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF": "refs/tags/churn@v2",
            "GITHUB_REF_NAME": "churn@v2",
            "GITHUB_REF_TYPE": "tag",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_ACTOR": "octocat",
        },
    )
    message = git(env.origin, "log", "-1", "--format=%B", "deploy")
    assert "Modelreg-Tag: churn@v2" in message and "Modelreg-Previous-Version: v1" in message
