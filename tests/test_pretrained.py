"""Bring your own checkpoints (issue 16) without downloads: upstream-format files with random
weights at small sizes, a tiny CLIP text state dict and a tiny dataset, then the generator and
unlearning stages with `source: pretrained` (stage mains in-process, as tests/test_stages.py).

The checkpoints keep the upstream layer counts (8 transformer layers, 6 quantizers, depth-3
ResNets), so their key sets equal the upstream ones in tests/data/official_keys.json.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from official_layout import official_layout
from tiny_setup import load_stage, tiny_params, write_tiny_dataset

from hmu.generate import load_generator
from hmu.models.bamm import BAMMTransformer
from hmu.models.checkpoint import load_module, load_vq
from hmu.models.evaluator import Evaluator
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE
from hmu.pretrained import upstream_evaluator

torch.set_num_threads(1)
K, CLIP_DIM = 24, 16  # codebook size, text width of the tiny CLIP
BODY = dict(num_tokens=K, code_dim=16, latent_dim=24, ff_size=32, num_layers=8, num_heads=6)
METHODS = ("base", "retrain", "finetune", "finetune_all", "lcr", "uce", "rece")
TRAINERS = {  # stage -> the training functions it calls; under pretrained none may run
    "train_vq": ("train_vq",),
    "train_trans": ("train_transformer", "train_length_estimator"),
    "train_res": ("train_residual",),
}


def tiny_clip_state(width: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """CLIP text-tower weights in OpenAI's key layout: one block, CLIP's vocabulary size."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen) * shape[-1] ** -0.5

    p = "transformer.resblocks.0."
    return {
        "token_embedding.weight": randn(49408, width),
        "positional_embedding": randn(77, width),
        "ln_final.weight": torch.ones(width),
        "ln_final.bias": torch.zeros(width),
        "text_projection": randn(width, CLIP_DIM),
        p + "attn.in_proj_weight": randn(3 * width, width),
        p + "attn.in_proj_bias": torch.zeros(3 * width),
        p + "attn.out_proj.weight": randn(width, width),
        p + "attn.out_proj.bias": torch.zeros(width),
        p + "ln_1.weight": torch.ones(width),
        p + "ln_1.bias": torch.zeros(width),
        p + "mlp.c_fc.weight": randn(4 * width, width),
        p + "mlp.c_fc.bias": torch.zeros(4 * width),
        p + "mlp.c_proj.weight": randn(width, 4 * width),
        p + "mlp.c_proj.bias": torch.zeros(width),
        p + "ln_2.weight": torch.ones(width),
        p + "ln_2.bias": torch.zeros(width),
    }


def upstream_files(folder: Path, seed: int) -> dict:
    """Random upstream-format checkpoints (torch.save of {upstream key: state dict}) and the
    VQ's meta mean/std -> a source block (kind pretrained) naming them."""
    torch.manual_seed(seed)
    vq = RVQVAE(nb_code=K, code_dim=16, output_emb_width=16, width=16)
    for layer in vq.quantizer.layers:
        layer.set_codebook(torch.randn(K, 16))
    nets = {
        "vq": ("vq_model", vq),
        "momask": ("t2m_transformer", MaskTransformer(**BODY, clip_dim=CLIP_DIM)),
        "bamm": ("t2m_transformer", BAMMTransformer(**BODY, clip_dim=CLIP_DIM)),
        "res": ("res_transformer", ResidualTransformer(**BODY, clip_dim=CLIP_DIM)),
        "length": ("estimator", LengthEstimator(CLIP_DIM, 50, 32)),
    }
    folder.mkdir(parents=True)
    paths = {}
    for name, (key, net) in nets.items():
        paths[name] = str(folder / f"{name}.tar")
        torch.save({key: net.state_dict(), "ep": 1}, paths[name])
    for name, value in (("mean", 0.1), ("std", 2.0)):
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], np.full(263, value, np.float32))
    paths["trans"] = {"momask": paths.pop("momask"), "bamm": paths.pop("bamm")}
    return {"kind": "pretrained", **paths}


