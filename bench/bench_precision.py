"""fp32 against bf16: one training step of each trained model kind, and paper-size generation.

Training: one step (forward and loss under autocast, backward, AdamW) of the masked
transformer, the residual transformer and the RVQ-VAE at the small profile's sizes (read from
params.yaml) and at paper sizes. Generation: the paper's batch (32 motions; MoMask 10 steps,
CFG 4, residual CFG 5, decode; BAMM with both second passes), HMU only. Prints the best of the
repeats per setting and the bf16 speed-up.
Run: python bench/bench_precision.py [--repeats 3] [--threads 2] [--only train|generate]
[--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from paper_models import TOKENS, count_flops, matmul_peak, paper_inputs, paper_models, timed

from hmu.models.momask import MaskTransformer, ResidualTransformer
from hmu.models.rvq import PAPER_CONFIG, RVQVAE, rvq_loss
from hmu.models.transformer_common import Sampling
from hmu.params import load_params, section
from hmu.precision import autocast

WINDOW = 64  # frames per VQ training sample


def small_sizes() -> tuple[dict, dict, dict]:
    """(masked transformer, residual transformer, RVQ-VAE) sizes of the small profile, read
    from params.yaml, so the figures follow what the pipeline trains."""
    params = load_params()
    vq = dict(PAPER_CONFIG, **section(params, "vq.small.model"))
    trans = dict(section(params, "trans.small.model"), num_tokens=vq["nb_code"])
    res = dict(section(params, "res.small.model"), num_tokens=vq["nb_code"])
    return trans, res, vq


def transformer_step(size: dict, batch: int):
    """A closure running one training step of a MaskTransformer of `size` on random tokens."""
    model = MaskTransformer(**size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.num_tokens, (batch, TOKENS), generator=g)
    cond = torch.randn(batch, model.clip_dim, generator=g)
    lengths = torch.randint(10, TOKENS + 1, (batch,), generator=g)
    return lambda precision: _step(model, opt, precision, lambda: model.loss(ids, cond, lengths)[0])


def vq_step(config: dict, batch: int):
    """A closure running one training step of an RVQ-VAE of `config` on random motion."""
    model = RVQVAE(**config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    motion = torch.randn(batch, WINDOW, config["input_width"])

    def loss():
        recon, commit, _ = model(motion)
        return rvq_loss(recon, motion, commit)

    return lambda precision: _step(model, opt, precision, loss)


def _step(model, opt, precision: str, loss_fn) -> None:
    with autocast(precision, "cpu"):
        loss = loss_fn()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def generation(models, base: str, refine: str = "upstream"):
    """A closure generating the paper batch with HMU's pipeline at a precision."""
    cond, lengths = paper_inputs(0)

    @torch.no_grad()
    def run(precision: str):
        g = torch.Generator().manual_seed(0)
        given = lengths if base == "mask" else None
        with autocast(precision, "cpu"):
            ids, out_lengths = models[base].generate(cond, given, Sampling(refine=refine), g)
            codes = models["res"].generate(ids, cond, out_lengths, 5.0, 1.0, 0.9, g)
        return codes, models["vq"].forward_decoder(codes)

    return run


def compare(name: str, run, repeats: int, clock=None) -> dict[str, float]:
    """Best time of fp32 and bf16 (interleaved repeats after a warm-up) and the speed-up."""
    for precision in ("fp32", "bf16"):
        run(precision)
    times = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision in times:
            times[precision] += timed(lambda p=precision: run(p), 1, clock)
    best = {p: min(t) for p, t in times.items()}
    print(f"{name:44s} fp32 {best['fp32'] * 1e3:9.1f} ms  bf16 {best['bf16'] * 1e3:9.1f} ms  "
          f"x{best['fp32'] / best['bf16']:.2f}", flush=True)  # fmt: skip
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("train", "generate"))
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="cpu: CPU time of the process, steadier on a shared machine (use --threads 1)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    peaks = {p: max(matmul_peak(dtype=d, clock=clock) for _ in range(3)) / 1e9
             for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}  # fmt: skip
    print(f"{args.threads} threads, {clock.__name__}; matmul peak fp32 {peaks['fp32']:.0f} "
          f"GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; best of {args.repeats}")  # fmt: skip
    if args.only != "generate":
        print("-- one training step")
        small_trans, small_res, small_vq = small_sizes()
        steps = {
            "masked transformer, small, batch 64": transformer_step(small_trans, 64),
            "masked transformer, paper, batch 64": transformer_step({}, 64),
            "residual transformer, small, batch 64": residual_step(small_res, 64),
            "residual transformer, paper, batch 64": residual_step({}, 64),
            "RVQ-VAE, small, batch 64 x 64 frames": vq_step(small_vq, 64),
            "RVQ-VAE, paper, batch 32 x 64 frames": vq_step(PAPER_CONFIG, 32),
        }
        for name, step in steps.items():
            compare(name, step, args.repeats, clock)
    if args.only != "train":
        print("-- generation, 32 motions, paper size")
        models = paper_models(0)
        for name, base, refine in (("MoMask", "mask", "upstream"),
                                   ("BAMM, refine=upstream", "bamm", "upstream"),
                                   ("BAMM, refine=cached", "bamm", "cached")):  # fmt: skip
            run = generation(models, base, refine)
            flops = count_flops(lambda r=run: r("fp32"))
            best = compare(f"{name} ({flops / 32e9:.1f} GFLOP/motion)", run, args.repeats, clock)
            print(f"{'':44s} fp32 at {flops / best['fp32'] / 1e9:.0f} GFLOP/s = "
                  f"{flops / best['fp32'] / 1e9 / peaks['fp32']:.0%} of the fp32 peak")  # fmt: skip


def residual_step(size: dict, batch: int):
    """A closure running one training step of a ResidualTransformer of `size` on random codes."""
    model = ResidualTransformer(**size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.num_tokens, (batch, TOKENS, model.num_quantizers), generator=g)
    cond = torch.randn(batch, model.clip_dim, generator=g)
    lengths = torch.randint(10, TOKENS + 1, (batch,), generator=g)
    return lambda precision: _step(model, opt, precision, lambda: model.loss(ids, cond, lengths)[0])


if __name__ == "__main__":
    main()
