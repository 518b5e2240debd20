"""The fine-tuning baseline: continue training the base transformers on the retain set D_r.

The masked (MoMask) or BAMM transformer, and the residual transformer, start from the base
model and train on D_r's motions, tokenised by the base VQ-VAE (which is kept), for a few epochs
(the paper: 5).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from hmu.params import section
from hmu.train.checkpoint import save_model
from hmu.train.generators import (
    load_module,
    train_residual,
    train_transformer,
    training_inputs,
    work_dir,
)
from hmu.train.loop import TrainConfig
from hmu.unlearn.artefacts import base_pieces


def finetune(params: dict, dataset: str, model: str, out: Path) -> dict:
    """Fine-tune the base transformers on D_r; returns the method's pieces."""
    cfg = section(params, "finetune")
    pieces = base_pieces(dataset, model)
    # D_r's motions, tokenised by the base model's own VQ-VAE (the one it generates with)
    tokens, n_tokens, rows, captions, text_emb, _ = training_inputs(dataset, "retain", "all")
    steps = max(1, math.ceil(cfg["epochs"] * len(rows) / cfg["train"]["batch_size"]))
    train_cfg = TrainConfig.from_params({**cfg["train"], "steps": steps})
    inputs = (tokens, n_tokens, rows, captions, text_emb)
    base_trans, base_res = load_module(pieces["trans"]), load_module(pieces["res"])
    # resumable state, keyed by everything that defines the run; removed once saved
    work = work_dir(dataset, f"finetune_{model}", vars(train_cfg), cfg, tokens, rows)
    trans = train_transformer(
        model, *inputs, None, train_cfg, work / "trans", log_dir=out / "live_trans", init=base_trans
    )
    save_model(out / "trans.safetensors", trans, trans.config)
    result = {**pieces, "trans": str(out / "trans.safetensors")}
    if cfg["residual"]:
        res = train_residual(
            *inputs, None, train_cfg, work / "res", log_dir=out / "live_res", init=base_res
        )
        save_model(out / "res.safetensors", res, res.config)
        result["res"] = str(out / "res.safetensors")
    shutil.rmtree(work, ignore_errors=True)
    return result
