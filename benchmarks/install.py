"""`make bench-install`: what installing modelreg costs a user, measured in clean venvs from the
wheel this checkout builds: install time and installed size of the bare package and of each extra,
the import time of `modelreg --help` beside `python -c pass`, and (when podman has it) the server
image's size. torch is installed as the README says (torch==2.13.0, the CPU build) before the
`torch` extra. Prints a Markdown table and appends it to RESULTS.md."""

from __future__ import annotations

import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ["", "s3", "sign", "serve", "torch"]
ENVIRON = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def size_mb(path: Path) -> float:
    return (
        int(
            subprocess.run(
                ["du", "-sk", str(path)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        / 1024
    )


def timed(cmd: list[str], runs: int = 1) -> float:
    times = []
    for _ in range(runs + (1 if runs > 1 else 0)):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=ENVIRON)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:] if runs > 1 else times)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="modelreg-install-"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(work), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(work.glob("*.whl"))
    empty = work / "empty"
    subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
    baseline = size_mb(empty)
    rows = []
    for extra in EXTRAS:
        venv = work / f"venv-{extra or 'bare'}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        started = time.perf_counter()
        if extra == "torch":
            subprocess.run(pip + ["torch==2.13.0"], check=True, capture_output=True)
        subprocess.run(
            pip + [f"{wheel}[{extra}]" if extra else str(wheel)], check=True, capture_output=True
        )
        seconds = time.perf_counter() - started
        packages = len(
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                capture_output=True,
                text=True,
            ).stdout.splitlines()
        )
        rows.append(
            [
                extra or "(bare)",
                f"{seconds:.1f} s",
                f"{size_mb(venv) - baseline:.0f} MB",
                str(packages),
            ]
        )
    bare = work / "venv-bare"  # the first row
    floor = timed([str(bare / "bin" / "python"), "-c", "pass"], runs=10)
    helped = timed([str(bare / "bin" / "modelreg"), "--help"], runs=10)
    podman = shutil.which("podman")
    image = (
        subprocess.run(
            [
                podman,
                "image",
                "inspect",
                "--format",
                "{{.Size}}",
                f"ghcr.io/modelreg/modelreg:{wheel.name.split('-')[1]}",
            ],
            capture_output=True,
            text=True,
        )
        if podman
        else None
    )
    lines = (
        [
            f"## Installing modelreg (issue #19), measured {datetime.date.today()} on this "
            f"{os.cpu_count()}-core machine",
            "",
            "Clean venvs from this checkout's wheel, packages from the registry pip is set to "
            "(cached wheels "
            "where pip had them).",
            "",
            "| install | time | size (beyond an empty venv) | packages |",
            "|---|---|---|---|",
        ]
        + ["| " + " | ".join(r) + " |" for r in rows]
        + [
            "",
            f"`modelreg --help` in the bare venv: {helped * 1000:.0f} ms (median of 10) against "
            f"`python -c pass` {floor * 1000:.0f} ms: {helped / floor:.1f}x.",
            f"Server image: {int(image.stdout) / 1e6:.0f} MB."
            if image is not None and image.returncode == 0 and image.stdout.strip()
            else "Server image: not built here (`make image`).",
        ]
    )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
        handle.write("\n" + text)


if __name__ == "__main__":
    main()
