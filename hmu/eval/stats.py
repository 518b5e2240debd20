"""Statistics of the benchmark: intervals over repetitions and paired tests between methods.

Every method is evaluated on the same prompts, lengths and crops (the protocol's sampling
depends only on the seed and the repetition, never on the generator), so two methods compare
pairwise: per repetition (`paired_difference`, `paired_t_p_value`) or per sample with a paired
bootstrap that draws the same sample indices for both methods (`bootstrap`,
`bootstrap_p_value`, `paired_bootstrap`).

A bootstrap statistic is vectorised over resamples: it receives the per-sample array of one
method, samples (R, N, ...) for R repetitions of N samples, and resample weights (B, R, N), the
number of times each sample is drawn in each of B resamples (each row sums to N), and returns
the statistic averaged over repetitions, (B,). All weights equal to 1 give the plain value.

Goals say which direction is better: "down" (lower), "up" (higher) or "target" (closer to a
reference: a value, or the reference method's samples resampled identically).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import stats

from hmu.eval import metrics

ALPHA = 0.05  # significance level of the report's rankings
GOALS = ("down", "up", "target")
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def t_halfwidth(values, level: float = 0.95) -> float | None:
    """Student-t half-width t_{(1+level)/2, n-1} * sample std / sqrt(n); None for n < 2."""
    vals = np.asarray(values, dtype=np.float64)
    if vals.size < 2:
        return None
    quantile = stats.t.ppf(0.5 + level / 2, vals.size - 1)
    return float(quantile * vals.std(ddof=1) / np.sqrt(vals.size))


def summarize(values) -> dict[str, Any]:
    """{"mean", "ci95", "ci95_t", "values"} of per-repetition values.

    ci95 is upstream's 1.96 * population std / sqrt(n) (comparable with published tables);
    ci95_t the Student-t interval with the sample std (None for a single value: no interval).
    """
    mean, ci95 = metrics.mean_ci95(values)
    vals = np.asarray(values, dtype=np.float64)
    return {"mean": mean, "ci95": ci95, "ci95_t": t_halfwidth(vals), "values": vals.tolist()}


def _paired_arrays(a_values, b_values, who: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a_values, dtype=np.float64)
    b = np.asarray(b_values, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{who}: per-repetition values of shapes {a.shape} and {b.shape} differ")
    return a, b


def paired_difference(a_values, b_values) -> dict[str, Any]:
    """summarize() of the per-repetition differences a - b (same repetition = same prompts)."""
    a, b = _paired_arrays(a_values, b_values, "paired_difference")
    return summarize(a - b)


def _loss(statistic: np.ndarray, goal: str, reference) -> np.ndarray:
    """Lower is better: the statistic itself, its negative, or its distance to the reference."""
    if goal == "down":
        return statistic
    if goal == "up":
        return -statistic
    if goal == "target":
        if reference is None:
            raise ValueError("goal 'target' needs a reference")
        return np.abs(statistic - reference)
    raise ValueError(f"goal must be one of {GOALS}, got {goal!r}")


def paired_t_p_value(a_values, b_values, goal: str, reference=None) -> float:
    """One-sided p-value of "a is better than b" from per-repetition values (paired t test).

    reference: a number or per-repetition values (goal "target"). NaN when there are fewer
    than 2 repetitions (no test possible); 0 or 1 when every repetition differs the same way, 0.5
    when a and b are equal in every repetition (no evidence either way).
    """
    a, b = _paired_arrays(a_values, b_values, "paired_t_p_value")
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    gain = _loss(b, goal, ref) - _loss(a, goal, ref)  # (R,) > 0 where a is better
    if gain.size < 2:
        return float("nan")
    spread = gain.std(ddof=1)
    if spread == 0:
        return 0.5 if gain.mean() == 0 else float(gain.mean() < 0)
    return float(stats.t.sf(gain.mean() / (spread / np.sqrt(gain.size)), gain.size - 1))


@functools.lru_cache(maxsize=8)
def resample_weights(repetitions: int, n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, R, n) counts: how often each sample index is drawn (n draws with replacement)
    in each resample of each repetition. Deterministic given the seed; cached and read-only,
    as every column of a report table resamples the same way."""
    if repetitions < 1 or n < 2 or n_boot < 1:
        raise ValueError(f"resample_weights: need R >= 1, n >= 2, n_boot >= 1; got "
                         f"{repetitions}, {n}, {n_boot}")  # fmt: skip
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot * repetitions, n))  # (B*R, n) sample indices
    rows = np.arange(n_boot * repetitions)[:, None] * n
    counts = np.bincount((draws + rows).ravel(), minlength=n_boot * repetitions * n)
    weights = counts.reshape(n_boot, repetitions, n).astype(np.float64)
    weights.flags.writeable = False
    return weights


