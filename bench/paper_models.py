"""Shared pieces of the bench scripts: random paper-size models, FLOP counts, the matmul peak.

Run the bench scripts as `python bench/<script>.py` from the repository root (with PYTHONPATH
set to it), so that `import paper_models` finds this file.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from hmu.models.bamm import BAMMTransformer
from hmu.models.momask import MaskTransformer, ResidualTransformer
from hmu.models.rvq import PAPER_CONFIG, RVQVAE

# the paper's evaluation batch: 32 motions of 49 tokens (196 frames)
BATCH, TOKENS = 32, 49
END_BIAS = 6.0  # added to BAMM's end logit
# upstream's top-level checkpoint keys (official_keys.json)
CHECKPOINT_KEYS = {
    "vq": "vq_model",
    "mask": "t2m_transformer",
    "bamm": "t2m_transformer",
    "res": "res_transformer",
}
_TABLES = (
    "token_emb.weight",
    "token_embed_weight_",
    "embed_proj_shared_weight",
    "output_proj_weight_",
)


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Draw every weight at O(1) activation scale from a seeded generator: matrices and
    convolutions N(0, 1/fan_in), embedding tables N(0, 1/width), biases N(0, 0.1), LayerNorm
    scales 1 + N(0, 0.1), codebooks N(0, 1). Logits then spread over several units, so a
    numeric slip changes sampled tokens instead of hiding in near-uniform distributions."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if name.endswith("position_enc.pe") or not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=g)
            if name.endswith("codebook"):
                tensor.copy_(noise)
            elif tensor.dim() == 1:
                tensor.copy_(noise * 0.1 + (1.0 if "norm" in name.lower() else 0.0))
            elif name.endswith(_TABLES):
                tensor.copy_(noise / tensor.shape[-1] ** 0.5)
            else:
                tensor.copy_(noise / (tensor[0].numel() ** 0.5))
    return module.eval()


def paper_models(seed: int = 0) -> dict[str, torch.nn.Module]:
    """Random paper-size MoMask/BAMM modules: 'vq', 'mask', 'res', 'bamm' (eval mode)."""
    vq = RVQVAE(**PAPER_CONFIG)
    for layer in vq.quantizer.layers:
        layer.initialised = True
    bamm = randomize(BAMMTransformer(), seed + 3)
    with torch.no_grad():  # end the motions at varied lengths (on average after ~25 tokens)
        bamm.output_process.poseFinal.bias[bamm.end_id] += END_BIAS
    return {
        "vq": randomize(vq, seed),
        "mask": randomize(MaskTransformer(), seed + 1),
        "res": randomize(ResidualTransformer(), seed + 2),
        "bamm": bamm,
    }


def save_official(models: dict[str, torch.nn.Module], folder: Path) -> dict[str, Path]:
    """Write each module as an upstream checkpoint ({top-level key: state dict}) -> paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, module in models.items():
        paths[name] = folder / f"{name}.tar"
        torch.save({CHECKPOINT_KEYS[name]: module.state_dict()}, paths[name])
    return paths


def paper_inputs(seed: int = 0, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Text features (B, 512) ~ N(0, 1) and token lengths (B,) spread over 12..49 (max 49)."""
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, 512, generator=g)
    lengths = torch.randint(12, TOKENS + 1, (batch,), generator=g)
    lengths[0] = TOKENS
    return cond, lengths


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """Q K^T and P V of a (B, H, S_q, d) x (B, H, S_k, d) attention, 2 FLOPs per multiply-add."""
    *batch, queries, dim = query
    return 4 * math.prod(batch) * queries * key[-2] * dim


def count_flops(fn) -> int:
    """Floating-point operations of one call of fn: torch's FLOP counter (matmuls, convolutions;
    2 per multiply-add) plus CPU flash attention, which it does not count. Element-wise work
    (norms, activations, sampling) is not counted."""
    attention = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops}
    with FlopCounterMode(display=False, custom_mapping=attention) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(size: int = 2048, repeats: int = 10, dtype=torch.float32, clock=None) -> float:
    """Measured matmul throughput in FLOP/s: the best of `repeats` (size x size) products."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    seconds = min(timed(lambda: a @ b, repeats, clock))
    return 2 * size**3 / seconds


def timed(fn, repeats: int, clock=None) -> list[float]:
    """Times (s) of `repeats` calls of fn on `clock` (default: wall, time.perf_counter).

    time.process_time (CPU time of the process) is steadier on a shared machine, but only with
    one thread: with more, threads waiting for a descheduled sibling spin and count."""
    clock = clock or time.perf_counter
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    """(min, median) of a list of times."""
    return min(times), statistics.median(times)
