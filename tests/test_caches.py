"""The caches in `.git/modelreg/` (what each tag object says, each model's summary, the quarantines
at a deploy-branch tip) are keyed by immutable ids, so they can never disagree with git.

Invariant: after any change to tags, messages or quarantines, `list --json` and `show --json` with
warm caches equal what they say with no cache at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from helpers import Env, git, modelreg, signature_card, write_artifact


def listed(env: Env) -> list[dict]:
    result = modelreg(env.root, "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cold(env: Env, *args: str) -> Any:
    """The same command with no cache at all (and the caches then rebuilt)."""
    shutil.rmtree(env.root / ".git" / "modelreg", ignore_errors=True)
    result = modelreg(env.root, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def agree(env: Env) -> list[dict]:
    warm = listed(env)
    shown = json.loads(modelreg(env.root, "show", "churn", "--json").stdout)
    every = json.loads(
        modelreg(env.root, "history", "--json").stdout
    )  # all tags: through the tag cache
    assert warm == cold(env, "list", "--json")
    assert shown == cold(env, "show", "churn", "--json")
    assert every == cold(env, "history", "--json")
    return warm


def register(env: Env, model: str, seed: int) -> None:
    source = write_artifact(env.work / f"{model}-{seed}" / "model.pt", seed)
    assert (
        modelreg(
            env.root,
            "register",
            model,
            str(source),
            "--no-inspect",
            "--card",
            str(signature_card(env.work)),
        ).returncode
        == 0
    )


def test_warm_caches_say_what_git_says_after_every_kind_of_change(env: Env) -> None:
    register(env, "churn", 1)
    register(env, "churn", 2)
    register(env, "fraud", 3)
    first = agree(env)
    assert modelreg(env.root, "history").returncode == 0
    assert [(m["model"], m["latest"]["version"], m["versions"]) for m in first] == [
        ("churn", "v2", 2),
        ("fraud", "v1", 1),
    ]
    assert (env.root / ".git" / "modelreg" / "tag-cache").is_file()

    # a hand-made tag on a commit without a card: an invalid version, counted as such
    git(
        env.root,
        "tag",
        "-a",
        "churn@v9",
        "-m",
        "Register churn@v9",
        git(env.root, "rev-list", "--max-parents=0", "HEAD").strip(),
    )
    after_forgery = agree(env)
    assert after_forgery[0]["latest"]["version"] == "v2" and after_forgery[0]["invalid"] == 1

    # a moved tag: same name, another object and message
    git(env.root, "tag", "-d", "churn@v9")
    git(
        env.root,
        "tag",
        "-f",
        "-a",
        "churn@v2",
        "-m",
        "Register churn@v2: moved by hand",
        "churn@v1^{commit}",
    )
    moved = agree(env)
    assert (
        moved[0]["latest"]["message"] == "Register churn@v2: moved by hand"
        and moved[0]["invalid"] == 0
    )

    # a deleted model, and a quarantine (a new deploy-branch tip)
    git(env.root, "tag", "-d", "fraud@v1")
    assert modelreg(env.root, "quarantine", "churn@v1", "--reason", "leaked labels").returncode == 0
    last = agree(env)
    assert [m["model"] for m in last] == ["churn"] and last[0]["quarantined"] == ["v1"]


def test_a_damaged_cache_is_read_again_not_believed(env: Env) -> None:
    register(env, "churn", 1)
    expected = listed(env)
    folder = env.root / ".git" / "modelreg"
    for name in ("tag-cache", "summaries", "quarantines"):
        if (folder / name).exists():
            (folder / name).write_bytes(
                b"\x00garbage\x00\n" * 3 + (folder / name).read_bytes()[:17]
            )
    assert listed(env) == expected
    assert (
        json.loads(modelreg(env.root, "show", "churn", "--json").stdout)["version"]["tag"]
        == "churn@v1"
    )


def test_an_unwritable_git_dir_only_makes_it_slower(env: Env) -> None:
    register(env, "churn", 1)
    expected = listed(env)
    folder = env.root / ".git" / "modelreg"
    shutil.rmtree(folder)
    folder.write_text("not a folder")  # nothing can be cached under it
    assert listed(env) == expected
    assert Path(folder).read_text() == "not a folder"


def test_the_deploy_log_cache_follows_the_branch_forward_and_back(env: Env) -> None:
    register(env, "churn", 1)
    register(env, "churn", 2)
    for ref, where in (("churn@v1", "staging"), ("churn@v1", "prod"), ("churn@v2", "staging")):
        assert modelreg(env.root, "deploy", ref, "--env", where).returncode == 0
        warm = json.loads(modelreg(env.root, "status", "--no-render", "--json").stdout)
        assert warm == cold(env, "status", "--no-render", "--json")
    assert (env.root / ".git" / "modelreg" / "deploy-log").is_file()
    assert (
        modelreg(env.root, "deploy", "churn@v2", "--env", "prod").returncode == 0
    )  # read from the cache + 1
    forward = json.loads(modelreg(env.root, "history", "--env", "prod", "--json").stdout)
    assert [e["version"] for e in forward][:2] == ["v2", "v1"]
    assert forward == cold(env, "history", "--env", "prod", "--json")
    git(
        env.root, "branch", "-f", "deploy", "deploy~2"
    )  # the branch moved back: the cache starts above it
    back = json.loads(modelreg(env.root, "status", "--no-render", "--json").stdout)
    assert {(s["env"], s["version"]) for s in back} == {("staging", "v1"), ("prod", "v1")}
    assert back == cold(env, "status", "--no-render", "--json")


def test_one_models_log_is_what_a_path_limited_git_log_says(env: Env) -> None:
    """`read_log(MODEL)` comes from a per-model cache file (filtered by the Modelreg-Model trailer),
    not from a `git log -- PATHS` that walks every deploy commit. Oracle: that path-limited log,
    after every kind of commit (deploy, promote, rollback, quarantine, release) of two
    models, warm and cold, and after the branch moved back."""
    from modelreg import target
    from modelreg.handle import open_registry

    def oracle(model: str) -> list[target.DeployRecord]:
        registry = open_registry(env.root)
        paths = [target.deploy_path(registry, e, model) for e in registry.config.environments]
        tip = target.tip(registry)
        assert tip is not None
        log = target._git_log(registry, tip, [*paths, target.events_path(model)])
        return target._parse_log(log, model)

    def events_oracle(model: str | None) -> list[target.DeployRecord]:
        registry = open_registry(env.root)
        tip = target.tip(registry)
        assert tip is not None
        path = target.events_path(model) if model else target.EVENTS_DIR
        return target._parse_log(target._git_log(registry, tip, [path]), model)

    def agree() -> None:
        for model in ("churn", "fraud"):
            assert target.read_log(open_registry(env.root), model) == oracle(model), model
        for model in ("churn", "fraud", None):
            events = target.read_log(open_registry(env.root), model, events_only=True)
            assert events == events_oracle(model), model

    def check() -> None:
        agree()
        shutil.rmtree(env.root / ".git" / "modelreg", ignore_errors=True)
        agree()

    for name, seed in (("churn", 1), ("churn", 2), ("fraud", 3), ("fraud", 4)):
        register(env, name, seed)
    steps = [
        ["deploy", "churn@v1", "--env", "staging"],
        ["deploy", "fraud@v1", "--env", "staging"],
        ["promote", "churn@v1", "--to", "prod"],
        ["deploy", "churn@v2", "--env", "staging"],
        ["quarantine", "fraud@v2", "--reason", "bad"],
        ["rollback", "--env", "staging", "--model", "churn"],
        ["release", "staging", "--model", "churn", "--reason", "checked"],
        ["unquarantine", "fraud@v2", "--reason", "fine"],
        ["deploy", "fraud@v2", "--env", "staging"],
    ]
    for step in steps:
        result = modelreg(env.root, *step)
        assert result.returncode == 0, (step, result.stderr)
        agree()  # warm, read forward from the last call's cache
    assert (env.root / ".git" / "modelreg" / "deploy-logs" / "churn").is_file()
    check()
    git(env.root, "branch", "-f", "deploy", "deploy~3")  # moved back: below the cached start
    check()
