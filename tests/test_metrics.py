"""Metric functions against independent straightforward computations."""

import statistics

import numpy as np
import pytest

from hmu.eval import metrics


def _eig_fid(x1, x2):
    """FID by the symmetric formula tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) with eigh."""
    mu1, mu2 = x1.mean(0), x2.mean(0)
    s1, s2 = np.cov(x1.T), np.cov(x2.T)
    vals, vecs = np.linalg.eigh(s1)
    s1_half = vecs @ np.diag(np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = np.linalg.eigvalsh(s1_half @ s2 @ s1_half)
    return (
        ((mu1 - mu2) ** 2).sum()
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.sqrt(np.clip(inner, 0, None)).sum()
    )


def test_activation_statistics_matches_definition():
    x = np.random.default_rng(0).normal(size=(50, 6))
    mu, cov = metrics.activation_statistics(x)
    centred = x - x.sum(0) / len(x)
    np.testing.assert_allclose(mu, x.sum(0) / len(x))
    np.testing.assert_allclose(cov, centred.T @ centred / (len(x) - 1), atol=1e-12)


def test_frechet_distance_matches_eigen_formula():
    rng = np.random.default_rng(1)
    x1 = rng.normal(size=(400, 16))
    x2 = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.7
    fid = metrics.frechet_distance(
        *metrics.activation_statistics(x1), *metrics.activation_statistics(x2)
    )
    assert fid == pytest.approx(_eig_fid(x1, x2), rel=1e-7)
    assert fid > 1.0


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    got = metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_degenerate_inputs():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8))
    stats = metrics.activation_statistics(x)
    assert abs(metrics.frechet_distance(*stats, *stats)) < 1e-6
    few_a, few_b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 0.5
    fid = metrics.frechet_distance(
        *metrics.activation_statistics(few_a), *metrics.activation_statistics(few_b)
    )
    assert np.isfinite(fid) and fid > 0
    singular = metrics.activation_statistics(few_a)
    assert abs(metrics.frechet_distance(*singular, *singular)) < 1e-3


def test_euclidean_distance_matrix_matches_loop():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    expected = [[np.linalg.norm(a[i] - b[j]) for j in range(4)] for i in range(7)]
    np.testing.assert_allclose(metrics.euclidean_distance_matrix(a, b), expected, atol=1e-10)
    assert np.all(np.diag(metrics.euclidean_distance_matrix(a, a)) >= 0)


def test_r_precision_matches_brute_force():
    rng = np.random.default_rng(4)
    text = rng.normal(size=(32, 8))
    motion = text + rng.normal(size=(32, 8)) * 1.2  # noisy: some hits, some misses
    hits = np.zeros((32, 3), dtype=bool)
    for i in range(32):
        dists = [np.linalg.norm(text[i] - motion[j]) for j in range(32)]
        order = list(np.argsort(dists))
        for k in range(3):
            hits[i, k] = i in order[: k + 1]
    np.testing.assert_array_equal(metrics.r_precision_hits(text, motion, top_k=3), hits)
    got = metrics.r_precision(text, motion, top_k=3)
    np.testing.assert_allclose(got, hits.mean(0))
    assert 0 < got[0] < 1 and np.all(np.diff(got) >= 0)


def test_r_precision_known_cases():
    text = np.eye(4) * 10
    assert metrics.r_precision(text, text).tolist() == [1.0, 1.0, 1.0]
    shifted = np.roll(text, 1, axis=0)  # every text's nearest motion belongs to another text
    assert metrics.r_precision(text, shifted, top_k=1).tolist() == [0.0]


def test_matching_score_matches_loop():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    per_pair = [np.sqrt(((a[i] - b[i]) ** 2).sum()) for i in range(9)]
    np.testing.assert_allclose(metrics.matching_distances(a, b), per_pair)
    assert metrics.matching_score(a, b) == pytest.approx(sum(per_pair) / 9)


def test_diversity_and_multimodality_follow_their_draws():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 3))
    draws = np.random.default_rng(11)
    first, second = draws.choice(50, 20, replace=False), draws.choice(50, 20, replace=False)
    expected = np.mean([np.linalg.norm(x[i] - x[j]) for i, j in zip(first, second, strict=True)])
    assert metrics.diversity(x, 20, seed=11) == pytest.approx(expected)
    assert metrics.diversity(np.ones((10, 3)), 10, seed=0) == 0.0

    mm = rng.normal(size=(5, 30, 3))
    draws = np.random.default_rng(12)
    first, second = draws.choice(30, 10, replace=False), draws.choice(30, 10, replace=False)
    expected = np.mean(
        [
            np.linalg.norm(mm[n, i] - mm[n, j])
            for n in range(5)
            for i, j in zip(first, second, strict=True)
        ]
    )
    assert metrics.multimodality(mm, 10, seed=12) == pytest.approx(expected)


def test_diversity_needs_enough_samples():
    with pytest.raises(ValueError, match="times=10"):
        metrics.diversity(np.zeros((5, 3)), 10, seed=0)
    with pytest.raises(ValueError, match="times=10"):
        metrics.multimodality(np.zeros((2, 5, 3)), 10, seed=0)


def test_mean_ci95_population_std():
    values = [1.0, 2.0, 4.0, 7.0]
    mean, ci = metrics.mean_ci95(values)
    assert mean == pytest.approx(3.5)
    assert ci == pytest.approx(1.96 * statistics.pstdev(values) / 2)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda bad: metrics.activation_statistics(bad), "x"),
        (lambda bad: metrics.frechet_distance(bad[1], np.eye(3), np.zeros(3), np.eye(3)), "mu1"),
        (lambda bad: metrics.euclidean_distance_matrix(np.zeros((4, 3)), bad), "b"),
        (lambda bad: metrics.r_precision(bad, np.zeros((4, 3))), "text_emb"),
        (lambda bad: metrics.matching_score(np.zeros((4, 3)), bad), "motion_emb"),
        (lambda bad: metrics.diversity(bad, 2, seed=0), "x"),
        (lambda bad: metrics.multimodality(bad[None], 2, seed=0), "x"),
        (lambda bad: metrics.mean_ci95(bad[:, 0]), "values"),
    ],
)
def test_non_finite_inputs_are_rejected(call, name):
    bad = np.zeros((4, 3))
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=f"^{name}: contains NaN"):
        call(bad)
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match=f"^{name}: contains NaN or Inf"):
        call(bad)
