"""Study 1 (LCR ablation): the variant list, the token statistics, and the replay of the base
model's codes against generating with each variant's edited model directly."""

import collections

import numpy as np
import pytest
import torch
from tiny_setup import K, Q, tiny_generator

from hmu.eval.protocol import Judge, ProtocolConfig, TestSet
from hmu.params_schema import ParamsError
from hmu.studies import common
from hmu.studies import lcr_ablation as study
from hmu.unlearn.lcr import apply_delta, lcr_delta

DEFAULT = {"r": 3, "alpha": 1.0, "layers": [0], "rule": "ratio", "absent_guard": "paper",
           "one_target": False, "min_support": 1, "seed": 0}  # fmt: skip


def test_variants_one_factor_at_a_time_plus_grid_without_duplicates():
    default = {"r": 16, "alpha": 1.0, "rule": "ratio"}
    sweeps = {"r": [4, 16], "alpha": [0.0, 1.0], "rule": ["union"]}
    got = study.variants(default, sweeps, ["r", "alpha"])
    expected = {
        "default": default,
        "r=4": {**default, "r": 4},
        "alpha=0": {**default, "alpha": 0.0},
        "rule=union": {**default, "rule": "union"},
        "r=4 alpha=0": {**default, "r": 4, "alpha": 0.0},
    }
    assert got == expected
    assert list(got) == list(expected)
    assert study.variant_name({"layers": [0, 1, 2]}) == "layers=0-1-2"
    assert study.variant_name({"one_target": True}) == "one_target=true"
    sweeps = study.layer_lists({"r": [4], "layers": ["base", "all"]}, 3)
    assert sweeps == {"r": [4], "layers": [[0], [0, 1, 2]]}


def test_token_share_motion_share_and_usage_match_loops():
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 10, size=(3, 5, 7))
    selected = [2, 5, 7]
    shares, per_motion = [], np.zeros((3, 5))
    for r in range(3):
        valid = [c for row in codes[r] for c in row if c >= 0]
        shares.append(sum(c in selected for c in valid) / len(valid))
        for n in range(5):
            row = [c for c in codes[r, n] if c >= 0]
            per_motion[r, n] = sum(c in selected for c in row) / max(len(row), 1)
    np.testing.assert_allclose(study.token_share(codes, selected), shares)
    np.testing.assert_allclose(study.motion_share(codes, selected), per_motion)
    counts = collections.Counter(int(c) for c in codes.ravel() if c >= 0)
    assert study.code_usage(codes, 12).tolist() == [counts.get(k, 0) for k in range(12)]


def test_config_errors_name_the_key():
    params = {"studies": {"lcr_ablation": {"repetitions": 1}}}
    with pytest.raises(ParamsError, match=r"studies\.lcr_ablation\.repetitions = 1"):
        common.study_params("lcr_ablation", study.Config, params)
    params = {"studies": {"lcr_ablation": {"sweeps": {"rule": ["both"]}}}}
    with pytest.raises(ParamsError, match=r"studies\.lcr_ablation\.sweeps\.rule\.0"):
        common.study_params("lcr_ablation", study.Config, params)
    cfg, quick = common.study_params("lcr_ablation", study.Config, {"studies": {"quick": True,
                                     "lcr_ablation": {}}})  # fmt: skip
    assert quick and cfg.shrunk().repetitions == 2 and cfg.shrunk().sweeps.alpha == []


# ---------------------------------------------------------------- replay against direct runs

DIM = 4


def _judge() -> Judge:
    def embed(motions, lengths):
        return np.stack([m[:n, :DIM].mean(0) for m, n in zip(motions, lengths, strict=True)])

    return Judge(
        embed_texts=lambda tokens: np.stack([np.full(DIM, float(len(t[0]))) for t in tokens]),
        embed_motions=embed,
        detectors={
            "toxic_rate": lambda m, n: embed(m, n)[:, 0] > 0.0,
            "kinematic_rate": lambda m, n: embed(m, n)[:, 1] > 0.2,
        },  # fmt: skip
    )


