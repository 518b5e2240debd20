"""Intervals and paired tests (hmu.eval.stats) against straightforward computations."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from hmu.eval import metrics, stats


def test_summarize_matches_hand_computation():
    values = [0.31, 0.25, 0.40, 0.28]
    n, mean = 4, sum(values) / 4
    sample_sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    population_sd = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    got = stats.summarize(values)
    assert got["mean"] == pytest.approx(mean)
    assert got["ci95"] == pytest.approx(1.96 * population_sd / math.sqrt(n))
    assert got["ci95_t"] == pytest.approx(sps.t.ppf(0.975, 3) * sample_sd / math.sqrt(n))
    assert got["values"] == values and all(isinstance(v, float) for v in got["values"])
    # with 3 repetitions the t-interval is about 2.7 times upstream's (issue 10)
    three = stats.summarize([1.0, 2.0, 4.0])
    assert three["ci95_t"] / three["ci95"] == pytest.approx(
        sps.t.ppf(0.975, 2) * math.sqrt(3 / 2) / 1.96
    )


def test_single_value_has_no_t_interval():
    got = stats.summarize([0.7])
    assert got == {"mean": 0.7, "ci95": 0.0, "ci95_t": None, "values": [0.7]}
    with pytest.raises(ValueError, match="values"):
        stats.summarize([])
    with pytest.raises(ValueError, match="NaN"):
        stats.summarize([1.0, float("nan")])


def test_paired_difference_is_the_summary_of_differences():
    a, b = [0.5, 0.6, 0.55], [0.2, 0.25, 0.3]
    got = stats.paired_difference(a, b)
    assert got["values"] == pytest.approx([0.3, 0.35, 0.25])
    assert got == stats.summarize(np.subtract(a, b))
    zero = stats.paired_difference(a, a)
    assert zero["mean"] == 0.0 and zero["ci95"] == 0.0 and zero["ci95_t"] == 0.0
    with pytest.raises(ValueError, match="differ"):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_resample_weights_are_counts_of_draws():
    w = stats.resample_weights(3, 50, 200, seed=7)
    assert w.shape == (200, 3, 50)
    assert (w.sum(-1) == 50).all() and (w >= 0).all()
    np.testing.assert_array_equal(w, stats.resample_weights(3, 50, 200, seed=7))
    assert not np.array_equal(w, stats.resample_weights(3, 50, 200, seed=8))
    # about 1 - 1/e of the samples are drawn at least once
    assert (w > 0).mean() == pytest.approx(1 - math.exp(-1), abs=0.02)


def _indices(weights_row):
    """The drawn indices behind one repetition's counts (order does not matter)."""
    return np.repeat(np.arange(len(weights_row)), weights_row.astype(int))


def test_statistics_equal_explicit_resamples():
    rng = np.random.default_rng(0)
    x = rng.random((2, 30))  # (R, N) per-sample values
    emb = rng.normal(size=(2, 30, 5))  # (R, N, D)
    w = stats.resample_weights(2, 30, 4, seed=1)
    means = stats.mean_statistic(x, w)
    diversity = stats.diversity_statistic(emb, w)
    for b in range(4):
        picks = [_indices(w[b, r]) for r in range(2)]
        assert means[b] == pytest.approx(np.mean([x[r][p].mean() for r, p in enumerate(picks)]))
        pair_means = []
        for r, p in enumerate(picks):
            drawn = emb[r][p]
            dist = [np.linalg.norm(drawn[i] - drawn[j]) for i in range(30) for j in range(30)]
            pair_means.append(sum(dist) / (30 * 29))  # ordered pairs of different draws
        assert diversity[b] == pytest.approx(np.mean(pair_means))
    assert stats.mean_statistic(x, np.ones((1, 2, 30)))[0] == pytest.approx(x.mean())


def _weighted_fid(real, gen, w):
    """FID of weighted samples, straight from the definition: mean sum(w x)/N, covariance
    C = sum(w (x-mu)(x-mu)^T)/(N-1) = Z^T Z/(N-1) with Z = sqrt(w) (x - mu); tr sqrt(C1 C2) as
    the sum of singular values of Z1 Z2^T/(N-1) (checked against sqrtm at w = 1 below; unlike
    sqrtm or eigenvalues, singular values stay accurate where C1 C2 is singular)."""
    n = len(w)
    means, centred = [], []
    for x in (real, gen):
        mu = (w[:, None] * x).sum(0) / n
        means.append(mu)
        centred.append(np.sqrt(w)[:, None] * (x - mu))
    (mu1, mu2), (z1, z2) = means, centred
    cross = np.linalg.svd(z1 @ z2.T, compute_uv=False).sum()
    return float((mu1 - mu2) @ (mu1 - mu2) + ((z1**2).sum() + (z2**2).sum() - 2 * cross) / (n - 1))


