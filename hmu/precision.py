"""Numeric precision of training and generation: fp32, or bf16 autocast (opt-in).

params.yaml `precision: {train: fp32 | bf16, generate: fp32 | bf16}`. bf16 runs matmuls,
convolutions and attention in bfloat16 under `torch.autocast` (CPU: AMX/AVX-512 bf16 units where
the CPU has them; CUDA: tensor cores) while weights, optimizer state, layer norms, softmax and
sampling stay fp32. fp32 is the exact path: generation then equals upstream token for token.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(value: str, name: str = "precision") -> str:
    """Return value if it is one of PRECISIONS, else raise a ValueError naming `name`."""
    if value not in PRECISIONS:
        raise ValueError(f"{name} must be one of {PRECISIONS}, got {value!r}")
    return value


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context that runs its block at `precision` on `device`: torch.autocast to bfloat16
    for 'bf16', nothing for 'fp32'."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
