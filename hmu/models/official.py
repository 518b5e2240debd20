"""Loading the official MoMask / BAMM / evaluator checkpoints into our modules, key-for-key.

Upstream checkpoints are pickled dicts (`.tar`/`.pth`) that store a state dict under one
top-level key (the trainers' `save` in momask-codes models/vq/vq_trainer.py and
models/mask_transformer/transformer_trainer.py, likewise in exitudio/BAMM):

    rvq                   'vq_model', else 'net'            (net_best_fid.tar)
    mask_transformer      't2m_transformer', else 'trans'   (MoMask)
    bamm_transformer      't2m_transformer', else 'trans'   (BAMM)
    residual_transformer  'res_transformer'
    length_estimator      'estimator'
    evaluator             'movement_encoder', 'text_encoder', 'motion_encoder' (finest.tar)

They are read with `torch.load(weights_only=True)` (no code execution). Sizes are inferred from
the tensor shapes (layer counts from key indices, widths from weight shapes, clip_dim from
`cond_emb.weight`); what shapes cannot tell (attention heads, dilation growth) takes the
upstream value unless `config` overrides it. Every weight must load: missing, unexpected or
mis-shaped keys raise a ValueError listing them ('clip_model.*' keys are ignored, upstream
strips them anyway).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hmu.models.bamm import BAMMTransformer
from hmu.models.checkpoint import load_checked
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import PAPER_CONFIG, RVQVAE

KINDS = (
    "rvq",
    "mask_transformer",
    "residual_transformer",
    "bamm_transformer",
    "length_estimator",
    "evaluator",
)
CHECKPOINT_KEYS: dict[str, tuple[str, ...]] = {
    "rvq": ("vq_model", "net"),
    "mask_transformer": ("t2m_transformer", "trans"),
    "bamm_transformer": ("t2m_transformer", "trans"),
    "residual_transformer": ("res_transformer",),
    "length_estimator": ("estimator",),
}
UPSTREAM_HEADS = 6  # MoMask/BAMM: 6 heads (latent 384); not recoverable from the weights


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """Number of distinct integers {i} for which some key matches pattern (with (\\d+))."""
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.fullmatch(k))})


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(f"checkpoint has no key {key!r}, needed to infer the model size")
    return tuple(state[key].shape)


def rvq_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """RVQVAE constructor arguments implied by an upstream RVQ-VAE state dict."""
    width, input_width, _ = _shape(state, "encoder.model.0.weight")
    down_t = _count(state, r"encoder\.model\.(\d+)\.0\.weight")
    depth = _count(state, r"encoder\.model\.2\.1\.model\.(\d+)\.conv1\.weight")
    nb_code, code_dim = _shape(state, "quantizer.layers.0.codebook")
    return {
        **PAPER_CONFIG,
        "input_width": input_width,
        "width": width,
        "down_t": down_t,
        "stride_t": _shape(state, "encoder.model.2.0.weight")[2] // 2,
        "depth": depth,
        "output_emb_width": _shape(state, f"encoder.model.{2 + down_t}.weight")[0],
        "nb_code": nb_code,
        "code_dim": code_dim,
        "num_quantizers": _count(state, r"quantizer\.layers\.(\d+)\.codebook"),
    }


def _body_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Sizes shared by the token transformers (encoder body, condition, positions)."""
    latent_dim, clip_dim = _shape(state, "cond_emb.weight")
    return {
        "latent_dim": latent_dim,
        "clip_dim": clip_dim,
        "ff_size": _shape(state, "seqTransEncoder.layers.0.linear1.weight")[0],
        "num_layers": _count(state, r"seqTransEncoder\.layers\.(\d+)\.norm1\.weight"),
        "num_heads": UPSTREAM_HEADS,
        "max_len": _shape(state, "position_enc.pe")[0],
    }


def mask_transformer_config(state: Mapping[str, torch.Tensor], extra_ids: int = 2) -> dict:
    """MaskTransformer (extra_ids=2: mask, pad) or BAMMTransformer (3: end, pad, mask) sizes."""
    rows, code_dim = _shape(state, "token_emb.weight")
    return {**_body_config(state), "num_tokens": rows - extra_ids, "code_dim": code_dim}


def residual_transformer_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """ResidualTransformer sizes: tokens and code width from the shared embedding tables."""
    shared, rows, code_dim = _shape(state, "embed_proj_shared_weight")
    return {
        **_body_config(state),
        "num_tokens": rows - 1,
        "code_dim": code_dim,
        "num_quantizers": shared + 2,
    }


def length_estimator_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """LengthEstimator sizes: input from the first Linear, classes from the last."""
    hidden, input_size = _shape(state, "output.0.weight")
    last = max(int(m.group(1)) for k in state if (m := re.fullmatch(r"output\.(\d+)\.weight", k)))
    return {
        "input_size": input_size,
        "hidden": hidden,
        "output_size": _shape(state, f"output.{last}.weight")[0],
    }


_BUILDERS = {
    "rvq": (rvq_config, RVQVAE),
    "mask_transformer": (mask_transformer_config, MaskTransformer),
    "bamm_transformer": (lambda s: mask_transformer_config(s, extra_ids=3), BAMMTransformer),
    "residual_transformer": (residual_transformer_config, ResidualTransformer),
    "length_estimator": (length_estimator_config, LengthEstimator),
}


def _state_dict(checkpoint: Any, kind: str, source: str) -> dict[str, torch.Tensor]:
    """The state dict under the first upstream key of `kind` present in the checkpoint."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{source}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    for key in CHECKPOINT_KEYS[kind]:
        if key in checkpoint:
            state = checkpoint[key]
            if not isinstance(state, Mapping):
                raise ValueError(f"{source}: '{key}' is not a state dict")
            return dict(state)
    raise ValueError(
        f"{source}: no {kind} state dict; expected one of the keys {CHECKPOINT_KEYS[kind]}, "
        f"found {sorted(map(str, checkpoint))}"
    )


def from_state_dict(
    state: Mapping[str, torch.Tensor],
    kind: str,
    config: Mapping[str, Any] | None = None,
    source: str = "state dict",
) -> nn.Module:
    """Build our module of `kind` at the sizes implied by `state` and load it key-for-key.

    config overrides inferred constructor arguments (e.g. num_heads). Returns it in eval mode.
    """
    if kind not in _BUILDERS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    infer, cls = _BUILDERS[kind]
    kept = {k: v for k, v in state.items() if not k.startswith("clip_model.")}
    try:
        module = cls(**{**infer(kept), **(config or {})})
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{source} ({kind}): {err}") from err
    return load_checked(module, kept, f"{source} ({kind})").eval()


def load(path: str | os.PathLike, kind: str, config: Mapping[str, Any] | None = None):
    """Read an upstream checkpoint file and return our module of `kind` with every weight loaded.

    kind: 'rvq', 'mask_transformer', 'residual_transformer', 'bamm_transformer',
    'length_estimator' or 'evaluator'. config overrides constructor arguments that the shapes
    do not determine (num_heads for the transformers, dilation_growth_rate for the RVQ-VAE).
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if kind == "evaluator":
        from hmu.models.evaluator import evaluator_from_official_state

        if not isinstance(checkpoint, Mapping):
            raise ValueError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
        try:
            return evaluator_from_official_state(dict(checkpoint)).eval()
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
    return from_state_dict(_state_dict(checkpoint, kind, str(path)), kind, config, str(path))
