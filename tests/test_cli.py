"""The CLI's wiring: exit codes, one-line errors, --json, and no heavy imports where none are
needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from helpers import Env, signature_card, snapshot, write_artifact
from modelreg.cli.main import cli

COMMANDS = cli.list_commands(click.Context(cli))  # the lazy group's table


def run(env: Env, *args: str) -> Result:
    return CliRunner().invoke(cli, ["-C", str(env.root), *args])


def test_register_list_show_history_json(env: Env) -> None:
    for seed in (1, 2):
        result = run(
            env,
            "register",
            "churn",
            str(write_artifact(env.work / f"m{seed}.pt", seed)),
            "--json",
            "-m",
            f"s{seed}",
        )
        assert result.exit_code == 0, result.output
    registered = json.loads(result.stdout)
    assert (
        registered["tag"] == "churn@v2"
        and registered["pushed"] is True
        and len(registered["sha256"]) == 64
    )
    listed = json.loads(run(env, "list", "--json").stdout)
    assert (
        listed[0]["model"] == "churn"
        and listed[0]["latest"]["version"] == "v2"
        and listed[0]["versions"] == 2
    )
    shown = json.loads(run(env, "show", "churn@v1", "--json").stdout)
    assert shown["card"]["version"] == "v1" and [v["version"] for v in shown["versions"]] == [
        "v1",
        "v2",
    ]
    events = json.loads(run(env, "history", "--json").stdout)
    assert [(e["action"], e["version"]) for e in events] == [("register", "v2"), ("register", "v1")]
    table = run(env, "list").stdout
    assert table.splitlines()[0].split() == [
        "MODEL",
        "LATEST",
        "REGISTERED",
        "BY",
        "VERSIONS",
        "INVALID",
        "QUARANTINED",
        "DEPRECATED",
        "MOVED",
    ]


def test_deploy_commands_print_and_json(env: Env) -> None:
    run(
        env,
        "register",
        "churn",
        str(write_artifact(env.work / "m.pt", 1)),
        "--card",
        str(signature_card(env.work)),
        "--no-inspect",
    )  # random bytes: inspected, they would be refused as not a program (the servable gate)
    assert (
        "Deployed churn@v1 to staging" in run(env, "deploy", "churn@v1", "--env", "staging").stdout
    )
    assert "already live" in run(env, "deploy", "v1", "--env", "staging").stdout
    promoted = json.loads(run(env, "promote", "v1", "--to", "prod", "--json").stdout)
    assert promoted["action"] == "promote" and promoted["env"] == "prod"
    assert json.loads(run(env, "status", "--json").stdout)[1]["drift"] == "none"
    rendered = run(env, "render", "churn@v1", "--env", "prod", "-o", str(env.work / "out"))
    assert rendered.exit_code == 0 and (env.work / "out" / "deployment.yaml").exists()
    failed = run(env, "rollback")
    assert failed.exit_code == 1 and "only v1 in prod" in failed.stderr


@pytest.mark.parametrize(
    "args,message,code",
    [
        (["register", "Churn", "m.pt"], "invalid model name 'Churn'", 1),
        (["register", "churn", "missing.pt"], "no such file", 1),
        (["register", "churn", "m.pt", "--version", "latest"], "invalid version 'latest'", 1),
        (["register", "churn", "m.pt", "--bump", "huge"], "Invalid value for '--bump'", 2),
        (["show", "nope"], "no model named 'nope'", 1),
        (["deploy", "churn@v1", "--env", "qa"], "unknown environment 'qa'", 1),
        (["deploy", "churn@v1"], "Missing option '--env'", 2),
    ],
)
def test_errors_are_one_line_and_change_nothing(
    env: Env, args: list[str], message: str, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_artifact(env.root / "m.pt", 3)
    monkeypatch.chdir(env.root)
    before = snapshot(env.root)
    result = run(env, *args)
    assert result.exit_code == code
    assert message in result.stderr and "Traceback" not in result.output
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(env.root) == before


def test_outside_a_registry(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-C", str(tmp_path), "list"])
    assert result.exit_code == 1 and "not inside a git repository" in result.stderr


def test_a_dvc_failure_is_one_line(env: Env) -> None:
    (env.root / ".dvc" / "config").write_text("[core\nbroken")  # DVC cannot parse it
    before = snapshot(env.root)
    result = run(env, "register", "churn", str(write_artifact(env.work / "m.pt", 1)))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        result.stderr.startswith("Error: DVC could not open")
        and len(result.stderr.strip().splitlines()) == 1
    )
    assert snapshot(env.root) == before


def imported_modules(*args: str, cwd: Path | None = None) -> tuple[int, set[str]]:
    code = (
        "import sys\nfrom modelreg.cli.main import cli\n"
        "try:\n    cli(sys.argv[1:], prog_name='modelreg')\nexcept SystemExit as e:\n    code = "
        "e.code\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    return done.returncode, set(done.stderr.split())


@pytest.mark.parametrize("command", [None] + COMMANDS)
def test_help_imports_neither_dvc_nor_torch(command: str | None) -> None:
    code, modules = imported_modules(*([command] if command else []), "--help")
    assert code == 0
    assert not {
        m for m in modules if m.split(".")[0] in ("dvc", "torch", "jinja2", "kubernetes_validate")
    }


@pytest.mark.parametrize(
    "args", [["list"], ["show", "churn"], ["history"], ["status", "--no-render"]]
)
def test_read_commands_import_neither_dvc_nor_torch(env: Env, args: list[str]) -> None:
    run(env, "register", "churn", str(write_artifact(env.work / "m.pt", 1)))
    code, modules = imported_modules(*args, cwd=env.root)
    assert code == 0
    assert not {m for m in modules if m.split(".")[0] in ("dvc", "torch")}


def test_register_inspects_unless_told_not_to(env: Env) -> None:
    pytest.importorskip("torch")
    import torch

    torch.save(torch.nn.Linear(2, 2).state_dict(), env.work / "m.pt")
    assert run(env, "register", "churn", str(env.work / "m.pt")).exit_code == 0
    assert (
        json.loads(run(env, "show", "churn@v1", "--json").stdout)["card"]["inspection"][
            "parameters"
        ]
        == 6
    )
    assert (
        run(
            env, "register", "churn", str(env.work / "m.pt"), "--no-inspect", "--allow-duplicate"
        ).exit_code
        == 0
    )
    assert "inspection" not in json.loads(run(env, "show", "churn@v2", "--json").stdout)["card"]


def test_every_command_is_in_the_lazy_table_and_loads_alone() -> None:
    """main.COMMANDS names every click command the cli modules define, each loads, and running one
    imports its own module only (the lazy group)."""
    import importlib

    import click

    from modelreg.cli.main import COMMANDS

    modules = {module for module, _ in COMMANDS.values()}
    defined = {
        (module, name)
        for module in modules
        for name, value in vars(importlib.import_module(f"modelreg.cli.{module}")).items()
        if isinstance(value, click.Command)
        and getattr(value.callback, "__module__", "") == f"modelreg.cli.{module}"
    }
    nested = {  # subcommands of a group (remote add) are its own business
        (module, name)
        for module, name in defined
        for group in vars(importlib.import_module(f"modelreg.cli.{module}")).values()
        if isinstance(group, click.Group)
        and getattr(importlib.import_module(f"modelreg.cli.{module}"), name)
        in group.commands.values()
    }
    assert defined - nested == set(COMMANDS.values())
    probe = (
        "import sys\n"
        "from modelreg.cli.main import cli\n"
        "try:\n"
        "    cli.main(['deploy', '--help'], prog_name='modelreg')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('modelreg.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == str(
        ["modelreg.cli.deploy_commands", "modelreg.cli.main", "modelreg.cli.output"]
    )
