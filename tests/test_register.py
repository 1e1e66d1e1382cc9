from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import Env, git, snapshot, write_artifact, write_model_dir
from modelreg.errors import ModelregError
from modelreg.history import history
from modelreg.register import RegisterRequest, register
from modelreg.store import object_url, parse_pointer
from modelreg.summaries import list_models
from modelreg.versions import resolve, scan


def remote_files(store: Path) -> list[Path]:
    return [p for p in store.rglob("*") if p.is_file()]


def test_register_three_versions_of_a_file(env: Env) -> None:
    results = [
        env.register("churn", seed, message=f"take {seed}", metrics=("auc=0.9",))
        for seed in (1, 2, 3)
    ]
    assert [r.tag for r in results] == ["churn@v1", "churn@v2", "churn@v3"]
    third = results[2]
    card = yaml.safe_load((env.root / "models/churn/model.yaml").read_text())
    assert card["version"] == "v3" and card["parent"] == "v2" and card["metrics"] == {"auc": 0.9}
    assert card["author"] == "Test Author <author@example.com>"
    data = (env.work / "churn-3/model.pt").read_bytes()
    assert card["artifact"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert card["artifact"]["md5"] == hashlib.md5(data).hexdigest() == third.pointer.md5
    # pushed before the tag exists: the remote holds the object at its content address
    assert Path(object_url(str(env.store), third.pointer.md5)).read_bytes() == data
    assert git(env.root, "cat-file", "-t", "churn@v3").strip() == "tag"
    assert "sha256: " + card["artifact"]["sha256"] in git(
        env.root, "tag", "-l", "--format=%(contents)", "churn@v3"
    )
    assert git(env.root, "status", "--porcelain") == ""


def test_register_a_directory(env: Env) -> None:
    for seed in (1, 2, 3):
        result = register(
            env.registry,
            RegisterRequest("llm", write_model_dir(env.work / f"d{seed}" / "llm-model", seed)),
        )
    assert result.pointer.is_dir and result.pointer.nfiles == 3
    found = resolve(env.registry, "llm")
    assert str(found.info.version) == "v3" and found.card["artifact"]["path"] == "llm-model"
    lines = "".join(
        f"{hashlib.sha256((env.work / 'd3/llm-model' / rel).read_bytes()).hexdigest()}  {rel}\n"
        for rel in ["config.json", "weights/shard-0.bin", "weights/shard-1.bin"]
    )
    assert found.card["artifact"]["sha256"] == hashlib.sha256(lines.encode()).hexdigest()


def test_list_show_history(env: Env) -> None:
    env.register("churn", 1)
    env.register("churn", 2, message="better")
    env.register("fraud", 3)
    models = {m.model: m for m in list_models(env.registry)}
    latest = models["churn"].latest
    assert latest is not None and str(latest.version) == "v2" and models["churn"].count == 2
    assert models["fraud"].count == 1
    shown = resolve(env.registry, "churn@v1")
    assert shown.card["version"] == "v1" and [str(v.version) for v in shown.versions] == [
        "v1",
        "v2",
    ]
    assert str(resolve(env.registry, "v2").info.version) == "v2"  # bare version = default model
    events = history(env.registry, "churn")
    assert [(e.action, e.version) for e in events] == [("register", "v2"), ("register", "v1")]
    assert events[0].note == "Register churn@v2: better"


def test_only_the_model_paths_are_committed(env: Env) -> None:
    (env.root / "notes.txt").write_text("draft\n")
    (env.root / "staged.txt").write_text("staged\n")
    git(env.root, "add", "staged.txt")
    (env.root / "modelreg.yaml").write_text(
        (env.root / "modelreg.yaml").read_text() + "# my edit\n"
    )
    result = env.register("churn", 1)
    changed = git(env.root, "show", "--name-only", "--format=", result.commit).split()
    assert sorted(changed) == [
        "models/churn/.gitignore",
        "models/churn/model.pt.dvc",
        "models/churn/model.yaml",
    ]
    status = git(env.root, "status", "--porcelain")
    assert "A  staged.txt" in status and " M modelreg.yaml" in status and "?? notes.txt" in status
    assert "models/" not in status


def test_semver_registry_and_bump(env: Env) -> None:
    config = env.root / "modelreg.yaml"
    config.write_text(config.read_text().replace("versions: integer", "versions: semver"))
    git(env.root, "commit", "-qam", "semver")
    assert str(env.register("churn", 1).version) == "v1.0.0"  # type: ignore[attr-defined]
    assert str(env.register("churn", 2, bump="minor").version) == "v1.1.0"
    assert str(env.register("churn", 3).version) == "v1.1.1"  # type: ignore[attr-defined]
    assert str(env.register("churn", 4, version="v3.0.0").version) == "v3.0.0"


def test_a_tag_made_with_plain_git_counts(env: Env) -> None:
    env.register("churn", 1)
    artifact = write_artifact(env.root / "models/churn/model.pt", 9)
    subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "add", "-q", str(artifact)],
        cwd=env.root,
        check=True,
    )
    pointer = parse_pointer((env.root / "models/churn/model.pt.dvc").read_bytes(), "pointer")
    card = yaml.safe_load((env.root / "models/churn/model.yaml").read_text())
    card.update(version="v4", message="by hand")
    card["artifact"].update(md5=pointer.md5, size=pointer.size)
    (env.root / "models/churn/model.yaml").write_text(yaml.safe_dump(card))
    git(env.root, "add", "models/churn")
    git(env.root, "commit", "-qm", "hand-made v4")
    git(env.root, "tag", "-a", "churn@v4", "-m", "by hand")
    git(env.root, "tag", "v5")  # lightweight, bare: the default model
    versions = {str(v.version): v for v in scan(env.registry, "churn")}
    assert set(versions) == {"v1", "v4", "v5"} and all(v.valid for v in versions.values())
    assert not versions["v5"].annotated
    assert str(list_models(env.registry)[0].latest.version) == "v5"  # type: ignore[union-attr]
    assert resolve(env.registry, "churn@v4").card["message"] == "by hand"
    assert str(env.register("churn", 2).version) == "v6"  # type: ignore[attr-defined]


