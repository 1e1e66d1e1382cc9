"""The card's signature in Open Inference Protocol terms, and the checks of a request against it.
No KServe and no torch here: plain data in, plain data (or a one-line problem) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg.card import section
from modelreg.errors import ModelregError

DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "bfloat16": "BF16",
    "float32": "FP32",
    "float64": "FP64",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # OIP: FP32, INT64, ...
    shape: tuple[int, ...]  # -1 = any size
    dtype: str  # the card's (torch) name: float32, int64, ...

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def signature_specs(card: dict[str, Any], key: str) -> list[TensorSpec]:
    """The card's `signature.inputs` (or `.outputs`) as OIP tensor specs; a clear error when
    missing."""
    signature = section(card, "signature")
    entries = signature.get(key) or []
    if key == "inputs" and not entries:
        raise ModelregError(
            f"the card of {card.get('name')}@{card.get('version')} declares no signature.inputs: "
            "serving checks every request against them (register with --card)"
        )
    specs = []
    for entry in entries:
        dtype = str(entry.get("dtype", "float32"))
        if dtype not in DATATYPES:
            raise ModelregError(
                f"signature {key} {entry.get('name')!r}: dtype {dtype!r} has no Open Inference "
                f"Protocol datatype ({', '.join(DATATYPES)})"
            )
        specs.append(
            TensorSpec(
                str(entry["name"]),
                DATATYPES[dtype],
                tuple(int(d) for d in entry.get("shape", [])),
                dtype,
            )
        )
    return specs


def check_input(spec: TensorSpec | None, name: str, datatype: str, shape: list[int]) -> str | None:
    """Why an input does not fit the signature, or None."""
    if spec is None:
        return f"unknown input {name[:100]!r}"
    if any(d < 0 for d in shape):
        return (
            f"input {name!r}: shape {list(shape)} has a negative size (a request gives the actual "
            "sizes; -1 is the signature's)"
        )
    if datatype != spec.datatype:
        return f"input {name!r}: datatype {datatype}, the signature says {spec.datatype}"
    if len(shape) != len(spec.shape) or any(w not in (-1, g) for w, g in zip(spec.shape, shape)):
        return (
            f"input {name!r}: shape {list(shape)}, the signature says {list(spec.shape)} (-1 is "
            "any size)"
        )
    return None


def check_request(specs: list[TensorSpec], inputs: list[tuple[str, str, list[int]]]) -> list[str]:
    """Problems of a request's inputs (name, datatype, shape) against the signature: all of them."""
    by_name = {s.name: s for s in specs}
    problems = [
        p
        for name, datatype, shape in inputs
        if (p := check_input(by_name.get(name), name, datatype, shape))
    ]
    given = {name for name, _, _ in inputs}
    problems += [f"missing input {s.name!r}" for s in specs if s.name not in given]
    return problems


def check_outputs(specs: list[TensorSpec], requested: list[str]) -> list[str]:
    """Requested output names the signature does not declare."""
    known = {s.name for s in specs}
    return [
        f"unknown output {name[:100]!r} requested (the signature has "
        f"{', '.join(sorted(known)) or 'none'})"
        for name in requested
        if known and name not in known
    ]


INTEGERS = {"UINT8", "INT8", "INT16", "INT32", "INT64"}


def check_values(name: str, datatype: str, data: Any) -> str | None:
    """Why the JSON values of an input do not fit its datatype: a boolean or string where numbers
    go, a fraction where integers go. None when they fit (or come as raw bytes)."""
    if not isinstance(data, list):
        return None
    stack, checked = [data], 0
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        checked += 1
        if datatype == "BOOL":
            if not isinstance(item, bool):
                return f"input {name!r}: {_shown(item)} is not a boolean (datatype BOOL)"
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            return f"input {name!r}: {_shown(item)} is not a number (datatype {datatype})"
        elif datatype in INTEGERS and isinstance(item, float):
            return f"input {name!r}: {_shown(item)} is not an integer (datatype {datatype})"
    return None


def _shown(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 40 else text[:40] + "..."
