"""modelreg gc (issue #23, item 5).

The plan is a pure function, checked against an independent oracle over randomly generated deploy
histories: replaying the history, every version live in any environment at any moment of the window
(and now), every held and quarantined version, and the last N of each model are kept. Then a real
registry with a directory remote: what gc removes is gone, what it keeps still pulls byte for byte,
objects shared between a kept and a collected folder stay, DVC data that is no version's stays, and
a gc killed after its first removal leaves every kept version pullable and finishes when run
again."""

from __future__ import annotations

import json
import random
from pathlib import Path

from helpers import Env, modelreg, signature_card, write_model_dir
from modelreg.collection import Version, kept_versions
from modelreg.deploy import deploy
from modelreg.policy import Mark, Policy
from modelreg.register import RegisterRequest, register
from modelreg.target import DeployRecord
from modelreg.versions import resolve


def record(t: int, action: str, env: str, model: str, version: str) -> DeployRecord:
    return DeployRecord(
        commit=f"c{t}",
        timestamp=t,
        author="a",
        action=action,
        model=model,
        version=version,
        env=env,
        tag=f"{model}@{version}",
        source_commit="",
        previous_version="",
    )


def oracle(history: list[DeployRecord], since: int, now: int) -> set[tuple[str, str]]:
    """(model, version) live in some environment at some moment in [since, now], by replaying."""
    live: dict[tuple[str, str], str] = {}
    seen: set[tuple[str, str]] = set()
    for r in sorted(history, key=lambda r: r.timestamp):  # oldest first
        if r.timestamp >= since:
            seen.update(
                (m, v) for (_, m), v in live.items()
            )  # what was live when the window opened
        live[(r.env, r.model)] = r.version
        if r.timestamp >= since:
            seen.add((r.model, r.version))
    seen.update((m, v) for (_, m), v in live.items())  # live now
    return seen


def test_the_plan_never_drops_a_version_someone_can_need() -> None:
    rng = random.Random(20)
    for _ in range(300):
        models = {f"m{i}": rng.randint(1, 8) for i in range(rng.randint(1, 3))}
        versions = [
            Version(m, f"v{n}", f"{m}@v{n}", n)
            for m, count in models.items()
            for n in range(1, count + 1)
        ]
        history = []
        for t in range(rng.randint(0, 25)):
            m = rng.choice(list(models))
            history.append(
                record(
                    t * 10,
                    rng.choice(["deploy", "promote", "rollback"]),
                    rng.choice(["staging", "prod"]),
                    m,
                    f"v{rng.randint(1, models[m])}",
                )
            )
        quarantined = {
            (v.model, v.version): Mark(v.version, "a", 0, "bad", "c")
            for v in versions
            if rng.random() < 0.1
        }
        holds = {
            ("prod", r.model): Mark(r.version, "a", 0, "rb", "c")
            for r in history
            if r.action == "rollback"
        }
        keep_last, since = rng.randint(0, 3), rng.randint(0, 260)
        newest_first = sorted(history, key=lambda r: -r.timestamp)
        kept = kept_versions(
            versions, newest_first, Policy(quarantined=quarantined, holds=holds), keep_last, since
        )
        must = (
            oracle(history, since, 10_000)
            | set(quarantined)
            | {(m, mark.version) for (_, m), mark in holds.items()}
        )
        for model in models:
            must |= (
                {
                    (model, f"v{n}")
                    for n in range(max(1, models[model] - keep_last + 1), models[model] + 1)
                }
                if keep_last
                else set()
            )
        tags = {f"{m}@{v}" for m, v in must}
        assert tags <= set(kept), (tags - set(kept), history, since, keep_last)


def objects_of(env: Env, tag: str) -> list[Path]:
    found = resolve(env.registry, tag)
    md5 = found.pointer.md5
    paths = [env.store / "files" / "md5" / md5[:2] / md5[2:]]
    if found.pointer.is_dir:
        listing = json.loads(paths[0].read_text())
        paths += [env.store / "files" / "md5" / e["md5"][:2] / e["md5"][2:] for e in listing]
    return paths