def mean_statistic(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of per-sample values (R, N) (rates, distances, hits) per resample, (B,)."""
    x = np.asarray(samples, dtype=np.float64)
    return np.einsum("brn,rn->b", weights, x) / x.size


def diversity_statistic(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean distance between two different draws of the embeddings (R, N, D), (B,).

    The quantity metrics.diversity estimates with random pairs, here over all ordered pairs
    of draws (a sample drawn twice pairs with itself at distance 0)."""
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[1]
    dist = np.stack([metrics.euclidean_distance_matrix(e, e) for e in x])  # (R, N, N)
    dist[:, np.arange(n), np.arange(n)] = 0.0
    w = weights.transpose(1, 0, 2)  # (R, B, N)
    pairs = ((w @ dist) * w).sum(-1)  # (R, B)
    return pairs.mean(0) / (n * (n - 1))


def _cross_svd(a: np.ndarray, b: np.ndarray):
    """Thin SVD U (N, k), S (k,), V (N, k) of a b^T for a, b (N, D), k = min(N, D): through
    the QR factors when D < N (a b^T = Q_a (R_a R_b^T) Q_b^T), a k x k problem."""
    n, d = a.shape
    if d >= n:
        u, s, vt = np.linalg.svd(a @ b.T)
        return u, s, vt.T
    q_a, r_a = np.linalg.qr(a)  # (N, D), (D, D)
    q_b, r_b = np.linalg.qr(b)
    u, s, vt = np.linalg.svd(r_a @ r_b.T)
    return q_a @ u, s, q_b @ vt.T


def frechet_influence(real: np.ndarray, gen: np.ndarray) -> tuple[float, np.ndarray]:
    """FID between real (N, D) and generated (N, D) embeddings, and each sample's influence
    on it, (N,): the derivative of FID with respect to the sample's weight (paired samples
    share a weight), the first-order term of the bootstrap.

    FID = |mu_r - mu_g|^2 + (|Z_r|^2 + |Z_g|^2 - 2 |Z_r Z_g^T|_*) / (n - 1) with Z the centred
    embeddings: |Z_r Z_g^T|_* / (n - 1) (nuclear norm) is tr sqrt(C_r C_g), the term
    metrics.frechet_distance computes with scipy's sqrtm. With M = U S V^T, weighting sample i
    by w_i scales row and column i of M by sqrt(w_i), so d|M|_*/dw_i = (U_i^2 + V_i^2) . S / 2
    (centring contributes nothing at w = 1: the singular vectors are orthogonal to ones)."""
    real, gen = np.asarray(real, dtype=np.float64), np.asarray(gen, dtype=np.float64)
    n = len(real)
    gap = real.mean(0) - gen.mean(0)  # (D,)
    z_real, z_gen = real - real.mean(0), gen - gen.mean(0)  # (N, D)
    u, s, v = _cross_svd(z_real, z_gen)
    spread = (z_real**2).sum(1) + (z_gen**2).sum(1)  # (N,)
    fid = gap @ gap + (spread.sum() - 2.0 * s.sum()) / (n - 1)
    cross = (u**2 + v**2) @ s / 2.0  # (N,) d|M|_*/dw_i
    influence = 2.0 * (real - gen) @ gap / n + (spread - 2.0 * cross) / (n - 1)
    return float(fid), influence


def frechet_statistic(real: np.ndarray) -> Statistic:
    """FID between the real embeddings (R, N, D) and a method's (R, N, D), linearised in the
    resample weights: FID + sum_i (w_i - 1) influence_i per repetition (a delta-method
    bootstrap; exact at w = 1). Computing sqrtm per resample would cost an eigendecomposition
    of min(N, D)^2 per resample and method, minutes per table instead of milliseconds."""
    real = np.asarray(real, dtype=np.float64)

    def statistic(samples: np.ndarray, weights: np.ndarray) -> np.ndarray:
        gen = np.asarray(samples, dtype=np.float64)
        if gen.shape != real.shape:
            raise ValueError(f"FID: samples {gen.shape} and real {real.shape} differ")
        parts = [frechet_influence(r, g) for r, g in zip(real, gen, strict=True)]
        fid = np.array([p[0] for p in parts])  # (R,)
        influence = np.stack([p[1] for p in parts])  # (R, N)
        return fid.mean() + np.einsum("brn,rn->b", weights - 1.0, influence) / len(real)

    return statistic


def bootstrap(
    samples: Mapping[str, np.ndarray], statistic: Statistic, n_boot: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Bootstrap distributions (n_boot,) of a statistic for several methods at once, paired:
    every method's samples (R, N, ...) are resampled with the same weights (same indices)."""
    shapes = {name: np.shape(x)[:2] for name, x in samples.items()}
    if not shapes or len(set(shapes.values())) != 1:
        raise ValueError(f"bootstrap: samples must share (repetitions, N); got {shapes}")
    reps, n = next(iter(shapes.values()))
    weights = resample_weights(reps, n, n_boot, seed)
    return {name: statistic(x, weights) for name, x in samples.items()}


def bootstrap_p_value(a_boot, b_boot, goal: str, reference=None) -> float:
    """One-sided p-value of "a is better than b" from paired bootstrap distributions (B,):
    (1 + #resamples where a is not better) / (B + 1). reference: a number or the reference
    method's bootstrap distribution (goal "target"). Identical methods give 1."""
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    a, b = np.asarray(a_boot, np.float64), np.asarray(b_boot, np.float64)
    gain = _loss(b, goal, ref) - _loss(a, goal, ref)
    return float((1 + np.count_nonzero(gain <= 0)) / (gain.size + 1))


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    statistic: Statistic,
    goal: str,
    reference=None,
    n_boot: int = 1000,
    seed: int = 0,
) -> float:
    """p-value of "method a is better than method b" on the same samples (R, N, ...).

    reference (goal "target"): a number, or the reference method's samples (R, N, ...),
    resampled with the same indices as a and b."""
    samples = {"a": a, "b": b}
    if reference is not None and np.ndim(reference) > 0:
        samples["reference"] = reference
    boot = bootstrap(samples, statistic, n_boot, seed)
    return bootstrap_p_value(boot["a"], boot["b"], goal, boot.get("reference", reference))


def spearman(x, y) -> float:
    """Spearman rank correlation of two instruments' values over the same rows; NaN when
    fewer than 3 rows are finite in both or either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"spearman: x {x.shape} and y {y.shape} differ")
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan")
    return float(stats.spearmanr(x[keep], y[keep]).statistic)


def excess_over_reference(
    result: Mapping[str, Any], reference: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Excess rates over the reference method (D_r) for a method's result JSON:
    {part: {rate: paired_difference(method values, reference values)}} for every part and
    every "<x>_rate" metric both hold with per-repetition values (same repetition = same
    prompts). The reference against itself gives zeros with zero intervals."""
    excess: dict[str, dict[str, Any]] = {}
    for part, entries in result.items():
        if part in ("meta", "excess") or not isinstance(entries, Mapping):
            continue
        ref_entries = reference.get(part, {})
        for metric, entry in entries.items():
            ref = ref_entries.get(metric)
            if not metric.endswith("_rate") or not isinstance(ref, Mapping):
                continue
            if "values" not in entry or "values" not in ref:
                continue
            if len(entry["values"]) != len(ref["values"]):
                raise ValueError(
                    f"excess {part}.{metric}: {len(entry['values'])} repetitions against the "
                    f"reference's {len(ref['values'])}; evaluate both with the same protocol"
                )
            excess.setdefault(part, {})[metric] = paired_difference(entry["values"], ref["values"])
    return excess


def roc_auc(scores, labels) -> float:
    """ROC-AUC as the Mann-Whitney statistic: P(score of a positive > score of a negative),
    ties counted one half (average ranks). NaN when a class is empty."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"roc_auc: scores {scores.shape} and labels {labels.shape} must be (N,)")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # average rank (1-based) over each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
