"""The KServe runtime: one `kserve.Model` around a TorchScript or .pt2 program.

`load()` checks the artifact's SHA-256 against the card before anything runs (KServe's storage
initializer checks nothing); `predict()` checks every request against the card's signature. A
model that raises on a request is logged with its traceback under a request id; the caller gets the
id and a short message (KServe would send the TorchScript traceback, source paths included).
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from modelreg.card import section
from modelreg.digest import sha256_of
from modelreg.errors import ArtifactError
from modelreg.serving.codec import (
    DATATYPES,
    check_outputs,
    check_request,
    check_values,
    signature_specs,
)
from modelreg.serving.loader import load_program

LOG = logging.getLogger("modelreg.serve")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ModelFailure(Exception):
    """The model raised on a request: answered 500 with this message and the request id."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"the model failed on this request (request id {request_id}; the server's log has the "
            "details)"
        )
        self.request_id = request_id


def request_id(headers: dict[str, str] | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one."""
    given = {k.lower(): v for k, v in (headers or {}).items()}.get("x-request-id", "")
    return given if REQUEST_ID.match(given) else uuid.uuid4().hex


class TorchModel(Model):
    """A registered version, served: name and version from its card, bytes checked, inputs
    checked."""

    def __init__(
        self, card: dict[str, Any], path: Path, device: str = "cpu", verified: bool = False
    ) -> None:
        super().__init__(str(card["name"]))
        artifact = section(card, "artifact")
        self.version = str(card.get("version", ""))
        self.sha256 = str(artifact.get("sha256", ""))
        self.path = path
        self.device = device
        self.inputs = signature_specs(card, "inputs")
        self.outputs = signature_specs(card, "outputs")
        self.program: Any = None
        self.verified = (
            verified  # the bytes were checked against the card on their way here (a pull)
        )

    def load(self) -> bool:
        got = self.sha256 if self.verified else sha256_of(self.path)
        if got != self.sha256:
            raise ArtifactError(
                f"{self.path}: sha256 {got} does not match the card's {self.sha256}: refusing to "
                "serve it"
            )
        self.program = load_program(self.path, self.device)
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict[str, Any]]:
        return [s.metadata() for s in self.inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [s.metadata() for s in self.outputs]

    def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        import torch

        given = [(i.name, i.datatype, [int(d) for d in i.shape]) for i in payload.inputs]
        problems = check_request(self.inputs, given)
        problems += check_outputs(self.outputs, [o.name for o in payload.request_outputs or []])
        problems += [p for i in payload.inputs if (p := check_values(i.name, i.datatype, i.data))]
        if problems:
            raise InvalidInput("; ".join(problems))
        by_name = {i.name: i for i in payload.inputs}
        try:
            tensors = [
                torch.tensor(by_name[s.name].as_numpy(), device=self.device) for s in self.inputs
            ]  # a copy: the request's buffer is read-only
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(
                f"the data does not fill the declared shape or type: {exc}"
            ) from None
        for spec, tensor in zip(self.inputs, tensors):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise InvalidInput(
                    f"input {spec.name!r} holds NaN or infinity (or a number too large for "
                    f"{spec.datatype}): the model's answer would be meaningless"
                )
        try:
            with torch.inference_mode():
                produced = self.program(*tensors)
            outputs = [
                t.detach().cpu()
                for t in (produced if isinstance(produced, (list, tuple)) else [produced])
            ]
        except Exception:  # the model's own error (TorchScript raises RuntimeError with its source)
            rid = request_id(headers)
            LOG.exception("model %s@%s failed on request %s", self.name, self.version, rid)
            raise ModelFailure(rid) from None
        names = [s.name for s in self.outputs] + [
            f"output_{i}" for i in range(len(self.outputs), len(outputs))
        ]
        infer_outputs = []
        for name, tensor in zip(names, outputs):
            array = tensor.numpy()
            out = InferOutput(
                name=name,
                shape=list(array.shape),
                datatype=DATATYPES.get(str(array.dtype), "BYTES"),
            )
            out.set_data_from_numpy(array, binary_data=False)
            infer_outputs.append(out)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            model_version=self.version,
            infer_outputs=infer_outputs,
        )
