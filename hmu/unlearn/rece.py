"""RECE (Gong et al. 2024): the adversarial embedding that regenerates an erased concept.

After a UCE edit, RECE looks for the embedding c' whose outputs under the edited maps W_l
are closest to what the erased embedding c produced under the original maps W_l^orig:

    c' = argmin sum_l |W_l c' - W_l^orig c|^2 + reg |c'|^2
       = (reg I + sum_l W_l^T W_l)^-1 (sum_l W_l^T W_l^orig) c

and then applies UCE again to map c' to the target (see `hmu.unlearn.uce.uce_edit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hmu.unlearn.uce import Array, as_float64, like, rows


def adversarial_embedding(
    weights_new: Sequence[Array],
    weights_orig: Sequence[Array],
    emb: Array,
    reg: float = 1e-3,
    paper_code: bool = False,
) -> Array:
    """Closed-form adversarial embeddings for emb (n, d_in) or (d_in,) -> same shape and type.

    weights_new / weights_orig: the edited and original (d_out_l, d_in) weights, one pair per
    edited layer. paper_code=True reproduces the paper's code, which uses W_new^T W_new in both
    factors; c' is then a shrunk copy of c rather than an adversarial embedding.
    """
    if len(weights_new) == 0 or len(weights_new) != len(weights_orig):
        raise ValueError(
            f"weights_new ({len(weights_new)}) and weights_orig "
            f"({len(weights_orig)}) must be non-empty lists of equal length"
        )
    if reg < 0:
        raise ValueError(f"reg={reg}: must be >= 0")
    new = [as_float64(w, f"weights_new[{i}]") for i, w in enumerate(weights_new)]
    orig = [as_float64(w, f"weights_orig[{i}]", new[0].device) for i, w in enumerate(weights_orig)]
    d_in = new[0].shape[1]
    for i, (w_new, w_orig) in enumerate(zip(new, orig, strict=True)):
        if w_new.dim() != 2 or w_new.shape != w_orig.shape or w_new.shape[1] != d_in:
            raise ValueError(
                f"layer {i}: weights_new {tuple(w_new.shape)} and weights_orig "
                f"{tuple(w_orig.shape)} must both be (d_out, {d_in})"
            )
    c = rows(emb, "emb", d_in, new[0].device)  # (n, d_in)

    gram = reg * torch.eye(d_in, dtype=torch.float64, device=c.device)
    cross = torch.zeros_like(gram)
    for w_new, w_orig in zip(new, orig, strict=True):
        gram = gram + w_new.T @ w_new
        cross = cross + w_new.T @ (w_new if paper_code else w_orig)
    adversarial = torch.linalg.solve(gram, cross @ c.T).T  # (n, d_in)
    if emb.ndim == 1:
        adversarial = adversarial[0]
    return like(adversarial, emb)


def rece_edit(
    modules,
    erase: np.ndarray,
    target: np.ndarray,
    preserve: np.ndarray | None,
    epochs: int,
    reg: float,
    uce_params: dict,
    paper_code: bool = False,
) -> list:
    """RECE: a UCE edit, then `epochs` rounds of (adversarial embedding, new UCE edit).

    Each round finds, for every erased embedding c, the embedding c' whose edited outputs best
    reproduce the ORIGINAL outputs of c (what an attacker would feed to recover the concept) and
    erases c' too. Edits `modules` in place; returns the adversarial embeddings per round.
    """
    from hmu.unlearn.uce import edit_cond_embs

    originals = [m.cond_emb.weight.detach().clone() for m in modules]
    edit_cond_embs(modules, erase, target, preserve, **uce_params)
    found = []
    for _ in range(epochs):
        current = [m.cond_emb.weight.detach() for m in modules]
        adversarial = adversarial_embedding(current, originals, erase, reg, paper_code=paper_code)
        adversarial = np.asarray(adversarial, dtype=np.float64)
        found.append(adversarial)
        edit_cond_embs(modules, adversarial, target, preserve, **uce_params)
    return found
