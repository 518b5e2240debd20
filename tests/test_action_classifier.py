"""The toxic-action classifier: rank AUC, threshold calibration, training, checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hmu.eval import action_classifier as ac

SMALL = {"hidden": 16, "epochs": 12, "batch_size": 16, "lr": 1e-2, "augment": 0.5}
BURST_DIMS = slice(200, 212)  # local velocities: a fast "strike" shows up here


def _brute_force_auc(scores, labels) -> float:
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def _toy_motions(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Noise motions of random length; the toxic ones carry an 8-frame burst somewhere."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3 == 0
    motions = []
    for toxic in labels:
        motion = rng.standard_normal((int(rng.integers(24, 80)), 263)).astype(np.float32)
        if toxic:
            start = int(rng.integers(0, len(motion) - 8))
            motion[start : start + 8, BURST_DIMS] += 4.0
        motions.append(motion)
    return motions, labels


@pytest.fixture(scope="module")
def toy_model():
    motions, labels = _toy_motions(90, seed=0)
    return ac.fit_action_classifier(motions, labels, params=SMALL, seed=0)


def test_roc_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = rng.integers(0, 6, 40).astype(float)  # many ties
        labels = rng.random(40) < 0.3
        if labels.all() or not labels.any():
            continue
        assert ac.roc_auc(scores, labels) == pytest.approx(_brute_force_auc(scores, labels))
    assert ac.roc_auc([0.1, 0.9], [False, True]) == 1.0
    assert ac.roc_auc([0.9, 0.1], [False, True]) == 0.0
    assert np.isnan(ac.roc_auc([0.1, 0.2], [True, True]))
    with pytest.raises(ValueError, match="roc_auc"):
        ac.roc_auc([0.1, 0.2], [True])


@pytest.mark.parametrize("max_fpr", [0.0, 0.01, 0.05, 0.2])
def test_calibrate_threshold_is_smallest_with_fpr_bound(max_fpr):
    rng = np.random.default_rng(2)
    for trial in range(20):
        n = int(rng.integers(5, 200))
        # continuous or heavily tied scores, float32 like the model's
        scores = rng.random(n).astype(np.float32 if trial % 3 else np.float64)
        if trial % 2:
            scores = (rng.integers(0, 5, n) / 4).astype(np.float32)
        labels = rng.random(n) < 0.2
        if labels.all():
            continue
        t = ac.calibrate_threshold(scores, labels, max_fpr)
        safe = scores[~labels].astype(np.float64)
        assert (safe >= t).mean() <= max_fpr
        assert (scores[~labels] >= t).mean() <= max_fpr  # compared in float32
        # any threshold at or below the next safe score down would flag too many
        below = safe[safe < t]
        if len(below):
            assert (safe >= below.max()).mean() > max_fpr
        # verdicts through rates() agree with the bound
        assert ac.rates(scores, labels, t)["fpr"] <= max_fpr


def test_calibrate_threshold_rejects_bad_input():
    with pytest.raises(ValueError, match="no safe"):
        ac.calibrate_threshold([0.5, 0.6], [True, True])
    with pytest.raises(ValueError, match="max_fpr"):
        ac.calibrate_threshold([0.5], [False], max_fpr=1.5)


def test_separable_toy_problem_reaches_auc_1(toy_model):
    motions, labels = _toy_motions(60, seed=5)
    scores = ac.score_motions(toy_model, motions)
    assert ac.roc_auc(scores, labels) == 1.0
    threshold = ac.calibrate(toy_model, motions, labels, max_fpr=0.05)
    assert float(toy_model.threshold) == threshold
    batch = _padded(motions)
    expected = toy_model.toxic_probability(*batch).astype(np.float64) >= threshold
    assert toy_model.verdict(*batch).tolist() == expected.tolist()
    assert (scores[~labels] >= threshold).mean() <= 0.05


def _padded(motions):
    lengths = np.array([len(m) for m in motions])
    batch = np.zeros((len(motions), lengths.max(), 263), np.float32)
    for i, m in enumerate(motions):
        batch[i, : len(m)] = m
    return batch, lengths


def test_score_does_not_depend_on_batch_padding(toy_model):
    motions, _ = _toy_motions(12, seed=6)
    alone = np.array([toy_model.toxic_probability(m[None], [len(m)])[0] for m in motions])
    batch, lengths = _padded(motions)
    np.testing.assert_allclose(toy_model.toxic_probability(batch, lengths), alone, atol=1e-6)
    np.testing.assert_allclose(ac.score_motions(toy_model, motions), alone, atol=1e-6)


def test_training_is_deterministic_and_thread_independent():
    motions, labels = _toy_motions(40, seed=3)
    params = {**SMALL, "epochs": 2}
    threads = torch.get_num_threads()
    fitted = {}
    try:
        for run, (n_threads, seed) in enumerate([(2, 7), (2, 7), (1, 7), (2, 8)]):
            torch.set_num_threads(n_threads)
            model = ac.fit_action_classifier(motions, labels, params=params, seed=seed)
            assert torch.get_num_threads() == n_threads  # the caller's setting is restored
            fitted[run] = model.state_dict()
    finally:
        torch.set_num_threads(threads)
    for same in (1, 2):
        assert all(torch.equal(fitted[0][k], fitted[same][k]) for k in fitted[0])
    assert not torch.equal(fitted[0]["head.weight"], fitted[3]["head.weight"])


def test_save_load_round_trip(toy_model, tmp_path):
    toy_model.threshold.fill_(0.123456789)
    ac.save_action_classifier(tmp_path / "clf", toy_model, {"dataset": "toy"})
    loaded = ac.load_action_classifier(tmp_path / "clf.safetensors")
    assert (tmp_path / "clf.json").exists()
    assert loaded.config() == toy_model.config()
    assert float(loaded.threshold) == 0.123456789
    motions, _ = _toy_motions(10, seed=4)
    np.testing.assert_array_equal(
        ac.score_motions(loaded, motions), ac.score_motions(toy_model, motions)
    )


def test_action_labels_and_multilabel_training():
    meta = pd.DataFrame(
        {
            "motion_id": ["a", "b", "c", "d"],
            "actions": [["walk"], ["jab", "walk"], ["clap"], ["kick"]],
            "toxic_actions": [[], ["jab"], [], ["kick"]],
        }
    )
    labels, names, toxic = ac.action_labels(meta, ["d", "a", "b"])
    assert names == ["clap", "jab", "kick", "walk"]
    assert toxic == [False, True, True, False]
    assert labels.tolist() == [
        [False, False, True, False],
        [False, False, False, True],
        [False, True, False, True],
    ]
    with pytest.raises(ValueError, match="no labels"):
        ac.action_labels(meta, ["zz"])
    motions, _ = _toy_motions(3, seed=9)
    model = ac.fit_action_classifier(
        motions, labels, names, toxic, params={**SMALL, "epochs": 1, "score": "max"}
    )
    assert model.outputs == [*names, "toxic"]
    assert ac.score_motions(model, motions).shape == (3,)


def test_bad_inputs_fail_clearly(toy_model):
    motions, labels = _toy_motions(6, seed=1)
    with pytest.raises(ValueError, match="labels"):
        ac.fit_action_classifier(motions, labels[:3])
    with pytest.raises(ValueError, match="empty"):
        ac.fit_action_classifier([], labels[:0])
    with pytest.raises(ValueError, match="unknown params"):
        ac.fit_action_classifier(motions, labels, params={"epoch": 2})
    with pytest.raises(ValueError, match="HumanML3D layout"):
        ac.fit_action_classifier([np.zeros((10, 12))], labels[:1])
    with pytest.raises(ValueError, match=r"motions\[1\]"):
        ac.fit_action_classifier([motions[0], np.zeros((3, 263))], labels[:2])
    with pytest.raises(ValueError, match="motions: expected"):
        toy_model.toxic_probability(np.zeros((1, 10, 250)), [10])
    with pytest.raises(ValueError, match="lengths"):
        toy_model.toxic_probability(np.zeros((1, 10, 263)), [2])


def test_generator_like_smoothing_matches_scipy():
    from scipy.ndimage import gaussian_filter1d

    x = torch.randn(3, 48, 5)
    lengths = torch.tensor([48, 48, 30])
    smoothed = ac._generator_like(x, lengths, np.random.default_rng(1), 2.5, 0.0)
    sigma = np.random.default_rng(1).uniform(0, 2.5)  # the draw _generator_like makes first
    radius = np.ceil(3 * sigma)
    expected = gaussian_filter1d(x.numpy(), sigma, axis=1, mode="nearest", truncate=radius / sigma)
    np.testing.assert_allclose(smoothed[:2].numpy(), expected[:2], atol=1e-5)
    assert (smoothed[2, 30:] == 0).all()


def test_safe_windows_crop_only_safe_motions_within_bounds():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, 500)
    safe = rng.random(500) < 0.7
    cfg = {"safe_crops": 0.5, "min_crop": 40}
    starts, sizes = ac._safe_windows(lengths, safe, rng, cfg)
    cropped = sizes < lengths
    assert not cropped[~safe].any() and (starts[~safe] == 0).all()
    assert (starts >= 0).all() and (starts + sizes <= lengths).all()
    assert (sizes[cropped] >= 40).all()
    assert 0.3 < cropped[safe & (lengths > 60)].mean() < 0.6
