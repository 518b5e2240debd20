"""fp32 generation stays token-exact: recorded tokens, and an independent step-by-step run of
upstream MoMask's decoding (momask-codes `MaskTransformer.generate`,
`ResidualTransformer.generate`), both under the same seeded noise.

tests/data/generate_tokens.json holds tokens of the tiny models below. The base-layer and BAMM
cached-variant tokens are those of the implementation before the speed work (commit 398ef06);
the residual layers were re-recorded when the residual transformer began to sample over all
K + 1 classes as upstream does (before, it left out the pad class, which shifted every later
noise draw). Re-record only when sampling semantics change on purpose:
`python tests/test_generate_exact.py --record`.
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


def gumbel_argmax(logits: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """argmax(logits + Gumbel noise) with uniforms of the logits' shape (upstream's formula)."""
    uniform = torch.rand(logits.shape, generator=g)
    return (logits - torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))).argmax(-1)


def keep_top(logits: torch.Tensor, thres: float) -> torch.Tensor:
    """Upstream's top_k: the ceil((1 - thres) * classes) largest logits, -inf elsewhere."""
    values, index = logits.topk(math.ceil((1 - thres) * logits.shape[-1]), dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, index, values)


@torch.no_grad()
def upstream_momask(mask, residual, cond, lengths, steps, scale, res_scale, topk, g):
    """Upstream's two generate functions, literally: separate conditional and unconditional
    forwards, residual logits over all K + 1 classes, history summed layer by layer."""
    padding = torch.arange(int(lengths.max()))[None] >= lengths[:, None]
    ids = torch.where(padding, mask.pad_id, mask.mask_id)
    scores = torch.where(padding, 1e5, 0.0)
    zeros = torch.zeros_like(cond)
    for t in torch.linspace(0, 1, steps):
        count = torch.round(torch.cos(t * math.pi / 2) * lengths).clamp(min=1)
        is_mask = scores.argsort(dim=1, stable=True).argsort(dim=1) < count[:, None]
        ids = torch.where(is_mask, mask.mask_id, ids)
        cond_logits, aux = mask.logits(ids, cond, padding), mask.logits(ids, zeros, padding)
        logits = aux + (cond_logits - aux) * scale
        sampled = gumbel_argmax(keep_top(logits, topk), g)
        ids = torch.where(is_mask, sampled, ids)
        scores = logits.softmax(-1).gather(2, sampled[..., None])[..., 0].masked_fill(~is_mask, 1e5)
    motion = torch.where(padding, residual.pad_id, ids)
    layers, history = [motion], 0
    for j in range(1, residual.num_quantizers):
        history = history + residual.token_embed_weight[j - 1][motion]
        layer = torch.full((len(cond),), j)
        cond_logits = residual._forward(history, layer, cond, padding)
        aux = residual._forward(history, layer, zeros, padding)
        logits = aux + (cond_logits - aux) * res_scale
        motion = torch.where(padding, residual.pad_id, gumbel_argmax(keep_top(logits, topk), g))
        layers.append(motion)
    codes = torch.stack(layers, dim=-1)
    return torch.where(codes == residual.pad_id, -1, codes)


def test_momask_generation_equals_upstream_reference():
    mask = scrambled(MaskTransformer, 0)
    residual = scrambled(ResidualTransformer, 1, num_quantizers=4)
    cond, lengths = inputs()
    ours_g, ref_g = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    base, _ = mask.generate(cond, lengths, Sampling(timesteps=6, topk=0.5), ours_g)
    codes = residual.generate(base, cond, lengths, 3.0, 1.0, 0.5, ours_g)
    expected = upstream_momask(mask, residual, cond, lengths, 6, 4.0, 3.0, 0.5, ref_g)
    assert torch.equal(codes, expected)
    assert torch.equal(torch.rand(3, generator=ours_g), torch.rand(3, generator=ref_g))
    valid = torch.arange(codes.shape[1])[None] < lengths[:, None]
    assert (codes[valid][:, 1:] == -1).any()  # the pad class was drawn inside a motion


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
