"""The fine-tuning baseline: continue training the base transformers on the retain set D_r.

The masked (MoMask) or BAMM transformer, and the residual transformer, start from the base
model and train on D_r's motions, tokenised by the base VQ-VAE (which is kept), for a few epochs
(the paper: 5). It is the one unlearning method that trains, so it lives with the training code;
the training-free methods are in hmu.unlearn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from hmu.train.generators import TokenData, train_residual, train_transformer
from hmu.train.loop import TrainConfig


def finetune_config(
    epochs: float,
    train: Mapping[str, Any],
    motions: int,
    precision: str | None = None,
    seed_offset: int = 0,
) -> TrainConfig:
    """The training config of `epochs` passes over `motions` (train: params without steps;
    precision: params.yaml `precision.train`; seed_offset: `train.seed`)."""
    steps = max(1, math.ceil(epochs * motions / train["batch_size"]))
    return TrainConfig.from_params({**train, "steps": steps}, precision, seed_offset)


def finetune(
    kind: str,
    trans: nn.Module,
    res: nn.Module | None,
    data: TokenData,
    train_cfg: TrainConfig,
    work: Path,
    log_root: Path,
) -> tuple[nn.Module, nn.Module | None]:
    """Fine-tuned copies of the base transformer `trans` and residual `res` (None: kept).

    data: D_r's motions as tokens of the base VQ-VAE. Resumable states in work/{trans,res};
    DVCLive curves in log_root/live_{trans,res}. The inputs are not modified.
    """
    trans = train_transformer(
        kind, data, None, train_cfg, work / "trans", log_dir=log_root / "live_trans", init=trans
    )
    if res is not None:
        res = train_residual(
            data, None, train_cfg, work / "res", log_dir=log_root / "live_res", init=res
        )
    return trans, res