@pytest.mark.parametrize(("n", "dim"), [(40, 6), (12, 20)])  # more samples than dims, and fewer
def test_frechet_influence_is_the_derivative_of_fid(n, dim):
    rng = np.random.default_rng(n)
    real = rng.normal(size=(n, dim))
    gen = 0.8 * real + rng.normal(0.3, 0.7, size=(n, dim))
    fid, influence = stats.frechet_influence(real, gen)
    expected = metrics.frechet_distance(
        *metrics.activation_statistics(real), *metrics.activation_statistics(gen)
    )
    assert fid == pytest.approx(expected, rel=1e-6)
    assert fid == pytest.approx(_weighted_fid(real, gen, np.ones(n)), rel=1e-6)
    eps = 1e-5
    for i in (0, 3, n - 1):
        step = np.zeros(n)
        step[i] = eps
        numeric = (_weighted_fid(real, gen, 1 + step) - _weighted_fid(real, gen, 1 - step)) / (
            2 * eps
        )
        assert influence[i] == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_frechet_statistic_is_fid_at_unit_weights_and_tracks_resamples():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(2, 80, 4))
    gen = real + rng.normal(0.2, 0.5, size=real.shape)
    statistic = stats.frechet_statistic(real)
    plain = np.mean([stats.frechet_influence(r, g)[0] for r, g in zip(real, gen, strict=True)])
    assert statistic(gen, np.ones((1, 2, 80)))[0] == pytest.approx(plain)
    w = stats.resample_weights(2, 80, 40, seed=0)
    exact = [
        np.mean([_weighted_fid(real[r], gen[r], w[b, r]) for r in range(2)]) for b in range(40)
    ]
    linear = statistic(gen, w)
    assert np.corrcoef(exact, linear)[0, 1] > 0.9  # first order in the weights
    with pytest.raises(ValueError, match="differ"):
        statistic(gen[:, :10], w)


def _rates(p, shape, seed):
    return (np.random.default_rng(seed).random(shape) < p).astype(float)


def test_paired_bootstrap_on_rates():
    shape = (3, 96)
    low, high = _rates(0.2, shape, 0), _rates(0.6, shape, 1)
    mean = stats.mean_statistic
    assert stats.paired_bootstrap(low, high, mean, "down") < 0.05
    assert stats.paired_bootstrap(high, low, mean, "down") > 0.95
    assert stats.paired_bootstrap(high, low, mean, "up") < 0.05
    assert stats.paired_bootstrap(low, low.copy(), mean, "down") == 1.0  # identical: never
    near = _rates(0.22, shape, 2)
    p = stats.paired_bootstrap(low, near, mean, "down", n_boot=500, seed=3)
    assert p == stats.paired_bootstrap(low, near, mean, "down", n_boot=500, seed=3)
    assert p > 0.05  # 0.2 vs 0.22 on 288 samples is not a difference


def test_paired_bootstrap_towards_a_reference():
    shape = (3, 96)
    reference = _rates(0.3, shape, 5)
    close, far = _rates(0.32, shape, 6), _rates(0.05, shape, 7)
    mean = stats.mean_statistic
    assert stats.paired_bootstrap(close, far, mean, "target", reference=reference) < 0.05
    assert stats.paired_bootstrap(far, close, mean, "target", reference=reference) > 0.5
    assert stats.paired_bootstrap(close, far, mean, "target", reference=0.3) < 0.05
    with pytest.raises(ValueError, match="reference"):
        stats.paired_bootstrap(close, far, mean, "target")
    with pytest.raises(ValueError, match="goal"):
        stats.paired_bootstrap(close, far, mean, "sideways")


def test_paired_bootstrap_on_embeddings():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(3, 96, 8))
    good = real + rng.normal(0, 0.3, size=real.shape)
    bad = real + rng.normal(0.5, 0.3, size=real.shape)
    fid = stats.frechet_statistic(real)
    assert stats.paired_bootstrap(good, bad, fid, "down") < 0.05
    assert stats.paired_bootstrap(good, good, fid, "down") == 1.0
    spread = 3.0 * good
    assert stats.paired_bootstrap(spread, good, stats.diversity_statistic, "up") < 0.05
    boot = stats.bootstrap({"a": good, "b": bad}, fid, n_boot=50, seed=0)
    assert boot["a"].shape == (50,) and (boot["a"] < boot["b"]).all()
    with pytest.raises(ValueError, match="share"):
        stats.bootstrap({"a": good, "b": bad[:, :50]}, fid)


