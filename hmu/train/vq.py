"""Training the residual VQ-VAE and tokenising every motion with it.

The VQ-VAE trains on random 64-frame windows of normalised features (MoMask's setting: root and
foot-contact std divided by 5); `tokenize` then encodes whole motions (cropped to a multiple of
4 frames, at most 196) into codes of every quantizer layer, padded with -1, once, so LCR and the
transformers reuse them instead of re-encoding per step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import TokenTable
from hmu.data.humanml import MAX_FRAMES, UNIT
from hmu.data.store import MotionStore
from hmu.models.rvq import RVQVAE, rvq_loss
from hmu.train.loop import TrainConfig, train


def window_sampler(data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, window: int):
    """make_batch for the loop: random `window`-frame crops, one gather per batch."""
    if (lengths < window).any():
        raise ValueError(f"motions shorter than the VQ window ({window}) must be filtered first")
    data_t = torch.from_numpy(data)

    def make_batch(indices: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        room = torch.from_numpy(lengths - window + 1)[indices]  # (B,)
        starts = (
            torch.from_numpy(offsets)[indices]
            + (torch.rand(len(indices), generator=gen) * room).long()
        )
        return data_t[starts[:, None] + torch.arange(window)]  # (B, window, 263)

    return make_batch


def vq_loss_fn(model, batch):
    """Reconstruction + ric + commitment loss (MoMask, momask-codes models/vq/vq_trainer.py)."""
    recon, commit, perplexity = model(batch)
    loss = rvq_loss(recon, batch, commit)
    return loss, {"commit": float(commit.detach()), "perplexity": float(perplexity)}


def train_vq(
    data,
    offsets,
    lengths,
    model_cfg: dict,
    train_cfg: TrainConfig,
    window: int,
    work_dir: Path,
    log_dir: Path | None = None,
    progress: bool = True,
) -> RVQVAE:
    """Train an RVQVAE on normalised frames; resumes from work_dir if interrupted."""
    torch.manual_seed(train_cfg.seed)
    model = RVQVAE(**model_cfg)
    keep = lengths >= window
    sampler = window_sampler(data, offsets[keep], lengths[keep], window)
    train(
        model,
        int(keep.sum()),
        sampler,
        vq_loss_fn,
        train_cfg,
        work_dir,
        name="vq",
        log_dir=log_dir,
        progress=progress,
    )
    return model


@torch.no_grad()
def tokenize(model: RVQVAE, store: MotionStore, mean, std, batch_size: int = 256) -> TokenTable:
    """Codes of every motion in the store: tokens (N, 49, Q) int16 with -1 padding, n_tokens (N,).

    Motions are cropped to a multiple of 4 frames (at most 196) from their start and encoded in
    groups of equal length, so no padding ever enters the convolution.
    """
    model.eval()
    lengths = np.minimum(store.table["length"].to_numpy(), MAX_FRAMES) // UNIT * UNIT
    n_tokens = lengths // UNIT
    q = model.hparams["num_quantizers"]
    tokens = np.full((len(lengths), MAX_FRAMES // UNIT, q), -1, dtype=np.int16)
    offsets = store.table["offset"].to_numpy()
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        for chunk in np.array_split(rows, max(1, len(rows) // batch_size)):
            index = offsets[chunk, None] + np.arange(length)
            x = torch.from_numpy(((np.asarray(store.data[index]) - mean) / std).astype(np.float32))
            tokens[chunk, : length // UNIT] = model.encode(x).numpy()
    return TokenTable(tokens, n_tokens, model.hparams["nb_code"])
