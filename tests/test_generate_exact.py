"""fp32 generation stays token-exact: recorded tokens of the pre-optimisation code, and an
independent step-by-step reference of MoMask's decoding, both under the same seeded noise.

tests/data/generate_tokens.json holds the tokens that the implementation before the speed work
(commit 398ef06) produced for the tiny models below; re-record only when the sampling semantics
change on purpose: `python tests/test_generate_exact.py --record`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from hmu.models.bamm import BAMMTransformer
from hmu.models.momask import MaskTransformer, ResidualTransformer
from hmu.models.transformer_common import Sampling

torch.set_num_threads(1)

FIXTURE = Path(__file__).parent / "data" / "generate_tokens.json"
SIZES = dict(code_dim=24, latent_dim=32, ff_size=48, num_layers=2, num_heads=4, clip_dim=8)
K = 16  # codes


def scrambled(cls, seed: int, **extra) -> torch.nn.Module:
    """A tiny model whose parameters are N(0, 1/fan_in) draws of a seeded generator (O(1)
    activations, so logits are spread and small numeric slips change tokens)."""
    model = cls(num_tokens=K, dropout=0.0, **SIZES, **extra)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=g) / math.sqrt(param.shape[-1]))
    return model.eval()


def inputs(batch: int = 5, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, SIZES["clip_dim"], generator=g) * 2
    lengths = torch.tensor([9, 4, 7, 1, 9][:batch])
    return cond, lengths


def momask_tokens() -> dict[str, list]:
    """Base and residual tokens of MoMask at two guidance settings (topk 0.75 keeps 4 codes)."""
    mask = scrambled(MaskTransformer, 0)
    residual = scrambled(ResidualTransformer, 1, num_quantizers=4)
    cond, lengths = inputs()
    out = {}
    for scale, topk in ((4.0, 0.75), (1.0, 0.0)):
        g = torch.Generator().manual_seed(11)
        sampling = Sampling(timesteps=5, cond_scale=scale, topk=topk)
        base, _ = mask.generate(cond, lengths, sampling, g)
        codes = residual.generate(
            base, cond, lengths, cond_scale=scale + 1, topk_filter_thres=topk, generator=g
        )
        out[f"momask_scale{scale:g}_topk{topk:g}"] = codes.tolist()
    return out


def bamm_cached_tokens() -> dict[str, list]:
    """BAMM's cached two-pass variant with given and predicted lengths, with and without top-k."""
    model = scrambled(BAMMTransformer, 2)
    cond, lengths = inputs()
    out = {}
    for given in (lengths, None):
        for topk in (0.75, None):
            g = torch.Generator().manual_seed(13)
            sampling = Sampling(max_len=9, topk=topk, refine="cached")
            ids, out_lengths = model.generate(cond, given, sampling, g)
            name = f"bamm_cached_{'given' if given is not None else 'free'}_topk{topk}"
            out[name] = [ids.tolist(), out_lengths.tolist()]
    return out


def record() -> None:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    tokens = {**momask_tokens(), **bamm_cached_tokens()}
    FIXTURE.write_text(json.dumps(tokens, indent=None) + "\n")
    print(f"wrote {FIXTURE}")


# ---------------------------------------------------------------- tests


def recorded(prefix: str) -> dict[str, list]:
    return {k: v for k, v in json.loads(FIXTURE.read_text()).items() if k.startswith(prefix)}


def test_momask_tokens_equal_recorded_ones():
    expected = recorded("momask")
    assert momask_tokens() == expected and len(expected) == 2


def test_bamm_cached_tokens_equal_recorded_ones():
    expected = recorded("bamm_cached")
    assert bamm_cached_tokens() == expected and len(expected) == 4


if __name__ == "__main__" and "--record" in sys.argv:
    record()
