"""The validation gate: load a runnable artifact, run it on the card's example (or random data of
the signature's shapes), check outputs against the signature, time it.

Results are recorded as a git note (`refs/notes/modelreg-validation`) on the version's commit, keyed
by tag, so tags stay immutable and no new version is needed. Push them with
`git push origin refs/notes/modelreg-validation`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelreg import git
from modelreg.card import section
from modelreg.errors import ModelregError
from modelreg.handle import Registry
from modelreg.jsonable import JsonFields
from modelreg.versions import Resolved

NOTES_REF = "refs/notes/modelreg-validation"


@dataclass(frozen=True)
class Validation(JsonFields):
    tag: str
    passed: bool
    device: str
    runs: int
    p50_ms: float
    p95_ms: float
    outputs: list[dict[str, Any]]
    problems: list[str]
    torch_version: str


def _torch_dtype(torch: Any, name: str) -> Any:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ModelregError(f"signature dtype {name!r} is not a torch dtype (float32, int64, ...)")
    return dtype


def _inputs(torch: Any, card: dict[str, Any], device: str) -> list[Any]:
    signature = section(card, "signature")
    specs = signature.get("inputs") or []
    if not specs:
        raise ModelregError(
            f"the card of {card.get('name')}@{card.get('version')} declares no signature.inputs: "
            "add one (name, shape with -1 for a free dimension, dtype) with --card"
        )
    example = card.get("example")
    tensors = []
    for i, spec in enumerate(specs):
        dtype = _torch_dtype(torch, spec.get("dtype", "float32"))
        if example is not None:
            value = (
                example[spec["name"]]
                if isinstance(example, dict)
                else (example[i] if len(specs) > 1 else example)
            )
            tensors.append(torch.tensor(value, dtype=dtype, device=device))
        else:
            shape = [2 if d == -1 else int(d) for d in spec["shape"]]
            tensors.append(torch.randn(shape, device=device).to(dtype))
    return tensors


def _check_outputs(
    torch: Any, outputs: Any, specs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    produced = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    seen = [
        {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for t in produced
    ]
    problems = []
    if specs and len(produced) != len(specs):
        problems.append(f"{len(produced)} output(s), signature declares {len(specs)}")
    for spec, got in zip(specs, seen):
        want = [int(d) for d in spec.get("shape", [])]
        if len(want) != len(got["shape"]) or any(
            w not in (-1, g) for w, g in zip(want, got["shape"])
        ):
            problems.append(
                f"output {spec.get('name')}: shape {got['shape']}, signature says {want}"
            )
        if spec.get("dtype") and spec["dtype"] != got["dtype"]:
            problems.append(
                f"output {spec.get('name')}: dtype {got['dtype']}, signature says {spec['dtype']}"
            )
    return seen, problems


def validate(
    registry: Registry, found: Resolved, device: str = "cpu", runs: int = 20
) -> Validation:
    """Pull the artifact from the remote (verified), run it `runs` times, check it against the
    signature."""
    import torch

    from modelreg.remote import pull
    from modelreg.serving.loader import load_program

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelregError("--device cuda: no CUDA device is available here")
    if found.pointer.is_dir:
        raise ModelregError(
            f"{found.info.tag} is a folder: validate runs a single TorchScript or .pt2 file"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(pull(registry, found, Path(tmp) / found.pointer.path).path)
        model = load_program(path, device)
    inputs = _inputs(torch, found.card, device)
    timings = []
    with torch.inference_mode():
        outputs = model(*inputs)  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            outputs = model(*inputs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            timings.append((time.perf_counter() - start) * 1000)
    seen, problems = _check_outputs(
        torch, outputs, section(found.card, "signature").get("outputs") or []
    )
    timings.sort()
    return Validation(
        tag=found.info.tag,
        passed=not problems,
        device=device,
        runs=runs,
        p50_ms=round(statistics.median(timings), 3),
        p95_ms=round(timings[min(len(timings) - 1, int(len(timings) * 0.95))], 3),
        outputs=seen,
        problems=problems,
        torch_version=torch.__version__.split("+")[0],
    )


def read_records(registry: Registry, commit: str) -> dict[str, Any]:
    out = git.run_git("notes", f"--ref={NOTES_REF}", "show", commit, cwd=registry.root, check=False)
    data = yaml.safe_load(out) if out.strip() else {}
    return data if isinstance(data, dict) else {}


def record(registry: Registry, found: Resolved, result: Validation) -> None:
    """Add the result to the version commit's validation note (keyed by tag, then device)."""
    records = read_records(registry, found.info.commit)
    records.setdefault(result.tag, {})[result.device] = result.to_json()
    git.run_git(
        "notes",
        f"--ref={NOTES_REF}",
        "add",
        "-f",
        "-m",
        yaml.safe_dump(records, sort_keys=True),
        found.info.commit,
        cwd=registry.root,
    )


def passed(registry: Registry, found: Resolved) -> bool:
    results = read_records(registry, found.info.commit).get(found.info.tag, {})
    return bool(results) and all(r.get("passed") for r in results.values())
