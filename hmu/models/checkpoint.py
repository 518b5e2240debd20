"""Checkpoints of our own models: safetensors weights with a small JSON beside them.

A checkpoint is two files side by side: `<name>.safetensors` (the tensors) and `<name>.json`
(the constructor config and whatever else rebuilds the module). No pickle is involved, so
loading a checkpoint can never execute code. Every reader and writer of model files uses this
module, so generation, evaluation and unlearning load models without the training code:

    save_state / load_state          tensors + JSON meta (training states, classifiers, ...)
    check_state_dict / load_checked  the one key and shape check (ValueError listing problems)
    save_module / load_module        a generator module, rebuilt from its class name and config
    save_vq / load_vq                an RVQ-VAE with the mean/std its inputs are normalised with
    save_lcr_delta / read_lcr_delta  LCR's codebook delta {layer: (indices (r,), vectors (r, D))}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hmu.io import atomic_path, write_json
from hmu.models.bamm import BAMMTransformer
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE

MODULE_CLASSES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (RVQVAE, MaskTransformer, BAMMTransformer, ResidualTransformer, LengthEstimator)
}
UPSTREAM_IGNORED = ("clip_model.",)  # upstream strips its CLIP weights; such keys are skipped
LcrDelta = dict[int, tuple[torch.Tensor, torch.Tensor]]


def default_device() -> torch.device:
    """Where models run: CUDA when available (the local rank's GPU under torchrun), else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


# ---------------------------------------------------------------- tensors + meta


def _weights_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")


def save_state(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write tensors (safetensors) and meta (JSON beside it), each atomically."""
    weights = _weights_path(path)
    # safetensors refuses shared storage and non-contiguous tensors: store independent copies.
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_path(weights) as tmp:
        save_file(flat, str(tmp))
    write_json(weights.with_suffix(".json"), meta)


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what `save_state` wrote -> (tensors, meta); FileNotFoundError names a missing file."""
    weights = _weights_path(path)
    meta_path = weights.with_suffix(".json")
    for p in (weights, meta_path):
        if not p.exists():
            raise FileNotFoundError(f"checkpoint file missing: {p}")
    return load_file(str(weights)), json.loads(meta_path.read_text())


# ---------------------------------------------------------------- state dict checks


def check_state_dict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str = "state dict",
    ignore_prefixes: tuple[str, ...] = UPSTREAM_IGNORED,
) -> None:
    """Raise ValueError listing the missing, unexpected and mis-shaped keys of `state`.

    Keys starting with one of `ignore_prefixes` are not reported as unexpected. Returns None
    when the dict loads key-for-key; `source` (a file name) starts the message.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items() if not k.startswith(ignore_prefixes)}
    problems = {
        "missing keys": sorted(set(expected) - set(given)),
        "unexpected keys": sorted(set(given) - set(expected)),
        "shape mismatches": sorted(
            f"{k}: checkpoint {given[k]} vs model {expected[k]}"
            for k in set(expected) & set(given)
            if expected[k] != given[k]
        ),
    }
    if any(problems.values()):
        lines = [f"{source} does not match {type(module).__name__}:"]
        lines += [f"  {title} ({len(keys)}): " + ", ".join(keys)
                  for title, keys in problems.items() if keys]  # fmt: skip
        raise ValueError("\n".join(lines))


def load_checked(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str = "state dict",
    ignore_prefixes: tuple[str, ...] = UPSTREAM_IGNORED,
) -> nn.Module:
    """`check_state_dict`, then load the weights strictly (ignored keys left out) -> module."""
    check_state_dict(module, state, source, ignore_prefixes)
    module.load_state_dict({k: v for k, v in state.items() if not k.startswith(ignore_prefixes)})
    return module


# ---------------------------------------------------------------- generator modules


def save_module(path: str | Path, module: nn.Module) -> None:
    """Save a generator module (MaskTransformer, BAMMTransformer, ResidualTransformer,
    LengthEstimator) with its class name and constructor config, so `load_module` rebuilds it."""
    save_state(path, module.state_dict(), {"class": type(module).__name__, "config": module.config})


def load_module(path: str | Path) -> nn.Module:
    """Rebuild a module saved by `save_module` (or `save_vq`) from its JSON, in eval mode."""
    state, meta = load_state(path)
    name = meta.get("class")
    if name not in MODULE_CLASSES:
        known = sorted(MODULE_CLASSES)
        raise ValueError(f"{path}: unknown module class {name!r}; expected one of {known}")
    module = MODULE_CLASSES[name](**meta["config"])
    return load_checked(module, state, str(path), ignore_prefixes=()).eval()


def vq_file(path: str | Path) -> Path:
    """A VQ checkpoint path given either the file or its folder (models/<ds>/vq_<subset>)."""
    path = Path(path)
    return path / "vq.safetensors" if path.is_dir() or not path.suffix else path


def save_vq(path: str | Path, model: RVQVAE, mean: np.ndarray, std: np.ndarray) -> None:
    """Save an RVQ-VAE with the mean/std its inputs are normalised with (std: MoMask's VQ std)."""
    meta = {
        "class": "RVQVAE",
        "config": model.hparams,
        "mean": np.asarray(mean, dtype=np.float32).tolist(),
        "std": np.asarray(std, dtype=np.float32).tolist(),
    }
    save_state(path, model.state_dict(), meta)


def load_vq(path: str | Path) -> tuple[RVQVAE, np.ndarray, np.ndarray]:
    """Load what `save_vq` wrote (file or folder) -> (model, eval mode; mean (263,); std (263,))."""
    file = vq_file(path)
    state, meta = load_state(file)
    if "mean" not in meta or "std" not in meta:
        raise ValueError(f"{file}: no mean/std in its JSON (not written by save_vq)")
    model = load_checked(RVQVAE(**meta["config"]), state, str(file), ignore_prefixes=())
    mean, std = (np.asarray(meta[k], dtype=np.float32) for k in ("mean", "std"))
    return model.eval(), mean, std


# ---------------------------------------------------------------- LCR delta


def save_lcr_delta(path: str | Path, delta: Mapping[int, tuple], meta: dict[str, Any]) -> None:
    """Write an LCR delta: safetensors keys '<layer>.indices' and '<layer>.vectors', meta JSON."""
    flat = {}
    for layer, (indices, vectors) in delta.items():
        flat[f"{layer}.indices"] = torch.as_tensor(indices)
        flat[f"{layer}.vectors"] = torch.as_tensor(vectors)
    save_state(path, flat, meta)


def read_lcr_delta(path: str | Path) -> LcrDelta:
    """Read what `save_lcr_delta` wrote -> {layer: (indices (r,) long, vectors (r, D))}."""
    tensors, _ = load_state(path)
    delta = {}
    for layer in sorted({int(key.split(".", 1)[0]) for key in tensors}):
        try:
            delta[layer] = (tensors[f"{layer}.indices"].long(), tensors[f"{layer}.vectors"])
        except KeyError as err:
            raise ValueError(f"{path}: layer {layer} lacks {err.args[0]!r}") from err
    return delta