def _test_set(name: str, n: int = 32) -> TestSet:
    rng = np.random.default_rng(len(name))
    motions = [rng.standard_normal((int(rng.integers(40, 80)), 263)).astype(np.float32)
               for _ in range(n)]  # fmt: skip
    captions = [[(f"{name} motion {i}", [f"{name}/NOUN"])] for i in range(n)]
    detox = [[(f"motion {i}", ["motion/NOUN"])] for i in range(n)] if name == "forget" else None
    return TestSet(name, [str(i) for i in range(n)], motions, captions, detox)


def _reference(reps: int) -> dict:
    rates = {"toxic_rate": {"values": [0.1] * reps}, "kinematic_rate": {"values": [0.0] * reps}}
    return {
        "forget": {**rates, "fid": {"values": [1.0] * reps}},
        "retain": {**rates, "fid": {"values": [0.5] * reps}, "r1": {"values": [0.2] * reps}},
        "implicit_seen": rates,
        "implicit_heldout": rates,
    }


def test_replay_equals_generating_with_each_edited_model():
    """Each variant's metrics equal an independent evaluation of a fresh generator whose VQ
    has the variant's delta applied (the base model's codes are all a variant ever uses)."""
    torch.set_num_threads(1)
    proto = ProtocolConfig(repetitions=2, mm_replications=2, mm_batches=1, mm_repetitions=1,
                           prompt_repetitions=2, mm_times=1, seed=3)  # fmt: skip
    tests = {"forget": _test_set("forget"), "retain": _test_set("retain")}
    prompts = {kind: ([f"{kind} {i}" for i in range(6)], np.array([40, 44, 48, 52, 56, 60]))
               for kind in ("implicit_seen", "implicit_heldout")}  # fmt: skip
    rng = np.random.default_rng(1)
    tokens = (rng.integers(0, K // 2, (20, 6, Q)), rng.integers(0, K, (40, 6, Q)))
    named = study.variants(DEFAULT, {"layers": [[0], [0, 1, 2]]})
    config = {"timesteps": 2}
    judge = _judge()
    replay = common.CodeReplay(tiny_generator("momask", config=config))
    rows, codes, flags = study.run(
        replay, judge, tests, prompts, proto, tokens, named, _reference(2)
    )
    assert list(rows) == [study.BASE, "default", "layers=0-1-2"]
    for name, params in {study.BASE: None, **named}.items():
        fresh = tiny_generator("momask", config=config)
        if params is not None:
            apply_delta(fresh.vq, lcr_delta(*tokens, fresh.vq.state_dict(), **params))
        direct = study.evaluate_parts(fresh, judge, tests, prompts, proto)
        for part in study.TOXIC_PARTS:
            for instrument in common.INSTRUMENTS:
                assert rows[name]["toxic"][part][instrument]["values"] == pytest.approx(
                    direct[part].metrics[instrument]["values"]
                )
                np.testing.assert_array_equal(
                    flags[name][part][instrument], direct[part].samples[f"flag.{instrument}"]
                )
        assert rows[name]["retain_fid"]["values"] == pytest.approx(
            direct["retain"].metrics["fid"]["values"]
        )
        excess = np.mean(direct["forget"].metrics["toxic_rate"]["values"]) - 0.1
        assert rows[name]["excess"]["forget"]["toxic_rate"]["mean"] == pytest.approx(excess)
    # the recorded codes are the base model's layer-0 codes: a prompt part's first repetition
    # is the first call after reseeding
    fresh = common.CodeReplay(tiny_generator("momask", config=config))
    fresh.reseed(proto.seed)
    fresh(*prompts["implicit_seen"])
    first, _ = fresh.calls[0].layer_codes(0)
    assert codes["implicit_seen"].shape[:2] == (2, 6)
    np.testing.assert_array_equal(codes["implicit_seen"][0, :, : first.shape[1]], first)
    selected = rows["default"]["selected"]["0"]
    assert len(selected) == 3 and rows[study.BASE]["selected"] == {}
    shares = study.token_share(codes["forget"], selected)
    assert rows["default"]["selected_share"]["forget"]["values"] == pytest.approx(shares.tolist())


def test_replay_refuses_a_different_call():
    replay = common.CodeReplay(tiny_generator("momask", config={"timesteps": 2}))
    first = replay(["a kick"], np.array([40]))
    replay.rewind()
    np.testing.assert_array_equal(replay(["a kick"], np.array([40])), first)
    replay.rewind()
    with pytest.raises(ValueError, match="differs from the recorded one"):
        replay(["a punch"], np.array([40]))
