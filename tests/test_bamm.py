"""Tests of BAMM's token transformer: layout, hybrid attention, loss and cascaded generation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hmu.models.bamm import BAMMTransformer, hybrid_attention_mask
from hmu.models.checkpoint import load_checked

torch.set_num_threads(1)

OFFICIAL = Path("/work/shared/reference/official_keys.json")
TINY = dict(
    num_tokens=16,
    code_dim=24,
    latent_dim=32,
    ff_size=48,
    num_layers=2,
    num_heads=4,
    dropout=0.1,
    clip_dim=8,
)


def official() -> dict:
    if not OFFICIAL.exists():
        pytest.skip("official_keys.json not available")
    return json.loads(OFFICIAL.read_text())["bamm_mask_transformer"]


def scramble(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw every parameter at O(1) activation scale so small formula slips show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=g) / math.sqrt(param.shape[-1]))
    return model


def sinusoid(length: int, dim: int) -> torch.Tensor:
    pos = np.arange(length)[:, None]
    freq = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    pe = np.zeros((length, dim))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq)
    return torch.tensor(pe, dtype=torch.float32)


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def layer_norm(x, module, eps):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * module.weight + module.bias


def manual_forward(model: BAMMTransformer, ids, cond, allowed) -> torch.Tensor:
    """Reference forward by hand; pe on [cond, tokens]; returns (B, L+1, K+1)."""
    x = model.input_process.poseEmbedding(model.token_emb.weight[ids])  # (B, L, D)
    x = torch.cat([model.cond_emb(cond)[:, None], x], dim=1)
    x = x + sinusoid(x.shape[1], x.shape[2])
    for layer in model.seqTransEncoder.layers:
        attn = layer.self_attn
        heads, (b, s, d) = attn.num_heads, x.shape
        q, k, v = (x @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, s, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        x = layer_norm(x + attn.out_proj(out), layer.norm1, 1e-5)
        x = layer_norm(x + layer.linear2(gelu(layer.linear1(x))), layer.norm2, 1e-5)
    head = model.output_process
    return head.poseFinal(layer_norm(gelu(head.dense(x)), head.LayerNorm, 1e-12))


def brute_force_mask(known: torch.Tensor) -> torch.Tensor:
    """Allowed[b, i, j] for sequence [cond, x_0..]: cond is known; known rows see known columns,
    other rows see j <= i and known columns."""
    batch, length = known.shape
    size = length + 1
    allowed = torch.zeros(batch, size, size, dtype=torch.bool)
    for b in range(batch):
        is_known = [True] + known[b].tolist()
        for i in range(size):
            for j in range(size):
                if is_known[i]:
                    allowed[b, i, j] = is_known[j]
                else:
                    allowed[b, i, j] = j <= i or is_known[j]
    return allowed


def tiny_inputs(batch=3, seq_len=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 16, (batch, seq_len), generator=g)
    cond = torch.randn(batch, 8, generator=g)
    known = torch.rand(batch, seq_len, generator=g) < 0.4
    return ids, cond, known


# ---------------------------------------------------------------- official layout


def test_official_key_layout():
    spec = official()
    ctor = spec["ctor"]
    sizes = ("num_tokens", "code_dim", "latent_dim", "ff_size", "num_layers", "num_heads")
    extra = ("dropout", "clip_dim", "cond_drop_prob")
    model = BAMMTransformer(**{k: ctor[k] for k in sizes + extra})
    assert (model.end_id, model.pad_id, model.mask_id) == (
        ctor["end_id"],
        ctor["pad_id"],
        ctor["mask_id"],
    )
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == spec["keys"]
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(shape, generator=g) for k, shape in spec["keys"].items()}
    model.load_state_dict(sd, strict=True)
    load_checked(model, {**sd, "clip_model.positional_embedding": torch.zeros(2)})
    assert all(torch.equal(v, sd[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="output_process.poseFinal.bias"):
        load_checked(model, {k: v for k, v in sd.items() if k != "output_process.poseFinal.bias"})


# ---------------------------------------------------------------- attention and forward


def test_hybrid_mask_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    known = torch.rand(5, 9, generator=g) < 0.4
    known[0] = False
    known[1] = True
    assert torch.equal(hybrid_attention_mask(known), brute_force_mask(known))
    causal = torch.ones(10, 10, dtype=torch.bool).tril()
    assert torch.equal(hybrid_attention_mask(known[:1])[0], causal)


def test_forward_matches_manual_reference():
    """pe also on the cond token, hybrid mask, post-norm, exact GELU, head eps 1e-12."""
    model = scramble(BAMMTransformer(**TINY)).eval()
    ids, cond, known = tiny_inputs()
    ids[0, -1] = model.end_id
    ids[1, -2:] = model.pad_id
    expected = manual_forward(model, ids, cond, brute_force_mask(known))
    with torch.no_grad():
        got = model.logits(ids, cond, known)
    assert got.shape == (3, 7, TINY["num_tokens"] + 1)
    torch.testing.assert_close(got, expected[:, :-1], atol=1e-5, rtol=1e-4)


def test_information_flow():
    """Output i ignores unknown tokens at >= i but sees every known token."""
    model = BAMMTransformer(**TINY).eval()
    ids, cond, _ = tiny_inputs(batch=1)
    known = torch.zeros_like(ids, dtype=torch.bool)
    known[0, 5] = True
    changed = ids.clone()
    changed[0, 3] = (ids[0, 3] + 1) % 16  # unknown token 3
    with torch.no_grad():
        base = model.logits(ids, cond, known)
        moved = model.logits(changed, cond, known)
        torch.testing.assert_close(base[:, :4], moved[:, :4])
        assert not torch.allclose(base[:, 4], moved[:, 4])
        changed = ids.clone()
        changed[0, 5] = (ids[0, 5] + 1) % 16  # known token 5 is seen from position 0
        assert not torch.allclose(base[:, 0], model.logits(changed, cond, known)[:, 0])


def test_guided_logits_and_unconditional():
    model = BAMMTransformer(**TINY).eval()
    ids, cond, known = tiny_inputs()
    with torch.no_grad():
        cond_logits = model.logits(ids, cond, known)
        uncond = model.logits(ids, torch.zeros_like(cond), known)
        assert torch.equal(model.guided_logits(ids, cond, known, cond_scale=1), cond_logits)
        scaled = model.guided_logits(ids, cond, known, cond_scale=2.5)
        model.cond_emb.weight.normal_()
        torch.testing.assert_close(model.logits(ids, torch.zeros_like(cond), known), uncond)
    torch.testing.assert_close(scaled, uncond + 2.5 * (cond_logits - uncond), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- training


def test_corrupt_targets_and_statistics():
    model = BAMMTransformer(**TINY)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 16, (4, 6), generator=g)
    lengths = torch.tensor([6, 1, 3, 4])
    share_known, corrupt_rates = [], []
    for _ in range(400):
        inputs, target, known = model.corrupt(ids, lengths, g)
        assert target.shape == (4, 7)
        for b, n in enumerate(lengths.tolist()):
            assert torch.equal(target[b, :n], ids[b, :n])
            assert target[b, n] == model.end_id and (target[b, n + 1 :] == model.pad_id).all()
            assert not known[b, n + 1 :].any()
            assert torch.equal(inputs[b, n:], target[b, n:])  # end and pad never corrupted
        share_known.append(known.any().item())
        corrupt_rates.append((inputs != target).float().sum().item() / lengths.sum().item())
    assert 0.38 < np.mean(share_known) < 0.62  # known tokens in about half of the batches
    assert 0.18 < np.mean(corrupt_rates) * 16 / 15 < 0.32  # p ~ U(0, 0.5) -> mean 0.25


def test_loss_is_per_sample_mean_ce():
    model = BAMMTransformer(**TINY).eval()
    ids, cond, _ = tiny_inputs(seq_len=6)
    lengths = torch.tensor([6, 2, 4])
    ce, acc = model.loss(ids, cond, lengths, generator=torch.Generator().manual_seed(7))
    inputs, target, known = model.corrupt(ids, lengths, torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = model.logits(inputs, cond, known)
    expected, hits, count = 0.0, 0, 0
    for b, n in enumerate(lengths.tolist()):
        log_probs = logits[b, : n + 1].log_softmax(-1)
        expected += -log_probs[torch.arange(n + 1), target[b, : n + 1]].mean() / 3
        hits += (logits[b, : n + 1].argmax(-1) == target[b, : n + 1]).sum().item()
        count += n + 1
    torch.testing.assert_close(ce.detach(), torch.as_tensor(expected).float())
    assert abs(acc.item() - hits / count) < 1e-6
    model.train()
    ce, _ = model.loss(ids, cond, lengths)
    ce.backward()
    assert model.token_emb.weight.grad is not None
    with pytest.raises(ValueError, match="ids"):
        model.loss(ids.masked_fill(ids == ids[0, 0], model.end_id), cond, lengths)


# ---------------------------------------------------------------- generation


def test_generate_deterministic_lengths_and_padding():
    model = BAMMTransformer(**TINY)
    _, cond, _ = tiny_inputs()
    lengths = torch.tensor([5, 2, 3])

    def run(seed, given=lengths):
        return model.generate(cond, given, generator=torch.Generator().manual_seed(seed))

    ids, out_lengths = run(0)
    assert ids.shape == (3, 5) and torch.equal(out_lengths, lengths)
    assert torch.equal(ids, run(0)[0]) and not torch.equal(ids, run(1)[0])
    valid = torch.arange(5)[None] < lengths[:, None]
    assert (ids[~valid] == -1).all() and ((ids[valid] >= 0) & (ids[valid] < 16)).all()

    free, free_lengths = model.generate(cond, max_len=6, generator=torch.Generator().manual_seed(0))
    assert free_lengths.min() >= 1 and free_lengths.max() <= 6
    assert free.shape == (3, int(free_lengths.max()))
    valid = torch.arange(free.shape[1])[None] < free_lengths[:, None]
    assert (free[~valid] == -1).all() and ((free[valid] >= 0) & (free[valid] < 16)).all()
    assert model.training  # mode restored


def test_refine_keeps_known_and_ignores_remasked_values():
    """Pass 2 keeps every known token; re-masked tokens are regenerated without being seen."""
    model = scramble(BAMMTransformer(**TINY)).eval()
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 16, (3, 6), generator=g)
    lengths = torch.tensor([6, 3, 5])
    remask = (torch.rand(3, 6, generator=g) < 0.5) & (torch.arange(6)[None] < lengths[:, None])
    remask[:, 0] = True
    cond = torch.randn(3, 8, generator=g)

    def refine(values):
        seen = []

        def argmax(logits):
            seen.append(logits)
            return logits.argmax(-1)

        with torch.no_grad():
            return model._refine(values, lengths, remask, cond, 3.0, argmax), seen

    out, seen = refine(tokens)
    again, seen_again = refine(tokens.masked_fill(remask, 7))
    kept = ~remask & (torch.arange(6)[None] < lengths[:, None])
    assert torch.equal(out[kept], tokens[kept])
    assert torch.equal(out[remask], again[remask])
    assert ((out[remask] >= 0) & (out[remask] < 16)).all()
    assert len(seen) == int(remask.any(0).sum())
    torch.testing.assert_close(torch.stack(seen), torch.stack(seen_again))


def test_cached_passes_match_full_forwards():
    """Both passes use a key/value cache; each step must see the logits of a full forward."""
    model = scramble(BAMMTransformer(**TINY), seed=3).eval()
    g = torch.Generator().manual_seed(2)
    cond = torch.randn(4, 8, generator=g)
    lengths = torch.tensor([7, 2, 5, 4])
    remask = (torch.rand(4, 7, generator=g) < 0.5) & (torch.arange(7)[None] < lengths[:, None])
    remask[0, 0] = True

    def recorder():
        seen = []

        def argmax(logits):
            seen.append(logits.clone())
            return logits.argmax(-1)

        return seen, argmax

    with torch.no_grad():
        for scale in (1.0, 3.0):
            seen, argmax = recorder()
            tokens, _ = model._first_pass(cond, lengths, 7, scale, argmax)
            for k, logits in enumerate(seen):  # pass 1: causal, only the prefix counts
                prefix = tokens[:, :k]  # zeros past each length, so compare rows within it
                no_known = torch.zeros_like(prefix, dtype=torch.bool)
                expected = model._guided_all(prefix, cond, no_known, scale)[:, k, :16]
                inside = k < lengths
                torch.testing.assert_close(logits[inside], expected[inside], atol=1e-5, rtol=1e-4)

            seen, argmax = recorder()
            out = model._refine(tokens, lengths, remask, cond, scale, argmax)
            ids = F.pad(tokens, (0, 1), value=model.pad_id)
            ids[torch.arange(7 + 1)[None] > lengths[:, None]] = model.pad_id
            ids = ids.scatter(1, lengths[:, None], model.end_id)
            known = (ids != model.pad_id) & ~F.pad(remask, (0, 1), value=False)
            steps = torch.nonzero(remask.any(0)).flatten().tolist()
            assert len(seen) == len(steps)
            for k, logits in zip(steps, seen, strict=True):
                expected = model.guided_logits(ids, cond, known, cond_scale=scale)[:, k, :16]
                torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-4)
                ids[:, k] = torch.where(remask[:, k], out[:, k], ids[:, k])
            assert torch.equal(ids[:, :7], out)


def test_overfit_reproduces_sequences_and_lengths():
    torch.manual_seed(0)
    size = dict(TINY, code_dim=32, latent_dim=64, ff_size=128, dropout=0.0)
    model = BAMMTransformer(**size)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 16, (3, 8), generator=g)
    lengths = torch.tensor([6, 5, 8])
    cond = torch.eye(8)[:3] * 3
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(300):
        ce, acc = model.loss(codes.repeat(8, 1), cond.repeat(8, 1), lengths.repeat(8), generator=g)
        optimiser.zero_grad()
        ce.backward()
        optimiser.step()
    assert acc > 0.8  # inputs are partly corrupted, so not every next token is predictable
    valid = torch.arange(8)[None] < lengths[:, None]
    for given in (lengths, None):
        ids, out_lengths = model.generate(
            cond,
            given,
            max_len=10,
            cond_scale=1.0,
            refine_cond_scale=1.0,
            temperature=0.5,
            generator=torch.Generator().manual_seed(1),
        )
        assert torch.equal(out_lengths, lengths)
        assert torch.equal(ids[valid], codes[valid])
