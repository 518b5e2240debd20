"""Tests of the residual VQ-VAE (hmu.models.rvq)."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hmu.models.rvq import PAPER_CONFIG, RVQVAE, QuantizeEMAReset, ResidualVQ, rvq_loss

OFFICIAL_KEYS = Path("/work/shared/reference/official_keys.json")
TINY = dict(nb_code=32, code_dim=16, output_emb_width=16, width=16, num_quantizers=4)

torch.set_num_threads(1)


def official_layout() -> dict:
    if not OFFICIAL_KEYS.exists():
        pytest.skip(f"{OFFICIAL_KEYS} not available")
    return json.loads(OFFICIAL_KEYS.read_text())["momask_rvqvae"]


def random_state_dict(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn(value.shape, generator=generator) * 0.05
        for key, value in model.state_dict().items()
    }


def test_state_dict_matches_official_keys_and_shapes():
    layout = official_layout()
    assert layout["ctor"] == PAPER_CONFIG
    model = RVQVAE(**layout["ctor"])
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert shapes == layout["keys"]
    assert len(shapes) == layout["num_keys"] == 72
    persistent_buffers = [k for k, _ in model.named_buffers() if k in shapes]
    assert sorted(persistent_buffers) == sorted(layout["buffers"])


def test_loaded_paper_size_state_dict_encodes_decodes_and_keeps_codebooks():
    layout = official_layout()
    generator = torch.Generator().manual_seed(0)
    state = {
        k: torch.randn(shape, generator=generator) * 0.02 for k, shape in layout["keys"].items()
    }
    model = RVQVAE(**layout["ctor"])
    model.load_state_dict(state, strict=True)
    model.eval()
    motion = torch.randn(2, 16, 263, generator=generator)
    indices = model.encode(motion)
    assert indices.shape == (2, 4, 6) and indices.dtype == torch.long
    assert model.forward_decoder(indices).shape == (2, 16, 263)

    model.train()
    with torch.no_grad():
        model(motion)
    for i in range(6):
        layer = model.quantizer.layers[i]
        assert layer.initialised
        loaded = state[f"quantizer.layers.{i}.codebook"]
        # EMA refinement moves used codes by at most ~1%; a re-initialisation would replace all
        assert (layer.codebook - loaded).abs().max() < 0.01 * loaded.abs().max()


def reference_encoder_decoder(sd: dict[str, torch.Tensor]):
    """MoMask's encoder/decoder (momask-codes models/vq/encdec.py) written out with F.conv1d."""

    def conv(name, x, stride=1, padding=1):
        return F.conv1d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride, padding)

    def resnet(prefix, x):
        for i, dilation in enumerate((9, 3, 1)):  # high to low
            h = F.conv1d(
                F.relu(x),
                sd[f"{prefix}.model.{i}.conv1.weight"],
                sd[f"{prefix}.model.{i}.conv1.bias"],
                1,
                dilation,
                dilation,
            )
            x = x + conv(f"{prefix}.model.{i}.conv2", F.relu(h), padding=0)
        return x

    def encode(motion):  # (B, T, 263) -> (B, T / 4, D)
        h = F.relu(conv("encoder.model.0", motion.permute(0, 2, 1)))
        for j in (2, 3):
            h = resnet(f"encoder.model.{j}.1", conv(f"encoder.model.{j}.0", h, stride=2))
        return conv("encoder.model.4", h).permute(0, 2, 1)

    def decode(latent):  # (B, N, D) -> (B, 4N, 263)
        h = F.relu(conv("decoder.model.0", latent.permute(0, 2, 1)))
        for j in (2, 3):
            h = resnet(f"decoder.model.{j}.0", h).repeat_interleave(2, dim=-1)
            h = conv(f"decoder.model.{j}.2", h)
        h = F.relu(conv("decoder.model.4", h))
        return conv("decoder.model.6", h).permute(0, 2, 1)

    return encode, decode


