"""Training the token models: batches, caption draws, objectives, resuming, fine-tuning."""

import numpy as np
import pytest
import torch
from tiny_setup import TINY, C, K, Q

import hmu.train.generators as gens
from hmu.data.dataset import TokenTable
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.train.generators import (
    CaptionIndex,
    TokenData,
    token_batches,
    train_length_estimator,
    train_residual,
    train_transformer,
)
from hmu.train.loop import TrainConfig
from hmu.train.runs import WORK_ROOT, work_dir

torch.set_num_threads(1)
SIZES = {**TINY, "num_tokens": K, "clip_dim": C}


def structured_tokens(motions: int = 16, seed: int = 0) -> TokenData:
    """A learnable token set: 4 classes; the codes and caption embeddings depend on the class."""
    rng = np.random.default_rng(seed)
    classes = np.arange(motions) % 4
    n_tokens = rng.integers(6, 12, motions)
    tokens = np.full((motions, 49, Q), -1, dtype=np.int16)
    for i, (c, n) in enumerate(zip(classes, n_tokens, strict=True)):
        tokens[i, :n] = (c * 5 + np.arange(n)[:, None] + 7 * np.arange(Q)) % K
    centres = rng.standard_normal((4, C)).astype(np.float32) * 2
    text_emb = np.repeat(centres[classes], 2, axis=0) + 0.1 * rng.standard_normal((2 * motions, C))
    captions = [np.array([2 * i, 2 * i + 1]) for i in range(motions)]
    table = TokenTable(tokens, n_tokens, K)
    return TokenData(table, np.arange(motions), captions, text_emb.astype(np.float32))


def cfg(**kw) -> TrainConfig:
    return TrainConfig(
        **{"steps": 60, "batch_size": 8, "lr": 3e-3, "checkpoint_every": 1000, "log_every": 1000,
           **kw}
    )  # fmt: skip


def test_caption_index_draws_only_own_captions_uniformly():
    index = CaptionIndex([np.array([0, 1, 2]), np.array([3]), np.array([7, 5])])
    motions = torch.tensor([0, 1, 2] * 3000)
    picked = index.sample(motions, torch.Generator().manual_seed(0)).numpy().reshape(-1, 3)
    assert set(picked[:, 0]) == {0, 1, 2} and set(picked[:, 1]) == {3}
    assert set(picked[:, 2]) == {5, 7}
    shares = np.bincount(picked[:, 0], minlength=3) / len(picked)
    assert np.all(np.abs(shares - 1 / 3) < 0.04)
    with pytest.raises(ValueError, match="without captions"):
        CaptionIndex([np.array([0]), np.array([], dtype=np.int64)])


def test_token_batches_gather_rows_and_own_captions():
    data = structured_tokens()
    rows = np.array([3, 5, 8, 9])
    subset = TokenData(data.table, rows, [data.caption_rows[r] for r in rows], data.text_emb)
    batch = token_batches(subset)(torch.tensor([2, 0]), torch.Generator().manual_seed(1))
    assert batch["ids"].shape == (2, 49, Q) and batch["ids"].dtype == torch.long
    assert torch.equal(batch["ids"][0], torch.from_numpy(data.table.tokens[8]).long())
    assert batch["lengths"].tolist() == [data.table.n_tokens[8], data.table.n_tokens[3]]
    for cond, row in zip(batch["cond"], (8, 3), strict=True):
        assert any(
            torch.equal(cond, torch.from_numpy(data.text_emb[c])) for c in data.caption_rows[row]
        )


def _fixed_loss(model, task, data) -> float:
    """Loss of a fixed batch with fixed corruption, eval mode (no dropout, no cond dropout)."""
    batch = token_batches(data)(torch.arange(len(data.rows)), torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        return float(gens.Objective(model, task)(batch)[0])


@pytest.mark.parametrize("task", ["momask", "bamm", "res", "length"])
def test_training_reduces_loss(tmp_path, task):
    data = structured_tokens()
    torch.manual_seed(0)
    if task in ("momask", "bamm"):
        before = gens.TRANSFORMERS[task](**SIZES)
        model = train_transformer(task, data, SIZES, cfg(), tmp_path, progress=False)
    elif task == "res":
        before = ResidualTransformer(**SIZES, num_quantizers=Q)
        model = train_residual(
            data, {**SIZES, "num_quantizers": Q}, cfg(), tmp_path, progress=False
        )
    else:
        before = LengthEstimator(C, 50, 32)
        model = train_length_estimator(data, {"hidden": 32}, cfg(), tmp_path, progress=False)
    assert not model.training
    start, end = _fixed_loss(before, task, data), _fixed_loss(model, task, data)
    assert end < 0.6 * start, (start, end)


def test_training_resumes_like_uninterrupted_run(tmp_path):
    data = structured_tokens()
    full = train_transformer("bamm", data, SIZES, cfg(steps=6), tmp_path / "a", progress=False)
    train_transformer("bamm", data, SIZES, cfg(steps=3), tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "trans_bamm.state.safetensors").exists()
    resumed = train_transformer("bamm", data, SIZES, cfg(steps=6), tmp_path / "b", progress=False)
    for (key, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), key


def test_work_dir_is_keyed_by_config_and_data():
    a = work_dir("ds", "trans", {"lr": 1}, np.arange(3))
    assert a == work_dir("ds", "trans", {"lr": 1}, np.arange(3))
    assert a != work_dir("ds", "trans", {"lr": 2}, np.arange(3))
    assert a != work_dir("ds", "trans", {"lr": 1}, np.arange(4))
    assert a.parent == WORK_ROOT / "ds" and a.name.startswith("trans-")


def test_finetune_copies_init_and_checks_inputs(tmp_path):
    data = structured_tokens()
    torch.manual_seed(0)
    base = MaskTransformer(**SIZES)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = train_transformer(
        "momask", data, None, cfg(steps=5), tmp_path, init=base, progress=False
    )
    assert tuned is not base
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    assert not torch.equal(tuned.cond_emb.weight, base.cond_emb.weight)
    with pytest.raises(ValueError, match="expected a BAMMTransformer"):
        train_transformer("bamm", data, None, cfg(), tmp_path / "x", init=base)
    with pytest.raises(ValueError, match="clip_dim"):
        train_transformer("momask", data, {**SIZES, "clip_dim": C + 1}, cfg(), tmp_path / "y")
    with pytest.raises(ValueError, match="num_tokens"):
        train_transformer("momask", data, {**SIZES, "num_tokens": 8}, cfg(), tmp_path / "z")
