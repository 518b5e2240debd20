"""Training throughput of every generator model at the paper's sizes, on random data.

Trains the RVQ-VAE, MoMask's masked transformer, the residual transformer and BAMM's
transformer for --steps steps each through the project's one training loop (CUDA when
available, else CPU) and prints steps/s and samples/s per model, with the torch/CUDA versions.
Random data has the real shapes: 64-frame windows of 263-d features for the VQ-VAE (batch 256),
49 tokens x 6 layers of 512 codes with 512-d text features for the transformers (batch 64).

    python scripts/gpu_check.py [--steps 300] [--warmup 5] [--batch-size N] [--models vq,bamm]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hmu.data.dataset import TokenTable  # noqa: E402
from hmu.models.checkpoint import default_device  # noqa: E402
from hmu.models.rvq import PAPER_CONFIG  # noqa: E402
from hmu.train.generators import TokenData, train_residual, train_transformer  # noqa: E402
from hmu.train.loop import TrainConfig  # noqa: E402
from hmu.train.vq import train_vq  # noqa: E402

MODELS = ("vq", "momask", "res", "bamm")
BATCH = {"vq": 256, "momask": 64, "res": 64, "bamm": 64}  # upstream batch sizes
MOTIONS, TOKENS, LAYERS, CODES, TEXT_DIM, WINDOW = 2048, 49, 6, 512, 512, 64


def random_tokens(rng: np.random.Generator) -> TokenData:
    """Token table, lengths, one caption per motion and text features, all random."""
    n_tokens = rng.integers(10, TOKENS + 1, MOTIONS)
    tokens = rng.integers(0, CODES, (MOTIONS, TOKENS, LAYERS)).astype(np.int16)
    tokens[np.arange(TOKENS)[None, :] >= n_tokens[:, None]] = -1
    text = rng.standard_normal((MOTIONS, TEXT_DIM)).astype(np.float32)
    captions = [np.array([i]) for i in range(MOTIONS)]
    return TokenData(TokenTable(tokens, n_tokens, CODES), np.arange(MOTIONS), captions, text)


def trainer(name: str, rng: np.random.Generator):
    """train(cfg, work_dir) -> model for one model at the paper sizes on random data."""
    if name == "vq":
        frames = rng.standard_normal((MOTIONS * 100, 263)).astype(np.float32)
        offsets, lengths = np.arange(MOTIONS) * 100, np.full(MOTIONS, 100)
        return lambda cfg, work: train_vq(
            frames, offsets, lengths, PAPER_CONFIG, cfg, WINDOW, work, progress=False
        )
    data = random_tokens(rng)
    sizes = {"num_tokens": CODES, "clip_dim": TEXT_DIM}  # other sizes: constructor defaults
    if name == "res":
        sizes["num_quantizers"] = LAYERS
        return lambda cfg, work: train_residual(data, sizes, cfg, work, progress=False)
    return lambda cfg, work: train_transformer(name, data, sizes, cfg, work, progress=False)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(name: str, steps: int, warmup: int, batch_size: int | None) -> dict:
    """Train `warmup` steps (untimed, fresh run), then `steps` steps timed."""
    batch = batch_size or BATCH[name]
    run = trainer(name, np.random.default_rng(0))
    never = 10**9  # no checkpoint inside the timed steps
    if warmup:
        with tempfile.TemporaryDirectory() as work:
            run(TrainConfig(steps=warmup, batch_size=batch, checkpoint_every=never), work)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        model = run(TrainConfig(steps=steps, batch_size=batch, checkpoint_every=never), work)
        synchronize()
        seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters()) / 1e6
    memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return {
        "model": name,
        "params_M": params,
        "batch": batch,
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "samples_per_s": steps * batch / seconds,
        "peak_GiB": memory,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (0: none)")
    parser.add_argument("--batch-size", type=int, default=None, help="override every batch size")
    parser.add_argument("--models", default=",".join(MODELS), help=f"subset of {MODELS}")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown or args.steps < 1:
        parser.error(f"unknown models {unknown}" if unknown else "--steps must be >= 1")
    dev = default_device()
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none"
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {dev} ({gpu}), "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"{'model':8} {'params':>8} {'batch':>6} {'steps':>6} {'seconds':>8} "
        f"{'steps/s':>8} {'samples/s':>10} {'peak GiB':>9}"
    )
    for name in names:
        r = measure(name, args.steps, args.warmup, args.batch_size)
        print(
            f"{r['model']:8} {r['params_M']:7.1f}M {r['batch']:6d} {r['steps']:6d} "
            f"{r['seconds']:8.1f} {r['steps_per_s']:8.2f} {r['samples_per_s']:10.1f} "
            f"{r['peak_GiB']:9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