def test_a_tag_on_a_tree_without_the_model_is_invalid(env: Env) -> None:
    env.register("churn", 1)
    git(env.root, "tag", "fraud@v1", "HEAD~1")
    fraud = scan(env.registry, "fraud")[0]
    assert not fraud.valid and "models/fraud/" in str(fraud.problem)
    assert list_models(env.registry)[1].invalid == 1
    assert "INVALID" in history(env.registry, "fraud")[0].note
    with pytest.raises(ModelregError, match="not a valid version"):
        resolve(env.registry, "fraud@v1")


@pytest.mark.parametrize(
    "name,version,message",
    [
        ("../x", None, "invalid model name"),
        ("Churn", None, "invalid model name"),
        ("a_b", None, "invalid model name"),
        ("x" * 60, None, "at most 53"),
        ("churn", "3", "invalid version"),
        ("churn", "v1.2", "invalid version"),
        ("churn", "latest", "invalid version"),
        ("churn", "v1", "already exists"),
        ("churn", "v1.0.0", "does not fit"),
    ],
)
def test_bad_input_changes_nothing(env: Env, name: str, version: str | None, message: str) -> None:
    env.register("churn", 1)
    source = write_artifact(env.work / "new.pt", 5)
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match=message):
        register(env.registry, RegisterRequest(name=name, path=source, version=version))
    assert snapshot(env.root) == before


def test_bad_paths_change_nothing(env: Env) -> None:
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match="no such file"):
        register(env.registry, RegisterRequest("churn", env.work / "missing.pt"))
    with pytest.raises(ModelregError, match="inside .git"):
        register(env.registry, RegisterRequest("churn", env.root / ".git" / "config"))
    assert snapshot(env.root) == before


def test_failed_push_leaves_no_commit_tag_or_file(env: Env) -> None:
    env.register("churn", 1)
    blocker = env.work / "a-file"
    blocker.write_text("not a directory")
    config = env.root / ".dvc" / "config"
    config.write_text(config.read_text().replace(str(env.store), str(blocker / "store")))
    git(env.root, "commit", "-qam", "broken remote")
    before = snapshot(env.root)
    artifact_before = (env.root / "models/churn/model.pt").read_bytes()
    with pytest.raises(ModelregError, match="push"):
        env.register("churn", 2)
    assert snapshot(env.root) == before
    assert (env.root / "models/churn/model.pt").read_bytes() == artifact_before


