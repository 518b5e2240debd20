"""Side by side: HMU against the official MoMask / BAMM code on equal weights, inputs and noise.

Builds random paper-size weights (paper_models.py), saves them as official checkpoints, loads
them into both sides (HMU through hmu.models.official), runs the paper's evaluation batch
(32 motions, guidance 4, residual guidance 5, top-k 0.9, decode; MoMask: 10 steps with given
lengths; BAMM: predicted lengths, refinement guidance 3) with the same text features and the
same noise, checks that the tokens are equal, then times both sides in turn (min and median of
the repeats) and prints each side's FLOP count per motion against the measured matmul peak.

Upstream code comes from checkouts the user names; nothing is vendored or downloaded:

    python bench/bench_side_by_side.py --momask ~/src/momask-codes --bamm ~/src/BAMM

(--device cuda on a GPU; --threads 1 --clock cpu for CPU time on a shared machine.)

Its forward passes need what its own requirements name (torch, numpy, einops). CLIP is stubbed:
both sides get the same precomputed text features, so neither runs a text encoder. BAMM's
VQ-VAE allocates its codebooks with `.cuda()`; on a CPU that call is a no-op while it is built.

Shared noise: HMU samples argmax(logits + Gumbel noise) with uniforms from a seeded generator,
drawn in the logits' row-major order. Upstream's residual transformer does the same with
uniforms from the global RNG (seeded equally), but fills them in the memory order of a permuted
view, and its base models sample with torch.distributions.Categorical(softmax(logits)). In the
upstream transformer module only, the loader replaces `gumbel_sample` by the same formula with
row-major uniforms, `F.softmax` by one that remembers its input on the output, and
`Categorical` by a Gumbel-argmax over those logits: the same draws, made from the same numbers.
BAMM ranks its re-masked half with an unstable argsort of tied zero scores; its order of ties
is the sort's (on CPU torch 2.x, for 49 tokens, positions 1 and 25..47). HMU fixes the
tie-break to position order, and this script runs upstream under a stable argsort to compare
the same algorithm.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import types
from argparse import Namespace
from pathlib import Path

import torch
import torch.nn.functional as torch_functional
from paper_models import (
    count_flops,
    matmul_peak,
    paper_inputs,
    paper_models,
    save_official,
    summary,
    timed,
)

from hmu.allocator import keep_freed_memory
from hmu.models import official
from hmu.models.transformer_common import Sampling
from hmu.precision import autocast

UPSTREAM_PACKAGES = ("models", "utils", "common", "data", "options", "motion_loaders", "exit")
KINDS = {"vq": "rvq", "mask": "mask_transformer", "res": "residual_transformer",
         "bamm": "bamm_transformer"}  # fmt: skip
RES_SCALE, TOPK = 5.0, 0.9


# ---------------------------------------------------------------- loading upstream code


def _clip_stub() -> types.ModuleType:
    """A `clip` module whose load() returns an empty model (text features are given)."""
    clip = types.ModuleType("clip")
    clip.load = lambda *args, **kwargs: (torch.nn.Module(), None)
    clip.tokenize = lambda *args, **kwargs: None
    clip.model = types.SimpleNamespace(convert_weights=lambda model: None)
    return clip


@contextlib.contextmanager
def _upstream_imports(root: Path):
    """Import from an upstream checkout: root first on sys.path and a stub `clip`; afterwards
    its top-level packages are forgotten so another checkout can import its own."""
    saved = {name: sys.modules.get(name) for name in ("clip",)}
    sys.modules["clip"] = _clip_stub()
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for name in list(sys.modules):
            if name.split(".")[0] in UPSTREAM_PACKAGES:
                del sys.modules[name]
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _TaggingFunctional:
    """torch.nn.functional, except that softmax(x) remembers x as `.source_logits`."""

    def __getattr__(self, name):
        return getattr(torch_functional, name)

    @staticmethod
    def softmax(logits, dim=None, **kwargs):
        probs = torch_functional.softmax(logits, dim=dim, **kwargs)
        probs.source_logits = logits
        return probs


class _GumbelCategorical:
    """Categorical(probs).sample() as HMU draws it: argmax(logits + Gumbel(uniforms)) over the
    last dim, uniforms of the logits' shape from the global RNG."""

    def __init__(self, probs):
        self.logits = probs.source_logits

    def sample(self):
        uniform = torch.rand(self.logits.shape, device=self.logits.device)
        gumbel = -torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))
        return (self.logits + gumbel).argmax(dim=-1)


