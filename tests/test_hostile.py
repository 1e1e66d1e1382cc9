"""Hostile content costs seconds, not gigabytes: modelreg.yaml and template bombs, escaping deploy
paths, closed stdout, non-finite numbers in --json. Each is one clear line and exit 1, the repo as
it was."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import MODELREG, Env, git, modelreg, snapshot
from modelreg.cli.main import cli
from modelreg.deploy import deploy
from modelreg.status import status
from test_bad_input import BOMB


def commit_file(env: Env, rel: str, text: str) -> None:
    (env.root / rel).write_text(text)
    git(env.root, "add", rel)
    git(env.root, "commit", "-qm", f"edit {rel}")


def replace_in(env: Env, rel: str, old: str, new: str) -> None:
    text = (env.root / rel).read_text()
    assert old in text
    commit_file(env, rel, text.replace(old, new, 1))


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda t: t + BOMB.replace("a:", "x_bomb_a:", 1), "YAML bomb"),
        (lambda t: t.replace("replicas: 2", "replicas: " + "9" * 5000), "a number is too large"),
        (
            lambda t: t.replace("replicas: 2", "replicas: 100000000000"),
            "environments.prod.replicas: expected an integer from 0",
        ),
        (
            lambda t: t.replace('path: "{env}/{model}"', 'path: "../{env}/{model}"'),
            "must be a relative path inside the deploy branch",
        ),
        (
            lambda t: t.replace('path: "{env}/{model}"', 'path: ".git/{env}/{model}"'),
            "must be a relative path",
        ),
        (
            lambda t: t.replace('path: "{env}/{model}"', 'path: "/{env}/{model}"'),
            "must be a relative path",
        ),
        (
            lambda t: t.replace('path: "{env}/{model}"', 'path: "{env}/{model}/{0}"'),
            "only {env} and {model}",
        ),
        (
            lambda t: t.replace("branch: deploy", "branch: ../../x"),
            "deploy.branch: '../../x' is not a usable branch name",
        ),
        (lambda t: t.replace("remote: origin", "remote: '--upload-pack=evil'"), "deploy.remote"),
        (lambda t: t + "x" * (2 * 1024 * 1024), "too large"),
        (
            lambda t: t.replace("    replicas: 2\n", "    replicas: 2\n    soak: forever\n"),
            "'forever' is not a duration",
        ),
        (
            lambda t: t.replace("    replicas: 1\n", "    replicas: 1\n    soak: 2h\n"),
            "environments.staging.soak: needs `requires`",
        ),
    ],
)
def test_a_hostile_modelreg_yaml_is_one_line(env: Env, edit: object, message: str) -> None:
    config = env.root / "modelreg.yaml"
    commit_file(env, "modelreg.yaml", edit(config.read_text()))  # type: ignore[operator]
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["-C", str(env.root), "list"])
    assert (
        result.exit_code == 1
        and message in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    ), result.output
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "expression,message",
    [
        ("{{ 9 ** (9 ** 8) }}", "power"),
        ("{{ 'x' * 10 ** 10 }}", "repetition"),
        ("{% for i in range(10 ** 9) %}{% endfor %}", "range"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "iterations",
        ),
        ("{{ 'x' | center(10 ** 9) }}", "filter center"),
        ("{{ '{:>999999999}'.format(1) }}", "str.format"),
        ("{{ '%999999999s' % 'x' }}", "%-formatting"),
        ("{% for i in range(900000) %}{{ i }}xxxxxxxxxx{% endfor %}", "output: over"),
        (
            "{% set s = 'x' * 3000 %}{% for c in s %}{% for d in s %}{% for e in s %}{% endfor "
            "%}{% endfor %}{% endfor %}",
            "longer than",
        ),
        ("{{ cycler.__init__.__globals__ }}", "unsafe"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ [][5] }}", "templates/service.yaml.j2"),
    ],
)
def test_a_template_bomb_is_a_named_error_within_seconds(
    env: Env, expression: str, message: str
) -> None:
    env.register("churn", 1)
    replace_in(env, "templates/service.yaml.j2", "port: 80", f"port: 80 # {expression}")
    before = snapshot(env.root)
    source = env.work / "v2.pt"
    source.write_bytes(b"v2")
    started = time.monotonic()
    refused = CliRunner().invoke(
        cli, ["-C", str(env.root), "register", "churn", str(source), "--no-inspect"]
    )
    assert (
        refused.exit_code == 1
        and "nothing was registered" in refused.stderr
        and message in refused.stderr
    )
    assert time.monotonic() - started < 15
    assert snapshot(env.root) == before
    git(
        env.root, "tag", "churn@v2"
    )  # a hand-made tag on the commit with the bomb: render and deploy refuse it
    before = snapshot(env.root)
    for args in (
        ["render", "churn@v2", "--env", "staging"],
        ["deploy", "churn@v2", "--env", "staging"],
    ):
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["-C", str(env.root), *args])
        assert result.exit_code == 1, result.output
        assert "templates/service.yaml.j2:" in result.stderr and message in result.stderr, (
            result.stderr
        )
        assert len(result.stderr.strip().splitlines()) == 1
        assert time.monotonic() - started < 15
    assert snapshot(env.root) == before


def test_status_reports_a_template_bomb_instead_of_hanging(env: Env) -> None:
    env.register("churn", 1)
    deploy(env.registry, "churn@v1", "staging")
    replace_in(env, "templates/service.yaml.j2", "port: 80", "port: 80 # {{ 9 ** (9 ** 8) }}")
    git(env.root, "tag", "-f", "-a", "churn@v2", "-m", "by hand")
    deploy(env.registry, "churn@v1", "prod", action="promote")
    started = time.monotonic()
    states = status(env.registry)
    assert time.monotonic() - started < 15
    assert all(s.drift in ("none", "stale") or s.drift.startswith("unrenderable") for s in states)


def test_json_is_strict_and_a_closed_stdout_is_one_line(env: Env, tmp_path: Path) -> None:
    env.register("churn", 1)
    # a hand-made card with nan in it (modelreg refuses to write one, a person can)
    text = (
        (env.root / "models/churn/model.yaml")
        .read_text()
        .replace("metrics: {}", "metrics:\n  auc: .nan")
    )
    commit_file(env, "models/churn/model.yaml", text)
    git(env.root, "tag", "-a", "churn@v2", "-m", "by hand")
    shown = modelreg(env.root, "show", "churn@v2", "--json")
    assert shown.returncode == 0
    assert (
        json.loads(shown.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json"))["card"][
            "metrics"
        ]["auc"]
        == "nan"
    )
    for seed in range(2, 40):
        env.register("churn", seed)
    piped = subprocess.run(
        f"'{MODELREG}' -C '{env.root}' history | head -1",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and piped.stdout.startswith("WHEN") and piped.stderr == ""
    proc = subprocess.Popen(
        [MODELREG, "-C", str(env.root), "show", "churn", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # type: ignore[union-attr]  # the reader went away before modelreg wrote
    err = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=60) == 1, err
    assert err == ""  # the reader left on purpose: nothing to report (issue #18)
