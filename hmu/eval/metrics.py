"""Text-to-motion metrics of Guo et al. (2022): FID, R-precision, MM-Dist, Diversity, MM.

Pure numpy/scipy functions on embedding arrays; everything is computed in float64. The
formulas follow the upstream evaluation (momask-codes utils/metrics.py) so numbers are
comparable with the published tables; the protocol (batches, repetitions) lives elsewhere.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

SeedLike = int | np.random.Generator | None


def _as_finite(name: str, x, ndim: int | None = None) -> np.ndarray:
    """Return `x` as a float64 array; raise ValueError naming `name` if it is not finite
    or does not have `ndim` dimensions."""
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or Inf")
    return arr


def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_pairs(text_emb, motion_emb) -> tuple[np.ndarray, np.ndarray]:
    text = _as_finite("text_emb", text_emb, ndim=2)
    motion = _as_finite("motion_emb", motion_emb, ndim=2)
    if text.shape != motion.shape:
        raise ValueError(
            f"text_emb {text.shape} and motion_emb {motion.shape} must be matched pairs "
            "of the same shape"
        )
    return text, motion


def activation_statistics(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and sample covariance (D, D) of embeddings x (N, D), the inputs of FID."""
    acts = _as_finite("x", x, ndim=2)
    if acts.shape[0] < 2:
        raise ValueError(f"x: need at least 2 samples for a covariance, got {acts.shape[0]}")
    return acts.mean(axis=0), np.cov(acts, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians N(mu1, cov1) and N(mu2, cov2), as upstream FID.

    ||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 sqrtm(cov1 @ cov2)); if the matrix square root is
    not finite (singular covariances) it is retried with eps * I added to both covariances.
    """
    mu1, mu2 = _as_finite("mu1", mu1, ndim=1), _as_finite("mu2", mu2, ndim=1)
    cov1, cov2 = _as_finite("cov1", cov1, ndim=2), _as_finite("cov2", cov2, ndim=2)
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or cov1.shape != (dim, dim) or cov2.shape != (dim, dim):
        raise ValueError(
            f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, cov1 {cov1.shape}, "
            f"cov2 {cov2.shape}"
        )
    covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        offset = np.eye(dim) * eps
        covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(
                f"frechet_distance: imaginary component {np.abs(covmean.imag).max():.3g} "
                "in sqrtm(cov1 @ cov2)"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def euclidean_distance_matrix(a, b) -> np.ndarray:
    """Pairwise L2 distances (N1, N2) between rows of a (N1, D) and b (N2, D)."""
    a = _as_finite("a", a, ndim=2)
    b = _as_finite("b", b, ndim=2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a {a.shape} and b {b.shape} differ in dimension")
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def r_precision_hits(text_emb, motion_emb, top_k: int = 3) -> np.ndarray:
    """Retrieval hits (N, top_k) bool for one batch of matched pairs (row i <-> row i).

    Entry (i, k): text i's own motion is among its k+1 nearest motions of the batch.
    Ties count in favour of the match.
    """
    text, motion = _check_pairs(text_emb, motion_emb)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    dist = euclidean_distance_matrix(text, motion)  # (N, N)
    matched = np.diagonal(dist)[:, None]  # (N, 1)
    rank = (dist < matched).sum(axis=1)  # (N,) motions strictly closer than the match
    return rank[:, None] < np.arange(1, top_k + 1)[None, :]


def r_precision(text_emb, motion_emb, top_k: int = 3) -> np.ndarray:
    """Retrieval hit rates (top_k,) for one batch of matched pairs (row i <-> row i).

    Entry k is the share of texts whose own motion is among their k+1 nearest motions
    (cumulative, like upstream's top-1/2/3). Ties count in favour of the match.
    """
    return r_precision_hits(text_emb, motion_emb, top_k).mean(axis=0)


def matching_distances(text_emb, motion_emb) -> np.ndarray:
    """L2 distance (N,) between each matched text and motion embedding (N, D)."""
    text, motion = _check_pairs(text_emb, motion_emb)
    return np.linalg.norm(text - motion, axis=1)


def matching_score(text_emb, motion_emb) -> float:
    """MM-Dist: mean L2 distance between matched text and motion embeddings (N, D)."""
    return float(matching_distances(text_emb, motion_emb).mean())


def diversity(x, times: int, seed: SeedLike = None) -> float:
    """Mean L2 distance between two independent random draws (without replacement) of
    `times` rows of x (N, D): how spread out a set of motions is."""
    acts = _as_finite("x", x, ndim=2)
    if times < 1 or acts.shape[0] < times:
        raise ValueError(f"diversity: need at least times={times} samples, got {acts.shape[0]}")
    rng = _rng(seed)
    first = rng.choice(acts.shape[0], times, replace=False)
    second = rng.choice(acts.shape[0], times, replace=False)
    return float(np.linalg.norm(acts[first] - acts[second], axis=1).mean())


def multimodality(x, times: int, seed: SeedLike = None) -> float:
    """Mean L2 distance between two random draws of `times` of the R generations per text,
    x (N, R, D): how varied the motions generated for one caption are."""
    acts = _as_finite("x", x, ndim=3)
    if times < 1 or acts.shape[1] < times:
        raise ValueError(
            f"multimodality: need at least times={times} repeats per text, got {acts.shape[1]}"
        )
    rng = _rng(seed)
    first = rng.choice(acts.shape[1], times, replace=False)
    second = rng.choice(acts.shape[1], times, replace=False)
    return float(np.linalg.norm(acts[:, first] - acts[:, second], axis=2).mean())


def mean_ci95(values) -> tuple[float, float]:
    """Mean and 95% confidence half-width 1.96 * std / sqrt(n) (population std, as upstream)
    over repeated evaluations."""
    vals = _as_finite("values", values, ndim=1)
    if vals.size == 0:
        raise ValueError("values: empty")
    return float(vals.mean()), float(1.96 * vals.std() / np.sqrt(vals.size))