def _gumbel_sample(logits, temperature=1.0, dim=1):
    """Upstream's tools.gumbel_sample with its uniforms drawn in the logits' logical (row-major)
    order, as HMU draws them (upstream fills zeros_like(logits), i.e. in memory order, and its
    logits are a permuted view)."""
    uniform = torch.rand(logits.shape, device=logits.device)
    gumbel = -torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))
    return (logits / max(temperature, 1e-10) + gumbel).argmax(dim=dim)


def _load_upstream(root: Path) -> types.SimpleNamespace:
    """The upstream transformer and VQ-VAE modules of a checkout, with shared noise."""
    if not (root / "models" / "mask_transformer" / "transformer.py").is_file():
        raise SystemExit(f"{root}: not a MoMask/BAMM checkout (models/mask_transformer missing)")
    with _upstream_imports(root), contextlib.redirect_stdout(io.StringIO()):
        from models.mask_transformer import transformer
        from models.vq import model as vq
    transformer.F = _TaggingFunctional()
    transformer.Categorical = _GumbelCategorical
    transformer.gumbel_sample = _gumbel_sample
    return types.SimpleNamespace(transformer=transformer, vq=vq)


@contextlib.contextmanager
def _cuda_is_noop():
    """Tensor.cuda() returns the tensor (BAMM's quantizer builds its codebook on CUDA)."""
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


@contextlib.contextmanager
def _stable_argsort():
    """Tensor.argsort with stable=True (the fixed tie-break of the comparison)."""
    original = torch.Tensor.argsort

    def stable(self, dim=-1, descending=False, stable=False):
        return original(self, dim=dim, descending=descending, stable=True)

    torch.Tensor.argsort = stable
    try:
        yield
    finally:
        torch.Tensor.argsort = original


def upstream_models(code, paths: dict[str, Path], base: str, device) -> dict:
    """Upstream modules at paper size with the checkpoints of `paths` loaded key-for-key."""
    opt = Namespace(num_tokens=512, num_quantizers=6, shared_codebook=False, mu=0.99,
                    quantize_dropout_prob=0.2, trans="official", device=device)  # fmt: skip
    body = dict(code_dim=512, cond_mode="text", latent_dim=384, ff_size=1024, num_layers=8,
                num_heads=6, dropout=0.2, clip_dim=512, clip_version="ViT-B/32",
                opt=opt)  # fmt: skip
    transformer = code.transformer
    with _cuda_is_noop(), contextlib.redirect_stdout(io.StringIO()):
        models = {
            "vq": code.vq.RVQVAE(opt, 263, 512, 512, 512, 2, 2, 512, 3, 3, "relu", None),
            base: transformer.MaskTransformer(cond_drop_prob=0.1, **body),
            "res": transformer.ResidualTransformer(
                cond_drop_prob=0.2, shared_codebook=False, share_weight=True, **body
            ),
        }
    for name, model in models.items():
        state = torch.load(paths[name], map_location="cpu", weights_only=True)
        model.load_state_dict(next(iter(state.values())), strict=True)
        model.encode_text = lambda features: features  # the text features are given
        model.to(device).eval()
    return models


# ---------------------------------------------------------------- the two pipelines


@torch.no_grad()
def run_upstream(models, base: str, cond, lengths, seed: int):
    """Upstream's evaluation pipeline -> (codes (B, N, 6), motions (B, 4N, 263))."""
    torch.manual_seed(seed)
    trans, res = models[base], models["res"]
    with _stable_argsort():
        if base == "mask":
            ids = trans.generate(cond, lengths, 10, 4, temperature=1, topk_filter_thres=TOPK)
        else:
            ids, _ = trans.generate(cond, lengths, 10, 4, is_predict_len=True)
            ids, lengths = trans.pad_when_end(ids)
            ids = ids[:, : int(lengths.max())]
        codes = res.generate(
            ids, cond, lengths, temperature=1, topk_filter_thres=TOPK, cond_scale=RES_SCALE
        )
    return codes, models["vq"].forward_decoder(codes)


@torch.no_grad()
def run_hmu(models, base: str, cond, lengths, seed: int, precision: str = "fp32"):
    """HMU's pipeline (the steps of T2MGenerator) -> (codes (B, N, 6), motions (B, 4N, 263))."""
    generator = torch.Generator(cond.device).manual_seed(seed)
    given = lengths if base == "mask" else None
    with autocast(precision, cond.device):
        ids, lengths = models[base].generate(cond, given, Sampling(topk=TOPK), generator)
        codes = models["res"].generate(ids, cond, lengths, RES_SCALE, 1.0, TOPK, generator)
    return codes, models["vq"].forward_decoder(codes)


# ---------------------------------------------------------------- report


