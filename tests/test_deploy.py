from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import MODELREG, Env, git, snapshot
from modelreg import target
from modelreg.deploy import DeployOptions, deploy, rollback
from modelreg.errors import ModelregError
from modelreg.history import history
from modelreg.render import render
from modelreg.status import status
from modelreg.versions import resolve


def edit_and_commit(env: Env, path: str, old: str, new: str) -> None:
    file = env.root / path
    file.write_text(file.read_text().replace(old, new))
    git(env.root, "commit", "-qam", f"edit {path}")


def deploy_files(
    env: Env, rev: str, env_name: str = "prod", model: str = "churn"
) -> dict[str, bytes]:
    names = git(env.root, "ls-tree", "--name-only", f"{rev}:{env_name}/{model}").split()
    return {
        n: subprocess.run(
            ["git", "show", f"{rev}:{env_name}/{model}/{n}"],
            cwd=env.root,
            check=True,
            capture_output=True,
        ).stdout
        for n in names
    }


@pytest.fixture
def three(env: Env) -> Env:
    for seed in (1, 2, 3):
        env.register("churn", seed)
    return env


def test_render_is_deterministic_valid_and_labelled(three: Env) -> None:
    registry = three.registry
    first = render(registry, resolve(registry, "churn@v2"), "prod")
    assert first.files == render(registry, resolve(registry, "churn@v2"), "prod").files
    assert set(first.files) == {
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "poddisruptionbudget.yaml",
    }  # prod runs two replicas
    kinds = {o["kind"]: o for o in first.objects}
    for obj in first.objects:
        labels = obj["metadata"]["labels"]
        assert labels["modelreg.io/version"] == "v2" and labels["app.kubernetes.io/name"] == "churn"
        assert labels["modelreg.io/env"] == "prod"
    deployment = kinds["Deployment"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    flags = dict(zip(init["args"][::2], init["args"][1::2]))
    card = resolve(registry, "churn@v2").card
    assert init["command"] == ["modelreg", "fetch"]
    assert (
        flags["--url"].startswith(str(three.store))
        and card["artifact"]["md5"][2:] in flags["--url"]
    )
    assert flags["--sha256"] == card["artifact"]["sha256"] and flags["--out"] == "/models/model.pt"
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (
        server["command"] == ["modelreg", "serve"]
        and server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    )
    from importlib.metadata import version

    assert server["image"] == init["image"] == f"ghcr.io/modelreg/modelreg:{version('modelreg')}"
    assert yaml.safe_load(kinds["ConfigMap"]["data"]["model.yaml"]) == card
    assert deployment["spec"]["replicas"] == 2


def test_render_takes_templates_from_the_tag_and_settings_from_policy(three: Env) -> None:
    before = render(three.registry, resolve(three.registry, "churn@v1"), "prod").files
    edit_and_commit(
        three, "templates/service.yaml.j2", "port: 80", "port: 81"
    )  # a later commit's templates
    (three.root / "templates/deployment.yaml.j2").write_text("broken {{")  # the working tree's
    assert render(three.registry, resolve(three.registry, "churn@v1"), "prod").files == before
    edit_and_commit(
        three, "modelreg.yaml", "replicas: 2", "replicas: 7"
    )  # policy: applies to old versions too
    after = render(three.registry, resolve(three.registry, "churn@v1"), "prod").objects
    assert next(o for o in after if o["kind"] == "Deployment")["spec"]["replicas"] == 7


def test_the_init_container_fetches_and_verifies_the_exact_bytes(
    three: Env, tmp_path: Path
) -> None:
    found = resolve(three.registry, "churn@v3")
    objects = {o["kind"]: o for o in render(three.registry, found, "prod").objects}
    init = objects["Deployment"]["spec"]["template"]["spec"]["initContainers"][0]
    args = [
        str(tmp_path / "models" / "model.pt") if a == "/models/model.pt" else a
        for a in init["args"]
    ]
    assert init["command"] == ["modelreg", "fetch"]
    command = [MODELREG, "fetch"]  # the installed command, as the image runs it
    ok = subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=tmp_path
    )  # no git repo here
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "models/model.pt").read_bytes() == (
        three.work / "churn-3/model.pt"
    ).read_bytes()
    url = args[args.index("--url") + 1]
    Path(url).chmod(0o644)
    Path(url).write_bytes(b"tampered")
    args[args.index("--out") + 1] = str(tmp_path / "again" / "model.pt")
    bad = subprocess.run([*command, *args], capture_output=True, text=True, cwd=tmp_path)
    assert (
        bad.returncode == 1
        and "corrupt in the remote" in bad.stderr
        and len(bad.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "again" / "model.pt").exists()


def test_quoting_keeps_hostile_card_text_a_string(env: Env, tmp_path: Path) -> None:
    card = tmp_path / "card.yaml"
    hostile = 'x: y\nkind: Secret\n"{{ 7*7 }}" - [a]\n  spec: {}'
    card.write_text(yaml.safe_dump({"description": hostile}))
    from helpers import write_artifact
    from modelreg.register import RegisterRequest, register

    register(
        env.registry, RegisterRequest("churn", write_artifact(tmp_path / "m.pt", 1), card_file=card)
    )
    objects = render(env.registry, resolve(env.registry, "churn"), "staging").objects
    assert [o["kind"] for o in objects] == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
    ]
    assert objects[1]["metadata"]["annotations"]["modelreg.io/description"] == hostile
    assert yaml.safe_load(objects[0]["data"]["model.yaml"])["description"] == hostile


