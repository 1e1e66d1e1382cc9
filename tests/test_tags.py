"""Versions are immutable, and modelreg notices when a tag is moved, deleted and re-created, or
forged.

Invariant: a version deployed once is only ever deployed again as the same tag object; a version
number used once (here, on the origin or in the deploy log) is never registered again; `latest`
never lands on a tag whose commit lacks the model, whatever its message says.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import Env, clone, git, modelreg, write_artifact
from modelreg.deploy import DeployOptions, deploy
from modelreg.errors import ModelregError
from modelreg.register import RegisterRequest, register
from modelreg.remote import verify
from modelreg.status import status
from modelreg.summaries import list_models
from modelreg.versions import resolve


@pytest.fixture
def two(env: Env) -> Env:
    env.register("churn", 1)
    env.register("churn", 2)
    git(env.root, "push", "-q", "origin", "HEAD", "--tags")
    return env


def move_tag(root: Path, tag: str, to: str) -> None:
    git(root, "tag", "-d", tag)
    git(root, "tag", "-a", tag, "-m", f"Register {tag}", to)


def test_a_moved_tag_is_refused_everywhere_and_flagged(two: Env) -> None:
    registry = two.registry
    first = deploy(registry, "churn@v1", "staging")
    assert f"Modelreg-Tag-Object: {resolve(registry, 'churn@v1').info.object}" in git(
        two.root, "log", "-1", "--format=%B", "deploy"
    )
    move_tag(two.root, "churn@v1", "churn@v2^{commit}")  # deleted and re-created on v2's bytes
    for call in (
        lambda: deploy(registry, "churn@v1", "prod", action="promote"),
        lambda: deploy(registry, "churn@v1", "staging", DeployOptions(force=True)),
    ):
        with pytest.raises(
            ModelregError,
            match=r"churn@v1 was moved: .* it named [0-9a-f]{40} .* now it names [0-9a-f]{40}",
        ):
            call()
    deploy(registry, "churn@v2", "staging")
    with pytest.raises(ModelregError, match="was moved"):
        from modelreg.deploy import rollback

        rollback(registry, "v1", env="staging")
    assert {s.tag: s.tag_state for s in status(registry, check_render=False)} == {"churn@v2": "ok"}
    states = {
        r.tag: r
        for r in verify(registry, [resolve(registry, "churn@v1"), resolve(registry, "churn@v2")])
    }
    assert states["churn@v1"].state == "moved" and "tag moved" in states["churn@v1"].problems[0]
    assert states["churn@v2"].state == "ok"
    assert first.commit is not None
    git(
        two.root,
        "update-ref",
        "refs/tags/churn@v1",
        git(
            two.root,
            "log",
            "-1",
            "--format=%(trailers:key=Modelreg-Tag-Object,valueonly)",
            first.commit,
        ).strip(),
    )
    assert deploy(registry, "churn@v1", "staging").version == "v1"  # put back: accepted again


def test_status_flags_a_live_version_whose_tag_moved(two: Env) -> None:
    deploy(two.registry, "churn@v2", "staging")
    move_tag(two.root, "churn@v2", "churn@v1^{commit}")
    assert [s.tag_state for s in status(two.registry, check_render=False)] == ["moved"]
    git(two.root, "tag", "-d", "churn@v2")
    assert [s.tag_state for s in status(two.registry, check_render=False)] == [
        "not fetched"
    ]  # origin has it
    fetch = modelreg(two.root, "status", "--no-render")
    assert (
        "not fetched" in fetch.stdout
        and "git fetch --tags" in fetch.stderr
        and "WARNING" not in fetch.stderr
    )
    git(two.origin, "tag", "-d", "churn@v2")
    assert [s.tag_state for s in status(two.registry, check_render=False)] == ["deleted"]
    result = modelreg(two.root, "status", "--no-render")
    assert (
        result.returncode == 0
        and "deleted" in result.stdout
        and "WARNING: churn@v2" in result.stderr
    )


def test_a_tag_moved_on_the_origin_is_refused_on_push(two: Env, tmp_path: Path) -> None:
    other = clone(two.origin, tmp_path / "other")
    move_tag(other, "churn@v2", "churn@v1^{commit}")
    git(other, "push", "-q", "--force", "origin", "refs/tags/churn@v2")
    with pytest.raises(ModelregError, match="churn@v2 differs between here and origin"):
        deploy(two.registry, "churn@v2", "staging", DeployOptions(push=True))
    assert git(two.origin, "for-each-ref", "refs/heads/deploy") == ""
    states = {r.tag: r.state for r in verify(two.registry, [resolve(two.registry, "churn@v2")])}
    assert states == {"churn@v2": "moved"}


def test_a_version_number_is_never_reused(two: Env, tmp_path: Path) -> None:
    deploy(two.registry, "churn@v2", "staging")
    git(two.root, "tag", "-d", "churn@v2")  # gone here, still on the origin and in the deploy log
    source = write_artifact(tmp_path / "m.pt", 7)
    with pytest.raises(ModelregError, match=r"churn@v2 was used before \(deployed to staging"):
        register(two.registry, RegisterRequest("churn", source, version="v2"))
    assert (
        str(register(two.registry, RegisterRequest("churn", source)).version) == "v3"
    )  # after every used one


def test_register_checks_the_origins_tags(two: Env, tmp_path: Path) -> None:
    git(
        two.root, "tag", "-d", "churn@v2"
    )  # gone here; the deploy log never saw it: only the origin knows
    assert "refs/tags/churn@v2" in git(two.root, "ls-remote", "--tags", "origin")
    with pytest.raises(
        ModelregError, match="churn@v2 was used before \\(tag churn@v2 on origin\\)"
    ):
        register(
            two.registry,
            RegisterRequest("churn", write_artifact(tmp_path / "m.pt", 8), version="v2"),
        )
    assert "churn@v2" not in git(two.root, "tag", "--list")  # refused: nothing was tagged here


def test_a_forged_register_message_does_not_make_latest(two: Env) -> None:
    git(two.root, "checkout", "-q", "--orphan", "empty")
    git(two.root, "rm", "-rq", "--cached", ".")
    git(two.root, "commit", "-q", "--allow-empty", "-m", "no model here")
    message = (
        "Register churn@v9\n\nartifact: model.pt\nmd5: 0123456789abcdef0123456789abcdef\nsize: "
        "1\nsha256: " + "a" * 64
    )
    git(two.root, "tag", "-a", "churn@v9", "-m", message)
    git(two.root, "checkout", "-q", "-f", "main")
    assert str(resolve(two.registry, "churn").info.version) == "v2"
    assert str(list_models(two.registry)[0].latest.version) == "v2"  # type: ignore[union-attr]
    with pytest.raises(ModelregError, match="churn@v9 is not a valid version"):
        resolve(two.registry, "churn@v9")
    shown = json.loads(modelreg(two.root, "list", "--json").stdout)
    assert shown[0]["latest"]["version"] == "v2"
