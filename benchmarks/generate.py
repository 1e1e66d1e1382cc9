"""Synthetic registries for benchmarks, made in one `git fast-import` stream.

`make_registry(path, tags, deploys)`: tags/10 models with 10 versions each (annotated tags, each on
its own commit), and a deploy branch of `deploys` modelreg deploy commits alternating staging/prod.
With `gto=True` the versions are semver (`m@v1.0.N`) and stage assignments are GTO's `m#prod#N`.
With `analyses=N`, a canary of m0000@v2 in prod and N analysis records of it follow the deploys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from modelreg.config import default_config_text
from modelreg.init import package_templates, workflow_text

STAMP = 1_760_000_000
LARGE_MARK = 10_000_000  # marks of the shared base blobs, past any version's mark
DEPLOYED_MODELS = 1_000  # the deploy branch cycles through at most this many models


def _blob(data: str) -> str:
    raw = data.encode()
    return f"data {len(raw)}\n".encode().decode() + data + "\n"


def _files(base: dict[str, str]) -> str:
    return "".join(f"M 100644 inline {path}\n{_blob(text)}" for path, text in base.items())


def stream(tags: int, deploys: int, gto: bool, remote: str, analyses: int = 0) -> str:
    config = default_config_text("m0000" if tags <= 10 else None)
    if gto:
        config = config.replace("versions: integer", "versions: semver")
    base = {
        "modelreg.yaml": config,
        ".dvc/config": (
            f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {remote}\n"
        ),
        ".github/workflows/modelreg.yml": workflow_text(config),
    }
    base.update({f"templates/{n}": t for n, t in package_templates().items()})
    out = []
    when = STAMP
    out.append(
        f"commit refs/heads/main\ncommitter Bench <bench@example.com> {when} "
        f"+0000\n{_blob('setup')}{_files(base)}"
    )
    models = max(1, tags // 10)
    # Past 10,000 tags each version commit holds the base files and its own model only
    # (`deleteall`):
    # otherwise fast-import rewrites a models/ tree of every model per commit, and generating
    # 100,000
    # tags is quadratic. The base files are blobs written once and referenced by mark.
    compact = tags > 10_000
    base_marks = {path: LARGE_MARK + i for i, path in enumerate(base)}
    if compact:
        out.extend(f"blob\nmark :{m}\n{_blob(base[path])}" for path, m in base_marks.items())
    mark = 0
    for version in range(1, 11):
        for m in range(models):
            if mark >= tags:
                break
            mark += 1
            when += 1
            name = f"m{m:04d}"
            vtext = f"v1.0.{version}" if gto else f"v{version}"
            md5 = f"a{mark:031x}"  # a letter first: an all-digit md5 would read as a YAML number
            card = (
                f"name: {name}\nversion: {vtext}\nartifact:\n  path: model.pt\n  md5: {md5}\n  "
                "size: 1024\n"
                f"  sha256: {mark:064x}\nauthor: Bench <bench@example.com>\nmessage: v{version}\n"
                f"metrics:\n  auc: {0.5 + (mark % 500) / 1000}\n"
                # what modelreg's server checks requests against (the servable gate wants it)
                "signature:\n  inputs:\n  - {name: x, dtype: float32, shape: [-1, 4]}\n"
                "  outputs:\n  - {name: y, dtype: float32, shape: [-1, 2]}\n"
            )
            pointer = f"outs:\n- md5: {md5}\n  size: 1024\n  hash: md5\n  path: model.pt\n"
            out.append(
                f"commit refs/heads/main\nmark :{mark}\ncommitter Bench <bench@example.com> {when} "
                "+0000\n"
                f"{_blob(f'Register {name}@{vtext}')}"
                + (
                    "deleteall\n"
                    + "".join(f"M 100644 :{m} {path}\n" for path, m in base_marks.items())
                    if compact
                    else ""
                )
                + _files(
                    {f"models/{name}/model.yaml": card, f"models/{name}/model.pt.dvc": pointer}
                )
            )
            message = (
                f"Register {name}@{vtext}\n\nartifact: model.pt\nmd5: {md5}\nsize: 1024\n"
                f"sha256: {mark:064x}\n"
            )  # what `register` writes
            out.append(
                f"tag {name}@{vtext}\nfrom :{mark}\ntagger Bench <bench@example.com> {when} +0000\n"
                f"{_blob(message)}"
            )
    prev: dict[tuple[str, str], str] = {}
    for i in range(deploys):
        when += 1
        env = ("staging", "prod")[i % 2]
        m = (i // 2) % min(models, DEPLOYED_MODELS)
        version = (i // (2 * min(models, DEPLOYED_MODELS))) % 10 + 1
        name = f"m{m:04d}"
        vtext = f"v1.0.{version}" if gto else f"v{version}"
        trailers = (
            f"Modelreg-Action: deploy\nModelreg-Model: {name}\nModelreg-Version: "
            f"{vtext}\nModelreg-Env: {env}\n"
            f"Modelreg-Tag: {name}@{vtext}\nModelreg-Source-Commit: {'0' * 40}\n"
            f"Modelreg-Previous-Version: {prev.get((env, name), 'none')}\n"
        )
        prev[(env, name)] = vtext
        manifest = f"# {name} {vtext} {env}\nkind: Deployment\n"
        out.append(
            f"commit refs/heads/deploy\ncommitter Bench <bench@example.com> {when} +0000\n"
            f"{_blob(f'Deploy {name}@{vtext} to {env}' + chr(10) + chr(10) + trailers)}"
            + _files({f"{env}/{name}/deployment.yaml": manifest})
        )
        if gto and env == "prod":
            out.append(
                f"tag {name}#prod#{i}\nfrom refs/heads/main\ntagger Bench <bench@example.com> "
                f"{when} +0000\n"
                f"{_blob('promote')}"
            )
    if analyses:
        out.extend(_canary(when, analyses))
    return "".join(out)


def _canary(when: int, analyses: int) -> list[str]:
    """A canary of m0000@v2 in prod beside v1, and ANALYSES analysis commits of it, each with its
    record file (the shape `modelreg analyze --record` writes, a measurement of two checks)."""
    common = (
        "Modelreg-Model: m0000\nModelreg-Version: v2\nModelreg-Env: prod\n"
        "Modelreg-Tag: m0000@v2\nModelreg-Previous-Version: v1\nModelreg-Weight: 10\n"
    )
    start = "Start a canary of m0000@v2 in prod at 10%\n\nModelreg-Action: canary-start\n"
    out = [
        f"commit refs/heads/deploy\ncommitter Bench <bench@example.com> {when + 1} +0000\n"
        f"{_blob(start + common)}"
        + _files({"prod/m0000/canary/deployment.yaml": "kind: Deployment\n"})
    ]
    for i in range(analyses):
        verdict = ("passed", "failed", "inconclusive")[i % 3]
        check = {"name": "success_rate", "query": "q", "value": 0.99, "condition": ">= 0.99",
                 "outcome": verdict, "stable_query": "", "stable": None}  # fmt: skip
        measured = [{"at": when, "verdict": verdict, "checks": [check]}]
        record = {"model": "m0000", "env": "prod", "candidate": "v2", "stable": "v1",
                  "weight": 10, "verdict": verdict, "summary": f"analysis {i}",
                  "measurements": measured}  # fmt: skip
        trailers = (
            f"Modelreg-Action: analysis\n{common}Modelreg-Verdict: {verdict}\n"
            "Modelreg-Prometheus: http://prometheus:9090\nModelreg-Window: 5m\n"
            f"Modelreg-Reason: success_rate 0.99 >= 0.99: {verdict} (analysis {i})\n"
        )
        title = f"Analysis of m0000@v2 in prod at 10%: {verdict}\n\n"
        out.append(
            f"commit refs/heads/deploy\ncommitter Bench <bench@example.com> {when + 2 + i} +0000\n"
            f"{_blob(title + trailers)}"
            + _files({".modelreg/m0000/analyses/prod.json": json.dumps(record)})
        )
    return out


def make_registry(
    path: Path, tags: int, deploys: int, gto: bool = False, analyses: int = 0
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    (path / "dvc-remote").mkdir(exist_ok=True)
    data = stream(tags, deploys, gto, str(path / "dvc-remote"), analyses)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=data.encode(), check=True)
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=path, check=True)
    subprocess.run(["git", "pack-refs", "--all"], cwd=path, check=True)
    return path


if __name__ == "__main__":
    make_registry(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), gto="--gto" in sys.argv)
