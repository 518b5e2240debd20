"""Generation settings that reach the models: precision (fp32 | bf16 autocast), BAMM's refine."""

import numpy as np
import pytest
import torch
from test_generators import tiny_generator

from hmu.generate import GenerationConfig, generation_params
from hmu.models.bamm import BAMMTransformer
from hmu.models.rvq import RVQVAE
from hmu.precision import autocast

torch.set_num_threads(1)


def test_generation_params_merge_precision_and_refine():
    params = {
        "generation": {"timesteps": 4},
        "precision": {"train": "bf16", "generate": "bf16"},
        "bamm": {"refine": "cached"},
    }
    cfg = GenerationConfig.from_params(generation_params(params))
    assert (cfg.timesteps, cfg.precision, cfg.refine) == (4, "bf16", "cached")
    assert cfg.sampling().refine == "cached" and cfg.sampling().max_len == 49
    defaults = GenerationConfig.from_params(generation_params({"generation": {}}))
    assert (defaults.precision, defaults.refine) == ("fp32", "upstream")
    with pytest.raises(ValueError, match="precision.generate"):
        GenerationConfig.from_params({"precision": "fp16"})
    with pytest.raises(ValueError, match="refine"):
        GenerationConfig.from_params({"refine": "fast"})


def test_refine_reaches_bamm(monkeypatch):
    seen = []
    original = BAMMTransformer.generate

    def spy(self, cond, lengths, sampling, generator):
        seen.append(sampling)
        return original(self, cond, lengths, sampling, generator)

    monkeypatch.setattr(BAMMTransformer, "generate", spy)
    texts, lengths = ["a man kicks", "a person walks"], np.array([40, 22])
    for refine in ("cached", "upstream"):
        tiny_generator("bamm", config={"refine": refine, "cond_scale": 2.0})(texts, lengths)
    assert [s.refine for s in seen] == ["cached", "upstream"]
    assert all(s.cond_scale == 2.0 for s in seen)


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_bf16_generation_is_reproducible_and_sane(kind):
    texts, lengths = ["a man kicks", "a person walks", "a man jumps"], np.array([40, 22, 13])
    exact = tiny_generator(kind, seed=2)(texts, lengths)
    fast = tiny_generator(kind, seed=2, config={"precision": "bf16"})
    assert fast.config.precision == "bf16" and fast.describe()["precision"] == "bf16"
    first = fast(texts, lengths)
    fast.reseed(2)
    assert np.array_equal(fast(texts, lengths), first)  # deterministic under a seed
    assert first.dtype == np.float32 and np.isfinite(first).all()
    for motion, length in zip(first, lengths, strict=True):  # zero past each length
        assert np.all(motion[length // 4 * 4 :] == 0)
    assert np.abs(first).max() < 10 * np.abs(exact).max()


def test_rvq_quantizes_in_fp32_under_autocast():
    torch.manual_seed(0)
    vq = RVQVAE(nb_code=16, code_dim=8, output_emb_width=8, width=8, depth=1, num_quantizers=2)
    motion = torch.randn(2, 16, 263)
    vq(motion)  # initialises the codebooks
    vq.eval()
    with torch.no_grad(), autocast("bf16", "cpu"):
        recon, commit, _ = vq(motion)
        latent = vq._latent(motion)
        codes = vq.encode(motion)
        decoded = vq.forward_decoder(codes)
    assert latent.dtype == torch.bfloat16  # the convolutions ran in bf16
    assert recon.dtype == decoded.dtype == commit.dtype == torch.float32
    assert torch.equal(codes, vq.quantizer.quantize(latent.float()))  # fp32 code search