def test_registry_without_config_or_commits_or_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelreg.handle import open_registry

    bare = tmp_path / "plain"
    subprocess.run(["git", "init", "-q", str(bare)], check=True)
    with pytest.raises(ModelregError, match="no modelreg.yaml"):
        open_registry(bare)
    (bare / "modelreg.yaml").write_text("")
    (bare / ".dvc").mkdir()
    source = write_artifact(tmp_path / "m.pt", 1)
    with pytest.raises(ModelregError, match="no commits"):
        register(open_registry(bare), RegisterRequest("churn", source))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var)
    with pytest.raises(ModelregError, match="no identity"):
        register(open_registry(bare), RegisterRequest("churn", source))
    assert git(bare, "status", "--porcelain", "--untracked-files=all") == "?? modelreg.yaml\n"


def test_init_twice_changes_nothing_and_keeps_user_edits(env: Env) -> None:
    from modelreg.init import init

    head = git(env.root, "rev-parse", "HEAD")
    again = init(env.root)
    assert not again.changed and again.commit is None and git(env.root, "rev-parse", "HEAD") == head
    template = env.root / "templates/service.yaml.j2"
    template.write_text(template.read_text() + "# mine\n")
    kept = init(env.root)
    assert kept.kept == ["templates/service.yaml.j2"] and template.read_text().endswith("# mine\n")
    forced = init(env.root, force=True)
    assert forced.updated == ["templates/service.yaml.j2"] and not template.read_text().endswith(
        "# mine\n"
    )


def test_init_in_a_new_folder(tmp_path: Path) -> None:
    from modelreg.init import init

    result = init(tmp_path / "fresh")
    assert result.git_initialized and result.dvc_initialized and result.commit
    tracked = git(tmp_path / "fresh", "ls-files").split()
    assert {
        "modelreg.yaml",
        ".dvc/config",
        ".github/workflows/modelreg.yml",
        "templates/deployment.yaml.j2",
    } <= set(tracked)
    assert git(tmp_path / "fresh", "status", "--porcelain") == ""


def test_the_pointer_and_cache_are_what_dvc_add_makes_and_dvc_pull_restores(
    env: Env, tmp_path: Path
) -> None:
    dvc = str(Path(sys.executable).parent / "dvc")
    file_src = write_artifact(env.work / "f" / "model.pt", 11, 70_000)
    dir_src = write_model_dir(env.work / "llm", 12)
    register(env.registry, RegisterRequest("churn", file_src))
    register(env.registry, RegisterRequest("llm", dir_src))
    plain = tmp_path / "plain"  # the same bytes through `dvc add` in a plain DVC repo
    plain.mkdir()
    git(plain, "init", "-q")
    subprocess.run([dvc, "init", "-q"], cwd=plain, check=True)
    subprocess.run(["cp", "-r", str(file_src), str(dir_src), str(plain)], check=True)
    subprocess.run([dvc, "add", "-q", "model.pt", "llm"], cwd=plain, check=True)
    for ours, theirs in (
        ("models/churn/model.pt.dvc", "model.pt.dvc"),
        ("models/llm/llm.dvc", "llm.dvc"),
    ):
        assert (env.root / ours).read_text() == (plain / theirs).read_text()
    ours_cache = sorted(
        p.relative_to(env.root / ".dvc/cache").as_posix()
        for p in (env.root / ".dvc/cache/files").rglob("*")
        if p.is_file()
    )
    theirs_cache = sorted(
        p.relative_to(plain / ".dvc/cache").as_posix()
        for p in (plain / ".dvc/cache/files").rglob("*")
        if p.is_file()
    )
    assert set(theirs_cache) <= set(ours_cache)
    status = subprocess.run([dvc, "status", "-q"], cwd=env.root, capture_output=True, text=True)
    assert status.returncode == 0, (
        status.stdout + status.stderr
    )  # workspace, pointers and cache agree
    git(env.root, "push", "-q", "origin", "HEAD", "--tags")
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(env.origin), str(fresh))
    git(fresh, "checkout", "-q", "llm@v1")
    subprocess.run([dvc, "pull", "-q"], cwd=fresh, check=True, capture_output=True)
    for rel in ("config.json", "weights/shard-0.bin", "weights/shard-1.bin"):
        assert (fresh / "models/llm/llm" / rel).read_bytes() == (dir_src / rel).read_bytes()
    assert (fresh / "models/churn/model.pt").read_bytes() == file_src.read_bytes()
