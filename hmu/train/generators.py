"""Training the text-to-motion generators (MoMask, BAMM) on cached tokens.

The token models train on the codes `tokenize` cached once per VQ-VAE (tokens (N, 49, Q) int16,
-1 padded), never on features: a batch is one gather from preloaded tensors. The text condition
of a sample is the cached embedding of one of its motion's captions, picked at random for every
batch with one vectorised draw (`CaptionIndex`); condition dropout happens inside the models.
`TokenData` bundles these inputs; every training goes through `hmu.train.loop.train` (seeded,
resumable, DVCLive) and returns the model in eval mode.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hmu.data.dataset import ProcessedDataset, TokenTable
from hmu.data.humanml import MAX_FRAMES, UNIT
from hmu.models.bamm import BAMMTransformer
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.train.loop import TrainConfig, train

TRANSFORMERS: dict[str, type[nn.Module]] = {"momask": MaskTransformer, "bamm": BAMMTransformer}
LENGTH_CLASSES = MAX_FRAMES // UNIT + 1  # token lengths 0..49


@dataclass(frozen=True)
class TokenData:
    """What a token model trains on.

    table: the token table of every stored motion; rows (M,): the motions to train on;
    caption_rows[i]: the rows of text_emb (C_rows, C) that caption motion rows[i].
    """

    table: TokenTable
    rows: np.ndarray
    caption_rows: Sequence[np.ndarray]
    text_emb: np.ndarray

    @property
    def identity(self) -> tuple[np.ndarray, ...]:
        """The arrays that define a training run's data (for its resumable-state folder)."""
        return self.table.tokens, self.table.n_tokens, self.rows, self.text_emb


def training_data(data: ProcessedDataset, subset: str, codebook: str | None = None) -> TokenData:
    """The train partition of `subset` (all, or retain = D_r) as tokens of vq_<codebook>.

    codebook: whose VQ-VAE tokenised the motions, `subset` by default: a model trained from
    scratch on a subset uses that subset's VQ-VAE, while fine-tuning the base model on D_r must
    keep the base (all) codebook, or its token ids would mean other codes.
    """
    table = data.tokens(subset if codebook is None else codebook)
    rows = data.select("train", subset)
    return TokenData(table, rows, data.caption_rows(rows), data.text_emb())


# ---------------------------------------------------------------- batches