def test_upstream_files_have_the_upstream_keys(tmp_path):
    block = upstream_files(tmp_path / "up", seed=0)
    for path, layout in ((block["vq"], "momask_rvqvae"),
                         (block["trans"]["momask"], "momask_mask_transformer"),
                         (block["trans"]["bamm"], "bamm_mask_transformer"),
                         (block["res"], "momask_residual_transformer")):  # fmt: skip
        saved = torch.load(path, weights_only=True)
        entry = official_layout(layout)
        assert set(saved[entry["checkpoint_key"]]) == set(entry["keys"]), layout


def run(name: str, target: str, mp, **patches):
    stage = load_stage(name)
    for attr, value in patches.items():
        mp.setattr(stage, attr, value)
    return stage.main(target)


def no_training(name: str) -> dict:
    """Replacements for a stage's training functions that fail the test if called."""

    def trained(*args, **kwargs):
        raise AssertionError(f"{name} trained under source kind pretrained")

    return {fn: trained for fn in TRAINERS[name]}


def pretrained_params(root: Path) -> dict:
    """tiny_params with CLIP text features and both subsets imported (retain: 'your own D_r')."""
    torch.save(tiny_clip_state(), root / "clip_text.pt")
    params = tiny_params()
    params["generator"] |= {"text_encoder": "clip", "clip_weights": str(root / "clip_text.pt")}
    params["source"] = {
        "tiny": {
            "all": upstream_files(root / "upstream_all", seed=0),
            "retain": upstream_files(root / "upstream_retain", seed=1),
        }
    }
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project after every generator and unlearning stage, both subsets imported."""
    root = tmp_path_factory.mktemp("pretrained")
    write_tiny_dataset(root)
    params = pretrained_params(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        run("text_emb", "tiny", mp)
        for subset in ("all", "retain"):
            run("train_vq", f"tiny-{subset}", mp, **no_training("train_vq"))
            run("tokenize_motions", f"tiny-{subset}", mp)
            run("train_res", f"tiny-{subset}", mp, **no_training("train_res"))
            for model in ("momask", "bamm"):
                run("train_trans", f"tiny-{model}-{subset}", mp, **no_training("train_trans"))
        for model in ("momask", "bamm"):
            for method in ("base", "retrain", "finetune", "finetune_all", "lcr"):
                run("unlearn", f"tiny-{model}-{method}", mp)
            for method in ("uce", "rece"):
                run("unlearn_edit", f"tiny-{model}-{method}", mp)
    return root, params


def test_imports_replace_training(project, monkeypatch):
    root, params = project
    monkeypatch.chdir(root)
    upstream = torch.load(params["source"]["tiny"]["all"]["vq"], weights_only=True)["vq_model"]
    vq, mean, std = load_vq("models/tiny/vq_all")
    assert all(torch.equal(vq.state_dict()[k], v) for k, v in upstream.items())
    assert np.allclose(mean, 0.1) and np.allclose(std, 2.0)  # the VQ's meta, not the dataset's
    for folder in ("vq_all", "vq_retain", "res_all", "momask_all", "bamm_retain"):
        assert not Path(f"models/tiny/{folder}/train.json").exists()
        record = json.loads(Path(f"models/tiny/{folder}/import.json").read_text())
        assert record["source"] == "pretrained" and len(record["files"]) >= 1
    trans = load_module("models/tiny/bamm_retain/trans.safetensors")
    upstream = torch.load(params["source"]["tiny"]["retain"]["trans"]["bamm"], weights_only=True)
    assert torch.equal(
        trans.state_dict()["cond_emb.weight"], upstream["t2m_transformer"]["cond_emb.weight"]
    )
    assert Path("models/tiny/momask_all/length.safetensors").exists()
    assert np.load("data/processed/tiny/text_emb.npy").shape[1] == CLIP_DIM


def test_every_method_of_the_imported_models_generates(project, monkeypatch):
    root, params = project
    monkeypatch.chdir(root)
    captions = ["a person kicks", "a person walks"]
    for model in ("momask", "bamm"):
        for method in METHODS:
            assert Path(f"models/tiny/{model}/{method}/method.json").exists()
            gen = load_generator("tiny", model, method, params=params)
            out = gen(captions, np.array([40, 48]))
            assert out.shape == (2, 48, 263) and np.isfinite(out).all(), (model, method)


def test_bad_sources_fail_with_the_param_named(project, monkeypatch):
    root, params = project
    monkeypatch.chdir(root)
    cases = [
        ({"vq": str(root / "missing.tar")}, "train_vq", "source.tiny.all.vq = .*file not found"),
        ({"vq": None}, "train_vq", "source.tiny.all.vq is empty"),
        ({"vq": params["source"]["tiny"]["all"]["res"]}, "train_vq", "source.tiny.all.vq = .*rvq"),
        ({"mean": str(root / "clip_text.pt")}, "train_vq", "source.tiny.all.mean"),
    ]
    try:
        for change, stage, message in cases:
            bad = json.loads(json.dumps(params))
            bad["source"]["tiny"]["all"] |= change
            Path("params.yaml").write_text(yaml.safe_dump(bad))
            with pytest.raises((ValueError, FileNotFoundError), match=message):
                run(stage, "tiny-all", monkeypatch, **no_training(stage))
        bad = json.loads(json.dumps(params))
        bad["source"]["tiny"]["retain"] = {"kind": "none"}
        Path("params.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match="source.tiny.retain.kind = none"):
            run("train_res", "tiny-retain", monkeypatch)
        bad = json.loads(json.dumps(params))
        bad["generator"]["text_encoder"] = "minilm"  # text width 384 != the transformers' 16
        np.save("data/processed/tiny/text_emb.npy", np.zeros((48, 384), np.float32))
        Path("params.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match="source.tiny.all.trans.momask .*text width"):
            run("train_trans", "tiny-momask-all", monkeypatch)
    finally:
        Path("params.yaml").write_text(yaml.safe_dump(params))
        run("text_emb", "tiny", monkeypatch)


def write_glove(folder: Path, words: list[str], dim: int) -> None:
    """Upstream's GloVe files: our_vab_data.npy (V, dim), _words.pkl, _idx.pkl."""
    folder.mkdir()
    np.save(
        folder / "our_vab_data.npy", np.random.default_rng(0).standard_normal((len(words), dim))
    )
    (folder / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))


