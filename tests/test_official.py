"""Official checkpoint loading: upstream key layout (official_keys.json) -> our modules."""

import re
from pathlib import Path

import pytest
import torch
from official_layout import official_layout as official_keys

from hmu.models import official
from hmu.models.bamm import BAMMTransformer
from hmu.models.evaluator import Evaluator
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE

torch.set_num_threads(1)

# Paper sizes -> small sizes, one consistent substitution per value (512 = codes, code width,
# CLIP width; 513/514/515 = 512 + extra ids; 1152 = 3 x 384 attention in_proj; ...).
SMALL = {
    384: 48,
    1152: 144,
    1024: 64,
    512: 32,
    513: 33,
    514: 34,
    515: 35,
    5000: 60,
    1536: 96,
    3072: 192,
    2048: 128,
}
KEEP_LAYERS = 2  # transformer layers kept of upstream's 8


def upstream_state(name: str, small: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the exact upstream key layout; small: sizes mapped through SMALL and
    only the first KEEP_LAYERS transformer layers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_keys(name)["keys"].items():
        layer = re.match(r"seqTransEncoder\.layers\.(\d+)\.", key)
        if small and layer and int(layer.group(1)) >= KEEP_LAYERS:
            continue
        shape = [SMALL.get(s, s) for s in shape] if small else shape
        state[key] = torch.randn(shape, generator=g)
    return state


def save_tar(path: Path, content: dict) -> Path:
    torch.save(content, path)
    return path


def assert_loaded(module: torch.nn.Module, state: dict) -> None:
    """Every module tensor equals the checkpoint tensor of the same key, and nothing is left."""
    ours = module.state_dict()
    assert set(ours) == {k for k in state if not k.startswith("clip_model.")}
    for key, value in ours.items():
        assert torch.equal(value, state[key]), key


def test_rvq_at_paper_sizes(tmp_path):
    state = upstream_state("momask_rvqvae", small=False)
    path = save_tar(tmp_path / "net_best_fid.tar", {"vq_model": state, "ep": 1, "total_it": 7})
    model = official.load(path, "rvq")
    assert isinstance(model, RVQVAE) and not model.training
    assert {k: model.hparams[k] for k in official_keys("momask_rvqvae")["ctor"]} == official_keys(
        "momask_rvqvae"
    )["ctor"]
    assert_loaded(model, state)
    codes = model.encode(torch.randn(1, 16, 263))
    assert codes.shape == (1, 4, 6)


def test_rvq_fallback_key_and_small_sizes(tmp_path):
    state = upstream_state("momask_rvqvae", small=True)
    model = official.load(save_tar(tmp_path / "vq.tar", {"net": state}), "rvq")
    assert (model.hparams["width"], model.hparams["nb_code"], model.hparams["num_quantizers"]) == (
        32,
        32,
        6,
    )
    assert_loaded(model, state)


@pytest.mark.parametrize(
    ("name", "kind", "key", "cls"),
    [
        ("momask_mask_transformer", "mask_transformer", "t2m_transformer", MaskTransformer),
        ("momask_mask_transformer", "mask_transformer", "trans", MaskTransformer),
        ("bamm_mask_transformer", "bamm_transformer", "t2m_transformer", BAMMTransformer),
        (
            "momask_residual_transformer",
            "residual_transformer",
            "res_transformer",
            ResidualTransformer,
        ),
    ],
)
def test_transformers_small_layout(tmp_path, name, kind, key, cls):
    """Small sizes in the upstream layout: sizes are inferred and every weight lands."""
    state = upstream_state(name, small=True)
    clip = {"clip_model.positional_embedding": torch.zeros(3, 2)}  # ignored like upstream
    path = save_tar(tmp_path / "latest.tar", {key: {**state, **clip}, "ep": 3})
    model = official.load(path, kind)
    assert type(model) is cls and not model.training
    cfg = model.config
    assert (cfg["latent_dim"], cfg["ff_size"], cfg["num_layers"], cfg["clip_dim"]) == (
        48,
        64,
        KEEP_LAYERS,
        32,
    )
    assert cfg["num_tokens"] == 32  # 512 codes upstream
    assert_loaded(model, state)


def test_mask_transformer_at_paper_sizes(tmp_path):
    state = upstream_state("momask_mask_transformer", small=False)
    model = official.load(
        save_tar(tmp_path / "t.tar", {"t2m_transformer": state}), "mask_transformer"
    )
    ctor = official_keys("momask_mask_transformer")["ctor"]
    assert all(model.config[k] == ctor[k] for k in model.config if k in ctor)
    assert (model.mask_id, model.pad_id) == (ctor["mask_id"], ctor["pad_id"])
    assert_loaded(model, state)


def test_length_estimator(tmp_path):
    ours = LengthEstimator(input_size=20, output_size=50, hidden=64)
    state = {k: torch.randn_like(v) for k, v in ours.state_dict().items()}
    assert set(state) == {
        f"output.{i}.{p}" for i in (0, 1, 4, 5, 8, 9, 11) for p in ("weight", "bias")
    }
    model = official.load(save_tar(tmp_path / "e.tar", {"estimator": state}), "length_estimator")
    assert model.config == {"input_size": 20, "output_size": 50, "hidden": 64}
    assert_loaded(model, state)


def test_evaluator_small_layout(tmp_path):
    parts = {
        "movement_encoder": "eval_movement_encoder",
        "text_encoder": "eval_text_encoder",
        "motion_encoder": "eval_motion_encoder",
    }
    content = {
        part: upstream_state(name, small=True, seed=i)
        for i, (part, name) in enumerate(parts.items())
    }
    model = official.load(save_tar(tmp_path / "finest.tar", {**content, "epoch": 1}), "evaluator")
    assert isinstance(model, Evaluator)
    for part, state in content.items():
        assert_loaded(getattr(model, part), state)


def test_mismatch_raises_listing_keys(tmp_path):
    state = upstream_state("momask_residual_transformer", small=True)
    bad = dict(state)
    del bad["quant_emb.bias"]
    bad["quant_emb.extra"] = torch.zeros(1)
    path = save_tar(tmp_path / "res.tar", {"res_transformer": bad})
    with pytest.raises(ValueError, match=r"quant_emb\.bias") as err:
        official.load(path, "residual_transformer")
    assert "quant_emb.extra" in str(err.value) and str(path) in str(err.value)

    wrong_shape = {**state, "cond_emb.bias": torch.zeros(7)}
    with pytest.raises(ValueError, match=r"cond_emb\.bias"):
        official.load(
            save_tar(tmp_path / "r2.tar", {"res_transformer": wrong_shape}), "residual_transformer"
        )


def test_bad_files_and_kinds(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        official.load(tmp_path / "x.tar", "vae")
    with pytest.raises(FileNotFoundError, match="x.tar"):
        official.load(tmp_path / "x.tar", "rvq")
    path = save_tar(tmp_path / "other.tar", {"opt": {}})
    with pytest.raises(ValueError, match="vq_model"):
        official.load(path, "rvq")
    with pytest.raises(ValueError, match="movement_encoder"):
        official.load(path, "evaluator")
