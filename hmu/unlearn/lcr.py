"""Latent Code Replacement (LCR, the paper's Algorithm 1): training-free unlearning that
overwrites the VQ codes most specific to the forget set D_f.

1. Presence N_k(D) = number of motions of D whose token sequence contains code k (a motion
   counts once however often the code occurs in it).
2. Score s_k = N_k(D_f) / N_k(D_r), with a guard for codes absent from D_r (`absent_guard`):
   - "paper" (default): N_k(D_r) + 1e-8, as the paper's code: codes seen only in D_f rank
     first, ordered by N_k(D_f);
   - "clamp": max(N_k(D_r), 1): an absent code counts as seen in one retain motion;
   - "add_one": N_k(D_r) + 1 for every code (add-one smoothing of the denominator).
   Codes never seen in D_f score 0 under every guard.
3. Select the top-r codes (ties broken by the lower index).
4. Replace each selected code by a randomly drawn safe code vector (not selected; by default
   one that occurs in D_r) plus Gaussian noise of std alpha * codebook.std().

The result is a small delta {layer: (indices (r,), new vectors (r, D))} applied to a copy of
the RVQ-VAE's codebooks; the transformers are left untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

ABSENT_GUARDS = ("paper", "clamp", "add_one")
Delta = dict[int, tuple[torch.Tensor, torch.Tensor]]


def _token_table(tokens, name: str, codebook_size: int, ndim: int) -> np.ndarray:
    """Tokens as an int64 numpy array of `ndim` dims with values in [-1, codebook_size)."""
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    tokens = np.asarray(tokens)
    if tokens.ndim != ndim or not np.issubdtype(tokens.dtype, np.integer):
        shape = "(N, L)" if ndim == 2 else "(N, L, Q)"
        raise ValueError(
            f"{name}: expected an integer {shape} array, got {tokens.dtype} {tokens.shape}"
        )
    if tokens.size and (tokens.min() < -1 or tokens.max() >= codebook_size):
        raise ValueError(f"{name}: token values must lie in [-1, {codebook_size}) (-1 = padding)")
    return tokens.astype(np.int64, copy=False)


def _presence(tokens: np.ndarray, codebook_size: int) -> np.ndarray:
    """Presence counts of validated (N, L) tokens -> (K,) int64."""
    seen = np.zeros((tokens.shape[0], codebook_size + 1), dtype=bool)  # last column = padding
    seen[np.arange(tokens.shape[0])[:, None], np.where(tokens < 0, codebook_size, tokens)] = True
    return np.count_nonzero(seen[:, :codebook_size], axis=0).astype(np.int64)


def code_presence(tokens, codebook_size: int) -> np.ndarray:
    """Number of motions in which each code appears: tokens (N, L) int, -1 = padding -> (K,)."""
    return _presence(_token_table(tokens, "tokens", codebook_size, 2), codebook_size)


def _ratio(forget_counts: np.ndarray, retain_counts: np.ndarray, absent_guard: str) -> np.ndarray:
    """s_k = N_k(D_f) / guarded N_k(D_r) (float64, 0 where N_k(D_f) = 0)."""
    retain = retain_counts.astype(np.float64)
    if absent_guard == "paper":
        retain = retain + 1e-8
    elif absent_guard == "clamp":
        retain = np.maximum(retain, 1.0)
    elif absent_guard == "add_one":
        retain = retain + 1.0
    else:
        raise ValueError(f"absent_guard={absent_guard!r}: expected one of {ABSENT_GUARDS}")
    return forget_counts / retain


def forget_scores(
    forget_tokens, retain_tokens, codebook_size: int, absent_guard: str = "paper"
) -> np.ndarray:
    """Forget-to-retain presence ratio s_k = N_k(D_f) / N_k(D_r) per code -> (K,) float64.

    forget_tokens (N_f, L), retain_tokens (N_r, L): one layer's codes, -1 = padding.
    `absent_guard` sets the denominator for codes absent from D_r (see the module docstring).
    """
    forget = code_presence(forget_tokens, codebook_size)
    retain = code_presence(retain_tokens, codebook_size)
    return _ratio(forget, retain, absent_guard)


def normalised_scores(
    forget_tokens, retain_tokens, codebook_size: int, absent_guard: str = "paper"
) -> np.ndarray:
    """Ratio of presence shares (N_k(D_f) / |D_f|) / (N_k(D_r) / |D_r|) -> (K,) float64.

    With the same guard this is s_k times the constant |D_r| / |D_f|, so it ranks codes like
    `forget_scores`; it is kept for the paper code's 'union' rule and for reporting.
    """
    num_forget, num_retain = len(forget_tokens), len(retain_tokens)
    if num_forget == 0 or num_retain == 0:
        raise ValueError("forget_tokens and retain_tokens must each hold at least one motion")
    scores = forget_scores(forget_tokens, retain_tokens, codebook_size, absent_guard)
    return scores * (num_retain / num_forget)


def _top(scores: np.ndarray, r: int) -> np.ndarray:
    """Indices of the r largest scores, ties broken by the lower index."""
    return np.argsort(-scores, kind="stable")[:r]


def select_codes(
    scores, r: int, rule: str = "ratio", normalised: np.ndarray | None = None
) -> np.ndarray:
    """Codes to replace -> int64 indices, best first.

    rule='ratio': the top-r codes by `scores` (exactly r). rule='union' (the paper's code):
    the top-r by `scores` followed by those top-r by `normalised` not already chosen (r or
    more). Ties are broken by the lower code index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or np.isnan(scores).any():
        raise ValueError(f"scores: expected a 1-D array without NaN, got shape {scores.shape}")
    if not 0 <= r <= scores.size:
        raise ValueError(f"r={r}: must lie in [0, {scores.size}] (the codebook size)")
    chosen = _top(scores, r)
    if rule == "ratio":
        return chosen
    if rule != "union":
        raise ValueError(f"rule={rule!r}: expected 'ratio' or 'union'")
    if normalised is None:
        raise ValueError("rule='union' needs the `normalised` scores")
    normalised = np.asarray(normalised, dtype=np.float64)
    if normalised.shape != scores.shape:
        raise ValueError(f"normalised: shape {normalised.shape} != scores {scores.shape}")
    extra = _top(normalised, r)
    return np.concatenate([chosen, extra[~np.isin(extra, chosen)]])


def replace_codes(
    codebook: torch.Tensor,
    selected,
    safe_pool=None,
    alpha: float = 1.0,
    seed: int = 0,
    generator: torch.Generator | None = None,
    one_target: bool = False,
) -> torch.Tensor:
    """A new codebook (K, D) whose `selected` rows are random safe codes plus noise.

    Each selected code becomes codebook[s] + N(0, (alpha * codebook.std())^2) with s drawn
    uniformly from `safe_pool` (default: every code not selected). one_target=True draws a
    single s for all selected codes (Algorithm 1 as written; the noise still differs).
    Randomness comes from `generator` if given, else a CPU generator seeded with `seed`.
    The input tensor is not modified.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    rows, vectors = _replacements(codebook, selected, safe_pool, alpha, generator, one_target)
    new = codebook.detach().clone()
    new[rows] = vectors
    return new


def _replacements(codebook, selected, safe_pool, alpha, generator, one_target):
    """Rows to replace (r,) and their new vectors (r, D) on the codebook's device."""
    if not isinstance(codebook, torch.Tensor) or codebook.dim() != 2:
        raise ValueError("codebook: expected a (K, D) torch tensor")
    num_codes = codebook.shape[0]
    selected = _index_set(selected, "selected", num_codes)
    if safe_pool is None:
        pool = np.setdiff1d(np.arange(num_codes), selected)
    else:
        pool = _index_set(safe_pool, "safe_pool", num_codes)
    if pool.size == 0:
        raise ValueError("safe_pool: no safe code to copy from")
    if np.isin(pool, selected).any():
        raise ValueError("safe_pool: contains selected codes")

    draws = torch.randint(pool.size, (1 if one_target else selected.size,), generator=generator)
    sources = torch.from_numpy(pool)[draws].expand(selected.size)  # (r,)
    noise = torch.randn((selected.size, codebook.shape[1]), generator=generator)  # (r, D)
    noise = noise.to(device=codebook.device, dtype=codebook.dtype)
    rows = torch.from_numpy(selected).to(codebook.device)
    codebook = codebook.detach()
    # unbiased std of all entries, in numpy: torch's threaded reduction is slow on a busy CPU
    std = float(np.std(codebook.cpu().numpy(), ddof=1, dtype=np.float64))
    return rows, codebook[sources.to(codebook.device)] + alpha * std * noise


def _index_set(indices, name: str, size: int) -> np.ndarray:
    """Distinct code indices as int64 numpy, checked to lie in [0, size)."""
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise ValueError(f"{name}: indices must lie in [0, {size})")
    if np.unique(indices).size != indices.size:
        raise ValueError(f"{name}: indices must be distinct")
    return indices


def _codebook_key(layer: int) -> str:
    return f"quantizer.layers.{layer}.codebook"


def _layer_codebook(codebooks, layer: int) -> torch.Tensor:
    """Codebook (K, D) of one layer from a (Q, K, D) tensor, an RVQ state dict or module."""
    if isinstance(codebooks, nn.Module):
        return codebooks.quantizer.layers[layer].codebook
    if isinstance(codebooks, Mapping):
        if _codebook_key(layer) not in codebooks:
            raise ValueError(f"codebooks: state dict has no key {_codebook_key(layer)!r}")
        return codebooks[_codebook_key(layer)]
    if isinstance(codebooks, torch.Tensor) and codebooks.dim() == 3:
        return codebooks[layer]
    raise ValueError("codebooks: expected a (Q, K, D) tensor, an RVQ state dict or an RVQVAE")


RARE_SUPPORT = 3  # a selected code seen in fewer forget motions than this is "rare"


def layer_selection(
    forget_counts: np.ndarray,
    retain_counts: np.ndarray,
    n_forget: int,
    n_retain: int,
    r: int,
    rule: str = "ratio",
    absent_guard: str = "paper",
    min_support: int = 1,
) -> np.ndarray:
    """One layer's selected codes (int64, best first) from presence counts (K,) each.

    Only codes present in at least `min_support` forget motions are eligible (1: the paper's
    rule, every code of D_f); with fewer than r eligible codes, fewer are selected."""
    if min_support < 1:
        raise ValueError(f"lcr.min_support={min_support}: must be >= 1 (1 = the paper's rule)")
    scores = _ratio(forget_counts, retain_counts, absent_guard)
    normalised = scores * (n_retain / max(n_forget, 1))
    eligible = forget_counts >= min_support
    selected = select_codes(
        np.where(eligible, scores, -1.0), r, rule, np.where(eligible, normalised, -1.0)
    )
    return selected[eligible[selected]]


def selection_summary(forget_tokens, retain_tokens, codebooks, layer: int = 0, **rule) -> dict:
    """How many of a layer's selected codes are rare (< RARE_SUPPORT forget motions) or absent
    from D_r, with the forget support of each; codebooks as `lcr_delta` takes them; `rule`:
    layer_selection's r, rule, absent_guard, min_support. Shows whether a selection targets
    D_f's motions or its noise."""
    codebook_size = _layer_codebook(codebooks, layer).shape[0]
    forget = _token_table(forget_tokens, "forget_tokens", codebook_size, 3)[:, :, layer]
    retain = _token_table(retain_tokens, "retain_tokens", codebook_size, 3)[:, :, layer]
    f_counts, r_counts = _presence(forget, codebook_size), _presence(retain, codebook_size)
    selected = layer_selection(f_counts, r_counts, len(forget), len(retain), **rule)
    return {
        "selected": len(selected),
        "rare": int((f_counts[selected] < RARE_SUPPORT).sum()),
        "absent_from_retain": int((r_counts[selected] == 0).sum()),
        "forget_support": f_counts[selected].tolist(),
    }


def lcr_delta(
    forget_tokens,
    retain_tokens,
    codebooks,
    r: int,
    alpha: float = 1.0,
    layers: Iterable[int] = (0,),
    rule: str = "ratio",
    absent_guard: str = "paper",
    seed: int = 0,
    one_target: bool = False,
    min_support: int = 1,
) -> Delta:
    """Run LCR on cached tokens and return only what changes: {layer: (indices, vectors)}.

    forget_tokens (N_f, L, Q), retain_tokens (N_r, L, Q): every motion's codes (-1 = padding).
    codebooks: (Q, K, D) tensor, RVQ state dict or RVQVAE (not modified). Safe codes are drawn
    from the unselected codes present in D_r (all unselected codes if none is). One seeded
    generator serves the layers in ascending order, so the delta is deterministic.
    min_support: only codes present in at least that many forget motions are selected.
    """
    layers = sorted(set(layers))
    if not layers:
        return {}
    size = _layer_codebook(codebooks, layers[0]).shape[0]
    forget = _token_table(forget_tokens, "forget_tokens", size, 3)
    retain = _token_table(retain_tokens, "retain_tokens", size, 3)
    num_layers = min(forget.shape[2], retain.shape[2])
    if layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"layers={layers}: the token tables have layers 0..{num_layers - 1}")
    generator = torch.Generator().manual_seed(seed)
    delta: Delta = {}
    for layer in layers:
        codebook = _layer_codebook(codebooks, layer)
        forget_counts = _presence(forget[:, :, layer], size)
        retain_counts = _presence(retain[:, :, layer], size)
        selected = layer_selection(forget_counts, retain_counts, len(forget), len(retain), r,
                                   rule, absent_guard, min_support)  # fmt: skip
        pool = np.flatnonzero(retain_counts > 0)
        pool = pool[~np.isin(pool, selected)]
        rows, vectors = _replacements(
            codebook, selected, pool if pool.size else None, alpha, generator, one_target
        )
        delta[layer] = (rows.cpu(), vectors.cpu())
    return delta


def apply_delta(rvq, delta: Mapping[int, tuple[torch.Tensor, torch.Tensor]]):
    """Write an LCR delta into an RVQ-VAE.

    An nn.Module is edited in place (its EMA statistics restart from the new codebook) and
    returned; a state dict is returned as a new dict with new codebook tensors, the input
    dict and its tensors untouched.
    """
    if isinstance(rvq, nn.Module):
        with torch.no_grad():
            for layer, (rows, vectors) in delta.items():
                quantizer = rvq.quantizer.layers[layer]
                codebook = quantizer.codebook.clone()
                codebook[rows.to(codebook.device)] = vectors.to(codebook)
                if hasattr(quantizer, "set_codebook"):  # restarts the EMA statistics
                    quantizer.set_codebook(codebook)
                else:
                    quantizer.codebook.copy_(codebook)
        return rvq
    if not isinstance(rvq, Mapping):
        raise ValueError("rvq: expected an RVQVAE module or its state dict")
    state = dict(rvq)
    for layer, (rows, vectors) in delta.items():
        codebook = _layer_codebook(rvq, layer).clone()
        codebook[rows.to(codebook.device)] = vectors.to(codebook)
        state[_codebook_key(layer)] = codebook
    return state
