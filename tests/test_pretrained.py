"""Bring your own checkpoints (issue 16) without downloads: upstream-format files with random
weights at small sizes, a tiny CLIP text state dict and a tiny dataset, then the generator and
unlearning stages with `source: pretrained` (stage mains in-process, as tests/test_stages.py).

The checkpoints keep the upstream layer counts (8 transformer layers, 6 quantizers, depth-3
ResNets), so their key sets equal the upstream ones in tests/data/official_keys.json.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from official_layout import official_layout
from tiny_setup import load_stage, tiny_params, write_tiny_dataset
from upstream_files import CLIP_DIM, released_evaluator, tiny_clip_state, upstream_files

from hmu.generate import load_generator
from hmu.models.checkpoint import load_module, load_vq
from hmu.pretrained import absent_reason, upstream_evaluator

torch.set_num_threads(1)
METHODS = ("base", "retrain", "finetune", "finetune_all", "lcr", "uce", "rece")
TRAINERS = {  # stage -> the training functions it calls; under pretrained none may run
    "train_vq": ("train_vq",),
    "train_trans": ("train_transformer", "train_length_estimator"),
    "train_res": ("train_residual",),
}


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
        bad["source"]["tiny"]["all"] = {"kind": "none"}  # only D_r can be left out
        Path("params.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match="all.kind = none"):
            run("train_res", "tiny-all", monkeypatch)
        bad = json.loads(json.dumps(params))
        bad["generator"]["text_encoder"] = "minilm"  # text width 384 != the transformers' 16
        np.save("data/processed/tiny/text_emb.npy", np.zeros((48, 384), np.float32))
        Path("params.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ValueError, match="source.tiny.all.trans.momask .*text width"):
            run("train_trans", "tiny-momask-all", monkeypatch)
    finally:
        Path("params.yaml").write_text(yaml.safe_dump(params))
        run("text_emb", "tiny", monkeypatch)


def test_upstream_evaluator_is_loaded_not_trained(tmp_path):
    cfg = released_evaluator(tmp_path, ["unk", "sos", "eos", "person", "kick"])
    released = torch.load(cfg["checkpoint"], weights_only=True)
    mean, std = np.zeros(263, np.float32), np.full(263, 2.0, np.float32)
    judge = upstream_evaluator(cfg, mean, std)
    for part, state in released.items():
        for key, value in state.items():
            assert torch.equal(getattr(judge, part).state_dict()[key], value), key
    assert torch.equal(judge.std, torch.full((263,), 2.0))
    assert judge.caption_embedding([["person/NOUN", "kick/VERB"]]).shape == (1, 16)
    assert upstream_evaluator({"checkpoint": None, "glove_dir": None}, mean, std) is None
    with pytest.raises(ValueError, match="evaluator.checkpoint needs evaluator.glove_dir"):
        upstream_evaluator({**cfg, "glove_dir": None}, mean, std)
    with pytest.raises(FileNotFoundError, match="evaluator.checkpoint = .*not found"):
        upstream_evaluator({**cfg, "checkpoint": str(tmp_path / "nope.tar")}, mean, std)


def test_left_out_reference_writes_markers(tmp_path, monkeypatch):
    """retain kind none: the D_r stages write a marker with the reason, and the next stage
    passes it on instead of failing on a missing model."""
    write_tiny_dataset(tmp_path)
    params = tiny_params()
    params["source"] = {"tiny": {"retain": {"kind": "none"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    run("train_vq", "tiny-retain", monkeypatch, **no_training("train_vq"))
    run("train_res", "tiny-retain", monkeypatch, **no_training("train_res"))
    run("train_trans", "tiny-momask-retain", monkeypatch, **no_training("train_trans"))
    run("tokenize_motions", "tiny-retain", monkeypatch)
    reason = "no D_r reference: params.yaml source.tiny.retain.kind is none"
    for folder in ("vq_retain", "res_retain", "momask_retain"):
        assert absent_reason(Path("models/tiny") / folder) == reason
        assert [p.name for p in Path("models/tiny", folder).iterdir()] == ["absent.json"]
    assert absent_reason("data/processed/tiny/tokens_retain.npz") == reason
    run("unlearn", "tiny-momask-retrain", monkeypatch)
    assert absent_reason("models/tiny/momask/retrain") == reason
    assert absent_reason("metrics/tiny/momask/retrain_unlearn.json") == reason
    assert absent_reason("models/tiny/vq_all", "metrics") is None
