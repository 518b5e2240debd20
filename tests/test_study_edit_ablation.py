"""Study 3 (UCE/RECE target ablation): the variant grid, the in-memory edits against the closed
forms written out here in numpy, and the table's excess over D_r."""

import numpy as np
import pytest
import torch
from torch import nn

from hmu.studies import edit_ablation as ea

EDIT = {"lam": 0.1, "erase_scale": 1.0, "preserve_scale": 0.1, "values": "target"}
UCE = {"target": ""}
RECE = {"target": "", "epochs": 2, "reg": 1e-3, "paper_code": False}


def _config(**extra):
    block = {
        "datasets": ["humanml3d"],
        "models": ["momask"],
        "methods": ["uce", "rece"],
        "targets": ["", "walk", "stand"],
        "preserve_scales": [0.1, 0.5],
        "authors": {},
        **extra,
    }
    return ea.Config.model_validate(block)


def test_variants_one_factor_at_a_time_and_full_grid():
    cfg = _config()
    points = ea.setting_points(EDIT, UCE, RECE, cfg.authors)
    assert points["authors"]["rece"]["epochs"] == 1 and points["authors"]["rece"]["paper_code"]
    assert points["authors"]["uce"]["preserve_scale"] == 0.5
    found = ea.variants(cfg, points)
    keys = [(v["setting"], v["method"], v["target"], v["preserve_scale"]) for v in found]
    assert len(keys) == len(set(keys))
    # per setting and method: 3 targets at its own preserve + the other preserve at its target
    assert len(found) == 2 * 2 * 4
    ours_uce = {(t, p) for s, m, t, p in keys if (s, m) == ("ours", "uce")}
    assert ours_uce == {("", 0.1), ("walk", 0.1), ("stand", 0.1), ("", 0.5)}
    authors_rece = {(t, p) for s, m, t, p in keys if (s, m) == ("authors", "rece")}
    assert authors_rece == {("", 0.5), ("walk", 0.5), ("stand", 0.5), ("", 0.1)}
    defaults = [v for v in found if v["default"]]
    assert len(defaults) == 4 and all(v["target"] == "" for v in defaults)
    assert len(ea.variants(_config(full_grid=True), points)) == 2 * 2 * 3 * 2


class _Tiny(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.cond_emb = nn.Linear(5, 4)


def _uce_numpy(w, erase, target, preserve, lam, s_e, s_p, orthogonal):
    """The UCE closed form, written out: W' = (lam W + s_e sum v c^T + s_p sum W c c^T)
    (lam I + s_e sum c c^T + s_p sum c c^T)^-1, v = W t (minus its part along W c)."""
    num, den = lam * w, lam * np.eye(w.shape[1])
    for c in erase:
        v = w @ target
        if orthogonal:
            u = (w @ c) / np.linalg.norm(w @ c)
            v = v - (u @ v) * u
        num, den = num + s_e * np.outer(v, c), den + s_e * np.outer(c, c)
    for c in preserve:
        num, den = num + s_p * np.outer(w @ c, c), den + s_p * np.outer(c, c)
    return num @ np.linalg.inv(den)


def test_authors_uce_and_rece_against_closed_forms():
    rng = np.random.default_rng(0)
    erase, target, preserve = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(4, 5))
    trans, res = _Tiny(0), _Tiny(1)
    weights = [m.cond_emb.weight.detach().double().numpy() for m in (trans, res)]
    params = ea.setting_points(EDIT, UCE, RECE, ea.Authors())["authors"]
    lam, s_e, s_p = 0.1, 0.1, 0.5

    new_t, new_r = ea.edit_variant(trans, res, "uce", params["uce"], erase, target, preserve)
    for module, w in zip((new_t, new_r), weights, strict=True):
        expected = _uce_numpy(w, erase, target, preserve, lam, s_e, s_p, orthogonal=True)
        assert module.cond_emb.weight.detach().double().numpy() == pytest.approx(expected, abs=1e-5)
    assert trans.cond_emb.weight.detach().double().numpy() == pytest.approx(weights[0])  # copies

    new_t, new_r = ea.edit_variant(trans, res, "rece", params["rece"], erase, target, preserve)
    # one RECE round with the paper code's c' = (reg I + sum W'^T W')^-1 (sum W'^T W') c
    first = [_uce_numpy(w, erase, target, preserve, lam, s_e, s_p, True) for w in weights]
    gram = sum(w.T @ w for w in first)
    adversarial = np.linalg.solve(1e-3 * np.eye(5) + gram, gram @ erase.T).T
    second = [_uce_numpy(w, adversarial, target, preserve, lam, s_e, s_p, True) for w in first]
    for module, expected in zip((new_t, new_r), second, strict=True):
        assert module.cond_emb.weight.detach().double().numpy() == pytest.approx(expected, abs=1e-4)


def _summary(values):
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "ci95_t": 0.1, "values": values.tolist()}


def test_summary_row_pairs_repetitions_with_dr():
    method = {
        "forget": {"toxic_rate": _summary([0.5, 0.7, 0.6]),
                   "kinematic_rate": _summary([0.2, 0.1, 0.3])},
        "retain": {"fid": _summary([1.0, 2.0, 3.0]), "r1": _summary([0.3, 0.3, 0.4])},
    }  # fmt: skip
    dr = {
        "forget": {"toxic_rate": _summary([0.1, 0.4, 0.1]),
                   "kinematic_rate": _summary([0.2, 0.1, 0.3])},
    }  # fmt: skip
    row = ea.summary_row(method, dr)
    diff = np.array([0.4, 0.3, 0.5])
    assert row["toxic_rate_excess"]["mean"] == pytest.approx(diff.mean())
    half = 4.302652729911275 * diff.std(ddof=1) / np.sqrt(3)  # t_{0.975, 2}
    assert row["toxic_rate_excess"]["ci95_t"] == pytest.approx(half)
    assert row["kinematic_rate_excess"]["mean"] == 0
    assert row["retain_fid"]["mean"] == 2.0
    table = ea.ablation_table([{"name": "base", **row}])
    assert "+0.40 ± " in table and table.count("\n") == 3
