"""Time LCR on cached tokens at HumanML3D scale (budget: well under 1 s).

29k motions x 49 tokens x 6 layers, 512 codes of 512 dims, 7.7% of motions in D_f.
Run: python bench/bench_lcr.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from timing import best_time

from hmu.unlearn.lcr import apply_delta, lcr_delta

MOTIONS, TOKENS, LAYERS, CODES, DIM, TOXIC_SHARE = 29_000, 49, 6, 512, 512, 0.077


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, CODES, size=(MOTIONS, TOKENS, LAYERS), dtype=np.int64)
    lengths = rng.integers(10, TOKENS + 1, size=MOTIONS)  # -1 padding after each length
    tokens[np.arange(TOKENS)[None, :] >= lengths[:, None]] = -1
    is_forget = rng.random(MOTIONS) < TOXIC_SHARE
    forget, retain = tokens[is_forget], tokens[~is_forget]
    generator = torch.Generator().manual_seed(0)
    state = {
        f"quantizer.layers.{q}.codebook": torch.randn(CODES, DIM, generator=generator)
        for q in range(LAYERS)
    }
    print(
        f"tokens: {MOTIONS} motions x {TOKENS} x {LAYERS} layers, {CODES} codes; "
        f"|D_f| = {len(forget)}, |D_r| = {len(retain)}"
    )

    for layers in [(0,), tuple(range(LAYERS))]:
        for rule in ("ratio", "union"):

            def run(layers=layers, rule=rule):
                apply_delta(state, lcr_delta(forget, retain, state, r=16, layers=layers, rule=rule))

            seconds = best_time(run, args.repeats)
            print(f"LCR r=16 layers={list(layers)} rule={rule}: {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
