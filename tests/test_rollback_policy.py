"""Rollback that lands on good: restore provenance, walk-back without ping-pong, quarantine in every
command, holds against the tag-push path, and what was live at a moment.

Invariants: a rollback's manifests are the tree of the deploy it restores (checked by tree id);
repeated bare rollbacks visit each earlier version at most once; a quarantined version never lands
anywhere through modelreg; a held environment is never deployed by a tag push.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helpers import Env, clone, git, snapshot
from modelreg.cli.main import cli
from modelreg.deploy import DeployOptions, deploy, rollback
from modelreg.errors import ModelregError
from modelreg.history import history, live_at, parse_time
from modelreg.marks import quarantine, release
from modelreg.status import status
from modelreg.summaries import list_models
from modelreg.target import read_log


@pytest.fixture
def four(env: Env) -> Env:
    """churn v1..v4, each deployed to staging in turn (v4 live)."""
    for seed in range(1, 5):
        env.register("churn", seed)
        deploy(env.registry, f"churn@v{seed}", "staging")
    return env


def trailer(root: Path, commit: str | None, key: str) -> str:
    assert commit is not None, "no commit: the action landed nothing"
    return git(
        root, "log", "-1", f"--format=%(trailers:key=Modelreg-{key},valueonly)", commit
    ).strip()


def run(env: Env, *args: str, **environ: str) -> Result:
    return CliRunner().invoke(cli, ["-C", str(env.root), *args], env=environ or None)


def test_repeated_rollbacks_walk_back_and_restore_exactly(four: Env) -> None:
    registry = four.registry
    deploys = {r.version: r.commit for r in read_log(registry)}
    walked = []
    for expected in ("v3", "v2", "v1"):
        result = rollback(registry, env="staging")
        walked.append(result.version)
        assert result.version == expected
        assert trailer(four.root, result.commit, "Restored-From") == deploys[expected]
        assert trailer(four.root, result.commit, "Rolled-Back") == f"v{int(expected[1]) + 1}"
        assert git(four.root, "rev-parse", f"{result.commit}:staging/churn") == git(
            four.root, "rev-parse", f"{deploys[expected]}:staging/churn"
        )
    assert walked == ["v3", "v2", "v1"]  # no ping-pong back to v4
    before = snapshot(four.root)
    with pytest.raises(
        ModelregError,
        match=r"v1 is the earliest version of churn live in staging \(v2, v3, v4 came later",
    ) as refused:  # issue #18: at the first version, --force is not the way out
        rollback(registry, env="staging")
    assert "--force" not in str(
        refused.value
    ) and "modelreg deploy churn@VERSION --env staging" in str(refused.value)
    assert snapshot(four.root) == before


def test_a_rolled_back_version_needs_force_and_is_recorded_as_forced(four: Env) -> None:
    registry = four.registry
    rollback(registry, env="staging")  # v4 -> v3
    with pytest.raises(ModelregError, match="churn@v4 was rolled back in staging: .* with --force"):
        deploy(registry, "churn@v4", "staging")
    forced = deploy(registry, "churn@v4", "staging", DeployOptions(force=True))
    assert trailer(four.root, forced.commit, "Forced") == "true"
    deploy(registry, "churn@v3", "staging")
    assert (
        deploy(registry, "churn@v4", "staging").version == "v4"
    )  # the forced deploy cleared the mark


def test_quarantine_is_refused_everywhere_and_shown(four: Env) -> None:
    registry = four.registry
    deploy(registry, "churn@v3", "prod", action="promote")
    mark = quarantine(registry, "churn@v3", "bad calibration on March traffic")
    assert (
        mark.commit
        and trailer(four.root, mark.commit, "Reason") == "bad calibration on March traffic"
    )
    assert quarantine(registry, "churn@v3", "again").noop
    before = snapshot(four.root)
    refusals = [
        lambda: deploy(registry, "churn@v3", "staging", DeployOptions(force=True)),
        lambda: deploy(registry, "churn@v3", "prod", action="promote"),
        lambda: rollback(registry, "v3", env="staging"),
    ]
    for call in refusals:
        with pytest.raises(
            ModelregError,
            match=r"churn@v3 is quarantined \(bad calibration on March traffic; by Test Author",
        ):
            call()
    for environ in (
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "churn@v3"},
        {
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "MODELREG_ACTION": "promote",
            "MODELREG_REF": "churn@v3",
            "MODELREG_ENV": "prod",
            "GITHUB_REF": "refs/heads/main",
        },
    ):
        result = run(four, "ci", "--no-push", **environ)
        assert result.exit_code == 1 and "churn@v3 is quarantined" in result.stderr
    assert snapshot(four.root) == before
    rollback(registry, "v2", env="staging")  # v4 -> v2
    assert rollback(registry, env="staging").version == "v1"  # v3 is skipped: quarantined
    assert list_models(registry)[0].quarantined == ("v3",)
    flagged = {s.env: s for s in status(registry, check_render=False)}
    assert (
        flagged["prod"].quarantined == "bad calibration on March traffic"
        and not flagged["staging"].quarantined
    )
    shown = json.loads(run(four, "show", "churn", "--json").stdout)  # type: ignore[attr-defined]
    assert shown["quarantined"]["v3"]["reason"] == "bad calibration on March traffic"
    assert "QUARANTINED: bad calibration" in run(four, "show", "churn").stdout
    events = [(e.action, e.version) for e in history(registry, "churn", env="prod")]
    assert ("quarantine", "v3") in events
    printed = run(four, "status", "--no-render")
    assert "QUARANTINED" in printed.stdout and "prod still runs churn@v3" in printed.stderr
    lifted = quarantine(registry, "churn@v3", "false alarm", lift=True)
    assert lifted.action == "unquarantine" and not lifted.noop
    assert deploy(registry, "churn@v3", "staging", DeployOptions(force=True)).version == "v3"


def test_a_quarantine_pushed_is_seen_by_another_clone(four: Env, tmp_path: Path) -> None:
    git(four.root, "push", "-q", "origin", "HEAD", "--tags", "deploy")
    quarantine(four.registry, "churn@v2", "leaks PII", push=True)
    other = clone(four.origin, tmp_path / "other")
    from modelreg.handle import open_registry

    with pytest.raises(ModelregError, match="churn@v2 is quarantined \\(leaks PII"):
        deploy(open_registry(other), "churn@v2", "staging", DeployOptions(push=True, force=True))


def test_a_hold_survives_a_tag_push_until_released(four: Env) -> None:
    four.register("churn", 5)
    rollback(four.registry, env="staging")  # v4 -> v3: staging is held
    tag_push = {
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF_TYPE": "tag",
        "GITHUB_REF_NAME": "churn@v5",
    }
    before = git(four.root, "rev-parse", "deploy")
    result = run(four, "ci", "--no-push", **tag_push)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "Not deployed: staging is held for churn at v3" in result.stdout
    assert "modelreg release staging --model churn" in result.stdout  # type: ignore[attr-defined]
    assert git(four.root, "rev-parse", "deploy") == before
    assert [s.held for s in status(four.registry, check_render=False)] == [True]
    released = release(four.registry, "staging", None)
    assert released.model == "churn" and released.version == "v3"
    result = run(four, "ci", "--no-push", "--json", **tag_push)
    assert json.loads(result.stdout)["version"] == "v5"  # type: ignore[attr-defined]
    assert rollback(four.registry, env="staging").version == "v3"  # held again
    assert not deploy(
        four.registry, "churn@v5", "staging", DeployOptions(force=True)
    ).noop  # by hand: lifts it
    assert [s.held for s in status(four.registry, check_render=False)] == [False]


def test_what_was_live_at_a_moment(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.register("churn", 1)
    env.register("churn", 2)
    moments = {}
    for version, date in (("v1", "2026-03-01T10:00:00+0000"), ("v2", "2026-03-02T10:00:00+0000")):
        monkeypatch.setenv("GIT_COMMITTER_DATE", date)
        moments[version] = deploy(env.registry, f"churn@{version}", "staging").commit
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-03-03T10:00:00+0000")
    rollback(env.registry, env="staging")
    registry = env.registry
    at = lambda text: live_at(registry, "staging", parse_time(text))  # noqa: E731
    assert at("2026-03-01T09:59:59Z") == []
    assert [(s.version, s.commit, s.rollback) for s in at("2026-03-01T10:00:00Z")] == [
        ("v1", moments["v1"], False)
    ]
    assert [s.version for s in at("2026-03-02T09:59:59Z")] == ["v1"]
    assert [s.version for s in at("2026-03-02 10:00:01 +0000")] == ["v2"]
    latest = at("2026-03-04")
    assert latest[0].version == "v1" and latest[0].rollback
    assert latest[0].sha256 and len(latest[0].sha256) == 64 and len(latest[0].tag_object) == 40
    printed = json.loads(
        run(env, "history", "--env", "staging", "--at", "2026-03-02T12:00:00Z", "--json").stdout
    )  # type: ignore[attr-defined]
    assert [(p["model"], p["version"], p["action"]) for p in printed] == [("churn", "v2", "deploy")]


def test_promotion_waits_for_the_soak_and_refuses_a_rolled_back_version(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    config = (env.root / "modelreg.yaml").read_text()
    (env.root / "modelreg.yaml").write_text(
        config.replace(
            "    requires: staging       # a version must have been live in staging first\n",
            "    requires: staging\n    soak: 2h\n",
        )
    )
    git(env.root, "commit", "-qam", "prod needs 2h in staging")
    for seed in (1, 2, 3):
        env.register("churn", seed)
    now = datetime.datetime.now(datetime.timezone.utc)

    def stamp(hours: float) -> str:
        return (now - datetime.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S+0000")

    for version, hours in (
        ("v1", 5),
        ("v2", 3),
        ("v3", 0.5),
    ):  # v1 ran 2h, v2 2.5h until v3 came; v3 runs 30 minutes
        monkeypatch.setenv("GIT_COMMITTER_DATE", stamp(hours))
        deploy(env.registry, f"churn@{version}", "staging")
    monkeypatch.setenv("GIT_COMMITTER_DATE", stamp(0))
    before = snapshot(env.root)
    with pytest.raises(
        ModelregError,
        match=r"churn@v3 has run in staging for 0h30m|churn@v3 has run in staging for 30m",
    ):
        deploy(env.registry, "churn@v3", "prod", action="promote")
    assert snapshot(env.root) == before
    assert (
        deploy(env.registry, "churn@v2", "prod", action="promote").version == "v2"
    )  # 2.5 h >= 2 h
    assert deploy(env.registry, "churn@v1", "prod", action="promote").version == "v1"  # exactly 2 h
    monkeypatch.setenv("GIT_COMMITTER_DATE", stamp(0.2))
    rollback(env.registry, env="staging")  # v3 rolled back in staging
    monkeypatch.setenv("GIT_COMMITTER_DATE", stamp(0))
    with pytest.raises(ModelregError, match="churn@v3 was rolled back in staging: it cannot soak"):
        deploy(env.registry, "churn@v3", "prod", action="promote")
