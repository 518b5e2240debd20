"""Our checkpoints: tensors + JSON, the one state-dict check, modules, VQ-VAEs, LCR deltas."""

import json

import numpy as np
import pytest
import torch
from tiny_setup import TINY, C, K, tiny_vq

from hmu.models.bamm import BAMMTransformer
from hmu.models.checkpoint import (
    check_state_dict,
    load_checked,
    load_module,
    load_state,
    load_vq,
    read_lcr_delta,
    save_lcr_delta,
    save_module,
    save_state,
    save_vq,
    vq_file,
)
from hmu.models.momask import LengthEstimator


def test_state_round_trip_is_independent_of_the_source(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    tensors = {"a": base, "view": base[:, 1]}  # shared storage, non-contiguous
    save_state(tmp_path / "s", tensors, {"step": 3})
    loaded, meta = load_state(tmp_path / "s.safetensors")
    assert meta == {"step": 3} and json.loads((tmp_path / "s.json").read_text()) == meta
    assert torch.equal(loaded["a"], base) and torch.equal(loaded["view"], base[:, 1])
    (tmp_path / "s.json").unlink()
    with pytest.raises(FileNotFoundError, match="s.json"):
        load_state(tmp_path / "s")


def test_state_dict_check_lists_every_problem_with_one_error_type():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    bad = {"0.weight": torch.zeros(16, 9), "0.bias": torch.zeros(16), "extra": torch.zeros(1)}
    with pytest.raises(ValueError) as info:
        check_state_dict(model, bad, "bad.tar")
    message = str(info.value)
    assert message.startswith("bad.tar does not match Sequential")
    assert "missing keys (2): 2.bias, 2.weight" in message
    assert "unexpected keys (1): extra" in message and "0.weight: checkpoint (16, 9)" in message
    good = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    ignored = {**good, "clip_model.x": torch.zeros(1)}  # upstream's stripped CLIP weights
    assert load_checked(model, ignored) is model
    assert all(torch.equal(v, good[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="clip_model.x"):
        check_state_dict(model, ignored, ignore_prefixes=())


def test_module_and_vq_round_trips(tmp_path):
    vq = tiny_vq()
    mean, std = np.random.default_rng(0).standard_normal((2, 263)).astype(np.float32)
    save_vq(tmp_path / "vq_all" / "vq.safetensors", vq, mean, std)
    assert vq_file(tmp_path / "vq_all") == tmp_path / "vq_all" / "vq.safetensors"
    loaded, mean2, std2 = load_vq(tmp_path / "vq_all")
    assert np.array_equal(mean, mean2) and np.array_equal(std, std2) and not loaded.training
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vq.state_dict().items())
    for module in (BAMMTransformer(**TINY, num_tokens=K, clip_dim=C), LengthEstimator(C, 50, 8)):
        save_module(tmp_path / "m.safetensors", module)
        again = load_module(tmp_path / "m.safetensors")
        assert type(again) is type(module) and not again.training
        assert all(torch.equal(v, again.state_dict()[k]) for k, v in module.state_dict().items())
    save_state(tmp_path / "x", {}, {"class": "Linear", "config": {}})
    with pytest.raises(ValueError, match="unknown module class 'Linear'"):
        load_module(tmp_path / "x")
    save_state(tmp_path / "novq", vq.state_dict(), {"class": "RVQVAE", "config": vq.hparams})
    with pytest.raises(ValueError, match="no mean/std"):
        load_vq(tmp_path / "novq.safetensors")


def test_lcr_delta_round_trip(tmp_path):
    delta = {0: (torch.tensor([2, 7]), torch.randn(2, 4)), 3: (np.array([1]), np.ones((1, 4)))}
    save_lcr_delta(tmp_path / "d.safetensors", delta, {"r": 2})
    back = read_lcr_delta(tmp_path / "d.safetensors")
    assert sorted(back) == [0, 3] and back[0][0].dtype == torch.long
    assert torch.equal(back[0][1], delta[0][1]) and back[3][0].tolist() == [1]
    save_state(tmp_path / "broken", {"0.indices": torch.tensor([1])}, {})
    with pytest.raises(ValueError, match="layer 0 lacks '0.vectors'"):
        read_lcr_delta(tmp_path / "broken")
