"""Whether modelreg's own model server can run a version, judged from its card and pointer alone
(no bytes read): one file, a program (TorchScript or .pt2, as register's inspection found it), and
a card `signature` the server checks requests against. The deploy gate `servable` and register's
warning both ask here, so a version the pod would refuse never reaches a deploy branch."""

from __future__ import annotations

from typing import Any

from modelreg.card import section
from modelreg.config import Serving
from modelreg.errors import ModelregError
from modelreg.store import Pointer

PROGRAMS = ("torchscript", "export")


def runs_modelreg_server(serving: Serving) -> bool:
    """The Deployment kind runs `modelreg serve`, KServe does with modelreg's runtime;
    `serving.servable: false` says the templates run another server."""
    return serving.servable and (serving.kind == "deployment" or serving.runtime == "modelreg")


def problems(card: dict[str, Any], pointer: Pointer) -> list[str]:
    """Why modelreg's server would refuse this version (empty: it would serve it)."""
    from modelreg.serving.codec import signature_specs

    found = []
    if pointer.is_dir:
        found.append(
            f"{pointer.path} is a folder: the server runs a single TorchScript or .pt2 file"
        )
    inspection = section(card, "inspection")
    fmt = inspection.get("format")
    if fmt is not None and fmt not in PROGRAMS and not pointer.is_dir:
        found.append(
            f"{pointer.path} is not a program (register's inspection found: {fmt}): the server "
            "runs "
            "TorchScript (torch.jit.script(model).save) or .pt2 (torch.export.save), not weights"
        )
    for key in ("inputs", "outputs"):
        try:
            signature_specs(card, key)
        except ModelregError as exc:
            found.append(str(exc))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            found.append(
                f"the card's signature.{key} is malformed ({type(exc).__name__}: {exc}): each "
                "entry "
                "needs name, dtype and shape"
            )
    return found
