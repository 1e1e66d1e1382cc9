"""Every user input is a clean error: one line on stderr, exit 1 (2 for usage), the repo as it was.

One registry (churn v1 deployed to staging, v2 registered) serves every case; each case checks that
nothing changed. Hostile content (YAML bombs, template bombs, symlinks, huge numbers, non-finite
metrics) is here too, bounded in time: each case runs in seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from helpers import git, signature_card, snapshot, write_artifact, write_model_dir
from modelreg.cli.main import cli
from modelreg.deploy import deploy
from modelreg.handle import open_registry
from modelreg.init import init
from modelreg.register import RegisterRequest, register

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
)


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("bad-input")
    origin = base / "origin.git"
    git(base, "init", "-q", "--bare", str(origin))
    root = base / "registry"
    git(base, "clone", "-q", str(origin), str(root))
    (base / "store").mkdir()
    init(root, remote=str(base / "store"), default_model="churn")
    registry = open_registry(root)
    for seed in (1, 2):
        register(
            registry,
            RegisterRequest(
                "churn",
                write_artifact(base / f"src{seed}" / "model.pt", seed),
                card_file=signature_card(base),
            ),
        )
    deploy(registry, "churn@v1", "staging")
    work = base / "work"
    write_artifact(work / "m.pt", 3)
    write_artifact(root / "m.pt", 4)
    (work / "link.pt").symlink_to(work / "m.pt")
    (work / "dangling.pt").symlink_to(work / "nowhere.pt")
    write_model_dir(work / "linkdir", 5)
    (work / "linkdir" / "passwd").symlink_to("/etc/passwd")
    write_model_dir(work / "dirlink-parent", 6)
    (work / "dirlink-parent" / "etc").symlink_to("/etc", target_is_directory=True)
    os.mkfifo(work / "fifo")
    (work / "empty").mkdir()
    write_artifact(work / "bad name.pt", 7)
    cards = {
        "bomb.yaml": BOMB,
        "list.yaml": "- a\n- b\n",
        "broken.yaml": "a: [1, 2\n",
        "huge.yaml": "description: " + "x" * (2 * 1024 * 1024) + "\n",
        "nan.yaml": "metrics:\n  auc: .nan\n",
        "bignum.yaml": "size: " + "9" * 10000 + "\n",
        "inf.yaml": "metrics:\n  loss: -.inf\n",
    }
    for name, text in cards.items():
        (work / name).write_text(text)
    (work / "out-file").write_text("x")
    (root / ".gitignore").write_text("/m.pt\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-qm", "ignore m.pt")
    return root


W = "{work}"


def fetch_args(url: str, md5: str, sha256: str, out: str) -> list[str]:
    return ["fetch", "--url", url, "--md5", md5, "--sha256", sha256, "--out", out]


CASES: list[tuple[list[str], int, str]] = [
    # the group
    (["no-such-command"], 2, "No such command"),
    (["--bogus"], 2, "No such option"),
    # init
    (["init", "--bogus"], 2, "No such option"),
    (["init", "--default-model", "Bad_Name"], 1, "invalid model name"),
    (["init", "--default-model", "churn\n"], 1, "invalid model name"),
    # register: names and versions
    (["register", "Churn", f"{W}/m.pt"], 1, "invalid model name 'Churn'"),
    (["register", "churn-", f"{W}/m.pt"], 1, "invalid model name"),
    (["register", "-churn", f"{W}/m.pt"], 2, "No such option"),
    (["register", "churn\n", f"{W}/m.pt"], 1, "invalid model name"),
    (["register", "ch urn", f"{W}/m.pt"], 1, "invalid model name"),
    (["register", "a" * 54, f"{W}/m.pt"], 1, "at most 53 characters"),
    (["register", "", f"{W}/m.pt"], 1, "invalid model name"),
    (["register", "churn@v3", f"{W}/m.pt"], 1, "invalid model name"),
    (["register", "churn", f"{W}/missing.pt"], 1, "no such file"),
    (["register", "churn", f"{W}/m.pt", "--version", "latest"], 1, "invalid version 'latest'"),
    (["register", "churn", f"{W}/m.pt", "--version", "v1"], 1, "churn@v1 already exists"),
    (["register", "churn", f"{W}/m.pt", "--version", "v2\n"], 1, "invalid version"),
    (["register", "churn", f"{W}/m.pt", "--version", "v" + "9" * 10000], 1, "invalid version"),
    (["register", "churn", f"{W}/m.pt", "--version", "v1234567890"], 1, "at most 9 digits"),
    (["register", "churn", f"{W}/m.pt", "--version", "v01"], 1, "invalid version"),
    (["register", "churn", f"{W}/m.pt", "--version", "v-1"], 1, "invalid version"),
    (["register", "churn", f"{W}/m.pt", "--version", "V3"], 1, "invalid version"),
    (["register", "churn", f"{W}/m.pt", "--version", "v1.2"], 1, "invalid version"),
    (
        ["register", "churn", f"{W}/m.pt", "--version", "v1.2.3"],
        1,
        "does not fit `versions: integer`",
    ),
    (["register", "churn", f"{W}/m.pt", "--bump", "huge"], 2, "Invalid value for '--bump'"),
    (["register", "churn", f"{W}/m.pt", "--bump", "minor"], 1, "needs `versions: semver`"),
    (["register", "churn"], 2, "Missing argument 'PATH'"),
    (["register"], 2, "Missing argument 'NAME'"),
    # register: metrics, params, cards
    (["register", "churn", f"{W}/m.pt", "--metric", "auc"], 1, "expected KEY=VALUE"),
    (["register", "churn", f"{W}/m.pt", "--metric", "=3"], 1, "expected KEY=VALUE"),
    (["register", "churn", f"{W}/m.pt", "--metric", "x=.nan"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--metric", "x=nan"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--metric", "x=inf"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--metric", "x=-Infinity"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--metric", "x=1e999"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--metric", "x=" + "9" * 5000], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--param", "lr"], 1, "--param 'lr': expected KEY=VALUE"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/missing.yaml"], 2, "does not exist"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}"], 2, "is a directory"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/bomb.yaml"], 1, "YAML bomb"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/list.yaml"], 1, "expected a mapping"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/broken.yaml"], 1, "is not valid YAML"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/huge.yaml"], 1, "is too large"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/nan.yaml"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/inf.yaml"], 1, "not a finite number"),
    (["register", "churn", f"{W}/m.pt", "--card", f"{W}/bignum.yaml"], 1, "a number is too large"),
    # register: what an artifact may be
    (["register", "churn", f"{W}/link.pt"], 1, "is a symbolic link"),
    (["register", "churn", f"{W}/dangling.pt", "--follow-symlinks"], 1, "points nowhere"),
    (
        ["register", "churn", f"{W}/linkdir"],
        1,
        "linkdir/passwd is a symbolic link (to /etc/passwd)",
    ),
    (["register", "churn", f"{W}/dirlink-parent"], 1, "dirlink-parent/etc is a symbolic link"),
    (["register", "churn", f"{W}/fifo"], 1, "not a regular file"),
    (["register", "churn", f"{W}/empty"], 1, "is an empty folder"),
    (["register", "churn", f"{W}/bad name.pt"], 1, "artifact name 'bad name.pt'"),
    (["register", "churn", "{root}/.dvc/config"], 1, "is inside .dvc"),
    (["register", "churn", "{root}/.git/HEAD"], 1, "is inside .git"),
    (["register", "churn", "{root}/.git"], 1, "is inside .git"),
    (["register", "churn", "{root}"], 1, "holds the registry itself"),
    (["register", "churn", "/"], 1, "holds the registry itself"),
    (["register", "churn", "/dev/null"], 1, "not a regular file"),
    # list, show, history
    (["list", "extra"], 2, "Got unexpected extra argument"),
    (["list", "--bogus"], 2, "No such option"),
    (["show"], 2, "Missing argument 'REF'"),
    (["show", "nope"], 1, "no model named 'nope'"),
    (
        ["show", "churn@v9"],
        1,
        "churn@v9 is not registered here (latest: v2); if it was registered in another clone, "
        "`git fetch --tags` first",
    ),
    (["show", "v9"], 1, "churn@v9 is not registered"),
    (["show", "Churn"], 1, "invalid model name"),
    (["show", "churn@latest"], 1, "invalid version 'latest'"),
    (["show", "churn@v1\n"], 1, "invalid version"),
    (["show", "churn@v" + "9" * 10000], 1, "invalid version"),
    (["show", "@v1"], 1, "invalid model name ''"),
    (["show", ""], 1, "invalid model name ''"),
    (["show", "churn@"], 1, "invalid version ''"),
    (["show", "churn@v1@v2"], 1, "invalid version"),
    (["history", "Bad"], 1, "invalid model name 'Bad'"),
    (["history", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["history", "--env", "prod\n"], 1, "unknown environment"),
    (["history", "-n", "abc"], 2, "is not a valid integer"),
    # diff
    (["diff", "churn@v1"], 2, "Missing argument 'NEW'"),
    (["diff", "churn@v1", "churn@v9"], 1, "churn@v9 is not registered"),
    (["diff", "churn@v1", "Bad@v1"], 1, "invalid model name 'Bad'"),
    (["diff", "churn@v1", "churn@v1", "--env", "qa"], 1, "unknown environment 'qa'"),
    # gc
    (["gc", "--window", "forever"], 1, "not a duration"),
    (["gc", "--keep-last", "-1"], 2, "-1 is not in the range"),
    (["gc", "--keep-last", "x"], 2, "is not a valid integer"),
    # find, lineage
    (["find"], 2, "Missing argument 'EXPRESSION'"),
    (["find", "metrics.auc >="], 1, "expected a value after >= at position 15"),
    (["find", "nope == 1"], 1, "unknown field 'nope'"),
    (["find", "(model == churn"], 1, "expected ')'"),
    (["lineage", "churn@v9"], 1, "churn@v9 is not registered"),
    (["lineage", "Bad"], 1, "invalid model name 'Bad'"),
    (["register", "churn", f"{W}/m.pt", "--lineage-from", f"{W}"], 1, "no dvc.lock there"),
    # deprecate, undeprecate
    (["deprecate", "churn@v1", "--reason", "r"], 2, "Missing option '--sunset'"),
    (["deprecate", "churn@v1", "--sunset", "2027-02-30", "--reason", "r"], 1, "expected a date"),
    (["deprecate", "churn@v1", "--sunset", "tomorrow", "--reason", "r"], 1, "expected a date"),
    (
        ["deprecate", "churn@v1", "--sunset", "2027-03-01", "--reason", " "],
        1,
        "--reason is required",
    ),
    (
        [
            "deprecate",
            "churn@v1",
            "--sunset",
            "2027-03-01",
            "--replacement",
            "churn@v1",
            "--reason",
            "r",
        ],
        1,
        "itself",
    ),
    (
        ["deprecate", "churn@v9", "--sunset", "2027-03-01", "--reason", "r"],
        1,
        "churn@v9 is not registered",
    ),
    (["undeprecate", "churn@v1"], 2, "Missing option '--reason'"),
    (["undeprecate", "churn@v9", "--reason", "r"], 1, "churn@v9 is not registered"),
    # render
    (["render", "churn@v1"], 2, "Missing option '--env'"),
    (["render", "churn@v1", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["render", "churn@v9", "--env", "prod"], 1, "churn@v9 is not registered"),
    (["render", "nope", "--env", "prod"], 1, "no model named 'nope'"),
    (["render", "churn@v1", "--env", "prod", "-o", "/proc/modelreg-out"], 1, "/proc/modelreg-out"),
    (["render", "churn@v1", "--env", "prod", "-o", f"{W}/out-file"], 2, "is a file"),
    # deploy, promote
    (["deploy", "churn@v1"], 2, "Missing option '--env'"),
    (["deploy", "churn@v1", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["deploy", "churn@v1", "--env", ""], 1, "unknown environment ''"),
    (["deploy", "churn@v9", "--env", "staging"], 1, "churn@v9 is not registered"),
    (["deploy", "churn@v2", "--env", "prod"], 1, "never live in staging, which prod requires"),
    (["deploy", "Churn@v1", "--env", "staging"], 1, "invalid model name"),
    (["deploy", "", "--env", "staging"], 1, "invalid model name ''"),
    (["deploy", "churn@v1", "--env", "staging", "--bogus"], 2, "No such option"),
    (["deploy", "churn@v1", "--env", "prod\n"], 1, "unknown environment"),
    (["promote", "churn@v2", "--to", "prod"], 1, "never live in staging"),
    (["promote", "churn@v1"], 2, "Missing option '--to'"),
    (["promote", "churn@v1", "--to", "qa"], 1, "unknown environment 'qa'"),
    (["promote", "nope", "--to", "prod"], 1, "no model named 'nope'"),
    (["promote", "churn@v1.0.0", "--to", "prod"], 1, "churn@v1.0.0 is not registered"),
    # rollback
    (["rollback", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["rollback", "--env", "prod"], 1, "churn was never deployed to prod"),
    (["rollback", "--env", "staging"], 1, "only v1 in staging"),
    (["rollback", "v9", "--env", "staging"], 1, "churn@v9 is not registered"),
    (["rollback", "v2", "--env", "staging"], 1, "churn@v2 was never deployed to staging"),
    (["rollback", "vX", "--env", "staging"], 1, "invalid version 'vX'"),
    (["rollback", "--model", "Bad", "--env", "staging"], 1, "invalid model name 'Bad'"),
    (["rollback", "--model", "nope", "--env", "staging"], 1, "nope was never deployed to staging"),
    # status
    (["status", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["status", "--bogus"], 2, "No such option"),
    # quarantine, unquarantine, release
    (["quarantine", "churn@v1"], 2, "Missing option '--reason'"),
    (["quarantine", "churn@v1", "--reason", "  "], 1, "--reason is required"),
    (["quarantine", "churn@v1", "--reason", "x" * 600], 1, "at most 500 characters"),
    (["quarantine", "churn@v9", "--reason", "bad"], 1, "churn@v9 is not registered"),
    (["quarantine", "Bad@v1", "--reason", "bad"], 1, "invalid model name"),
    (["unquarantine", "churn@v9", "--reason", "ok"], 1, "churn@v9 is not registered"),
    (["unquarantine", "churn@v1"], 2, "Missing option '--reason'"),
    (["release"], 2, "Missing argument 'ENV'"),
    (["release", "qa"], 1, "unknown environment 'qa'"),
    (["release", "staging"], 1, "nothing to release: staging is not held"),
    (["release", "staging", "--model", "Bad"], 1, "invalid model name"),
    (["history", "--at", "yesterday"], 2, "--at needs --env ENV"),
    (["history", "--env", "prod", "--at", ""], 1, "is not a time"),
    (["history", "--env", "prod", "--at", "2 dyas ago"], 1, "'2 dyas ago' is not a time"),
    (["history", "--env", "prod", "--at", "2026-13-45"], 1, "'2026-13-45' is not a time"),
    (["history", "--env", "prod", "--at", "garbage"], 1, "'garbage' is not a time"),
    (["history", "-n", "-1"], 2, "not in the range"),
    # serve, fetch
    (["serve"], 2, "give exactly one of REF, --env ENV or --model-dir DIR"),
    (["serve", "churn@v1", "--env", "prod"], 2, "give exactly one of"),
    (["serve", "churn@v1", "--card", f"{W}/m.pt"], 2, "--card goes with --model-dir"),
    (["serve", "churn@v1", "--port", "0"], 2, "not in the range"),
    (["serve", "churn@v1", "--port", "70000"], 2, "not in the range"),
    (["serve", "churn@v9"], 1, "churn@v9 is not registered"),
    (["serve", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["serve", "--env", "prod"], 1, "nothing of churn is live in prod"),
    (["serve", "--model-dir", f"{W}/empty"], 1, "needs the model card"),
    (["serve", "--model-dir", f"{W}/empty", "--card", f"{W}/list.yaml"], 1, "expected a mapping"),
    (["serve", "--model-dir", f"{W}/empty", "--card", f"{W}/bomb.yaml"], 1, "YAML bomb"),
    (["fetch"], 2, "Missing option '--url'"),
    (
        ["fetch", "--url", "x", "--md5", "y", "--sha256", "a" * 64, "--out", f"{W}/f.pt"],
        2,
        "'y' is not 32 lowercase hex",
    ),
    (
        fetch_args("x", "ab" + "c" * 30, "a" * 64, f"{W}/f.pt"),
        1,
        "is not the DVC object ab",
    ),
    (
        fetch_args("/s/files/md5/ab/" + "c" * 30, "ab" + "c" * 30, "xyz", f"{W}/f.pt"),
        2,
        "'xyz' is not 64 lowercase hex digits",
    ),
    (
        fetch_args("/nowhere/files/md5/ab/" + "c" * 30, "ab" + "c" * 30, "a" * 64, f"{W}/f.pt"),
        1,
        "is not in the remote",
    ),
    (
        fetch_args("/nowhere/files/md5/ab/" + "c" * 30, "ab" + "c" * 30, "a" * 64, f"{W}/m.pt"),
        1,
        "is not in the remote",
    ),
    (
        fetch_args("nosuch://x/files/md5/ab/" + "c" * 30, "ab" + "c" * 30, "a" * 64, f"{W}/f.pt"),
        1,
        "cannot open",
    ),
    # approve
    (["approve", "churn@v1"], 2, "Missing option '--env'"),
    (["approve", "churn@v1", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["approve", "churn@v9", "--env", "prod"], 1, "churn@v9 is not registered"),
    (["approve", "churn@v1", "--env", "prod"], 1, "signing the commit failed"),
    # canary, analyze
    (["canary", "bogus"], 2, "No such command 'bogus'"),
    (["canary", "start", "churn@v2", "--env", "prod"], 1, "prod cannot split traffic"),
    (["canary", "start", "churn@v2", "--env", "prod", "--weight", "101"], 1, "from 1 to 99"),
    (["canary", "start", "churn@v2", "--env", "prod", "--weight", "ten"], 2, "'--weight'"),
    (["canary", "start", "churn@v2", "--env", "prod", "--weight", "9" * 40], 2, "'--weight'"),
    (["canary", "start", "churn@v2"], 2, "Missing option '--env'"),
    (["canary", "step", "--env", "staging"], 1, "no canary of churn runs in staging"),
    (["canary", "step", "--env", "qa"], 1, "unknown environment 'qa'"),
    (["canary", "promote", "--env", "staging", "--model", "Bad_Name"], 1, "invalid model name"),
    (["canary", "abort", "--env", "staging"], 2, "Missing option '--reason'"),
    (["canary", "abort", "--env", "staging", "--reason", "x" * 600], 1, "at most 500"),
    (["analyze", "--prometheus", "http://x"], 2, "give --env ENV or --all"),
    (["analyze", "--all", "--env", "prod", "--prometheus", "http://x"], 2, "give --env ENV"),
    (["analyze", "--all", "--model", "churn", "--prometheus", "http://x"], 2, "--model goes"),
    (["analyze", "--env", "staging"], 2, "Missing option '--prometheus'"),
    (["analyze", "--env", "staging", "--prometheus", "ftp://x"], 1, "expected the server's base"),
    (["analyze", "--env", "staging", "--prometheus", "http://127.0.0.1:9"], 1, "no canary of"),
    (
        ["analyze", "--env", "staging", "--prometheus", "http://x", "--interval", "soon"],
        1,
        "--interval: 'soon' is not a duration",
    ),  # fmt: skip
    (
        ["analyze", "--env", "staging", "--prometheus", "http://x", "--interval", "2h"],
        1,
        "--interval 2h: at most 1h",
    ),  # fmt: skip
    (["analyze", "--env", "staging", "--prometheus", "http://x", "--count", "0"], 2, "--count"),
    (["analyze", "--env", "staging", "--prometheus", "http://x", "--on-fail", "no"], 2, "no"),
    # site, ui
    (["site", "-o", "/proc/modelreg-site"], 1, "/proc/"),
    (["site", "-o", f"{W}/linkdir"], 1, "is not empty and `modelreg site` did not write it"),
    (["site", "-o", f"{W}/.."], 1, "holds the registry"),
    (["site", "-o", f"{W}/out-file"], 2, "is a file"),
    (["ui", "--port", "70000"], 2, "not in the range"),
    (["ui", "--port", "http"], 2, "is not a valid integer"),
    # remote, pull, verify, validate
    (["remote", "add"], 2, "Missing argument 'URL'"),
    (["remote", "bogus"], 2, "No such command"),
    (["pull", "churn@v9"], 1, "churn@v9 is not registered"),
    (["pull", "nope"], 1, "no model named 'nope'"),
    (["pull", "churn@v1", "-o", f"{W}/m.pt"], 1, "already exists"),
    (["pull", "churn@v1", "-o", "/proc/modelreg/x.pt"], 1, "/proc/modelreg"),
    (["verify"], 2, "give a REF or --all"),
    (["verify", "churn@v1", "--all"], 2, "give a REF or --all"),
    (["verify", "nope"], 1, "no model named 'nope'"),
    (["verify", "churn@v9"], 1, "churn@v9 is not registered"),
    (["verify", "Bad@v1"], 1, "invalid model name"),
    (["validate", "churn@v9"], 1, "churn@v9 is not registered"),
    (["validate", "churn@v1", "--runs", "0"], 2, "not in the range"),
    (["validate", "nope"], 1, "no model named 'nope'"),
]

CI_CASES: list[tuple[dict[str, str], str]] = [
    ({}, "run from GitHub Actions"),
    (
        {"GITHUB_EVENT_NAME": "push", "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "churn@v9"},
        "churn@v9 is not registered",
    ),
    (
        {
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "MODELREG_ACTION": "destroy",
            "GITHUB_REF": "refs/heads/main",
        },
        "unknown action 'destroy'",
    ),
    (
        {
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "MODELREG_ACTION": "deploy",
            "GITHUB_REF": "refs/heads/main",
        },
        "deploy needs a ref",
    ),
    (
        {
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "MODELREG_REF": "churn@v1",
            "MODELREG_ENV": "qa",
            "GITHUB_REF": "refs/heads/main",
        },
        "unknown environment 'qa'",
    ),
    (
        {
            "GITHUB_EVENT_NAME": "workflow_dispatch",
            "MODELREG_REF": "churn@v1",
            "GITHUB_REF": "refs/heads/mine",
        },
        "a dispatch runs only from the default branch (main)",
    ),
]


def check_clean_failure(result: Result, code: int, message: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)  # type: ignore[attr-defined]
    assert message in result.stderr, result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args,code,message", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input(reg: Path, args: list[str], code: int, message: str) -> None:
    work = reg.parent / "work"
    args = [a.replace("{work}", str(work)).replace("{root}", str(reg)) for a in args]
    before = snapshot(reg)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["-C", str(reg), *args], env={"MODELREG_LOCK_TIMEOUT": "5"})
    check_clean_failure(result, code, message.replace("{work}", str(work)))
    assert time.monotonic() - started < 30
    assert snapshot(reg) == before


@pytest.mark.parametrize("environ,message", CI_CASES, ids=[m[:30] for _, m in CI_CASES])
def test_bad_ci_input(
    reg: Path, environ: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "GITHUB_EVENT_NAME",
        "GITHUB_REF_TYPE",
        "GITHUB_REF_NAME",
        "GITHUB_REF",
        "MODELREG_ACTION",
        "MODELREG_REF",
        "MODELREG_ENV",
    ):
        monkeypatch.delenv(name, raising=False)
    before = snapshot(reg)
    result = CliRunner().invoke(cli, ["-C", str(reg), "ci", "--no-push"], env=environ)
    check_clean_failure(result, 1, message)
    assert snapshot(reg) == before


def test_there_are_at_least_a_hundred_cases_over_every_command() -> None:
    covered = {args[0] for args, _, _ in CASES} | {"ci"}
    assert len(CASES) + len(CI_CASES) >= 100
    assert set(cli.list_commands(click.Context(cli))) <= covered