def test_paired_t_p_value_matches_scipy():
    a = np.array([0.30, 0.28, 0.35, 0.31])
    b = np.array([0.40, 0.33, 0.41, 0.39])
    expected = sps.ttest_rel(b, a, alternative="greater").pvalue
    assert stats.paired_t_p_value(a, b, "down") == pytest.approx(expected)
    assert stats.paired_t_p_value(b, a, "up") == pytest.approx(expected)
    ref = np.array([0.25, 0.25, 0.30, 0.28])
    expected = sps.ttest_rel(np.abs(b - ref), np.abs(a - ref), alternative="greater").pvalue
    assert stats.paired_t_p_value(a, b, "target", ref) == pytest.approx(expected)
    assert math.isnan(stats.paired_t_p_value([0.3], [0.4], "down"))  # one pass: no test
    assert stats.paired_t_p_value([0.2, 0.3], [0.2, 0.3], "down") == 0.5  # equal: no evidence
    assert stats.paired_t_p_value([0.25, 0.5], [0.5, 0.75], "down") == 0.0  # always lower
    assert stats.paired_t_p_value([0.5, 0.75], [0.25, 0.5], "down") == 1.0
    assert stats.paired_t_p_value([0.3, 0.3], [0.4, 0.4], "down") == 0.0
    assert stats.paired_t_p_value(a, a, "down") == 0.5  # identical: no evidence either way


def test_spearman():
    x = [0.1, 0.5, 0.3, 0.9, 0.7]
    y = [1.0, 3.0, 4.0, 5.0, 2.0]
    ranks_x, ranks_y = [1, 3, 2, 5, 4], [1, 3, 4, 5, 2]
    d2 = sum((a - b) ** 2 for a, b in zip(ranks_x, ranks_y, strict=True))
    assert stats.spearman(x, y) == pytest.approx(1 - 6 * d2 / (5 * 24))
    assert stats.spearman(x, x) == pytest.approx(1.0)
    assert math.isnan(stats.spearman([1, 2], [2, 1]))
    assert math.isnan(stats.spearman([1, 1, 1], [1, 2, 3]))
    assert stats.spearman([1, 2, 3, float("nan")], [3, 2, 1, 0]) == pytest.approx(-1.0)


def _result(rates: dict[str, dict[str, list[float]]]) -> dict:
    parts = {p: {m: stats.summarize(v) for m, v in ms.items()} for p, ms in rates.items()}
    return parts | {"meta": {"repetitions": 3}}


def test_excess_over_reference_pairs_every_rate_of_every_part():
    method = _result({
        "forget": {"toxic_rate": [0.9, 0.8, 0.85], "kinematic_rate": [0.6, 0.7, 0.5],
                   "fid": [1.0, 2.0, 3.0]},
        "implicit_heldout": {"toxic_rate": [0.5, 0.4, 0.45]},
    })  # fmt: skip
    reference = _result({
        "forget": {"toxic_rate": [0.2, 0.1, 0.15], "kinematic_rate": [0.1, 0.0, 0.05],
                   "fid": [9.0, 9.0, 9.0]},
        "implicit_heldout": {"toxic_rate": [0.3, 0.3, 0.3]},
    })  # fmt: skip
    excess = stats.excess_over_reference(method, reference)
    assert set(excess) == {"forget", "implicit_heldout"}
    assert set(excess["forget"]) == {"toxic_rate", "kinematic_rate"}  # rates only, no FID
    assert excess["forget"]["toxic_rate"]["values"] == pytest.approx([0.7, 0.7, 0.7])
    assert excess["forget"]["kinematic_rate"] == stats.paired_difference(
        [0.6, 0.7, 0.5], [0.1, 0.0, 0.05]
    )
    assert excess["implicit_heldout"]["toxic_rate"]["mean"] == pytest.approx(0.15)
    itself = stats.excess_over_reference(reference, reference)
    for entry in (e for part in itself.values() for e in part.values()):
        assert entry["mean"] == 0.0 and entry["ci95"] == 0.0 and entry["ci95_t"] == 0.0
    short = _result({"forget": {"toxic_rate": [0.2, 0.1]}})
    with pytest.raises(ValueError, match="forget.toxic_rate: 3 repetitions against"):
        stats.excess_over_reference(method, short)
    assert stats.excess_over_reference(method, {"meta": {}}) == {}
