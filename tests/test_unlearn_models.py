"""UCE and RECE applied to the transformers' text projections (cond_emb), bias included."""

import numpy as np
import torch

from hmu.models.momask import MaskTransformer, ResidualTransformer
from hmu.unlearn.rece import rece_edit
from hmu.unlearn.uce import edit_cond_embs

SMALL = dict(
    num_tokens=16, code_dim=8, latent_dim=16, ff_size=32, num_layers=1, num_heads=2, clip_dim=12
)


def _modules():
    torch.manual_seed(0)
    return [MaskTransformer(**SMALL), ResidualTransformer(num_quantizers=3, **SMALL)]


def test_uce_maps_forget_onto_target_through_the_whole_projection():
    rng = np.random.default_rng(0)
    erase, target = rng.normal(size=(3, 12)), rng.normal(size=12)
    modules = _modules()
    before = [(m.cond_emb.weight.clone(), m.cond_emb.bias.clone()) for m in modules]
    with torch.no_grad():
        edit_cond_embs(modules, erase, target, None, lam=1e-6, erase_scale=1.0, preserve_scale=0.0)
    for m, (w_old, b_old) in zip(modules, before, strict=True):
        assert torch.equal(m.cond_emb.bias, b_old)  # the bias is never edited
        x = torch.from_numpy(erase).float()
        old_target = torch.from_numpy(target).float() @ w_old.T + b_old
        torch.testing.assert_close(m.cond_emb(x), old_target.expand(3, -1), atol=1e-3, rtol=1e-3)


def test_rece_also_erases_its_adversarial_embeddings():
    rng = np.random.default_rng(1)
    erase, target = rng.normal(size=(2, 12)), rng.normal(size=12)
    preserve = rng.normal(size=(4, 12))
    modules = _modules()
    originals = [m.cond_emb.weight.detach().clone() for m in modules]
    params = dict(lam=0.1, erase_scale=1.0, preserve_scale=0.1)
    with torch.no_grad():
        found = rece_edit(modules, erase, target, preserve, epochs=2, reg=1e-3, uce_params=params)
    assert len(found) == 2 and found[0].shape == erase.shape
    for m, w_old in zip(modules, originals, strict=True):
        w = m.cond_emb.weight.detach().double()
        # the last adversarial embeddings now also land near the target's old output
        adv = torch.from_numpy(found[-1])
        gap = (adv @ w.T - torch.from_numpy(target) @ w_old.double().T).norm(dim=1)
        orig_gap = adv @ w_old.double().T - torch.from_numpy(target) @ w_old.double().T
        assert (gap < orig_gap.norm(dim=1)).all()
