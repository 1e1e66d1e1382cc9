"""The demo's two canary candidates, as TorchScript: churn-4.pt fails on inputs whose features sum
over 100 (a new feature pipeline that breaks on large values), churn-5.pt is healthy.
Usage: python demo/canary_models.py FOLDER"""

from __future__ import annotations

import sys

import torch


class Fussy(torch.nn.Module):
    """Answers, except on inputs whose features sum over 100."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if bool(features.sum() > 100):
            raise RuntimeError("cannot take this input")
        return self.linear(features)


def main(folder: str) -> None:
    torch.jit.script(Fussy()).save(f"{folder}/churn-4.pt")
    torch.manual_seed(5)
    healthy = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.jit.script(healthy).save(f"{folder}/churn-5.pt")


if __name__ == "__main__":
    main(sys.argv[1])
