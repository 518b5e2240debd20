"""The kinematic strike detector: verdicts on synthesised actions, invariances, masking, metrics."""

from itertools import product

import numpy as np
import pytest

from hmu.data.skeleton import mirror_joints
from hmu.data.synth import generate_action
from hmu.eval import kinematic as K

TOXIC = {"front_kick": "kick", "roundhouse_kick": "kick", "jab": "punch", "hook": "hook",
         "stab": "downstrike", "sword_slash": "downstrike", "beat_down": "downstrike",
         "shoot_gun": "aim"}  # fmt: skip
SAFE = ("walk_forward", "run", "jump", "hop", "jumping_jacks", "clap", "squat", "throw_ball",
        "dance_sway", "wave", "sit_stand")  # fmt: skip


def padded(motions: list[np.ndarray], frames: int | None = None, fill: float = 0.0):
    """Stack (T_i, 22, 3) motions into (B, T, 22, 3) with `fill` past each length."""
    lengths = np.array([len(m) for m in motions])
    out = np.full((len(motions), frames or lengths.max(), 22, 3), fill)
    for i, m in enumerate(motions):
        out[i, : len(m)] = m
    return out, lengths


@pytest.fixture(scope="module")
def actions() -> dict[str, np.ndarray]:
    """One synthesised motion (T, 22, 3) per action, 20 fps, y up, seeded."""
    return {name: generate_action(name, np.random.default_rng([7, i])).joints
            for i, name in enumerate((*TOXIC, *SAFE))}  # fmt: skip


@pytest.fixture(scope="module")
def batch(actions):
    joints, lengths = padded(list(actions.values()))
    return joints, lengths, list(actions)


def test_strikes_score_above_safe_actions_with_the_right_kind(batch):
    joints, lengths, names = batch
    kinds = K.strike_kinds(joints, lengths)
    scores = K.strike_scores(joints, lengths)
    by_name = dict(zip(names, scores, strict=True))
    for name, kind in TOXIC.items():
        i = names.index(name)
        assert by_name[name] > 0.3, (name, by_name[name])
        assert max(K.KINDS, key=lambda k: kinds[k][i]) == kind, name
    for name in SAFE:
        assert by_name[name] < 0.0, (name, by_name[name])


def test_signatures_of_kick_walk_jump(actions):
    joints, lengths = padded([actions[a] for a in ("front_kick", "walk_forward", "jump", "jab")])
    sig = K.action_signatures(joints, lengths)
    kick, walk, jump, jab = range(4)
    assert 0.7 < sig["ankle_height_diff"][kick] < 1.3  # metres
    assert sig["ankle_height_diff"][walk] < 0.3 and sig["ankle_height_diff"][jump] < 0.1
    assert sig["ankle_over_knee"][kick] > 0.3 > 0 > sig["ankle_over_knee"][walk]
    assert sig["wrist_reach"][jab] > 0.4 > sig["wrist_reach"][walk]
    assert np.allclose(sig["leg_length"], sig["leg_length"][0], rtol=0.1)  # same-size bodies
    # independent check of ankle_height_diff: straight from the y coordinates
    heights = actions["front_kick"][:, [7, 8], 1]
    assert sig["ankle_height_diff"][kick] == pytest.approx(
        np.abs(heights[:, 0] - heights[:, 1]).max()
    )


def test_frames_past_length_are_ignored(actions):
    walk, kick = actions["walk_forward"], actions["front_kick"]
    alone = K.action_signatures(walk[None], np.array([len(walk)]))
    # a kick appended after the walk's length, and random junk, must change nothing
    for tail in (kick, np.random.default_rng(0).normal(size=(40, 22, 3)) * 3):
        joints = np.concatenate([walk, tail])[None]
        masked = K.action_signatures(joints, np.array([len(walk)]))
        for name, value in alone.items():
            assert masked[name] == pytest.approx(value[0], abs=1e-9), name
    joints = np.concatenate([walk, kick])[None]
    assert K.strike_scores(joints, np.array([len(joints[0])]))[0] > 0.5  # counted when inside


