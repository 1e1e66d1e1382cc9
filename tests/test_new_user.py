"""Issue #18, what a new user hit: each numbered item as real processes and real repositories.

Invariants: policy (environments, gates, allowed signers) is read from the default branch as the
origin has it, never from a branch or the working tree; a version is what its tag's tree says (card,
bytes, templates, the DVC remote its bytes went to); nothing that modelreg's own server would refuse
reaches a deploy branch; register and site never lose a user's files."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import (
    MODELREG,
    Env,
    clone,
    git,
    modelreg,
    signature_card,
    snapshot,
    write_artifact,
    write_model_dir,
)
from modelreg.deploy import DeployOptions, deploy, rollback
from modelreg.errors import ModelregError
from modelreg.register import RegisterRequest, register
from modelreg.remote import verify
from modelreg.remote_config import add_remote
from modelreg.versions import resolve


def commit_file(root: Path, rel: str, text: str, message: str = "edit") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)
    git(root, "add", rel)
    git(root, "commit", "-qm", message)


def edit_config(root: Path, old: str, new: str) -> None:
    text = (root / "modelreg.yaml").read_text()
    assert old in text
    commit_file(root, "modelreg.yaml", text.replace(old, new, 1), "policy")


# 2. register and uncommitted work in the model's folder


def test_register_refuses_uncommitted_changes_in_the_models_folder(env: Env) -> None:
    env.register("churn", 1)
    card = env.root / "models/churn/model.yaml"
    card.write_text(card.read_text() + "description: my edit, not committed\n")
    (env.root / "models/churn/notes.md").write_text("staged notes\n")
    git(env.root, "add", "models/churn/notes.md")
    before = snapshot(env.root)
    with pytest.raises(
        ModelregError, match=r"models/churn/ has uncommitted changes \(.*model\.yaml.*notes\.md"
    ):
        env.register("churn", 2)
    assert snapshot(env.root) == before and "my edit" in card.read_text()
    assert "A  models/churn/notes.md" in git(env.root, "status", "--porcelain")  # still staged
    git(env.root, "commit", "-qam", "describe churn")
    assert env.register("churn", 2).tag == "churn@v2"  # type: ignore[attr-defined]
    (env.root / "models/churn/scratch.txt").write_text("untracked, not a name register writes")
    assert env.register("churn", 3).tag == "churn@v3"  # type: ignore[attr-defined]
    assert (env.root / "models/churn/scratch.txt").exists()


# 3. the door: a pushed branch cannot change the trust root or dispatch from itself


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_a_branch_cannot_add_its_own_signer_and_dispatch_a_promotion(
    env: Env, tmp_path: Path
) -> None:
    keys = {}
    for name in ("alice", "mallory"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)],
            check=True,
        )
        keys[name] = (tmp_path / f"{name}.pub").read_text().strip()
    commit_file(
        env.root,
        ".modelreg/allowed_signers",
        f'alice@example.com namespaces="git" {keys["alice"]}\n',
    )
    edit_config(
        env.root,
        "    requires: staging       # a version must have been live in staging first\n",
        "    requires: staging\n    require_signed: true\n",
    )
    env.register("churn", 1)
    deploy(env.registry, "churn@v1", "staging")
    git(env.root, "push", "-q", "origin", "main", "deploy", "--tags")
    # mallory, who can push a branch: adds her key to the trust root there and signs a tag on it
    work = clone(env.origin, tmp_path / "mallory-clone")
    git(work, "config", "user.name", "Mallory")
    git(work, "config", "user.email", "mallory@example.com")
    git(work, "switch", "-q", "-c", "feature")
    commit_file(
        work,
        ".modelreg/allowed_signers",
        f'alice@example.com namespaces="git" {keys["alice"]}\nmallory@example.com namespaces="git" '
        f"{keys['mallory']}\n",
        "trust me",
    )
    git(work, "config", "gpg.format", "ssh")
    git(work, "config", "user.signingKey", str(tmp_path / "mallory"))
    git(
        work, "tag", "-s", "-m", "signed by mallory", "churn@v2", "HEAD"
    )  # hand-made, on the same card and pointer
    git(work, "push", "-q", "origin", "feature", "churn@v2")
    # the runner: a dispatch checks out the ref it was started from, with every branch fetched
    runner = clone(env.origin, tmp_path / "runner")
    git(runner, "checkout", "-q", "feature")
    git(runner, "remote", "set-head", "origin", "--delete")  # actions/checkout sets no origin/HEAD
    git(runner, "config", "user.name", "ci")
    git(runner, "config", "user.email", "ci@example.com")
    deploy_staging = {
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "MODELREG_ACTION": "deploy",
        "MODELREG_REF": "churn@v2",
        "MODELREG_ENV": "staging",
    }
    from_branch = modelreg(runner, "ci", env={**deploy_staging, "GITHUB_REF": "refs/heads/feature"})
    assert (
        from_branch.returncode == 1 and "only from the default branch (main)" in from_branch.stderr
    )
    # even with the branch check fooled (a forged GITHUB_REF), policy is main's as the origin has it
    forged = modelreg(
        runner,
        "ci",
        env={**deploy_staging, "GITHUB_REF": "refs/heads/main", "MODELREG_ENV": "prod"},
    )
    assert (
        forged.returncode == 1
        and "[signed]" in forged.stderr
        and "not an allowed signer" in forged.stderr
    )
    assert "origin/main" in forged.stderr
    assert "churn@v2" not in git(env.origin, "log", "--format=%B", "deploy")
    # the same on the command line, and an uncommitted edit of the working tree is no door either
    (runner / "modelreg.yaml").write_text(
        (runner / "modelreg.yaml").read_text().replace("require_signed: true", "")
    )
    by_hand = modelreg(runner, "promote", "churn@v2", "--to", "prod", "--dry-run")
    assert by_hand.returncode == 1 and "[signed]" in by_hand.stderr


# 5. the servable gate


@pytest.mark.parametrize("what", ["no signature", "a folder", "a state_dict", "an unknown file"])
def test_deploy_refuses_what_modelregs_server_would_refuse(env: Env, what: str) -> None:
    torch = pytest.importorskip("torch")
    from modelreg.formats import inspect_artifact

    source = env.work / "src" / "model.pt"
    card = None if what == "no signature" else signature_card(env.work)
    if what == "a folder":
        source = write_model_dir(env.work / "src" / "bert", 1)
    elif what == "a state_dict":
        source.parent.mkdir(parents=True)
        torch.save(torch.nn.Linear(4, 2).state_dict(), source)
    elif what == "an unknown file":
        write_artifact(source, 1)
    else:
        source.parent.mkdir(parents=True)
        torch.jit.script(torch.nn.Linear(4, 2)).save(str(source))
    name = "bert" if what == "a folder" else "churn"
    done = register(
        env.registry, RegisterRequest(name, source, card_file=card), inspect=inspect_artifact
    )
    assert any("modelreg's server would refuse" in w for w in done.warnings), done.warnings
    before = snapshot(env.root)
    for action, target_env in (("deploy", "staging"), ("promote", "prod")):
        with pytest.raises(ModelregError, match=r"\[servable\] modelreg's server would refuse"):
            deploy(env.registry, done.tag, target_env, action=action)
    assert snapshot(env.root) == before
    ci = modelreg(
        env.root,
        "ci",
        "--no-push",
        env={"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": done.tag},
    )
    assert ci.returncode == 1 and "[servable]" in ci.stderr
    if what != "a folder":  # the README's first example: a program and a card with its signature
        source.unlink()
        torch.jit.script(torch.nn.Linear(4, 2)).save(str(source))
        good = register(
            env.registry,
            RegisterRequest(name, source, card_file=signature_card(env.work)),
            inspect=inspect_artifact,
        )
        assert not good.warnings and deploy(env.registry, good.tag, "staging").gates[0] == {
            "gate": "servable",
            "passed": True,
            "detail": "one program file with a signature",
        }


def test_templates_that_run_another_server_turn_the_gate_off(env: Env) -> None:
    edit_config(env.root, "  port: 8080\n", "  port: 8080\n  servable: false\n")
    source = write_artifact(env.work / "x" / "weights.bin", 1)
    done = register(env.registry, RegisterRequest("churn", source))
    assert not done.warnings and not deploy(env.registry, done.tag, "staging").gates


# 6. a remote added later does not move where old versions' bytes are looked for


def test_a_new_remote_leaves_old_versions_where_their_manifests_fetch(
    env: Env, tmp_path: Path
) -> None:
    env.register("churn", 1)
    env.register("churn", 2)
    deploy(env.registry, "churn@v1", "staging")
    deploy(env.registry, "churn@v2", "staging")
    new_store = tmp_path / "new-store"
    new_store.mkdir()
    add_remote(env.registry, str(new_store))
    env.register("churn", 3)
    registry = env.registry
    assert any(new_store.rglob("*")) and str(new_store) in json.dumps(
        list(
            __import__("modelreg.render", fromlist=["render"])
            .render(registry, resolve(registry, "churn@v3"), "staging")
            .objects
        )
    )
    assert [
        r.state for r in verify(registry, [resolve(registry, f"churn@v{n}") for n in (1, 2, 3)])
    ] == ["ok"] * 3
    assert rollback(registry, env="staging").version == "v1"  # the gate looked in v1's own remote
    shutil.copytree(env.store / "files", new_store / "files", dirs_exist_ok=True)
    shutil.rmtree(
        env.store / "files"
    )  # the old store is gone: old versions are missing, though new has copies
    with pytest.raises(ModelregError, match="not in the DVC remote"):
        deploy(registry, "churn@v2", "staging", DeployOptions(force=True))
    states = {
        r.tag: r.state for r in verify(registry, [resolve(registry, f"churn@v{n}") for n in (1, 3)])
    }
    assert states == {"churn@v1": "missing", "churn@v3": "ok"}


# 7. a pushed deploy names only versions the origin has; a shallow clone does not call tags deleted


def test_a_shallow_clone_says_not_fetched_and_a_push_needs_the_tag_on_origin(
    env: Env, tmp_path: Path
) -> None:
    env.register("churn", 1)
    deploy(env.registry, "churn@v1", "staging")
    git(env.root, "push", "-q", "origin", "main", "deploy", "--tags")
    env.register("churn", 2)  # registered, not pushed
    refused = modelreg(env.root, "deploy", "churn@v2", "--env", "staging", "--push")
    assert refused.returncode == 1 and "churn@v2 is not on origin" in refused.stderr
    assert "churn@v2" not in git(env.origin, "log", "--format=%B", "deploy")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth=1", "--no-tags", f"file://{env.origin}", str(shallow))
    git(
        shallow,
        "fetch",
        "-q",
        "--depth=1",
        "origin",
        "+refs/heads/deploy:refs/remotes/origin/deploy",
    )
    shown = modelreg(shallow, "status", "--no-render", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)[0]["tag_state"] == "not fetched", (
        shown.stdout
    )
    assert "deleted" not in modelreg(shallow, "status", "--no-render").stderr


# 9. a register off the main line leaves no stale pointer


def test_a_register_on_a_detached_head_or_another_branch_keeps_one_pointer(env: Env) -> None:
    env.register("churn", 1)
    first = git(env.root, "rev-parse", "HEAD").strip()
    source = write_artifact(env.work / "renamed" / "other.pt", 2)
    register(
        env.registry, RegisterRequest("churn", source, card_file=signature_card(env.work))
    )  # v2: other.pt
    git(
        env.root, "checkout", "-q", "--detach", first
    )  # HEAD's pointer is model.pt, the latest's other.pt
    env.register("churn", 3)
    pointers = [
        p
        for p in git(env.root, "ls-tree", "-r", "--name-only", "churn@v3", "models/").split()
        if p.endswith(".dvc")
    ]
    assert pointers == ["models/churn/model.pt.dvc"]
    git(env.root, "switch", "-q", "-c", "side", "churn@v2")
    env.register("churn", 4)
    assert [
        p
        for p in git(env.root, "ls-tree", "-r", "--name-only", "churn@v4", "models/").split()
        if p.endswith(".dvc")
    ] == ["models/churn/model.pt.dvc"]
    assert (
        not (env.root / "models/churn/other.pt").exists()
        and not (env.root / "models/churn/other.pt.dvc").exists()
    )


# 10. environments added later apply to every version


def test_an_environment_added_later_takes_old_versions_to_prod(env: Env) -> None:
    env.register("churn", 1)
    deploy(env.registry, "churn@v1", "staging")
    edit_config(
        env.root,
        "  prod:\n    requires: staging ",
        "  canary:\n    requires: staging\n  prod:\n    requires: canary ",
    )
    assert (
        deploy(env.registry, "churn@v1", "canary").env == "canary"
    )  # churn@v1's tree has no canary
    assert (
        deploy(env.registry, "churn@v1", "prod", action="promote").gates[1]["gate"]
        == "requires canary"
    )
    init = modelreg(env.root, "init")  # the workflow's environment list follows, not called an edit
    assert (
        init.returncode == 0
        and "updated  .github/workflows/modelreg.yml" in init.stdout
        and "kept" not in init.stderr
    )
    flow = yaml.safe_load((env.root / ".github/workflows/modelreg.yml").read_text())
    assert flow[True]["workflow_dispatch"]["inputs"]["env"]["options"] == [
        "staging",
        "canary",
        "prod",
    ]
    (env.root / ".github/workflows/modelreg.yml").write_text(
        (env.root / ".github/workflows/modelreg.yml").read_text() + "# my own step\n"
    )
    assert (
        "kept     .github/workflows/modelreg.yml" in modelreg(env.root, "init").stderr
    )  # a real edit is kept


# 11. the scaffolded workflow


def test_the_workflow_dispatches_and_publishes_only_from_the_default_branch(env: Env) -> None:
    flow = yaml.safe_load((env.root / ".github/workflows/modelreg.yml").read_text())
    triggers = flow[True]
    assert (
        "branches" not in triggers["push"]
    )  # the deploy branch has no workflow file: it never fired
    default = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    assert (
        default in flow["jobs"]["deploy"]["if"]
        and "workflow_dispatch" in flow["jobs"]["deploy"]["if"]
    )
    assert (
        default in flow["jobs"]["site"]["if"]
        and "github.event_name != 'push'" in flow["jobs"]["site"]["if"]
    )
    assert triggers["schedule"]
    notice = modelreg(
        env.root,
        "ci",
        "--no-push",
        env={
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_REF_TYPE": "tag",
            "GITHUB_REF_NAME": "v1.2.0-app",
        },
    )
    assert notice.returncode == 0 and notice.stdout.startswith(
        "::notice::tag 'v1.2.0-app' is not a version"
    )


# 13 and the messages


def test_malformed_safetensors_in_a_folder_is_one_line(env: Env) -> None:
    pytest.importorskip("torch")
    folder = env.work / "llm"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(struct.pack("<Q", 2**63 + 1) + b"{}")
    for body, said in (
        (struct.pack("<Q", 2**63 + 1) + b"{}", "header length"),
        (None, "has no valid shape"),
    ):
        if body is None:
            header = json.dumps({"w": {"dtype": "F32", "data_offsets": [0, 4]}}).encode()
            body = struct.pack("<Q", len(header)) + header + b"\0" * 4
        (folder / "a.safetensors").write_bytes(body)
        before = snapshot(env.root)
        done = subprocess.run(
            [MODELREG, "-C", str(env.root), "register", "llm", str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (
            done.returncode == 1
            and said in done.stderr
            and len(done.stderr.strip().splitlines()) == 1
        ), done.stderr
        assert snapshot(env.root) == before


def test_messages_a_new_user_met(env: Env, tmp_path: Path) -> None:
    typo = env.root / "modelreg.yaml"
    commit_file(env.root, "modelreg.yaml", typo.read_text() + "modles_dir: models\n")
    said = modelreg(env.root, "list").stderr
    assert (
        "known: " in said and "environments" in said and "deploy" in said and "models_dir" in said
    )
    git(env.root, "revert", "--no-edit", "HEAD")
    again = modelreg(env.root, "init")  # a remote was set by the fixture: no "No DVC remote yet"
    assert again.returncode == 0 and "No DVC remote" not in again.stderr
    sub = env.root / "nested"
    sub.mkdir()
    inside = modelreg(sub, "init")
    assert f"is inside the git repository {env.root}" in inside.stderr
    env.register("churn", 1)
    deploy(env.registry, "churn@v1", "staging")
    worktree = tmp_path / "deploy-tree"
    git(env.root, "worktree", "add", "-q", str(worktree), "deploy")
    env.register("churn", 2)
    refused = modelreg(env.root, "deploy", "churn@v2", "--env", "staging")
    assert refused.returncode == 1 and f"checked out in {worktree}" in refused.stderr
    git(env.root, "worktree", "remove", str(worktree))
    git(env.root, "switch", "-q", "deploy")
    assert "deploy branch deploy checked out" in modelreg(env.root, "init").stderr
    listed = modelreg(
        env.root, "list"
    )  # on the deploy branch, commands read policy from main: no "run init"
    assert listed.returncode == 0 and "churn" in listed.stdout
    git(env.root, "switch", "-q", "main")
    tag_object = git(env.root, "rev-parse", "churn@v1").strip()
    git(env.root, "tag", "-f", "-a", "churn@v1", "-m", "moved", "churn@v2^{commit}")
    assert "MOVED" in modelreg(env.root, "show", "churn@v1").stdout
    assert json.loads(modelreg(env.root, "list", "--json").stdout)[0]["moved"] == ["v1"]
    git(env.root, "update-ref", "refs/tags/churn@v1", tag_object)
    assert "MOVED" not in modelreg(env.root, "show", "churn@v1").stdout
    missing = modelreg(env.root, "show", "churn@v7")
    assert (
        "latest: v2); if it was registered in another clone, `git fetch --tags` first"
        in missing.stderr
    )
    assert os.path.basename(MODELREG) == "modelreg"
