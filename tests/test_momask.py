"""Tests of MoMask's masked/residual transformers, length estimator and shared helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hmu.models.checkpoint import check_state_dict, load_checked
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer, _layer_schedule
from hmu.models.transformer_common import drop_condition, gumbel_sample, top_k_filter

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
CLASSES = {
    "momask_mask_transformer": MaskTransformer,
    "momask_residual_transformer": ResidualTransformer,
}
UPSTREAM_ONLY = {
    "cond_mode",
    "mask_id",
    "pad_id",
    "end_id",
    "shared_codebook",
    "share_weight",
    "trans",
}


def official(name: str) -> dict:
    if not OFFICIAL.exists():
        pytest.skip("official_keys.json not available")
    return json.loads(OFFICIAL.read_text())[name]


def paper_model(name: str) -> torch.nn.Module:
    """Build the module at the ctor sizes listed in official_keys.json; check the id layout."""
    ctor = official(name)["ctor"]
    model = CLASSES[name](**{k: v for k, v in ctor.items() if k not in UPSTREAM_ONLY})
    for key in ("mask_id", "pad_id"):
        if key in ctor:
            assert getattr(model, key) == ctor[key], key
    return model


# ---------------------------------------------------------------- independent reference forward


def sinusoid(length: int, dim: int) -> np.ndarray:
    """pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(same)."""
    pos = np.arange(length)[:, None]
    freq = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    pe = np.zeros((length, dim))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq)
    return pe


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def layer_norm(x, module, eps):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * module.weight + module.bias


def manual_encoder(encoder, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Post-norm encoder by hand: x (B, S, D), allowed (B, S, S) True = may attend."""
    for layer in encoder.layers:
        attn = layer.self_attn
        heads, (b, s, d) = attn.num_heads, x.shape
        q, k, v = (x @ attn.in_proj_weight.T + attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, s, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        x = layer_norm(x + attn.out_proj(out), layer.norm1, 1e-5)
        x = layer_norm(x + layer.linear2(gelu(layer.linear1(x))), layer.norm2, 1e-5)
    return x


def manual_head(head, x):
    return head.poseFinal(layer_norm(gelu(head.dense(x)), head.LayerNorm, 1e-12))


def scramble(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw every parameter at O(1) activation scale so small formula slips show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=g) / math.sqrt(param.shape[-1]))
    return model


def tiny_inputs(batch=3, seq_len=7, num_tokens=16, clip_dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, num_tokens, (batch, seq_len), generator=g)
    cond = torch.randn(batch, clip_dim, generator=g)
    lengths = torch.tensor([seq_len, 3, 5][:batch])
    return ids, cond, lengths