def test_upstream_evaluator_is_loaded_not_trained(tmp_path):
    torch.manual_seed(0)
    released = Evaluator(263, 16, 16, 8, 15, 16, 16, 16)
    parts = ("movement_encoder", "text_encoder", "motion_encoder")
    torch.save({p: getattr(released, p).state_dict() for p in parts}, tmp_path / "finest.tar")
    write_glove(tmp_path / "glove", ["unk", "sos", "eos", "person", "kick"], dim=8)
    mean, std = np.zeros(263, np.float32), np.full(263, 2.0, np.float32)
    cfg = {"checkpoint": str(tmp_path / "finest.tar"), "glove_dir": str(tmp_path / "glove")}
    judge = upstream_evaluator(cfg, mean, std)
    for part in parts:
        for key, value in getattr(released, part).state_dict().items():
            assert torch.equal(getattr(judge, part).state_dict()[key], value), key
    assert torch.equal(judge.std, torch.full((263,), 2.0))
    assert judge.caption_embedding([["person/NOUN", "kick/VERB"]]).shape == (1, 16)
    assert upstream_evaluator({"checkpoint": None, "glove_dir": None}, mean, std) is None
    with pytest.raises(ValueError, match="evaluator.checkpoint needs evaluator.glove_dir"):
        upstream_evaluator({**cfg, "glove_dir": None}, mean, std)
    with pytest.raises(FileNotFoundError, match="evaluator.checkpoint = .*not found"):
        upstream_evaluator({**cfg, "checkpoint": str(tmp_path / "nope.tar")}, mean, std)
