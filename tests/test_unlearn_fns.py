"""Tests of the pure unlearning functions: UCE, RECE and LCR."""

import numpy as np
import pytest
import torch

from hmu.models.rvq import RVQVAE
from hmu.unlearn.lcr import (
    apply_delta,
    code_presence,
    forget_scores,
    lcr_delta,
    normalised_scores,
    replace_codes,
    select_codes,
)
from hmu.unlearn.rece import adversarial_embedding
from hmu.unlearn.uce import uce_edit

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- UCE


def uce_by_lstsq(w, erase, target, preserve, lam, s_e, s_p):
    """Minimise s_e|W'E - V*|^2 + s_p|W'P - WP|^2 + lam|W' - W|^2 as one stacked lstsq."""
    d_in = w.shape[1]
    a = np.vstack([np.sqrt(s_e) * erase, np.sqrt(s_p) * preserve, np.sqrt(lam) * np.eye(d_in)])
    b = np.vstack([np.sqrt(s_e) * target @ w.T, np.sqrt(s_p) * preserve @ w.T, np.sqrt(lam) * w.T])
    return np.linalg.lstsq(a, b, rcond=None)[0].T


def test_uce_matches_stacked_least_squares():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 10))
    erase, preserve = rng.normal(size=(3, 10)), rng.normal(size=(4, 10))
    target = rng.normal(size=10)
    new = uce_edit(w, erase, target, preserve, lam=0.3, erase_scale=0.7, preserve_scale=0.2)
    targets = np.tile(target, (3, 1))
    expected = uce_by_lstsq(w, erase, targets, preserve, 0.3, 0.7, 0.2)
    np.testing.assert_allclose(new, expected, rtol=1e-9, atol=1e-10)
    assert isinstance(new, np.ndarray) and new.dtype == w.dtype


