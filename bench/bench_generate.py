"""Time batched generation (base-layer decoding, residual layers, VQ decoding) per model.

Uses the trained models of the current workspace (run `dvc repro` first) and prints the best
wall time for one batch of prompts with ground-truth-like lengths, per model.
Run: python bench/bench_generate.py [--dataset humanml3d] [--batch 96] [--repeats 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import best_time

from hmu.generate import load_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="humanml3d")
    parser.add_argument("--method", default="base")
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = [f"a person kicks forward with the right leg, take {i}" for i in range(args.batch)]
    lengths = np.random.default_rng(0).integers(40, 197, size=args.batch)
    for model in ("momask", "bamm"):
        generate = load_generator(args.dataset, model, args.method, seed=0)
        generate(texts[:2], lengths[:2])  # warm-up: text encoder, allocator
        seconds = best_time(lambda g=generate: g(texts, lengths), args.repeats)
        print(
            f"{model}: {seconds:.2f} s for {args.batch} motions "
            f"({args.batch / seconds:.0f} motions/s, {args.threads} threads)"
        )


if __name__ == "__main__":
    main()
