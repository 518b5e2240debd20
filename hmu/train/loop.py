"""One training loop for every HMU model (RVQ-VAE, MoMask and BAMM transformers, ...).

The loop owns what all models share: AdamW, linear warm-up then step decay at milestones,
gradient clipping, optional bf16 autocast of forward and loss (`precision`; weights and AdamW
state stay fp32), seeding, periodic resumable checkpoints (safetensors, no pickle), tqdm progress,
DVCLive loss curves, and data-parallel training under `torchrun` (DDP; gloo on CPU, nccl on GPU).
A model plugs in with two functions:

    make_batch(indices (B,) LongTensor, generator) -> batch   # builds one batch on the CPU
    loss_fn(model, batch) -> (loss, {name: float})            # scalar loss + logged values

Randomness is a pure function of (seed, step, rank): the sample order of epoch e comes from
(seed, e), and torch's global RNG is re-seeded every step. A run resumed from a checkpoint
therefore continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from hmu.models.checkpoint import default_device, load_state, save_state
from hmu.precision import autocast, check_precision


@dataclass
class TrainConfig:
    """Optimisation settings shared by all models (params.yaml `train.*` blocks)."""

    steps: int = 1000
    batch_size: int = 64  # global batch, split evenly over DDP ranks
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0
    milestones: list[int] = field(default_factory=list)  # steps where lr *= gamma
    gamma: float = 0.1
    grad_clip: float = 0.0  # 0 disables clipping
    checkpoint_every: int = 500
    log_every: int = 20
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16: autocast of forward and loss (hmu.precision)

    @classmethod
    def from_params(
        cls, params: dict[str, Any], precision: str | None = None, seed_offset: int = 0
    ) -> TrainConfig:
        """Build from a params dict, rejecting unknown keys and out-of-range values.

        `precision` is params.yaml's `precision.train` (a block of its own, not of the model's
        profile); None keeps the dict's value or the fp32 default. `seed_offset` is params.yaml's
        `train.seed` (hmu.params.train_seed), added to the schedule's seed: one offset gives every
        model of a pipeline run a new training seed, 0 keeps the schedules' own."""
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown training params: {sorted(unknown)}")
        params = {**params, **({} if precision is None else {"precision": precision})}
        if seed_offset:
            params["seed"] = params.get("seed", cls.seed) + seed_offset
        cfg = cls(**{k: (tuple(v) if k == "betas" else v) for k, v in params.items()})
        if cfg.steps <= 0 or cfg.batch_size <= 0 or cfg.lr <= 0:
            raise ValueError(f"steps, batch_size and lr must be positive: {cfg}")
        check_precision(cfg.precision, "training precision")
        return cfg

    def lr_at(self, step: int) -> float:
        """Learning rate at `step`: linear warm-up, then x gamma at each passed milestone."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        decays = sum(step >= m for m in self.milestones)
        return self.lr * warm * self.gamma**decays


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(_step_seed(seed, epoch, 977))
    return torch.randperm(n, generator=gen)


def _batch_indices(n: int, cfg: TrainConfig, step: int, rank: int, world: int) -> torch.Tensor:
    """The indices of this rank's share of the global batch at `step` (drop_last epochs)."""
    per_epoch = n // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"dataset of {n} samples is smaller than one batch ({cfg.batch_size})")
    epoch, within = divmod(step, per_epoch)
    start = within * cfg.batch_size
    batch = _epoch_order(n, cfg.seed, epoch)[start : start + cfg.batch_size]
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} not divisible by world size {world}")
    share = cfg.batch_size // world
    return batch[rank * share : (rank + 1) * share]


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    state = opt.state_dict()["state"]
    return {f"{i}.{k}": torch.as_tensor(v) for i, s in state.items() for k, v in s.items()}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    full = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    full["state"] = state
    opt.load_state_dict(full)


def save_training_state(path: Path, model, opt, step: int, cfg: TrainConfig) -> None:
    """Resumable state: model + optimizer tensors (safetensors) and the step (JSON)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"optim.{k}": v for k, v in _optimizer_tensors(opt).items()})
    save_state(path, tensors, {"step": step, "config": asdict(cfg)})


def _load_training_state(path: Path, model, opt) -> int:
    tensors, meta = load_state(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    _restore_optimizer(opt, {k[6:]: v for k, v in tensors.items() if k.startswith("optim.")})
    return int(meta["step"])


def _to_device(batch, dev: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(dev, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, dev) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, dev) for v in batch)
    return batch


def train(
    model: torch.nn.Module,
    num_samples: int,
    make_batch: Callable[[torch.Tensor, torch.Generator], Any],
    loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict[str, float]]],
    cfg: TrainConfig,
    work_dir: str | Path,
    name: str = "model",
    log_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train `model` in place for cfg.steps steps; return the last logged values.

    work_dir/<name>.state.safetensors holds the resumable state, written every
    cfg.checkpoint_every steps and at the end; if it exists, training resumes from it.
    log_dir (optional) receives DVCLive metrics (one plot per logged value).
    """
    rank, world = _distributed()
    dev = default_device()
    model.to(dev)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.lr,
        betas=cfg.betas,
        weight_decay=cfg.weight_decay,
    )
    state_path = Path(work_dir) / f"{name}.state.safetensors"
    start = _load_training_state(state_path, model, opt) if state_path.exists() else 0
    wrapped = (
        torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev] if dev.type == "cuda" else None
        )
        if world > 1
        else model
    )
    live = _open_live(log_dir, resume=start > 0) if rank == 0 and log_dir else None
    logged: dict[str, float] = {}
    bar = tqdm(
        range(start, cfg.steps),
        desc=name,
        disable=not progress or rank != 0,
        initial=start,
        total=cfg.steps,
        dynamic_ncols=True,
    )
    model.train()
    for step in bar:
        seed = _step_seed(cfg.seed, step, rank)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        batch = _to_device(
            make_batch(_batch_indices(num_samples, cfg, step, rank, world), gen), dev
        )
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(step)
        with autocast(cfg.precision, dev):
            loss, values = loss_fn(wrapped, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        values = {"loss": float(loss.detach()), **values}
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            logged = values
            bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()})
            if live is not None:
                _log_live(live, values, step, cfg.lr_at(step))
        done = step + 1
        if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            save_training_state(state_path, model, opt, done, cfg)
    if live is not None:
        live.end()
    model.eval()
    return logged


def _open_live(log_dir, resume: bool):
    from dvclive import Live

    return Live(str(log_dir), resume=resume, save_dvc_exp=False, dvcyaml=None)


def _log_live(live, values: dict[str, float], step: int, lr: float) -> None:
    live.step = step
    for key, value in values.items():
        if math.isfinite(value):
            live.log_metric(f"train/{key}", value)
    live.log_metric("train/lr", lr)
    live.make_summary()


def describe(cfg: TrainConfig) -> str:
    """One-line JSON of the config, for logs."""
    return json.dumps(asdict(cfg), sort_keys=True)