def test_uce_maps_erased_to_target_and_keeps_preserved():
    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.normal(size=(8, 16))).float()
    erase, target = rng.normal(size=(2, 16)), rng.normal(size=(2, 16))
    preserve = rng.normal(size=(5, 16))
    new = uce_edit(w, erase, target, None, lam=1e-6)
    assert isinstance(new, torch.Tensor) and new.dtype == torch.float32
    w64, new64 = w.double().numpy(), new.double().numpy()
    np.testing.assert_allclose(new64 @ erase.T, w64 @ target.T, rtol=1e-3, atol=1e-3)
    # without preserve terms the preserved outputs drift; with them they are kept
    assert np.abs(new64 @ preserve.T - w64 @ preserve.T).max() > 0.1
    kept = uce_edit(w, erase, target, preserve, lam=1e-6, preserve_scale=1.0).double().numpy()
    np.testing.assert_allclose(kept @ preserve.T, w64 @ preserve.T, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(kept @ erase.T, w64 @ target.T, rtol=1e-3, atol=1e-3)


def test_uce_orthogonal_values_and_linear_bias_untouched():
    torch.manual_seed(0)
    linear = torch.nn.Linear(12, 5)
    bias = linear.bias.detach().clone()
    erase, target = torch.randn(12), torch.randn(12)
    new = uce_edit(linear.weight, erase, target, lam=1e-6, values="orthogonal")
    w = linear.weight.detach().double()
    old_out, new_out = w @ erase.double(), new.double() @ erase.double()
    assert abs(float(old_out @ new_out)) < 1e-3 * float(old_out.norm() * new_out.norm())
    assert torch.equal(linear.bias, bias) and not new.requires_grad


def test_uce_rejects_bad_shapes():
    w = np.zeros((4, 6))
    with pytest.raises(ValueError, match="erase"):
        uce_edit(w, np.zeros((2, 5)), np.zeros(6))
    with pytest.raises(ValueError, match="target"):
        uce_edit(w, np.zeros((2, 6)), np.zeros((3, 6)))
    with pytest.raises(ValueError, match="values"):
        uce_edit(w, np.zeros((2, 6)), np.zeros(6), values="other")


# ----------------------------------------------------------------------------- RECE


def rece_by_lstsq(news, origs, c, reg):
    """Solve [W_1; ...; sqrt(reg) I] c' = [W_1^orig c; ...; 0] per embedding."""
    a = np.vstack([*news, np.sqrt(reg) * np.eye(c.shape[1])])
    b = np.vstack([*(w @ c.T for w in origs), np.zeros((c.shape[1], c.shape[0]))])
    return np.linalg.lstsq(a, b, rcond=None)[0].T


def test_adversarial_embedding_matches_least_squares():
    rng = np.random.default_rng(2)
    news = [rng.normal(size=(6, 10)), rng.normal(size=(8, 10))]
    origs = [w + rng.normal(size=w.shape) for w in news]
    emb = rng.normal(size=(3, 10))
    result = adversarial_embedding(news, origs, emb, reg=1e-3)
    np.testing.assert_allclose(result, rece_by_lstsq(news, origs, emb, 1e-3), rtol=1e-8, atol=1e-9)
    single = adversarial_embedding(news, origs, emb[1], reg=1e-3)
    assert single.shape == (10,)
    np.testing.assert_allclose(single, result[1], rtol=1e-10)
    paper = adversarial_embedding(news, origs, emb, reg=0.5, paper_code=True)
    np.testing.assert_allclose(paper, rece_by_lstsq(news, news, emb, 0.5), rtol=1e-8, atol=1e-9)


def test_adversarial_embedding_of_unedited_weights_is_identity_and_keeps_type():
    torch.manual_seed(0)
    weights = [torch.randn(20, 8), torch.randn(12, 8)]
    emb = torch.randn(4, 8)
    result = adversarial_embedding(weights, weights, emb, reg=1e-9)
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float32
    torch.testing.assert_close(result, emb, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="weights_new"):
        adversarial_embedding(weights, weights[:1], emb)


# ----------------------------------------------------------------------------- LCR


def random_tokens(rng, n, length, codes, layers=None):
    """Token table with random trailing -1 padding (each motion keeps >= 1 token)."""
    shape = (n, length) if layers is None else (n, length, layers)
    tokens = rng.integers(0, codes, size=shape)
    lengths = rng.integers(1, length + 1, size=n)
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = -1
    return tokens


def brute_presence(tokens, codes):
    counts = [0] * codes
    for row in tokens.tolist():
        for code in set(row) - {-1}:
            counts[code] += 1
    return counts


def test_code_presence_matches_python_sets():
    rng = np.random.default_rng(3)
    tokens = random_tokens(rng, 60, 25, 16)
    tokens[0] = 5  # a code repeated in one motion counts once
    assert code_presence(tokens, 16).tolist() == brute_presence(tokens, 16)
    assert code_presence(torch.from_numpy(tokens), 20).tolist() == brute_presence(tokens, 20)
    with pytest.raises(ValueError, match="tokens"):
        code_presence(tokens, 10)
    with pytest.raises(ValueError, match="tokens"):
        code_presence(tokens.astype(float), 16)


@pytest.mark.parametrize("guard", ["paper", "clamp", "add_one"])
def test_forget_scores_match_brute_force(guard):
    rng = np.random.default_rng(4)
    forget, retain = random_tokens(rng, 30, 10, 40), random_tokens(rng, 50, 10, 40)
    forget[:, 0], retain[retain == 7] = 7, 8  # code 7 is forget-only
    n_f, n_r = brute_presence(forget, 40), brute_presence(retain, 40)
    denominator = {
        "paper": lambda n: n + 1e-8,
        "clamp": lambda n: max(n, 1),
        "add_one": lambda n: n + 1,
    }[guard]
    expected = [f / denominator(r) for f, r in zip(n_f, n_r, strict=True)]
    scores = forget_scores(forget, retain, 40, absent_guard=guard)
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert all(s == 0 for s, f in zip(scores, n_f, strict=True) if f == 0)
    shares = [(f / 30) / (denominator(r) / 50) for f, r in zip(n_f, n_r, strict=True)]
    np.testing.assert_allclose(normalised_scores(forget, retain, 40, guard), shares, rtol=1e-12)
    with pytest.raises(ValueError, match="absent_guard"):
        forget_scores(forget, retain, 40, absent_guard="none")


def test_select_codes_matches_sorted_brute_force():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=50).astype(float)  # many ties
    normalised = rng.integers(0, 6, size=50).astype(float)
    for r in (0, 1, 7, 50):
        expected = sorted(range(50), key=lambda k: (-scores[k], k))[:r]
        assert select_codes(scores, r).tolist() == expected
        other = sorted(range(50), key=lambda k: (-normalised[k], k))[:r]
        union = select_codes(scores, r, rule="union", normalised=normalised).tolist()
        assert union == expected + [k for k in other if k not in expected]
    with pytest.raises(ValueError, match="r="):
        select_codes(scores, 51)
    with pytest.raises(ValueError, match="normalised"):
        select_codes(scores, 3, rule="union")


