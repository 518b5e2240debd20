"""Our own checkpoints: safetensors weights plus a small JSON of hyperparameters.

A model checkpoint is two files side by side: `<name>.safetensors` (the state dict) and
`<name>.json` (the constructor arguments and anything else needed to rebuild the module).
No pickle is involved, so loading a checkpoint can never execute code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hmu.io import atomic_path, write_json


def _weights_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")


def save_state(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write tensors (safetensors) and meta (JSON beside it), each atomically."""
    weights = _weights_path(path)
    # safetensors refuses shared storage and non-contiguous tensors: store independent copies.
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_path(weights) as tmp:
        save_file(flat, str(tmp))
    write_json(weights.with_suffix(".json"), meta)


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what `save_state` wrote; FileNotFoundError names the missing file."""
    weights = _weights_path(path)
    meta_path = weights.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.exists():
            raise FileNotFoundError(f"checkpoint file missing: {p}")
    return load_file(str(weights)), json.loads(meta_path.read_text())


def check_keys(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a clear error listing missing/unexpected keys and shape mismatches."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        raise KeyError(
            f"{source}: state dict does not match {type(module).__name__}.\n"
            f"  missing keys ({len(missing)}): {missing[:20]}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected[:20]}\n"
            f"  shape mismatches ({len(shapes)}): {shapes[:20]}"
        )


def save_model(path: str | Path, module: torch.nn.Module, config: dict[str, Any]) -> None:
    """Save a module's state dict with its constructor config."""
    save_state(path, module.state_dict(), {"class": type(module).__name__, "config": config})


def load_model(path: str | Path, build) -> torch.nn.Module:
    """Rebuild a module with `build(config)` and load its weights strictly."""
    state, meta = load_state(path)
    module = build(meta["config"])
    check_keys(module, state, str(path))
    module.load_state_dict(state)
    return module