class CaptionIndex:
    """Caption rows of each motion in CSR form: one vectorised random pick per batch."""

    def __init__(self, rows_per_motion: Sequence[np.ndarray]):
        counts = np.array([len(r) for r in rows_per_motion], dtype=np.int64)
        if len(counts) == 0 or (counts == 0).any():
            empty = np.flatnonzero(counts == 0)[:5].tolist()
            raise ValueError(f"caption_rows: motions without captions at {empty}")
        self.flat = torch.from_numpy(np.concatenate(rows_per_motion).astype(np.int64))
        self.offsets = torch.from_numpy(np.cumsum(counts) - counts)
        self.counts = torch.from_numpy(counts)

    def __len__(self) -> int:
        return len(self.counts)

    def sample(self, motions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One caption row per motion index (B,), uniformly among its captions -> (B,)."""
        pick = (torch.rand(len(motions), generator=generator) * self.counts[motions]).long()
        return self.flat[self.offsets[motions] + pick]


def token_batches(data: TokenData):
    """make_batch for the loop over the motions `data.rows`.

    Batch: {"ids" (B, L, Q) long codes (-1 past each length), "lengths" (B,) tokens,
    "cond" (B, C) text embedding of one random caption per motion}. Sequences keep the table's
    full width L (49) like upstream's padded batches, so mask ratios are taken of L.
    """
    tokens, n_tokens = np.asarray(data.table.tokens), np.asarray(data.table.n_tokens)
    rows = np.asarray(data.rows)
    if tokens.ndim != 3 or n_tokens.shape != tokens.shape[:1]:
        raise ValueError(
            f"tokens (N, L, Q) and n_tokens (N,) expected, got {tokens.shape} and {n_tokens.shape}"
        )
    if len(data.caption_rows) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(data.caption_rows)} caption lists")
    lengths = torch.from_numpy(n_tokens[rows].astype(np.int64))  # (M,)
    if len(rows) == 0 or int(lengths.min()) < 1:
        raise ValueError("every training motion needs at least one token (4 frames)")
    ids = torch.from_numpy(tokens[rows].astype(np.int64))  # (M, L, Q)
    cond = torch.from_numpy(np.ascontiguousarray(data.text_emb, dtype=np.float32))  # (C_rows, C)
    captions = CaptionIndex(data.caption_rows)
    if int(captions.flat.max()) >= len(cond):
        raise ValueError(f"caption rows exceed text_emb ({len(cond)} rows)")

    def make_batch(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {
            "ids": ids[indices],
            "lengths": lengths[indices],
            "cond": cond[captions.sample(indices, generator)],
        }

    return make_batch


# ---------------------------------------------------------------- objectives


class Objective(nn.Module):
    """A model's training loss as `forward`, so the loop (and DDP) call it like a module.

    task: 'momask' / 'bamm' (layer-0 codes), 'res' (all layers), 'length' (token lengths).
    """

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cond, lengths = batch["cond"], batch["lengths"]
        if self.task in TRANSFORMERS:
            return self.model.loss(batch["ids"][..., 0], cond, lengths)
        if self.task == "res":
            return self.model.loss(batch["ids"], cond, lengths)
        logits = self.model(cond)  # (B, classes)
        target = lengths.clamp(max=self.model.output_size - 1)
        loss = nn.functional.cross_entropy(logits, target)
        return loss, (logits.detach().argmax(-1) == target).float().mean()


def _objective_loss(objective: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    loss, accuracy = objective(batch)
    return loss, {"acc": float(accuracy)}


def _fit(model, task, data, train_cfg, work_dir, log_dir, name, progress) -> nn.Module:
    """Train `model` on token_batches(data) with the task's objective; return it (eval)."""
    train(
        Objective(model, task),
        len(data.rows),
        token_batches(data),
        _objective_loss,
        train_cfg,
        work_dir,
        name=name,
        log_dir=log_dir,
        progress=progress,
    )
    return model.eval()


def _start_model(cls, model_cfg, init, seed: int) -> nn.Module:
    """A fresh cls(**model_cfg) seeded by the training seed, or a copy of `init` to fine-tune."""
    if init is not None:
        if type(init) is not cls:
            raise ValueError(f"init is a {type(init).__name__}, expected a {cls.__name__}")
        return copy.deepcopy(init).train()
    if model_cfg is None:
        raise ValueError(f"model_cfg is needed to build a new {cls.__name__}")
    torch.manual_seed(seed)
    return cls(**model_cfg)


def _check_inputs(model: nn.Module, data: TokenData, layers: int | None = None) -> None:
    """Codes must index the model's vocabulary; embeddings must match its condition width."""
    tokens, width = np.asarray(data.table.tokens), np.asarray(data.text_emb).shape[1]
    if width != model.clip_dim:
        raise ValueError(f"text_emb has width {width} but the model's clip_dim is {model.clip_dim}")
    if tokens.size and int(tokens.max()) >= model.num_tokens:
        raise ValueError(f"tokens hold code {int(tokens.max())} >= num_tokens {model.num_tokens}")
    if layers is not None and tokens.shape[2] != layers:
        raise ValueError(f"tokens have {tokens.shape[2]} layers, the model expects {layers}")


def train_transformer(
    kind: str,
    data: TokenData,
    model_cfg: Mapping[str, Any] | None,
    train_cfg: TrainConfig,
    work_dir: str | Path,
    log_dir: str | Path | None = None,
    init: nn.Module | None = None,
    progress: bool = True,
) -> nn.Module:
    """Train MoMask's masked transformer (kind 'momask') or BAMM's ('bamm') on layer-0 codes.

    init: a trained transformer to fine-tune (copied; model_cfg is then ignored).
    Resumes from work_dir if interrupted; returns the model in eval mode.
    """
    if kind not in TRANSFORMERS:
        raise ValueError(f"kind={kind!r}: expected one of {sorted(TRANSFORMERS)}")
    model = _start_model(TRANSFORMERS[kind], model_cfg, init, train_cfg.seed)
    _check_inputs(model, data)
    return _fit(model, kind, data, train_cfg, work_dir, log_dir, f"trans_{kind}", progress)


def train_residual(
    data: TokenData,
    model_cfg: Mapping[str, Any] | None,
    train_cfg: TrainConfig,
    work_dir: str | Path,
    log_dir: str | Path | None = None,
    init: nn.Module | None = None,
    progress: bool = True,
) -> ResidualTransformer:
    """Train MoMask's residual transformer (shared by MoMask and BAMM) on all code layers.

    Arguments as `train_transformer`; the tokens must have model_cfg['num_quantizers'] layers.
    """
    model = _start_model(ResidualTransformer, model_cfg, init, train_cfg.seed)
    _check_inputs(model, data, layers=model.num_quantizers)
    return _fit(model, "res", data, train_cfg, work_dir, log_dir, "res", progress)


def train_length_estimator(
    data: TokenData,
    model_cfg: Mapping[str, Any] | None,
    train_cfg: TrainConfig,
    work_dir: str | Path,
    log_dir: str | Path | None = None,
    progress: bool = True,
) -> LengthEstimator:
    """Train the text -> token-length classifier used for free generation (MoMask's).

    model_cfg may omit input_size (= text_emb width) and output_size (= 50 token lengths).
    """
    width = np.asarray(data.text_emb).shape[1]
    full_cfg = {"input_size": width, "output_size": LENGTH_CLASSES, **(model_cfg or {})}
    model = _start_model(LengthEstimator, full_cfg, None, train_cfg.seed)
    n_tokens = np.asarray(data.table.n_tokens)
    placeholder = np.zeros((len(n_tokens), 1, 1), dtype=np.int16)  # the estimator needs no codes
    lengths_only = replace(data, table=TokenTable(placeholder, n_tokens, data.table.nb_code))
    return _fit(model, "length", lengths_only, train_cfg, work_dir, log_dir, "length", progress)