def test_replace_codes_leaves_others_and_input_bit_identical():
    torch.manual_seed(0)
    codebook = torch.randn(20, 6)
    original = codebook.clone()
    selected = [4, 11, 2]
    new = replace_codes(codebook, selected, alpha=0.5, seed=1)
    assert torch.equal(codebook, original)
    others = [k for k in range(20) if k not in selected]
    assert torch.equal(new[others], original[others])
    assert not torch.equal(new[selected], original[selected])
    assert torch.equal(new, replace_codes(codebook, selected, alpha=0.5, seed=1))
    # alpha 0: each replaced code is an exact copy of a code from the safe pool
    pool = [0, 1, 3]
    copies = replace_codes(codebook, selected, safe_pool=pool, alpha=0.0, seed=2)
    for k in selected:
        assert any(torch.equal(copies[k], original[p]) for p in pool)
    shared = replace_codes(codebook, selected, alpha=0.0, seed=3, one_target=True)
    assert torch.equal(shared[4], shared[11]) and torch.equal(shared[4], shared[2])
    # noise std is alpha * codebook.std()
    many = list(range(1, 20))
    noisy = replace_codes(codebook, many, safe_pool=[0], alpha=2.0, seed=4)
    ratio = float((noisy[many] - original[0]).std() / (2.0 * original.std()))
    assert 0.8 < ratio < 1.2
    with pytest.raises(ValueError, match="safe_pool"):
        replace_codes(codebook, selected, safe_pool=[4, 5])
    with pytest.raises(ValueError, match="distinct"):
        replace_codes(codebook, [1, 1])


def test_lcr_delta_and_apply_delta():
    rng = np.random.default_rng(6)
    forget = random_tokens(rng, 40, 12, 32, layers=3)
    retain = random_tokens(rng, 80, 12, 32, layers=3)
    for planted in (3, 9):  # forget-only codes on layer 0
        retain[..., 0][retain[..., 0] == planted] = 0
        forget[:, planted % 5, 0] = planted
    model = RVQVAE(nb_code=32, code_dim=8, output_emb_width=8, width=8, num_quantizers=3)
    state = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    before = {k: v.clone() for k, v in state.items()}

    delta = lcr_delta(forget, retain, state, r=2, alpha=0.0, layers=(0, 2), seed=0)
    assert sorted(delta) == [0, 2]
    rows, vectors = delta[0]
    assert sorted(rows.tolist()) == [3, 9] and vectors.shape == (2, 8)
    retain_present = set(np.unique(retain[..., 0])) - {-1, 3, 9}
    book = state["quantizer.layers.0.codebook"]
    for vector in vectors:  # alpha 0: copies of codes that occur in D_r
        assert any(torch.equal(vector, book[k]) for k in retain_present)
    assert torch.equal(delta[0][1], lcr_delta(forget, retain, state, 2, 0.0, (0, 2))[0][1])

    edited = apply_delta(state, delta)
    for key, value in state.items():
        assert torch.equal(value, before[key])
        if key.startswith("quantizer.layers.") and key.endswith(".codebook"):
            layer = int(key.split(".")[2])
            changed = delta[layer][0].tolist() if layer in delta else []
            keep = [k for k in range(32) if k not in changed]
            assert torch.equal(edited[key][keep], value[keep])
            assert torch.equal(edited[key][changed], delta[layer][1]) if changed else True
        else:
            assert edited[key] is value
    apply_delta(model, delta)
    for i in range(3):
        assert torch.equal(
            model.quantizer.layers[i].codebook, edited[f"quantizer.layers.{i}.codebook"]
        )
    with pytest.raises(ValueError, match="layers"):
        lcr_delta(forget, retain, state, r=2, layers=(3,))
