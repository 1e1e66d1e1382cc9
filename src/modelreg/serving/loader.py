"""Load a runnable artifact: TorchScript or a torch.export program (.pt2), the one loader of
`modelreg serve` and `modelreg validate`. Weights alone (a state_dict, safetensors) cannot be
run: there is no code to run them, and unpickling one is never an option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelreg.errors import ModelregError


def load_program(path: Path, device: str = "cpu") -> Any:
    """The callable module in PATH, on DEVICE."""
    import torch

    from modelreg.formats import detect_format

    if path.is_dir():
        raise ModelregError(f"{path.name} is a folder: a single TorchScript or .pt2 file runs")
    fmt = detect_format(path)
    if fmt == "torchscript":
        return torch.jit.load(str(path), map_location=device)
    if fmt == "export":
        return torch.export.load(str(path)).module().to(device)
    raise ModelregError(
        f"{path.name} is a {fmt} artifact: serving and validate need a program, not weights; "
        "export one with torch.jit.script(model).save('model.pt') or "
        "torch.export.save(..., 'model.pt2') and register that"
    )