@pytest.mark.parametrize(
    "template,edit,message",
    [
        (
            "service.yaml.j2",
            ("port: 80", "port: {{ no_such_value }}"),
            "templates/service.yaml.j2:16: 'no_such_value' is undefined",
        ),
        (
            "service.yaml.j2",
            ("port: 80", "port: {{ oops"),
            "templates/service.yaml.j2:17: expected token",
        ),
        (
            "service.yaml.j2",
            ("port: 80", "port: {{ card.description | default('a: b: c') }}"),
            "rendered output is not valid YAML",
        ),
        (
            "service.yaml.j2",
            ("port: 80", "port: eighty"),
            "fails the Kubernetes 1.30 schema at spec.ports.0.port",
        ),
        ("hpa.yaml.j2", ("minReplicas:", "minReplica:"), "fails the Kubernetes 1.30 schema"),
        (
            "service.yaml.j2",
            ("{{ name | q }}", "{{ name.__class__.__mro__ }}"),
            "templates/service.yaml.j2",
        ),
    ],
)
def test_template_errors_are_named_and_change_nothing(
    env: Env, template: str, edit: tuple[str, str], message: str
) -> None:
    env.register("churn", 1)
    edit_and_commit(env, f"templates/{template}", *edit)
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match="nothing was registered: .*" + re.escape(message)):
        env.register("churn", 2)  # register renders every environment before it tags
    assert snapshot(env.root) == before
    git(
        env.root, "tag", "churn@v2"
    )  # a tag made by hand on that commit: deploy names the same error
    before = snapshot(env.root)
    with pytest.raises(ModelregError, match=re.escape(message)):
        deploy(env.registry, "churn@v2", "staging")
    assert snapshot(env.root) == before


def test_kserve_inference_service(env: Env) -> None:
    edit_and_commit(env, "modelreg.yaml", "kind: deployment", "kind: kserve")
    env.register("churn", 1)
    rendered = render(env.registry, resolve(env.registry, "churn"), "prod")
    assert list(rendered.files) == ["clusterservingruntime.yaml", "inferenceservice.yaml"]
    kinds = {o["kind"]: o for o in rendered.objects}
    model = kinds["InferenceService"]["spec"]["predictor"]["model"]
    assert model["storageUri"].startswith(str(env.store)) and model["runtime"] == "modelreg"
    assert (
        yaml.safe_load(model["env"][0]["value"])["artifact"]["sha256"]
        == resolve(env.registry, "churn").card["artifact"]["sha256"]
    )
    runtime = kinds["ClusterServingRuntime"]
    assert runtime["metadata"]["name"] == "modelreg" and runtime["spec"]["containers"][0][
        "command"
    ] == ["modelreg", "serve"]


