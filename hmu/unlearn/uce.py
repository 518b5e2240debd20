"""Unified Concept Editing (UCE, Gandikota et al. 2024) of one linear map, in closed form.

For motion models the edited map is the text-conditioning projection (`cond_emb`): erased
text embeddings c_i should produce what a target embedding produced before, and preserved
embeddings c_j should keep their outputs. The closed form minimises

    s_e sum_i |W' c_i - v*_i|^2 + s_p sum_j |W' c_j - W c_j|^2 + lam |W' - W|_F^2

    W' = [lam W + s_e sum_i v*_i c_i^T + s_p sum_j W c_j c_j^T]
         [lam I + s_e sum_i c_i c_i^T  + s_p sum_j c_j c_j^T]^-1

Only the weight is edited; values are W c (the bias is neither included nor changed, unlike
the paper's code, which adds the bias to the values but replaces only the weight).
"""

from __future__ import annotations

import numpy as np
import torch

Array = torch.Tensor | np.ndarray


def as_float64(x: Array, name: str, device: torch.device | None = None) -> torch.Tensor:
    """A float64 torch copy of a numpy array or tensor (no autograd history)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    return x.detach().to(device=device, dtype=torch.float64)


def like(result: torch.Tensor, reference: Array) -> Array:
    """`result` converted to the container type, dtype and device of `reference`."""
    if isinstance(reference, np.ndarray):
        return result.cpu().numpy().astype(reference.dtype, copy=False)
    return result.to(device=reference.device, dtype=reference.dtype)


def rows(x: Array, name: str, width: int, device: torch.device) -> torch.Tensor:
    """Embeddings as float64 rows (n, width); a single vector (width,) becomes (1, width)."""
    x = as_float64(x, name, device)
    x = x.unsqueeze(0) if x.dim() == 1 else x
    if x.dim() != 2 or x.shape[1] != width:
        raise ValueError(f"{name}: expected (n, {width}) or ({width},), got {tuple(x.shape)}")
    return x


def _orthogonal_values(weight: torch.Tensor, erase: torch.Tensor, target: torch.Tensor):
    """W t_i minus its component along W c_i (the paper code's default 'tensor' values)."""
    erased_out = erase @ weight.T  # (n, d_out)
    unit = erased_out / erased_out.norm(dim=1, keepdim=True).clamp_min(1e-12)
    target_out = target @ weight.T  # (n, d_out)
    return target_out - (unit * target_out).sum(dim=1, keepdim=True) * unit


def uce_edit(
    weight: Array,
    erase: Array,
    target: Array,
    preserve: Array | None = None,
    lam: float = 0.1,
    erase_scale: float = 1.0,
    preserve_scale: float = 0.1,
    values: str = "target",
) -> Array:
    """Closed-form UCE edit of weight (d_out, d_in) -> new weight of the same type and dtype.

    erase (n, d_in) or (d_in,): embeddings to remap; target (n, d_in) or (d_in,) (broadcast):
    the embeddings whose old outputs v*_i = W t_i they should produce; preserve (m, d_in) or
    None: embeddings whose outputs W c_j are kept. lam weighs |W' - W|_F^2. values='target'
    uses v*_i = W t_i; values='orthogonal' removes from W t_i its component along W c_i (the
    paper code's default `technique='tensor'`). Computed in float64.
    """
    if lam < 0 or erase_scale < 0 or preserve_scale < 0:
        raise ValueError(
            f"lam={lam}, erase_scale={erase_scale}, preserve_scale={preserve_scale}: must be >= 0"
        )
    w = as_float64(weight, "weight")
    if w.dim() != 2:
        raise ValueError(f"weight: expected (d_out, d_in), got {tuple(w.shape)}")
    d_in = w.shape[1]
    c_erase = rows(erase, "erase", d_in, w.device)  # (n, d_in)
    c_target = rows(target, "target", d_in, w.device)
    if c_target.shape[0] not in (1, c_erase.shape[0]):
        raise ValueError(
            f"target: {c_target.shape[0]} rows do not match the {c_erase.shape[0]} erase rows"
        )
    c_target = c_target.expand_as(c_erase)
    if values == "target":
        v_star = c_target @ w.T  # (n, d_out)
    elif values == "orthogonal":
        v_star = _orthogonal_values(w, c_erase, c_target)
    else:
        raise ValueError(f"values={values!r}: expected 'target' or 'orthogonal'")

    numerator = lam * w + erase_scale * v_star.T @ c_erase  # (d_out, d_in)
    gram = lam * torch.eye(d_in, dtype=w.dtype, device=w.device) + erase_scale * c_erase.T @ c_erase
    if preserve is not None:
        c_keep = rows(preserve, "preserve", d_in, w.device)  # (m, d_in)
        numerator = numerator + preserve_scale * (w @ c_keep.T) @ c_keep
        gram = gram + preserve_scale * c_keep.T @ c_keep
    # W' gram = numerator, gram symmetric  =>  W'^T = gram^-1 numerator^T
    new_weight = torch.linalg.solve(gram, numerator.T).T
    return like(new_weight, weight)


def edit_cond_embs(
    modules,
    erase: np.ndarray,
    target: np.ndarray,
    preserve: np.ndarray | None,
    lam: float,
    erase_scale: float,
    preserve_scale: float,
    values: str = "target",
) -> None:
    """Apply one UCE edit, in place, to the `cond_emb` weight of each module (bias untouched).

    erase (n, C) text embeddings to forget; target (C,) or (n, C) the embedding they should
    behave like ("" by default); preserve (m, C) embeddings whose outputs are kept.
    """
    for module in modules:
        weight = module.cond_emb.weight
        new = uce_edit(
            weight.data,
            erase,
            target,
            preserve,
            lam=lam,
            erase_scale=erase_scale,
            preserve_scale=preserve_scale,
            values=values,
        )
        weight.data.copy_(new)
