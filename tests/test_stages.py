"""The generator and unlearning stage scripts end to end on a tiny processed dataset.

Each stage runs as DVC runs it (its main(target), params.yaml in the working directory), and
every method's model then generates through `load_generator`, like the evaluation.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tiny_setup import (
    FakeEncoder,
    K,
    Q,
    load_stage,
    run_generator_stages,
    run_stage,
    tiny_params,
    write_tiny_dataset,
)

from hmu.data.dataset import ProcessedDataset
from hmu.generate import load_generator
from hmu.models.checkpoint import load_module, load_vq, read_lcr_delta
from hmu.train.generators import training_data

torch.set_num_threads(1)
METHODS = ("base", "retrain", "finetune", "finetune_all", "lcr", "uce", "rece")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project after every generator and unlearning stage of dataset 'tiny'."""
    root = tmp_path_factory.mktemp("project")
    write_tiny_dataset(root)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        run_generator_stages(mp)
    return root


def test_training_stages_write_their_artefacts(project, monkeypatch):
    monkeypatch.chdir(project)
    data = ProcessedDataset.open("tiny")
    emb = np.load("data/processed/tiny/text_emb.npy")
    assert np.allclose(emb, FakeEncoder().encode(data.captions["caption"].tolist()))
    for subset in ("all", "retain"):
        table = data.tokens(subset)
        assert table.tokens.shape == (24, 49, Q) and table.nb_code == K
        lengths = np.minimum(data.store.table["length"].to_numpy(), 196) // 4
        assert np.array_equal(table.n_tokens, lengths)
        summary = json.loads(Path(f"models/tiny/vq_{subset}/train.json").read_text())
        assert summary["steps"] == 4 and "loss" in summary["final"]
    _, _, std = load_vq("models/tiny/vq_retain")
    assert np.allclose(std[:4], data.std[:4] / 5)  # MoMask's VQ std: root std / 5
    for model in ("momask", "bamm"):
        assert Path(f"models/tiny/{model}_all/length.safetensors").exists()
    assert Path("models/tiny/res_all/live/metrics.json").exists()
    assert not any(Path(".work/tiny").iterdir())  # resumable states removed after success


def test_every_method_generates_through_load_generator(project, monkeypatch):
    monkeypatch.chdir(project)
    params = tiny_params()
    captions = pd.read_parquet("data/processed/tiny/captions.parquet")["caption"].tolist()[:3]
    base = load_module("models/tiny/bamm_all/trans.safetensors")
    for model in ("momask", "bamm"):
        for method in METHODS:
            gen = load_generator("tiny", model, method, params=params, text_encoder=FakeEncoder())
            assert gen.config.timesteps == 3
            out = gen(captions, np.array([40, 44, 48]))
            assert out.shape == (3, 48, 263) and np.isfinite(out).all(), (model, method)
            info = json.loads(Path(f"metrics/tiny/{model}/{method}_unlearn.json").read_text())
            assert info["method"] == method and "seconds" not in json.dumps(info)
            assert Path(f"timings/tiny/{model}/{method}_unlearn.json").exists()
    edited = load_generator("tiny", "bamm", "uce", params=params, text_encoder=FakeEncoder())
    assert torch.equal(edited.transformer.cond_emb.bias, base.cond_emb.bias)  # bias untouched
    assert not torch.equal(edited.transformer.cond_emb.weight, base.cond_emb.weight)
    delta = read_lcr_delta("models/tiny/momask/lcr/lcr_delta.safetensors")
    assert sorted(delta) == [0, 1] and all(len(rows) == 3 for rows, _ in delta.values())
    selection = json.loads(Path("metrics/tiny/momask/lcr_unlearn.json").read_text())["selection"]
    assert selection["min_support_1"]["selected"] == 3  # the paper's rule, reported
    assert len(selection["min_support_1"]["forget_support"]) == 3