def test_deploy_promote_rollback_flow(three: Env) -> None:
    registry = three.registry
    status_before = git(three.root, "status", "--porcelain")
    head_before = git(three.root, "rev-parse", "HEAD")
    for version in ("v1", "v2"):
        deploy(registry, f"churn@{version}", "staging")
        deploy(registry, f"churn@{version}", "prod", action="promote")
    v2_deploy = git(three.root, "rev-parse", "deploy").strip()
    deploy(registry, "churn@v3", "staging")
    deploy(registry, "v3", "prod", action="promote")
    assert deploy(registry, "churn@v3", "prod").noop
    back = rollback(registry)  # prod, churn, the version before v3
    assert (back.version, back.previous_version, back.action) == ("v2", "v3", "rollback")
    assert deploy_files(three, "deploy") == deploy_files(three, v2_deploy)
    trailers = git(three.root, "log", "-1", "--format=%(trailers)", "deploy")
    assert "Modelreg-Action: rollback" in trailers and "Modelreg-Previous-Version: v3" in trailers
    assert "Modelreg-Source-Commit: " + resolve(registry, "churn@v2").info.commit in trailers
    # the user's checkout is untouched
    assert (
        git(three.root, "rev-parse", "HEAD") == head_before
        and git(three.root, "status", "--porcelain") == status_before
    )
    with pytest.raises(ModelregError, match="churn@v3 was rolled back in prod"):
        rollback(registry, "v3", env="prod")
    again = rollback(registry, "v3", env="prod", options=DeployOptions(force=True))
    assert again.version == "v3" and "Modelreg-Forced: true" in git(
        three.root, "log", "-1", "--format=%B", "deploy"
    )
    live = {(s.env, s.model): s for s in status(registry)}
    assert live[("prod", "churn")].version == "v3" and live[("prod", "churn")].drift == "none"
    events = [(e.action, e.version, e.env) for e in history(registry, "churn", env="prod")]
    assert events == [
        ("rollback", "v3", "prod"),
        ("rollback", "v2", "prod"),
        ("promote", "v3", "prod"),
        ("promote", "v2", "prod"),
        ("promote", "v1", "prod"),
    ]
    assert len(git(three.root, "rev-list", "deploy").split()) == 8


def test_rollback_v3_is_byte_identical_to_the_deploy_of_v3(three: Env) -> None:
    registry = three.registry
    deploy(registry, "churn@v3", "staging")
    v3 = deploy(registry, "churn@v3", "prod").commit
    deploy(registry, "churn@v1", "staging")
    deploy(registry, "churn@v1", "prod")
    edit_and_commit(
        three, "templates/service.yaml.j2", "port: 80", "port: 8081"
    )  # later template changes
    rollback(registry, "v3")
    assert deploy_files(three, "deploy") == deploy_files(three, str(v3))


def test_deploy_errors_change_nothing(three: Env) -> None:
    registry = three.registry
    deploy(registry, "churn@v1", "staging")
    before = snapshot(three.root)
    cases = [
        (lambda: deploy(registry, "churn@v2", "qa"), "unknown environment 'qa'"),
        (lambda: deploy(registry, "churn@v9", "staging"), r"churn@v9 is not registered"),
        (lambda: deploy(registry, "churn@latest", "staging"), "invalid version"),
        (
            lambda: deploy(registry, "churn@v2", "prod"),
            "never live in staging, which prod requires",
        ),
        (lambda: rollback(registry, env="prod"), "never deployed to prod"),
        (lambda: rollback(registry, env="staging"), "only v1 in staging"),
        (lambda: rollback(registry, "v9", env="staging"), "not registered"),
        (lambda: rollback(registry, "v2", env="staging"), "never deployed to staging"),
    ]
    for call, message in cases:
        with pytest.raises(ModelregError, match=message):
            call()
        assert snapshot(three.root) == before


