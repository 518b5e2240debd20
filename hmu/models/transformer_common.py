"""Pieces shared by the MoMask and BAMM token transformers.

Parameter and buffer names follow the upstream implementations (MoMask
EricGuo5513/momask-codes, BAMM exitudio/BAMM) so official checkpoints load key-for-key:
`input_process.poseEmbedding`, `position_enc.pe` (a (max_len, 1, d) buffer),
`seqTransEncoder.layers.{i}.*` (nn.TransformerEncoder, post-norm, exact-erf GELU, no final
norm) and `output_process.{dense, LayerNorm, poseFinal}`.

Sequences inside the encoder are laid out sequence-first (S, B, D) as upstream, which keeps
PyTorch off its nested-tensor fast path and therefore numerically on the same code path.
Sampling helpers take an optional `torch.Generator` so generation is reproducible under a seed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

# Index that every `generate` writes past each sequence's length (the RVQ decoder treats it as
# "no code", LCR as padding).
PAD_INDEX = -1


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (`pe` buffer, (max_len, 1, d)) added to (S, B, d), then dropout."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
        div_term = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )  # (d/2,)
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe[:, None, :])  # (L, 1, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add pe[0:S] to x (S, B, d)."""
        if x.shape[0] > self.pe.shape[0]:
            raise ValueError(f"sequence length {x.shape[0]} exceeds max_len {self.pe.shape[0]}")
        return self.dropout(x + self.pe[: x.shape[0]])


class InputProcess(nn.Module):
    """Linear token-embedding -> latent projection; (B, N, C) -> (N, B, D)."""

    def __init__(self, input_feats: int, latent_dim: int):
        super().__init__()
        self.poseEmbedding = nn.Linear(input_feats, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.poseEmbedding(x.transpose(0, 1))


class OutputProcess(nn.Module):
    """BERT-style head: Linear, GELU, LayerNorm(eps 1e-12), Linear; (S, B, D) -> (B, S, out)."""

    def __init__(self, out_feats: int, latent_dim: int):
        super().__init__()
        self.dense = nn.Linear(latent_dim, latent_dim)
        self.LayerNorm = nn.LayerNorm(latent_dim, eps=1e-12)
        self.poseFinal = nn.Linear(latent_dim, out_feats)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.LayerNorm(F.gelu(self.dense(hidden)))
        return self.poseFinal(hidden).transpose(0, 1)


def build_encoder(
    latent_dim: int, ff_size: int, num_layers: int, num_heads: int, dropout: float
) -> nn.TransformerEncoder:
    """Post-norm nn.TransformerEncoder with exact GELU and no final norm (upstream's body)."""
    layer = nn.TransformerEncoderLayer(
        d_model=latent_dim,
        nhead=num_heads,
        dim_feedforward=ff_size,
        dropout=dropout,
        activation="gelu",
    )
    return nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)


def init_weights(module: nn.Module) -> None:
    """Upstream init: Linear/Embedding weights N(0, 0.02), biases 0, LayerNorm (1, 0)."""
    if isinstance(module, nn.Linear | nn.Embedding):
        module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
    elif isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at valid (non-padded) positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def cosine_schedule(t: torch.Tensor) -> torch.Tensor:
    """Mask ratio cos(pi/2 * t) for t in [0, 1] (1 = everything masked)."""
    return torch.cos(t * math.pi * 0.5)


def top_k_filter(logits: torch.Tensor, thres: float = 0.9) -> torch.Tensor:
    """Keep the ceil((1 - thres) * K) largest logits on the last dim; set the rest to -inf."""
    k = max(1, math.ceil((1.0 - thres) * logits.shape[-1]))
    values, indices = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def gumbel_sample(
    logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample indices from softmax(logits / temperature) on the last dim by Gumbel-argmax.

    Equivalent in distribution to categorical sampling; draws from `generator` so that a
    seeded generator makes the result reproducible.
    """
    uniform = torch.rand(
        logits.shape, generator=generator, device=logits.device, dtype=torch.float32
    )
    neg_log_u = -torch.log(uniform.clamp(min=1e-20))  # Exp(1) draws
    gumbel = -torch.log(neg_log_u.clamp(min=1e-20))
    return (logits / max(temperature, 1e-10) + gumbel.to(logits.dtype)).argmax(dim=-1)


def classifier_free_guidance(
    cond_logits: torch.Tensor, uncond_logits: torch.Tensor, cond_scale: float
) -> torch.Tensor:
    """uncond + (cond - uncond) * cond_scale (scale 1 = conditional, 0 = unconditional)."""
    return uncond_logits + (cond_logits - uncond_logits) * cond_scale


def drop_condition(
    cond: torch.Tensor, prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole rows of cond (B, C) with probability `prob` (condition dropout for CFG)."""
    if prob <= 0.0:
        return cond
    drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < prob  # (B,)
    return cond * (~drop)[:, None].to(cond.dtype)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run a block in eval mode without grad, restoring the previous training flag."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def check_cond(cond: torch.Tensor, batch: int | None, clip_dim: int) -> None:
    """Raise ValueError unless cond is a float (B, clip_dim) tensor (B = batch when given)."""
    if cond.dim() != 2 or cond.shape[1] != clip_dim:
        raise ValueError(f"cond must have shape (B, {clip_dim}), got {tuple(cond.shape)}")
    if batch is not None and cond.shape[0] != batch:
        raise ValueError(f"cond has batch {cond.shape[0]} but the token ids have batch {batch}")
    if not cond.is_floating_point():
        raise ValueError(f"cond must be a float tensor, got {cond.dtype}")


def check_lengths(lengths: torch.Tensor, batch: int, max_len: int | None = None) -> None:
    """Raise ValueError unless lengths is an integer (B,) tensor with 1 <= lengths <= max_len."""
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.is_floating_point():
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if batch and int(lengths.min()) < 1:
        raise ValueError(f"lengths must be >= 1, got min {int(lengths.min())}")
    if max_len is not None and batch and int(lengths.max()) > max_len:
        raise ValueError(
            f"lengths must be <= {max_len} (sequence length), got {int(lengths.max())}"
        )


def check_ids(ids: torch.Tensor, name: str, high: int) -> None:
    """Raise ValueError unless ids is an integer tensor with values in [0, high)."""
    if ids.is_floating_point():
        raise ValueError(f"{name} must be an integer tensor, got {ids.dtype}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= high):
        raise ValueError(
            f"{name} values must lie in [0, {high}), got [{int(ids.min())}, {int(ids.max())}]"
        )


def accuracy(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Share of valid positions whose argmax equals the label; logits (..., K), labels (...)."""
    hits = (logits.argmax(dim=-1) == labels) & valid
    return hits.sum().float() / valid.sum().clamp(min=1)


def constructor_config(arguments: dict) -> dict:
    """A module's constructor arguments (pass `locals()` first thing in `__init__`), saved
    beside its weights so the checkpoint rebuilds the same module."""
    return {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
