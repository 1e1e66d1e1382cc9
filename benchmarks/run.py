"""`make bench`: wall time (median of 5 after a warm-up) and peak RSS of modelreg's commands on
synthetic registries, beside GTO and the floor (`python -c pass`, `git for-each-ref`), in one run.
Sizes: BENCH_SIZES (default "100,1000,10000,100000"); GTO runs up to BENCH_GTO_MAX tags (default
10000; from 1,000 tags on, one timed call each: at 10,000 one `gto show` takes a minute and more).
Commands run as an installed modelreg runs: with Python's bytecode cache (PYTHONDONTWRITEBYTECODE
unset)."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from generate import make_registry  # noqa: E402

RUNS = 5
ENVIRON = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None  # Debian package `time`


def measure(
    cmd: list[str], cwd: Path, runs: int = RUNS, setup: list[str] | None = None
) -> tuple[float, float]:
    """(median seconds, max peak RSS in MB) of `runs` runs of `cmd` after one warm-up;
    runs=0 means a single cold run (for commands that change state, like register). SETUP, when
    given, runs untimed before each run (what a rollback rolls back)."""
    warmups, timed = (1, runs) if runs else (0, 1)
    times, peaks = [], []
    for i in range(warmups + timed):
        if setup is not None:
            subprocess.run(setup, cwd=cwd, env=ENVIRON, capture_output=True, check=True)
        start = time.perf_counter()
        # GNU time reports the command's own peak RSS; a child forked from this (large) process
        # would
        # count this process's pages too
        done = subprocess.run(
            [GNU_TIME, "-f", "%M", *cmd] if GNU_TIME else cmd,
            cwd=cwd,
            env=ENVIRON,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            return float("nan"), float("nan")
        if i >= warmups:
            times.append(elapsed)
            peaks.append(int(done.stderr.split()[-1]) / 1024 if GNU_TIME else float("nan"))
    return statistics.median(times), max(peaks)


def bench_size(tags: int, work: Path, rows: list[list[str]]) -> None:
    deploys = tags // 5
    repo = make_registry(work / f"reg-{tags}", tags, deploys)
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.com")):
        subprocess.run(["git", "config", key, value], cwd=repo, check=True)
    py = sys.executable
    floor_py, _ = measure([py, "-c", "pass"], repo)
    floor_git, _ = measure(["git", "for-each-ref", "refs/tags"], repo)
    floor = floor_py + floor_git
    mr = [shutil.which("modelreg") or "modelreg"]
    cases = [
        ("modelreg --help", mr + ["--help"]),
        # cold: no cache in .git/modelreg (a fresh clone's first call); the other rows run warm
        (
            "list (cold)",
            [
                "sh",
                "-c",
                'rm -rf "$(git rev-parse --git-common-dir)/modelreg" && exec "$0" list',
                mr[0],
            ],
        ),
        ("list", mr + ["list"]),
        ("show MODEL", mr + ["show", "m0003"]),
        ("history MODEL", mr + ["history", "m0003"]),
        ("history --env prod", mr + ["history", "--env", "prod"]),
        ("status --no-render", mr + ["status", "--no-render"]),
        ("find (warm)", mr + ["find", "metrics.auc >= 0.99 and live == prod"]),
        ("render", mr + ["render", "m0003@v2", "--env", "staging"]),
        # the synthetic registries hold no artifact bytes, hence --allow-missing
        (
            "deploy --dry-run",
            mr + ["deploy", "m0003@v2", "--env", "staging", "--dry-run", "--allow-missing"],
        ),
        ("deploy", mr + ["deploy", "m0003@v3", "--env", "staging", "--allow-missing", "--force"]),
    ]
    rows.append([str(tags), "floor: python -c pass", f"{floor_py:.3f}", "", ""])
    rows.append([str(tags), "floor: git for-each-ref", f"{floor_git:.3f}", "", ""])
    for label, cmd in cases:
        seconds, rss = measure(cmd, repo)
        rows.append(
            [str(tags), label, f"{seconds:.3f}", f"{rss:.0f}", f"{seconds / floor:.1f}x floor"]
        )
    # a bare rollback lands once per version deployed after it: each timed run first deploys v4 by
    # hand
    seconds, rss = measure(
        mr + ["rollback", "--env", "staging", "--model", "m0003", "--allow-missing"],
        repo,
        setup=mr + ["deploy", "m0003@v4", "--env", "staging", "--allow-missing", "--force"],
    )
    rows.append(
        [str(tags), "rollback", f"{seconds:.3f}", f"{rss:.0f}", f"{seconds / floor:.1f}x floor"]
    )
    gto = shutil.which("gto")
    if gto and tags <= int(os.environ.get("BENCH_GTO_MAX", "10000")):
        gto_repo = make_registry(work / f"gto-{tags}", tags, deploys, gto=True)
        runs = (
            0 if tags >= 1000 else RUNS
        )  # GTO takes seconds a call from 1,000 tags on: one cold call
        for label, cmd in (
            ("gto show", [gto, "show"]),
            ("gto show MODEL", [gto, "show", "m0003"]),
            ("gto history MODEL", [gto, "history", "m0003"]),
            ("gto check-ref TAG", [gto, "check-ref", "m0003@v1.0.2"]),
        ):
            seconds, rss = measure(cmd, gto_repo, runs)
            peer = {"gto show": "list", "gto check-ref TAG": "show MODEL"}.get(label, label[4:])
            mine = next(float(r[2]) for r in rows if r[0] == str(tags) and r[1] == peer)
            rows.append(
                [
                    str(tags),
                    label,
                    f"{seconds:.3f}",
                    f"{rss:.0f}",
                    f"modelreg {seconds / mine:.0f}x faster",
                ]
            )
        shutil.rmtree(gto_repo)
    shutil.rmtree(repo)


def _git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for key, value in (("user.name", "Bench"), ("user.email", "bench@example.com")):
        subprocess.run(["git", "config", key, value], cwd=path, check=True)
    return path


def _random_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for _ in range(max(1, size // (64 * 1024 * 1024))):
            out.write(os.urandom(min(size, 64 * 1024 * 1024)))


def bench_artifact(work: Path, rows: list[list[str]]) -> None:
    """register and pull of one 1 GiB file and of 4 GiB in 8 shards (local directory remote), beside
    cp + sha256sum (the floor) and `dvc add` + `dvc push` of the same bytes (the peer)."""
    megabytes = int(os.environ.get("BENCH_ARTIFACT_MB", "1024"))
    _bench_one_artifact(work / "single", "model.bin", [megabytes], rows)
    if os.environ.get("BENCH_SHARDS", "1") != "0":
        _bench_one_artifact(work / "sharded", "shards", [megabytes // 2] * 8, rows)


def _bench_one_artifact(work: Path, name: str, shard_mb: list[int], rows: list[list[str]]) -> None:
    mr = shutil.which("modelreg") or "modelreg"
    dvc = shutil.which("dvc") or "dvc"
    repo = _git_repo(work / "registry")
    subprocess.run(
        [mr, "init", "--remote", str(work / "remote")], cwd=repo, check=True, capture_output=True
    )
    artifact = work / name
    if len(shard_mb) == 1:
        _random_file(artifact, shard_mb[0] * 1024 * 1024)
    else:
        for i, mb in enumerate(shard_mb):
            _random_file(artifact / f"shard-{i}.bin", mb * 1024 * 1024)
    label = f"{sum(shard_mb) // 1024} GiB" + (
        f" in {len(shard_mb)} shards" if len(shard_mb) > 1 else ""
    )
    cp_s, cp_rss = measure(["cp", "-r", str(artifact), str(work / "copy")], work, 1)
    files = [
        str(p)
        for p in sorted(artifact.rglob("*") if artifact.is_dir() else [artifact])
        if p.is_file()
    ]
    sha_s, sha_rss = measure(["sha256sum", *files], work, 1)
    floor = cp_s + sha_s
    rows.append([label, "floor: cp", f"{cp_s:.2f}", f"{cp_rss:.0f}", ""])
    rows.append([label, "floor: sha256sum", f"{sha_s:.2f}", f"{sha_rss:.0f}", ""])
    peer = _git_repo(work / "dvc-peer")
    subprocess.run([dvc, "init", "-q"], cwd=peer, check=True)
    subprocess.run(
        [dvc, "remote", "add", "-d", "s", str(work / "peer-remote")], cwd=peer, check=True
    )
    subprocess.run(["cp", "-r", str(artifact), str(peer / name)], check=True)
    add_s, add_rss = measure([dvc, "add", "-q", name], peer, 0)
    push_s, push_rss = measure([dvc, "push", "-q"], peer, 0)
    rows.append(
        [
            label,
            "peer: dvc add + dvc push",
            f"{add_s + push_s:.2f}",
            f"{max(add_rss, push_rss):.0f}",
            "(the artifact already in the repo)",
        ]
    )
    reg_s, reg_rss = measure([mr, "register", "big", str(artifact), "--no-inspect"], repo, 0)
    rows.append(
        [
            label,
            "register",
            f"{reg_s:.2f}",
            f"{reg_rss:.0f}",
            f"{reg_s / sha_s:.2f}x sha256sum, {reg_s / (add_s + push_s):.2f}x dvc add+push",
        ]
    )
    pull_s, pull_rss = measure([mr, "pull", "big", "-o", str(work / "pulled")], repo, 0)
    rows.append(
        [label, "pull", f"{pull_s:.2f}", f"{pull_rss:.0f}", f"{pull_s / floor:.2f}x cp+sha256sum"]
    )
    shutil.rmtree(work)


def bench_analyses(work: Path, rows: list[list[str]], count: int) -> None:
    """Listing canary analyses: COUNT analysis records of one canary on the deploy branch (issue
    #22: 10,000 listed in under a second, warm)."""
    repo = make_registry(work / "analyses", 100, 20, analyses=count)
    py = sys.executable
    floor, _ = measure([py, "-c", "pass"], repo)
    mr = shutil.which("modelreg") or "modelreg"
    label = f"{count} analyses"
    cases = [
        ("history MODEL (cold)", ["sh", "-c",
         'rm -rf "$(git rev-parse --git-common-dir)/modelreg" && exec "$0" history m0000', mr]),
        ("history MODEL", [mr, "history", "m0000"]),
        ("history --env prod", [mr, "history", "--env", "prod"]),
        ("history --env prod --json", [mr, "history", "--env", "prod", "--json"]),
        ("status --no-render", [mr, "status", "--no-render"]),
        ("show MODEL@VERSION (its analyses)", [mr, "show", "m0000@v2"]),
    ]  # fmt: skip
    rows.append([label, "floor: python -c pass", f"{floor:.3f}", "", ""])
    for name, cmd in cases:
        seconds, rss = measure(cmd, repo)
        rows.append([label, name, f"{seconds:.3f}", f"{rss:.0f}", f"{seconds / floor:.1f}x floor"])
    shutil.rmtree(repo)


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000,10000,100000").split(",")]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for tags in sizes:
            bench_size(tags, Path(tmp), rows)
        if (analyses := int(os.environ.get("BENCH_ANALYSES", "10000"))) > 0:
            bench_analyses(Path(tmp), rows, analyses)
        if os.environ.get("BENCH_ARTIFACT_MB", "1024") != "0":
            bench_artifact(Path(tmp), rows)
        if os.environ.get("BENCH_SERVE", "1") != "0":
            from serving import bench_serving

            bench_serving(Path(tmp), rows)
    header = ["tags", "command", "median s", "peak RSS MB", "ratio"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in [header] + rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    table = "\n".join(lines)
    print(table)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    out = Path(__file__).with_name("RESULTS.md")
    text = out.read_text() if out.exists() else "# Benchmark results\n"
    marker = "<!-- table -->"
    head, _, tail = text.partition(marker)
    tail = tail.partition(marker)[2]
    out.write_text(
        f"{head}{marker}\nMachine: {machine}; "
        f"{time.strftime('%Y-%m-%d')}.\n\n{table}\n{marker}{tail}"
    )


if __name__ == "__main__":
    main()