def test_gc_removes_what_nobody_needs_and_kept_versions_still_pull(
    env: Env, tmp_path: Path
) -> None:
    for seed in range(1, 5):
        env.register("churn", seed)  # v1..v4
    folder = write_model_dir(env.work / "llm", 1)
    card = signature_card(env.work)
    register(env.registry, RegisterRequest("llm", folder, card_file=card))  # llm@v1
    (folder / "config.json").write_text('{"changed": 1}')  # llm@v2 shares the weight shards with v1
    register(env.registry, RegisterRequest("llm", folder, card_file=card))
    stray = env.store / "files" / "md5" / "ff" / ("f" * 30)  # DVC data that is no version's
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"someone's dataset")
    paths = {
        tag: objects_of(env, tag)
        for tag in ("churn@v1", "churn@v2", "churn@v3", "churn@v4", "llm@v1", "llm@v2")
    }
    before = {tag: [p.read_bytes() for p in found] for tag, found in paths.items()}
    dry = json.loads(
        modelreg(env.root, "gc", "--keep-last", "1", "--window", "0d", "--dry-run", "--json").stdout
    )
    assert dry["collected"] == ["churn@v1", "churn@v2", "churn@v3", "llm@v1"] and dry["dry_run"]
    assert all(p.exists() for found in paths.values() for p in found)  # a dry run removes nothing
    shared = set(paths["llm@v1"]) & set(paths["llm@v2"])
    assert shared and dry["shared"] == len(shared)
    killed = modelreg(
        env.root,
        "gc",
        "--keep-last",
        "1",
        "--window",
        "0d",
        env={"MODELREG_TEST_KILL_AFTER": "gc-object"},
    )
    assert killed.returncode == -9
    for tag in ("churn@v4", "llm@v2"):  # kept: pull byte for byte after the kill
        out = tmp_path / tag.replace("@", "-")
        assert modelreg(env.root, "pull", tag, "-o", str(out)).returncode == 0
    done = json.loads(
        modelreg(env.root, "gc", "--keep-last", "1", "--window", "0d", "--json").stdout
    )
    assert (
        done["objects"] == dry["objects"] - 1 and not done["dry_run"]
    )  # the first went before the kill
    for tag in ("churn@v1", "churn@v2", "churn@v3"):
        assert not any(p.exists() for p in paths[tag]), tag
    assert not any(p.exists() for p in set(paths["llm@v1"]) - shared) and all(
        p.exists() for p in shared
    )
    assert stray.read_bytes() == b"someone's dataset"
    for tag in ("churn@v4", "llm@v2"):
        assert [p.read_bytes() for p in paths[tag]] == before[tag]
        assert modelreg(env.root, "verify", tag).returncode == 0
    refused = modelreg(env.root, "pull", "churn@v1", "-o", str(tmp_path / "gone.pt"))
    assert refused.returncode == 1 and "not in the remote" in refused.stderr


def test_gc_keeps_live_held_quarantined_and_windowed_versions(env: Env) -> None:
    for seed in range(1, 7):
        env.register("churn", seed)
    deploy(env.registry, "churn@v1", "staging")
    deploy(env.registry, "churn@v2", "staging")
    deploy(env.registry, "churn@v2", "prod")
    deploy(env.registry, "churn@v3", "staging")
    deploy(env.registry, "churn@v3", "prod")
    assert modelreg(env.root, "rollback", "v2", "--env", "prod").returncode == 0  # holds prod at v2
    assert modelreg(env.root, "quarantine", "churn@v4", "--reason", "evidence").returncode == 0
    kept = json.loads(
        modelreg(
            env.root, "gc", "--keep-last", "1", "--window", "3650d", "--dry-run", "--json"
        ).stdout
    )["kept"]
    assert kept["churn@v2"].startswith("live in") and kept["churn@v4"] == "quarantined (evidence)"
    assert kept["churn@v6"] == "one of the last 1"
    assert "within the window" in kept["churn@v1"] and kept["churn@v3"].startswith("live in")
    assert "churn@v5" not in kept  # (the test clock: every commit is dated 2026-01-01)
    wrong = modelreg(env.root, "gc", "--window", "forever")
    assert wrong.returncode == 1 and "not a duration" in wrong.stderr