def test_finetune_continues_the_base_model_on_its_codebook(project, monkeypatch, tmp_path):
    """Fine-tuning: D_r's train rows, tokens of the base (all) VQ-VAE, base weights as start."""
    monkeypatch.chdir(project)
    data = ProcessedDataset.open("tiny")
    own, base_codes = training_data(data, "retain"), training_data(data, "retain", "all")
    assert np.array_equal(own.rows, data.select("train", "retain"))
    assert np.array_equal(base_codes.rows, own.rows)
    assert np.array_equal(base_codes.table.tokens, data.tokens("all").tokens)
    assert not np.array_equal(base_codes.table.tokens, own.table.tokens)
    calls = []

    def spy(*args, **kwargs):
        calls.append((args[1:], kwargs))
        return training_data(*args, **kwargs)

    stage = load_stage("unlearn")
    monkeypatch.setattr(stage, "training_data", spy)
    pieces = stage.run_finetune(tiny_params()["finetune"], "tiny", "momask", tmp_path, "fp32")
    assert calls == [(("retain",), {"codebook": "all"})]
    assert pieces["vq"] == "models/tiny/vq_all" and Path(pieces["trans"]).exists()


def test_finetune_all_control_trains_as_long_on_all_data(project, monkeypatch):
    """The control row: the same steps as the baseline (epochs over D_r), on all training data."""
    monkeypatch.chdir(project)
    info = {m: json.loads(Path(f"metrics/tiny/momask/{m}_unlearn.json").read_text())
            for m in ("finetune", "finetune_all")}  # fmt: skip
    assert info["finetune_all"]["subset"] == "all"
    assert info["finetune_all"]["finetune"] == tiny_params()["finetune"]
    steps = {m: json.loads(Path(f"models/tiny/momask/{m}/live_trans/metrics.json").read_text())
             for m in ("finetune", "finetune_all")}  # fmt: skip
    assert steps["finetune"]["step"] == steps["finetune_all"]["step"]
    base = load_module("models/tiny/momask_all/trans.safetensors").state_dict()
    for m in ("finetune", "finetune_all"):
        tuned = load_module(f"models/tiny/momask/{m}/trans.safetensors").state_dict()
        assert any(not torch.equal(base[k], tuned[k]) for k in base), m


def test_stage_params_errors(project, monkeypatch):
    monkeypatch.chdir(project)
    bad = tiny_params()
    bad["res"]["small"]["model"]["num_tokens"] = 5
    Path("params.yaml").write_text(yaml.safe_dump(bad))
    try:
        with pytest.raises(ValueError, match="set by the data"):
            run_stage("train_res", "tiny-all")
        with pytest.raises(ValueError, match="unlearn_edit"):
            run_stage("unlearn", "tiny-momask-uce")
    finally:
        Path("params.yaml").write_text(yaml.safe_dump(tiny_params()))


class _Captured(Exception):
    """Raised by a spy once it has the training config it was called with."""


@pytest.mark.parametrize(
    ("stage", "target", "trainer"),
    [
        ("train_vq", "tiny-all", "train_vq"),
        ("train_trans", "tiny-momask-all", "train_transformer"),
        ("train_res", "tiny-all", "train_residual"),
        ("unlearn", "tiny-momask-finetune", "finetune"),
    ],
)
def test_training_precision_reaches_the_trainer(project, monkeypatch, stage, target, trainer):
    """params.yaml `precision.train` is the precision every training stage trains with (it was
    validated but never passed on, so bf16 was silently fp32)."""
    monkeypatch.chdir(project)
    params = tiny_params()
    params["precision"]["train"] = "bf16"
    Path("params.yaml").write_text(yaml.safe_dump(params))
    seen = []

    def spy(*args, **kwargs):
        seen.extend(a for a in [*args, *kwargs.values()] if hasattr(a, "precision"))
        raise _Captured

    try:
        with pytest.raises(_Captured):
            run_stage(stage, target, monkeypatch=monkeypatch, **{trainer: spy})
    finally:
        Path("params.yaml").write_text(yaml.safe_dump(tiny_params()))
    assert [cfg.precision for cfg in seen] == ["bf16"]
