"""What an artifact holds (format, tensors, parameters, dtypes), read without running its code.

torch is optional: without it `inspector()` returns None and registration records nothing.
A state_dict is loaded only with `weights_only=True`; safetensors only through its JSON header;
a pickle that would run code is refused with ArtifactError.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelreg.digest import files_of
from modelreg.errors import ArtifactError

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".pt2")
SAFETENSORS_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def inspector(warn: Callable[[str], None]) -> Callable[[Path], dict[str, Any]] | None:
    """`inspect_artifact` when torch is installed; otherwise None, after saying inspection is
    skipped."""
    if not torch_available():
        warn("torch is not installed: artifact inspection skipped (pip install 'modelreg[torch]').")
        return None
    return inspect_artifact


def detect_format(path: Path) -> str:
    """torchscript, export (.pt2), state_dict (torch.save), safetensors, or unknown."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if path.suffix == ".safetensors":
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith("archive_format") for n in names) or path.suffix == ".pt2":
            return "export"
        if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
    if head[:1] == b"\x80":
        return "state_dict"
    if (
        len(head) == 8
        and struct.unpack("<Q", head)[0] < 100_000_000
        and _safetensors_header(path) is not None
    ):
        return "safetensors"
    return "unknown"


MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header


def _safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header, or None when PATH is not a well-formed safetensors file."""
    try:
        return read_safetensors_header(path)
    except ArtifactError:
        return None


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The header of a safetensors file, every entry checked (dtype, shape of non-negative integers,
    data offsets inside the file); ArtifactError naming the first problem. The length prefix is
    bounded by the file's size before anything is read, so a hostile one costs nothing."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ArtifactError(
                f"{path.name}: not a safetensors file (shorter than its 8-byte header length)"
            )
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER, size - 8):
            raise ArtifactError(
                f"{path.name}: safetensors header length {length} is larger than the file "
                f"({size} bytes) or the format's limit: the file is malformed"
            )
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ArtifactError(
                f"{path.name}: safetensors header is not JSON ({type(exc).__name__})"
            ) from None
    if not isinstance(header, dict):
        raise ArtifactError(f"{path.name}: safetensors header is not a JSON object")
    for name, entry in header.items():
        if name != "__metadata__":
            _check_entry(path.name, str(name), entry, size - 8 - length)
    return header


def _check_entry(file: str, name: str, entry: Any, data_bytes: int) -> None:
    where = f"{file}: safetensors tensor {name[:60]!r}"
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        raise ArtifactError(f"{where} has no dtype")
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**62 for d in shape)
        or len(shape) > 64
    ):
        raise ArtifactError(f"{where} has no valid shape (a list of non-negative integers)")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_bytes
    ):
        raise ArtifactError(f"{where} has data offsets outside the file")


def _tensor_stats(tensors: dict[str, Any]) -> dict[str, Any]:
    return {
        "tensors": len(tensors),
        "parameters": int(sum(t.numel() for t in tensors.values())),
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()}),
        "tensor_bytes": int(sum(t.numel() * t.element_size() for t in tensors.values())),
    }


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix or "tensor": obj}
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(obj, (list, tuple)):
        out = {}
        for i, value in enumerate(obj):
            out.update(_flatten(value, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {}


def inspect_file(path: Path) -> dict[str, Any]:
    import torch

    fmt = detect_format(path)
    if fmt == "safetensors":
        header = read_safetensors_header(path)
        entries = {k: v for k, v in header.items() if k != "__metadata__"}
        params = sum(_numel(v["shape"]) for v in entries.values())
        return {
            "format": fmt,
            "tensors": len(entries),
            "parameters": params,
            "dtypes": sorted({v["dtype"].lower() for v in entries.values()}),
            "tensor_bytes": sum(
                _numel(v["shape"]) * SAFETENSORS_BYTES.get(v["dtype"], 4) for v in entries.values()
            ),
        }
    if fmt == "state_dict":
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError or RuntimeError for unsafe globals
            raise ArtifactError(
                f"{path.name}: refused to load: it is a pickle that is not plain tensors "
                f"and could run code on load ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160]})"
            ) from None
        return {"format": fmt, **_tensor_stats(_flatten(loaded))}
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
        return {"format": fmt, **_tensor_stats(dict(module.state_dict()))}
    return {"format": fmt}


def _numel(shape: list[int]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def inspect_artifact(path: Path) -> dict[str, Any]:
    """Inspection record for the card: format, tensors, parameters, dtypes, sizes, torch version."""
    import torch

    if path.is_dir():
        shards = [rel for rel in files_of(path) if rel.endswith(WEIGHT_SUFFIXES)]
        parts = [inspect_file(path / rel) for rel in shards]
        formats = sorted({p["format"] for p in parts}) or ["unknown"]
        record: dict[str, Any] = {
            "format": "shards" if len(parts) > 1 else formats[0],
            "shards": len(parts),
            "shard_formats": formats,
            "tensors": sum(p.get("tensors", 0) for p in parts),
            "parameters": sum(p.get("parameters", 0) for p in parts),
            "dtypes": sorted({d for p in parts for d in p.get("dtypes", [])}),
            "tensor_bytes": sum(p.get("tensor_bytes", 0) for p in parts),
        }
    else:
        record = inspect_file(path)
    record["torch_version"] = torch.__version__.split("+")[0]
    return record