# ---------------------------------------------------------------- official layout


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_official_key_layout(name):
    """state_dict keys and shapes equal upstream's at paper sizes (incl. position_enc.pe)."""
    model = paper_model(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == official(name)["keys"]
    assert "position_enc.pe" in ours


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_random_official_state_dict_loads(name):
    model = paper_model(name)
    g = torch.Generator().manual_seed(1)
    sd = {k: torch.randn(shape, generator=g) for k, shape in official(name)["keys"].items()}
    model.load_state_dict(sd, strict=True)
    load_checked(model, {**sd, "clip_model.token_embedding.weight": torch.zeros(3)})
    for key, value in model.state_dict().items():
        assert torch.equal(value, sd[key]), key


def test_check_state_dict_lists_problems():
    model = MaskTransformer(**TINY)
    sd = dict(model.state_dict())
    sd.pop("cond_emb.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["token_emb.weight"] = torch.zeros(3, 3)
    sd["clip_model.ignored"] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        check_state_dict(model, sd)
    message = str(info.value)
    assert "cond_emb.bias" in message and "missing" in message
    assert "extra.weight" in message and "unexpected" in message
    assert "token_emb.weight" in message and "(3, 3)" in message
    assert "clip_model" not in message
    check_state_dict(model, model.state_dict())  # a matching dict passes


def test_positional_encoding_buffer_is_sinusoid():
    model = MaskTransformer(**TINY)
    pe = model.position_enc.pe
    assert pe.shape == (5000, 1, TINY["latent_dim"])
    np.testing.assert_allclose(pe[:60, 0].numpy(), sinusoid(60, TINY["latent_dim"]), atol=1e-5)


# ---------------------------------------------------------------- masked transformer forward


def test_mask_transformer_matches_manual_forward():
    """pe on motion tokens only, cond token first, key padding, post-norm, GELU, eps 1e-12."""
    model = scramble(MaskTransformer(**TINY)).eval()
    ids, cond, lengths = tiny_inputs()
    ids[0, 2] = model.mask_id
    padding = torch.arange(ids.shape[1])[None] >= lengths[:, None]
    pe = torch.tensor(sinusoid(ids.shape[1], TINY["latent_dim"]), dtype=torch.float32)
    x = model.input_process.poseEmbedding(model.token_emb.weight[ids]) + pe  # (B, N, D)
    sequence = torch.cat([model.cond_emb(cond)[:, None], x], dim=1)
    keys = torch.cat([torch.ones(3, 1, dtype=torch.bool), ~padding], dim=1)  # (B, S)
    allowed = keys[:, None, :].expand(-1, keys.shape[1], -1)
    expected = manual_head(
        model.output_process, manual_encoder(model.seqTransEncoder, sequence, allowed)
    )
    with torch.no_grad():
        got = model.logits(ids, cond, padding)
    assert got.shape == (3, 7, TINY["num_tokens"])
    valid = ~padding
    torch.testing.assert_close(got[valid], expected[:, 1:][valid], atol=1e-5, rtol=1e-4)


def test_padding_positions_do_not_leak():
    model = MaskTransformer(**TINY).eval()
    ids, cond, lengths = tiny_inputs()
    padding = torch.arange(ids.shape[1])[None] >= lengths[:, None]
    other = ids.masked_fill(padding, 5)
    with torch.no_grad():
        a = model.logits(ids, cond, padding)
        b = model.logits(other, cond, padding)
        c = model.logits(ids.masked_fill(padding, -1), cond, padding)  # -1 allowed at padding
    torch.testing.assert_close(a[~padding], b[~padding])
    torch.testing.assert_close(a[~padding], c[~padding])


def test_zero_cond_is_unconditional():
    """cond all zeros gives cond_emb(0) = bias: the weight must not matter."""
    model = MaskTransformer(**TINY).eval()
    ids, cond, _ = tiny_inputs()
    zeros = torch.zeros_like(cond)
    with torch.no_grad():
        before = model.logits(ids, zeros)
        model.cond_emb.weight.normal_()
        after = model.logits(ids, zeros)
        assert not torch.allclose(model.logits(ids, cond), before)
    torch.testing.assert_close(before, after)


def test_guided_logits_formula():
    model = MaskTransformer(**TINY).eval()
    ids, cond, lengths = tiny_inputs()
    padding = torch.arange(ids.shape[1])[None] >= lengths[:, None]
    with torch.no_grad():
        cond_logits = model.logits(ids, cond, padding)
        uncond_logits = model.logits(ids, torch.zeros_like(cond), padding)
        assert torch.equal(model.guided_logits(ids, cond, padding, cond_scale=1), cond_logits)
        scaled = model.guided_logits(ids, cond, padding, cond_scale=3.0)
    expected = uncond_logits + 3.0 * (cond_logits - uncond_logits)
    torch.testing.assert_close(scaled[~padding], expected[~padding], atol=1e-5, rtol=1e-4)


def test_bad_inputs_raise():
    model = MaskTransformer(**TINY)
    ids, cond, lengths = tiny_inputs()
    with pytest.raises(ValueError, match="cond"):
        model.logits(ids, cond[:, :5])
    with pytest.raises(ValueError, match="ids"):
        model.logits(ids + 100, cond)
    with pytest.raises(ValueError, match="lengths"):
        model.loss(ids, cond, torch.tensor([0, 2, 3]))
    with pytest.raises(ValueError, match="lengths"):
        model.loss(ids, cond, torch.tensor([8, 2, 3]))
    with pytest.raises(ValueError, match="ids"):
        model.loss(ids.masked_fill(ids == ids[0, 0], model.mask_id), cond, lengths)


# ---------------------------------------------------------------- masked transformer training


def test_corrupt_statistics():
    model = MaskTransformer(**TINY)
    g = torch.Generator().manual_seed(3)
    batch, seq_len = 3000, 20
    ids = torch.randint(0, 16, (batch, seq_len), generator=g)
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=g)
    lengths[: batch // 2] = seq_len
    valid = torch.arange(seq_len)[None] < lengths[:, None]
    inputs, masked = model.corrupt(ids, valid, g)
    assert not (masked & ~valid).any()
    assert masked[lengths == seq_len].sum(1).min() >= 1
    assert torch.equal(inputs[~masked], ids[~masked])
    u = (np.arange(100000) + 0.5) / 100000  # E over u ~ U(0, 1) of max(1, round(N cos(pi u/2)))
    expected = np.maximum(1, np.round(seq_len * np.cos(np.pi * u / 2))).mean() / seq_len
    assert abs(masked[: batch // 2].float().mean() - expected) < 0.025
    as_mask = (inputs == model.mask_id)[masked].float().mean()
    changed = ((inputs != ids) & (inputs != model.mask_id))[masked].float().mean()
    assert abs(as_mask - 0.9 * 0.88) < 0.01
    assert abs(changed - 0.1 * 15 / 16) < 0.01  # random code differs from the original


def test_loss_is_ce_on_masked_positions():
    model = MaskTransformer(**TINY).eval()  # eval: no dropout, no condition dropout
    ids, cond, lengths = tiny_inputs(seq_len=7)
    valid = torch.arange(7)[None] < lengths[:, None]
    ce, acc = model.loss(ids, cond, lengths, generator=torch.Generator().manual_seed(5))
    inputs, masked = model.corrupt(
        ids.masked_fill(~valid, model.pad_id), valid, torch.Generator().manual_seed(5)
    )
    with torch.no_grad():
        logits = model.logits(inputs, cond, ~valid)
    log_probs = logits.log_softmax(-1).gather(-1, ids[..., None])[..., 0]
    torch.testing.assert_close(ce.detach(), -log_probs[masked].mean())
    expected_acc = (logits.argmax(-1) == ids)[masked].float().mean()
    torch.testing.assert_close(acc, expected_acc)


def test_loss_trains_and_drops_condition():
    model = MaskTransformer(**TINY).train()
    ids, cond, lengths = tiny_inputs()
    ce, _ = model.loss(ids, cond, lengths)
    ce.backward()
    assert torch.isfinite(ce) and model.token_emb.weight.grad is not None
    g = torch.Generator().manual_seed(0)
    cond = torch.ones(4000, 3)
    assert torch.equal(drop_condition(cond, 0.0, g), cond)
    assert not drop_condition(cond, 1.0, g).any()
    dropped = (drop_condition(cond, 0.3, g) == 0).all(1).float().mean()
    assert abs(dropped - 0.3) < 0.03


# ---------------------------------------------------------------- sampling helpers


def test_gumbel_sample_matches_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    g = torch.Generator().manual_seed(0)
    draws = gumbel_sample(logits.expand(40000, 4), 1.0, g)
    freq = torch.bincount(draws, minlength=4).float() / 40000
    torch.testing.assert_close(freq, logits.softmax(0), atol=0.01, rtol=0)
    hot = torch.bincount(gumbel_sample(logits.expand(40000, 4), 0.5, g), minlength=4) / 40000
    torch.testing.assert_close(hot.float(), (logits / 0.5).softmax(0), atol=0.01, rtol=0)


def test_top_k_filter_keeps_largest():
    logits = torch.tensor([[0.5, 3.0, -1.0, 2.0, 0.0, 1.0, 4.0, -2.0, 0.1, 0.2, 0.3]])
    kept = top_k_filter(logits, 0.9)  # ceil(0.1 * 11) = 2
    assert torch.isfinite(kept).sum() == 2
    assert torch.isfinite(kept[0, [1, 6]]).all()
    assert torch.isfinite(top_k_filter(logits, 0.5)).sum() == math.ceil(0.5 * 11)


# ---------------------------------------------------------------- generation


def test_mask_generate_deterministic_and_padded():
    model = MaskTransformer(**TINY)
    _, cond, _ = tiny_inputs()
    lengths = torch.tensor([6, 2, 4])

    def run(seed):
        return model.generate(
            cond, lengths, timesteps=4, generator=torch.Generator().manual_seed(seed)
        )

    a = run(0)
    assert a.shape == (3, 6)
    assert torch.equal(a, run(0))
    assert not torch.equal(a, run(1))
    valid = torch.arange(6)[None] < lengths[:, None]
    assert (a[~valid] == -1).all()
    assert ((a[valid] >= 0) & (a[valid] < 16)).all()
    assert model.training  # mode restored


# ---------------------------------------------------------------- residual transformer


def test_residual_matches_manual_forward():
    """Input = sum of layer embeddings below j; head of layer j = embedding table of layer j."""
    q = 4
    model = scramble(ResidualTransformer(num_quantizers=q, **TINY)).eval()
    g = torch.Generator().manual_seed(2)
    all_ids = torch.randint(0, 16, (2, 5, q), generator=g)
    cond = torch.randn(2, 8, generator=g)
    pe = torch.tensor(sinusoid(5, TINY["latent_dim"]), dtype=torch.float32)
    tables = [model.token_embed_weight_[0]] + list(model.embed_proj_shared_weight)
    heads = list(model.embed_proj_shared_weight) + [model.output_proj_weight_[0]]
    for j in range(1, q):
        history = sum(tables[i][all_ids[..., i]] for i in range(j))  # (B, N, C)
        x = model.input_process.poseEmbedding(history) + pe
        quant = model.quant_emb(torch.eye(q)[j]).expand(2, 1, -1)
        sequence = torch.cat([model.cond_emb(cond)[:, None], quant, x], dim=1)
        allowed = torch.ones(2, 7, 7, dtype=torch.bool)
        hidden = manual_head(
            model.output_process, manual_encoder(model.seqTransEncoder, sequence, allowed)
        )
        expected = hidden[:, 2:] @ heads[j - 1].T
        with torch.no_grad():
            got = model.logits(all_ids[..., :j], cond)
        torch.testing.assert_close(got, expected[..., :16], atol=1e-5, rtol=1e-4)
    assert torch.equal(model.output_proj_weight[1], model.token_embed_weight[2])


def test_layer_schedule_range_and_bias():
    layers = _layer_schedule(20000, 6, "cpu", torch.Generator().manual_seed(0))
    counts = torch.bincount(layers, minlength=6)
    assert counts[0] == 0 and counts[1:].min() > 0 and layers.max() == 5
    assert counts[1] > counts[5]  # upstream favours low layers


def test_residual_gradients_are_deterministic_with_threads():
    """Embedding lookups must not use index_put_ backward (nondeterministic on 2+ CPU threads)."""
    torch.manual_seed(0)
    sizes = dict(TINY, num_tokens=256, code_dim=64, latent_dim=96, ff_size=192, dropout=0.0)
    model = ResidualTransformer(**sizes, num_quantizers=6)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (64, 49, 6), generator=g)
    cond, lengths = torch.randn(64, 8, generator=g), torch.randint(10, 50, (64,), generator=g)

    def gradients():
        model.zero_grad()
        ce, _ = model.loss(ids, cond, lengths, generator=torch.Generator().manual_seed(0))
        ce.backward()
        return [p.grad.clone() for p in model.parameters()]

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = gradients()
        for _ in range(3):
            assert all(torch.equal(a, b) for a, b in zip(first, gradients(), strict=True))
    finally:
        torch.set_num_threads(threads)


def test_residual_loss_and_generate():
    model = ResidualTransformer(num_quantizers=3, **TINY)
    g = torch.Generator().manual_seed(4)
    all_ids = torch.randint(0, 16, (3, 6, 3), generator=g)
    cond = torch.randn(3, 8, generator=g)
    lengths = torch.tensor([6, 2, 4])
    ce, acc = model.loss(all_ids, cond, lengths, generator=g)
    ce.backward()
    assert torch.isfinite(ce) and 0 <= acc <= 1
    assert model.embed_proj_shared_weight.grad is not None
    base = all_ids[..., 0].masked_fill(torch.arange(6)[None] >= lengths[:, None], -1)

    def run(seed):
        return model.generate(base, cond, lengths, generator=torch.Generator().manual_seed(seed))

    out = run(0)
    assert out.shape == (3, 6, 3) and torch.equal(out, run(0)) and not torch.equal(out, run(1))
    valid = torch.arange(6)[None] < lengths[:, None]
    assert torch.equal(out[..., 0][valid], all_ids[..., 0][valid])
    assert (out[~valid] == -1).all() and ((out[valid] >= 0) & (out[valid] < 16)).all()
    with pytest.raises(ValueError, match="all_ids"):
        model.loss(all_ids[..., :2], cond, lengths)


# ---------------------------------------------------------------- length estimator


def test_length_estimator():
    model = LengthEstimator(8, 50)
    expected = {f"output.{i}.{p}" for i in (0, 1, 4, 5, 8, 9, 11) for p in ("weight", "bias")}
    assert set(model.state_dict()) == expected
    assert model.output[0].weight.shape == (512, 8) and model.output[11].weight.shape == (50, 128)
    cond = torch.randn(64, 8)
    assert model(cond).shape == (64, 50)
    lengths = model.sample(cond, generator=torch.Generator().manual_seed(0))
    assert lengths.shape == (64,) and lengths.min() >= 1 and lengths.max() <= 49
    assert torch.isfinite(model.loss(cond, torch.randint(1, 60, (64,))))


# ---------------------------------------------------------------- overfit


def test_overfit_reproduces_sequences():
    """Tiny models memorise 3 code sequences keyed by 3 condition vectors."""
    torch.manual_seed(0)
    size = dict(TINY, code_dim=32, latent_dim=64, ff_size=128, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 16, (3, 8, 3), generator=g)
    lengths = torch.tensor([6, 5, 8])
    cond = torch.eye(8)[:3] * 3
    valid = torch.arange(8)[None] < lengths[:, None]
    base = MaskTransformer(**size)
    residual = ResidualTransformer(num_quantizers=3, **size)
    for model, ids in ((base, codes[..., 0]), (residual, codes)):
        optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(200):
            batch = ids.repeat(8, *([1] * (ids.dim() - 1)))
            ce, acc = model.loss(batch, cond.repeat(8, 1), lengths.repeat(8), generator=g)
            optimiser.zero_grad()
            ce.backward()
            optimiser.step()
        assert acc > 0.95
    sampling = dict(cond_scale=1.0, temperature=0.5)
    generated = base.generate(cond, lengths, **sampling, generator=torch.Generator().manual_seed(1))
    assert torch.equal(generated[valid], codes[..., 0][valid])
    layers = residual.generate(
        generated, cond, lengths, **sampling, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(layers[valid], codes[valid])