def test_a_deploy_branch_edited_by_hand_is_refused_then_forced(three: Env, tmp_path: Path) -> None:
    registry = three.registry
    deploy(registry, "churn@v1", "staging")
    work = tmp_path / "deploy-wt"
    git(three.root, "worktree", "add", "-q", str(work), "deploy")
    (work / "staging/churn/service.yaml").write_text("hand: edit\n")
    git(work, "commit", "-qam", "hotfix by hand")
    git(three.root, "worktree", "remove", "--force", str(work))
    assert status(registry)[0].drift == "edited"
    before = snapshot(three.root)
    with pytest.raises(ModelregError, match="edited by hand"):
        deploy(registry, "churn@v2", "staging")
    assert snapshot(three.root) == before
    assert deploy(registry, "churn@v2", "staging", DeployOptions(force=True)).version == "v2"
    assert status(registry)[0].drift == "none"


def test_dry_run_commits_nothing(three: Env) -> None:
    before = snapshot(three.root)
    result = deploy(three.registry, "churn@v1", "staging", DeployOptions(dry_run=True))
    assert result.dry_run and result.commit is None and snapshot(three.root) == before


def test_push_and_fetch_through_origin(three: Env, tmp_path: Path) -> None:
    before = snapshot(three.root)
    with pytest.raises(
        ModelregError, match=r"churn@v1 is not on origin: .*\(git push origin churn@v1\)"
    ):
        deploy(
            three.registry, "churn@v1", "staging", DeployOptions(push=True)
        )  # a tag nobody else could see
    assert snapshot(three.root) == before and "deploy" not in git(three.origin, "branch")
    git(three.root, "push", "-q", "origin", "HEAD", "--tags")
    deploy(three.registry, "churn@v1", "staging", DeployOptions(push=True))
    assert git(three.origin, "rev-parse", "deploy") == git(three.root, "rev-parse", "deploy")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", str(three.origin), str(clone)], check=True, capture_output=True
    )
    from modelreg.handle import open_registry

    other = open_registry(clone)
    assert target.tip(other) == git(three.root, "rev-parse", "deploy").strip()  # origin/deploy only
    deploy(other, "churn@v1", "prod", DeployOptions(push=True))
    assert "Modelreg-Env: prod" in git(three.origin, "log", "-1", "--format=%B", "deploy")


def test_hand_tagged_version_deploys(three: Env) -> None:
    git(three.root, "tag", "v7")
    assert deploy(three.registry, "v7", "staging").tag == "v7"


def test_an_environment_can_fetch_from_a_mirror(three: Env) -> None:
    edit_and_commit(
        three,
        "modelreg.yaml",
        "    requires: staging",
        "    storage_url: s3://mirror-eu/models\n    requires: staging",
    )
    three.register(
        "churn", 4
    )  # settings come from the tag's tree: a version registered after the change
    found = resolve(three.registry, "churn@v4")
    args = {o["kind"]: o for o in render(three.registry, found, "prod").objects}["Deployment"][
        "spec"
    ]["template"]["spec"]["initContainers"][0]["args"]
    flags = dict(zip(args[::2], args[1::2]))
    md5 = found.pointer.md5
    assert (
        flags["--url"] == f"s3://mirror-eu/models/files/md5/{md5[:2]}/{md5[2:]}"
    )  # the mirror; md5 and SHA-256 from the tag
    assert flags["--md5"] == md5 and flags["--sha256"] == found.card["artifact"]["sha256"]