def test_forward_matches_functional_reference():
    torch.manual_seed(0)
    model = RVQVAE(**TINY).eval()
    state = random_state_dict(model)
    model.load_state_dict(state)
    encode, decode = reference_encoder_decoder(state)
    motion = torch.randn(2, 24, 263)
    with torch.no_grad():
        torch.testing.assert_close(model._latent(motion), encode(motion))
        indices = model.encode(motion)
        books = model.quantizer.codebooks
        latent = sum(books[q][indices[..., q]] for q in range(4))
        torch.testing.assert_close(model.forward_decoder(indices), decode(latent))


def test_fresh_quantizer_initialises_from_first_training_batch():
    layer = QuantizeEMAReset(nb_code=8, code_dim=4)
    x = torch.randn(50, 4)
    layer.train()
    layer(x)
    # every code was drawn from the batch (and possibly EMA-moved towards batch vectors)
    assert layer.initialised and layer.codebook.abs().sum() > 0
    fresh = QuantizeEMAReset(nb_code=8, code_dim=4)
    fresh.eval()
    fresh(x)
    assert not fresh.initialised and fresh.codebook.abs().sum() == 0


def test_ema_update_and_dead_code_reset_match_manual_computation():
    torch.manual_seed(0)
    layer = QuantizeEMAReset(nb_code=6, code_dim=3, mu=0.9)
    codebook = torch.randn(6, 3) * 3
    layer.set_codebook(codebook)
    layer.code_count[5] = 1.05  # will fall below 1 when unused: reset
    layer.code_sum[5] = codebook[5] * 1.05
    x = torch.randn(40, 3)
    layer.train()
    _, indices, commit, _ = layer(x, temperature=0.0)
    nearest = ((x[:, None] - codebook[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(indices, nearest)
    assert torch.allclose(commit, ((x - codebook[nearest]) ** 2).mean())
    for k in range(6):
        used = x[nearest == k]
        count = 0.9 * (10.0 if k < 5 else 1.05) + 0.1 * len(used)
        total = 0.9 * codebook[k] * (10.0 if k < 5 else 1.05) + 0.1 * used.sum(0)
        if count >= 1:
            assert torch.allclose(layer.codebook[k], total / count, atol=1e-5)
        else:  # reset to one of the batch vectors
            assert ((x - layer.codebook[k]).abs().sum(1) < 1e-6).any()


def test_gumbel_sampling_at_tiny_temperature_is_nearest():
    torch.manual_seed(0)
    layer = QuantizeEMAReset(nb_code=16, code_dim=4)
    layer.set_codebook(torch.randn(16, 4))
    x = torch.randn(100, 4)
    assert torch.equal(layer._sample(x, 1e-6), layer.nearest(x))
    assert not torch.equal(layer._sample(x, 10.0), layer.nearest(x))


def test_eval_quantisation_is_brute_force_nearest_neighbour():
    torch.manual_seed(0)
    model = RVQVAE(**TINY).eval()
    model.load_state_dict(random_state_dict(model))
    for layer in model.quantizer.layers:
        layer.set_codebook(torch.randn(32, 16) * 0.3)
    motion = torch.randn(3, 24, 263)
    indices = model.encode(motion)  # (3, 6, 4)
    with torch.no_grad():
        residual = model._latent(motion).reshape(-1, 16)
    for q, layer in enumerate(model.quantizer.layers):
        expected = []
        for vector in residual:  # plain loop: independent of the vectorised code
            distances = [float(((vector - code) ** 2).sum()) for code in layer.codebook]
            expected.append(min(range(len(distances)), key=distances.__getitem__))
        assert indices[..., q].reshape(-1).tolist() == expected
        residual = residual - layer.codebook[torch.tensor(expected)]


def test_residual_layers_approximate_latent_better_with_more_layers():
    torch.manual_seed(0)
    config = {**TINY, "quantize_dropout_prob": 0.0, "mu": 0.8}
    model = RVQVAE(**config)
    motion = torch.randn(8, 32, 263)
    model.train()
    with torch.no_grad():
        for _ in range(10):  # EMA fits each layer's codebook to its residuals
            model(motion, temperature=0.0)
    model.eval()
    with torch.no_grad():
        latent = model._latent(motion)  # (8, 8, 16)
    codes = model.quantizer.get_codes_from_indices(model.encode(motion))  # (4, 8, 8, 16)
    errors = [float((latent - codes[: q + 1].sum(0)).norm()) for q in range(4)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 0.5 * float(latent.norm())


def test_forward_decoder_handles_dropped_and_missing_layers():
    torch.manual_seed(0)
    model = RVQVAE(**TINY).eval()
    model.load_state_dict(random_state_dict(model))
    indices = torch.randint(0, 32, (2, 5, 4))
    dropped = indices.clone()
    dropped[..., 2:] = -1
    books = model.quantizer.codebooks  # (4, 32, 16)
    latent = books[0][indices[..., 0]] + books[1][indices[..., 1]]  # (2, 5, 16)
    expected = model.decoder(latent.permute(0, 2, 1))
    assert torch.allclose(model.forward_decoder(dropped), expected, atol=1e-6)
    assert torch.allclose(model.forward_decoder(indices[..., :2]), expected, atol=1e-6)
    assert model.forward_decoder(indices).shape == (2, 20, 263)
    with pytest.raises(ValueError, match="indices"):
        model.forward_decoder(torch.full((1, 2, 4), 32))
    with pytest.raises(ValueError, match="indices"):
        model.forward_decoder(torch.zeros(1, 2, 5, dtype=torch.long))


def test_quantize_dropout_keeps_a_prefix_of_layers():
    torch.manual_seed(0)
    rvq = ResidualVQ(6, 8, 4, quantize_dropout_prob=1.0, quantize_dropout_cutoff_index=2)
    rvq.train()
    used = set()
    for _ in range(30):
        _, indices, _, _ = rvq(torch.randn(2, 3, 4), temperature=0.5)
        active = (indices[0, 0] >= 0).tolist()
        k = sum(active)
        assert active == [True] * k + [False] * (6 - k) and k >= 3
        assert (indices[..., k:] == -1).all() and (indices[..., :k] >= 0).all()
        used.add(k)
    assert used == {3, 4, 5, 6}
    rvq.eval()
    assert (rvq(torch.randn(2, 3, 4))[1] >= 0).all()


def test_forward_shapes_and_input_errors():
    model = RVQVAE(**TINY)
    recon, commit, perplexity = model(torch.randn(2, 16, 263))
    assert recon.shape == (2, 16, 263) and commit.dim() == 0 and perplexity.dim() == 0
    with pytest.raises(ValueError, match="multiple of 4"):
        model(torch.randn(2, 18, 263))
    with pytest.raises(ValueError, match="263"):
        model.encode(torch.randn(2, 16, 250))
    with pytest.raises(ValueError, match="code_dim"):
        RVQVAE(code_dim=64, output_emb_width=32)


def test_rvq_loss_matches_formula():
    torch.manual_seed(0)
    pred, gt = torch.randn(2, 8, 263) * 2, torch.randn(2, 8, 263)

    def smooth_l1(a, b):
        d = (a - b).abs()
        return torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()

    commit = torch.tensor(3.0)
    expected = smooth_l1(pred, gt) + 0.5 * smooth_l1(pred[..., 4:67], gt[..., 4:67]) + 0.02 * 3
    assert torch.allclose(rvq_loss(pred, gt, commit), expected)


def test_tiny_model_overfits_a_few_motions():
    torch.manual_seed(0)
    frames = torch.arange(32, dtype=torch.float32)[None, :, None]
    freqs = torch.rand(6, 1, 263) * 0.3
    phases = torch.rand(6, 1, 263) * 2 * math.pi
    motion = torch.sin(frames * freqs + phases)  # (6, 32, 263) smooth signals
    config = {**TINY, "nb_code": 64, "width": 64, "quantize_dropout_prob": 0.0, "mu": 0.9}
    model = RVQVAE(**config).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def reconstruction_loss() -> float:
        with torch.no_grad():
            model.eval()
            loss = F.smooth_l1_loss(model(motion)[0], motion).item()
            model.train()
        return loss

    initial = reconstruction_loss()
    for _ in range(150):
        recon, commit, _ = model(motion)
        loss = rvq_loss(recon, motion, commit)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert reconstruction_loss() < initial / 10