def compare(name: str, ours, theirs) -> bool:
    """Print whether the codes are equal and how far the motions are apart."""
    (codes, motion), (codes_up, motion_up) = ours, theirs
    same_shape = codes.shape == codes_up.shape
    equal = same_shape and torch.equal(codes, codes_up)
    mismatched = int((codes != codes_up).sum()) if same_shape else codes.numel()
    gap = float((motion - motion_up).abs().max()) if motion.shape == motion_up.shape else "n/a"
    print(f"{name}: tokens equal: {equal} ({mismatched} of {codes.numel()} differ); "
          f"motions max |diff| {gap}")  # fmt: skip
    return equal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--momask", type=Path, help="a momask-codes checkout")
    parser.add_argument("--bamm", type=Path, help="a BAMM checkout")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-bf16", action="store_true", help="skip HMU's bf16 timing")
    parser.add_argument(
        "--glibc-default", action="store_true",
        help="leave malloc's thresholds alone (HMU's CLI keeps freed memory: hmu.allocator)",
    )  # fmt: skip
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="cpu: CPU time of the process, steadier on a shared machine (use --threads 1)",
    )  # fmt: skip
    args = parser.parse_args()
    if not (args.momask or args.bamm):
        parser.error("name at least one upstream checkout: --momask and/or --bamm")
    torch.set_num_threads(args.threads)
    kept = not args.glibc_default and keep_freed_memory()  # as `hmu generate` does
    device = torch.device(args.device)
    args.clock = time.process_time if args.clock == "cpu" else time.perf_counter
    peaks = [matmul_peak(clock=args.clock) for _ in range(3)]  # side_by_side adds more
    print(f"device {device}, {args.threads} threads, {args.clock.__name__}, freed memory "
          f"{'kept' if kept else 'returned (glibc default)'}; fp32 matmul peak "
          f"{max(peaks) / 1e9:.0f} GFLOP/s (best 2048^3 product)")  # fmt: skip

    weights = paper_models(args.seed)
    cond, lengths = (t.to(device) for t in paper_inputs(args.seed, args.batch))
    with tempfile.TemporaryDirectory() as folder:
        paths = save_official(weights, Path(folder))
        ours = {name: official.load(path, KINDS[name]).to(device) for name, path in paths.items()}
        for base, root in (("mask", args.momask), ("bamm", args.bamm)):
            if root is not None:
                theirs = upstream_models(_load_upstream(root.resolve()), paths, base, device)
                side_by_side(base, ours, theirs, cond, lengths, args, peaks)


def side_by_side(base, ours, theirs, cond, lengths, args, peaks: list[float]) -> None:
    """Exactness check, then interleaved timings of upstream, HMU fp32 and HMU bf16.

    Every round of repeats measures the matmul peak again (appended to `peaks`), and shares
    are taken against the highest peak seen: a machine whose speed drifts during the run then
    lowers the share instead of inflating it."""
    title = "MoMask (given lengths)" if base == "mask" else "BAMM (predicted lengths)"
    print(f"\n== {title}, {len(cond)} motions")
    compare("HMU fp32 vs upstream", run_hmu(ours, base, cond, lengths, args.seed),
            run_upstream(theirs, base, cond, lengths, args.seed))  # fmt: skip
    runs = {
        "upstream fp32": lambda: run_upstream(theirs, base, cond, lengths, args.seed),
        "HMU fp32": lambda: run_hmu(ours, base, cond, lengths, args.seed),
    }
    if not args.no_bf16:
        runs["HMU bf16"] = lambda: run_hmu(ours, base, cond, lengths, args.seed, "bf16")
    flops = {name: count_flops(run) / len(cond) for name, run in runs.items()}
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name] += timed(run, 1, args.clock)
        peaks.append(matmul_peak(clock=args.clock))
    peak = max(peaks)
    print(f"fp32 matmul peak over the run: {peak / 1e9:.0f} GFLOP/s (the highest of "
          f"{len(peaks)}, lowest {min(peaks) / 1e9:.0f}); shares against it")  # fmt: skip
    reference = min(times["upstream fp32"])
    for name, seconds in times.items():
        best, median = summary(seconds)
        rate = flops[name] * len(cond) / best
        print(f"{name:14s} min {best:6.2f} s  median {median:6.2f} s  "
              f"x{reference / best:4.2f} vs upstream  {flops[name] / 1e9:5.1f} GFLOP/motion  "
              f"{rate / 1e9:5.0f} GFLOP/s = {rate / peak:4.0%} of the fp32 peak")  # fmt: skip


if __name__ == "__main__":
    main()
