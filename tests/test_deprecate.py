"""Deprecation with a sunset (issue #23, item 4), on real registries and a real server.

Invariants: a deprecation is one commit on the deploy branch (again with the same terms: none),
lifted by undeprecate; list, show, status and pull say so; before the sunset a deploy warns and its
pods answer with RFC 9745's Deprecation and RFC 8594's Sunset headers; on and after the sunset
deploy and promote refuse the version."""

from __future__ import annotations

import datetime
import email.utils
import json
import urllib.request

import pytest

from helpers import Env, git, modelreg
from modelreg.deploy import deploy
from modelreg.errors import DeployError
from modelreg.marks import deprecate
from test_serving import register_model, start_server

FUTURE = (datetime.date.today() + datetime.timedelta(days=90)).isoformat()
PAST = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


def test_deprecate_is_recorded_shown_and_lifted(env: Env) -> None:
    env.register("churn", 1)
    env.register("churn", 2)
    done = modelreg(
        env.root,
        "deprecate",
        "churn@v1",
        "--sunset",
        FUTURE,
        "--replacement",
        "churn@v2",
        "--reason",
        "retrained on 2026 data",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    commit = json.loads(done.stdout)["commit"]
    message = git(env.root, "log", "-1", "--format=%B", commit)
    assert f"Modelreg-Sunset: {FUTURE}" in message and "Modelreg-Replacement: churn@v2" in message
    again = modelreg(
        env.root,
        "deprecate",
        "churn@v1",
        "--sunset",
        FUTURE,
        "--replacement",
        "churn@v2",
        "--reason",
        "x",
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert git(env.root, "rev-parse", "deploy").strip() == commit  # no second commit
    shown = json.loads(modelreg(env.root, "show", "churn@v1", "--json").stdout)
    assert (
        shown["deprecated"]["v1"]["sunset"] == FUTURE
        and shown["deprecated"]["v1"]["replacement"] == "churn@v2"
    )
    assert (
        f"DEPRECATED: sunset {FUTURE}, use churn@v2"
        in modelreg(env.root, "show", "churn@v1").stdout
    )
    listed = json.loads(modelreg(env.root, "list", "--json").stdout)
    assert listed[0]["deprecated"] == ["v1"]
    pulled = modelreg(env.root, "pull", "churn@v1", "-o", str(env.work / "v1.pt"))
    assert (
        pulled.returncode == 0
        and f"churn@v1 is deprecated, sunset {FUTURE}, use churn@v2" in pulled.stderr
    )
    site = modelreg(env.root, "site", "-o", str(env.work / "site"))
    assert site.returncode == 0, site.stderr
    pages = "".join(p.read_text() for p in (env.work / "site").rglob("*.html"))
    assert (
        f"deprecated, sunset {FUTURE}" in pages
        and f"Deprecated: sunset {FUTURE}, use churn@v2" in pages
    )
    lifted = modelreg(env.root, "undeprecate", "churn@v1", "--reason", "v2 is not ready")
    assert lifted.returncode == 0 and "Lifted the deprecation" in lifted.stdout
    assert json.loads(modelreg(env.root, "show", "churn@v1", "--json").stdout)["deprecated"] == {}


def test_bad_terms_are_one_line_errors_and_change_nothing(env: Env) -> None:
    env.register("churn", 1)
    before = git(env.root, "for-each-ref")
    for args, message in (
        (["--sunset", "2027-02-30"], "expected a date"),
        (["--sunset", FUTURE, "--replacement", "churn@v9"], "churn@v9"),
        (["--sunset", FUTURE, "--replacement", "churn@v1"], "itself"),
        (["--sunset", FUTURE, "--reason", " "], "--reason is required"),
    ):
        result = modelreg(
            env.root,
            "deprecate",
            "churn@v1",
            *(args if "--reason" in args else [*args, "--reason", "r"]),
        )
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert (
        modelreg(env.root, "deprecate", "churn@v1", "--reason", "r").returncode == 2
    )  # --sunset is required
    assert git(env.root, "for-each-ref") == before


def test_deploys_warn_until_the_sunset_and_refuse_after_it(env: Env) -> None:
    v1 = register_model(env, 1)
    deploy(env.registry, v1, "staging")
    deprecate(env.registry, v1, "superseded", FUTURE)
    stale = json.loads(modelreg(env.root, "status", "--env", "staging", "--json").stdout)[0]
    assert stale["drift"] == "stale" and stale["deprecated"].startswith(
        f"deprecated, sunset {FUTURE}"
    )
    again = deploy(
        env.registry, v1, "staging"
    )  # the running pods get the headers: a new deploy commit
    assert again.commit and any("is deprecated" in w for w in again.warnings)
    manifest = git(
        env.root,
        "show",
        "deploy:"
        + next(
            p
            for p in git(env.root, "ls-tree", "-r", "--name-only", "deploy").splitlines()
            if p.endswith("deployment.yaml")
        ),
    )
    assert f'"--sunset", "{FUTURE}"' in manifest and '"--deprecated-since"' in manifest
    assert (
        json.loads(modelreg(env.root, "status", "--env", "staging", "--json").stdout)[0]["drift"]
        == "none"
    )
    deprecate(env.registry, v1, "superseded", PAST)
    with pytest.raises(DeployError, match=rf"reached its sunset on {PAST}"):
        deploy(env.registry, v1, "prod", action="promote")
    refused = modelreg(env.root, "deploy", v1, "--env", "staging")
    assert (
        refused.returncode == 1
        and "reached its sunset" in refused.stderr
        and "undeprecate" in refused.stderr
    )
    deprecate(env.registry, v1, "needed after all", lift=True)
    assert deploy(env.registry, v1, "prod").commit
    assert deprecate(env.registry, v1, "again", lift=True).noop


def test_a_deprecated_version_answers_with_deprecation_and_sunset_headers(env: Env) -> None:
    v1, v2 = register_model(env, 1), register_model(env, 2)
    deprecate(env.registry, v1, "superseded", FUTURE, replacement=v2)
    servers = start_server(env.root, v1)
    server = next(servers)
    try:
        request = urllib.request.Request(
            server.url + "/v2/models/churn/infer",
            method="POST",
            data=json.dumps(
                {
                    "inputs": [
                        {
                            "name": "features",
                            "shape": [1, 4],
                            "datatype": "FP32",
                            "data": [1, 2, 3, 4],
                        }
                    ]
                }
            ).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            headers = answer.headers
            assert answer.status == 200
        assert (
            headers["deprecation"].startswith("@")
            and int(headers["deprecation"][1:]) <= datetime.datetime.now().timestamp() + 5
        )
        assert email.utils.parsedate_to_datetime(headers["sunset"]).date().isoformat() == FUTURE
        assert headers["link"] == '</v2/models/churn/versions/v2>; rel="successor-version"'
        with urllib.request.urlopen(server.url + "/v2/health/live", timeout=10) as live:
            assert (
                live.headers["deprecation"] is None
            )  # the server's own endpoints are not deprecated
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
        assert (
            f'modelreg_model_deprecated{{model="churn",sunset="{FUTURE}",version="v1"}} 1.0'
            in metrics
        )
    finally:
        servers.close()
