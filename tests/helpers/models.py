"""Tiny TorchScript-able models for the tests that serve them (import only where torch is)."""

from __future__ import annotations

import torch


class Fussy(torch.nn.Module):
    """Raises (with a message naming its internals) on inputs whose sum is over 100."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if bool(features.sum() > 100):
            raise RuntimeError("internal detail: the secret threshold was crossed")
        return self.linear(features)


def healthy(seed: int) -> torch.nn.Module:
    """4 features in, 2 logits out, weights from SEED."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
