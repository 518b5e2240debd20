"""Study 4 (causal intervention): token injection and removal on tiny token tables."""

import numpy as np
import pytest

from hmu.studies import causal
from hmu.unlearn.lcr import forget_scores

K = 20
SELECTED = np.array([3, 7, 11])
POOL = np.setdiff1d(np.arange(K), SELECTED)


def tokens_with_padding(rng, lengths, width=12, codes=POOL):
    tokens = codes[rng.integers(codes.size, size=(len(lengths), width))]
    tokens[np.arange(width)[None] >= np.asarray(lengths)[:, None]] = -1
    return tokens


def test_injection_replaces_exact_share_with_selected_codes_only():
    rng = np.random.default_rng(0)
    lengths = np.array([12, 10, 7, 4, 9])
    tokens = tokens_with_padding(rng, lengths)
    tokens[0, 0] = SELECTED[0]  # a position already holding a selected code is left alone
    for share in (0.1, 0.25, 0.5, 1.0):
        edited, control, mask = causal.inject(tokens, lengths, share, SELECTED, POOL, rng)
        eligible = (np.arange(12)[None] < lengths[:, None]) & ~np.isin(tokens, SELECTED)
        expected = np.minimum(np.floor(share * lengths + 0.5), eligible.sum(1))
        np.testing.assert_array_equal(mask.sum(1), expected)
        assert not mask[0, 0] and not (mask & ~eligible).any()
        # edited: exactly the masked positions changed, all to selected codes
        np.testing.assert_array_equal(edited != tokens, mask)
        assert np.isin(edited[mask], SELECTED).all()
        # control: same positions, codes disjoint from the selected ones, never the old code
        np.testing.assert_array_equal(control != tokens, mask)
        assert not np.isin(control[mask], SELECTED).any()
        assert np.isin(control[mask], POOL).all()
        # padding untouched
        assert (edited[tokens == -1] == -1).all() and (control[tokens == -1] == -1).all()


def test_injection_share_of_selected_codes_matches_p():
    rng = np.random.default_rng(1)
    lengths = np.full(200, 40)
    tokens = tokens_with_padding(rng, lengths, width=40)
    edited, control, _ = causal.inject(tokens, lengths, 0.25, SELECTED, POOL, rng)
    assert causal.selected_share(edited, lengths, SELECTED) == pytest.approx(0.25)
    assert causal.selected_share(control, lengths, SELECTED) == 0.0


def test_nearest_safe_is_the_closest_other_pool_code():
    rng = np.random.default_rng(2)
    codebook = rng.normal(size=(K, 4))
    safe_of = causal.nearest_safe(codebook, POOL)
    for k in range(K):
        candidates = [c for c in POOL if c != k]
        dist = [np.sum((codebook[k] - codebook[c]) ** 2) for c in candidates]
        assert safe_of[k] == candidates[int(np.argmin(dist))]


def test_removal_replaces_share_of_selected_positions_and_control_elsewhere():
    rng = np.random.default_rng(3)
    codebook = rng.normal(size=(K, 4))
    safe_of = causal.nearest_safe(codebook, POOL)
    lengths = np.array([12, 8, 10])
    tokens = tokens_with_padding(rng, lengths, codes=np.arange(K))
    tokens[:, :4] = SELECTED[rng.integers(3, size=(3, 4))]  # four selected codes per motion
    for share in (0.25, 0.5, 1.0):
        edited, control, masks = causal.remove(tokens, lengths, share, SELECTED, safe_of, rng)
        valid = np.arange(12)[None] < lengths[:, None]
        is_sel = valid & np.isin(tokens, SELECTED)
        count = np.floor(share * is_sel.sum(1) + 0.5)
        np.testing.assert_array_equal(masks["edited"].sum(1), count)
        others = (valid & ~is_sel).sum(1)
        np.testing.assert_array_equal(masks["control"].sum(1), np.minimum(count, others))
        assert not (masks["edited"] & ~is_sel).any()
        assert not (masks["control"] & (is_sel | ~valid)).any()
        np.testing.assert_array_equal(edited[masks["edited"]], safe_of[tokens[masks["edited"]]])
        assert not np.isin(edited[masks["edited"]], SELECTED).any()
        np.testing.assert_array_equal(edited[~masks["edited"]], tokens[~masks["edited"]])
        np.testing.assert_array_equal(control != tokens, masks["control"])
    # share 1 removes every selected code
    edited, _, _ = causal.remove(tokens, lengths, 1.0, SELECTED, safe_of, rng)
    assert causal.selected_share(edited, lengths, SELECTED) == 0.0


def test_lcr_codes_follow_the_presence_ratio():
    rng = np.random.default_rng(4)
    retain = rng.integers(0, 10, size=(50, 6))  # codes 0..9 only
    forget = rng.integers(0, 10, size=(20, 6))
    forget[:, 0] = 15  # code 15: in every forget motion, absent from D_r
    forget[:10, 1] = 12
    selected, pool = causal.lcr_codes(forget, retain, 16, r=2, rule="ratio",
                                      absent_guard="paper", min_support=1)  # fmt: skip
    assert selected.tolist() == [15, 12]
    scores = forget_scores(forget, retain, 16)
    assert scores[15] > scores[12] > scores[:10].max()
    np.testing.assert_array_equal(pool, np.arange(10))  # present in D_r and not selected


def test_summary_pairs_edited_with_control():
    reps = [
        {"selected_share": {"p0": 0.0, "edited@0.5": 0.5, "control@0.5": 0.0},
         "rerun": {"p0": {"toxic_rate": 0.1}, "edited@0.5": {"toxic_rate": e},
                   "control@0.5": {"toxic_rate": c}}}
        for e, c in ((0.6, 0.1), (0.7, 0.15), (0.8, 0.1))
    ]  # fmt: skip
    out = causal.summarize_direction(reps, [0.5], "inject")["rerun"]["toxic_rate"]
    assert out["difference"][0]["mean"] == pytest.approx(np.mean([0.5, 0.55, 0.7]))
    assert out["p_value"][0] < 0.05
    assert out["edited"][0]["values"] == [0.6, 0.7, 0.8]