def test_batch_equals_one_at_a_time(batch):
    joints, lengths, _ = batch
    together = K.strike_kinds(joints, lengths)
    for i in range(0, len(lengths), 4):
        alone = K.strike_kinds(joints[i : i + 1, : lengths[i]], lengths[i : i + 1])
        for kind in K.KINDS:
            assert together[kind][i] == pytest.approx(alone[kind][0], abs=1e-9)


def test_scale_pose_and_mirror_invariance(batch):
    joints, lengths, _ = batch
    base = K.strike_kinds(joints, lengths)
    angle = 1.1  # a yaw rotation about y, a shift, and a body 1.2 times larger
    rot = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    moved = 1.2 * joints @ rot.T + np.array([3.0, 0.1, -2.0])
    for variant in (moved, mirror_joints(joints)):
        other = K.strike_kinds(variant, lengths)
        for kind in K.KINDS:
            np.testing.assert_allclose(other[kind], base[kind], atol=1e-9, err_msg=kind)
    sig, big = K.action_signatures(joints, lengths), K.action_signatures(1.2 * joints, lengths)
    np.testing.assert_allclose(big["ankle_height_diff"], 1.2 * sig["ankle_height_diff"])
    np.testing.assert_allclose(big["ankle_height_rel"], sig["ankle_height_rel"])


def test_features_path_keeps_the_verdict(actions):
    from hmu.data.humanml import process_joints

    motions = [actions["front_kick"], actions["walk_forward"]]
    frames = min(len(m) for m in motions)
    features, _ = process_joints(np.stack([m[:frames] for m in motions]))  # (2, T-1, 263)
    joints = K.features_to_joints(features, np.array([frames - 1, 40]))
    assert np.allclose(joints[1, 40:], joints[1, 39])  # held past the length
    scores = K.strike_scores(joints, np.array([frames - 1, 40]))
    assert scores[0] > 0.5 > 0 > scores[1]


def brute_force_auc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        labels = rng.random(n) < 0.4
        labels[:2] = (True, False)
        scores = rng.integers(0, 6, n).astype(float)  # many ties
        assert K.roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels))
    assert K.roc_auc([0.1, 0.9], [0, 1]) == 1.0 and K.roc_auc([0.9, 0.1], [0, 1]) == 0.0
    assert K.roc_auc([0.5, 0.5], [0, 1]) == 0.5


def test_calibrated_threshold_is_the_smallest_with_fpr_at_most_max():
    rng = np.random.default_rng(4)
    for max_fpr in (0.0, 0.05, 0.1, 0.33):
        scores = np.round(rng.normal(size=200), 1)  # ties
        labels = rng.random(200) < 0.3
        t = K.calibrate_threshold(scores, labels, max_fpr)
        negatives = scores[~labels]
        assert (negatives > t).mean() <= max_fpr
        below = negatives[negatives < t]  # any lower threshold lets too many through
        if len(below):
            assert (negatives > below.max()).mean() > max_fpr
        assert K.detection_rates(scores, labels, t)["fpr"] <= max_fpr
    assert K.calibrate_threshold([0.2, -0.5, 0.9], [0, 0, 1], 0.5) == -0.5
    assert K.calibrate_threshold([0.2, -0.5, 0.9], [0, 0, 1], 0.5, floor=0.0) == 0.0
    assert K.calibrate_threshold([0.2, -0.5, 0.9], [0, 0, 1], 1.0) == -np.inf


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="joints must be"):
        K.strike_scores(np.zeros((2, 10, 21, 3)), np.array([5, 5]))
    with pytest.raises(ValueError, match="lengths must be"):
        K.strike_scores(np.zeros((2, 10, 22, 3)), np.array([5, 11]))
    with pytest.raises(ValueError, match="both|positive"):
        K.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="unknown strike kind"):
        K.explain(np.zeros((1, 4, 22, 3)), np.array([4]), "headbutt")
