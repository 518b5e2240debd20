"""The synthetic benchmark: physical signatures of every action, mirrors, captions, layouts."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from hmu.data import skeleton as S
from hmu.data.synth import captions as C
from hmu.data.synth import motion as M
from hmu.data.synth.actions import PRIMITIVES, SAFE_ACTIONS, TOXIC_ACTIONS

FPS = 20
PELVIS, L_HIP, R_HIP, L_KNEE, R_KNEE = 0, 1, 2, 4, 5
L_ANKLE, R_ANKLE, L_TOE, R_TOE, HEAD = 7, 8, 10, 11, 15
L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 16, 17, 20, 21
FEET = [L_ANKLE, R_ANKLE, L_TOE, R_TOE]


# ----------------------------------------------------------------------------- body frame


class Body:
    """A motion in the body's own terms: heights, forward/lateral offsets, facing, speeds."""

    def __init__(self, motion: M.Motion):
        self.j = motion.joints
        s = motion.segments[0]
        self.span = slice(s["start"], s["end"])
        across = self.j[:, L_HIP] - self.j[:, R_HIP] + self.j[:, L_SHOULDER] - self.j[:, R_SHOULDER]
        fwd = np.cross(across, [0.0, 1.0, 0.0])
        fwd[:, 1] = 0
        self.fwd = fwd / np.linalg.norm(fwd, axis=1, keepdims=True)  # (T, 3)
        self.left = np.cross([0.0, 1.0, 0.0], self.fwd)
        self.facing = np.unwrap(np.arctan2(self.fwd[:, 0], self.fwd[:, 2]))
        self.fwd0, self.left0 = self.fwd[0], self.left[0]  # in-place offsets use frame 0 axes
        self.leg = np.linalg.norm(S.REST_OFFSETS[[4, 7]], axis=1).sum() * motion.plan.height_scale

    def y(self, joint):
        return self.j[:, joint, 1]

    def forward(self, joint, of=PELVIS):
        """Forward offset (T,) of `joint` from joint `of`, along the first frame's facing."""
        return (self.j[:, joint] - self.j[:, of]) @ self.fwd0

    def lateral(self, joint, of=PELVIS):
        """Offset (T,) toward the first frame's left of `joint` from joint `of`."""
        return (self.j[:, joint] - self.j[:, of]) @ self.left0

    def pelvis_drop(self):
        return self.y(PELVIS)[0] - self.y(PELVIS)

    def root_travel(self):
        """Root displacement from the first frame, in the first frame's (forward, left) axes."""
        d = self.j[:, PELVIS] - self.j[0, PELVIS]
        return d @ self.fwd0, d @ self.left0

    def speed(self, joint):
        return np.r_[0.0, np.linalg.norm(np.diff(self.j[:, joint], axis=0), axis=1) * FPS]

    def vy(self, joint):
        return np.r_[0.0, np.diff(self.y(joint)) * FPS]

    def foot_min(self, side):
        joints = [L_ANKLE, L_TOE] if side == "left" else [R_ANKLE, R_TOE]
        return self.j[:, joints, 1].min(1)


def _events(mask: np.ndarray) -> int:
    """Number of runs of True in a boolean series."""
    return int(np.sum(np.diff(np.r_[0, mask.astype(int)]) == 1))


def _planted_foot_still(b: Body, span=None):
    """Horizontal speed of a foot while it is the lowest one and touches the floor."""
    span = span or b.span
    speeds = []
    for joints in ([L_ANKLE, L_TOE], [R_ANKLE, R_TOE]):
        low = b.j[:, joints, 1].min(1)
        lowest = low <= b.j[:, FEET, 1].min(1) + 1e-9
        point = np.array(joints)[b.j[:, joints, 1].argmin(1)]
        pos = b.j[np.arange(len(b.j)), point][:, [0, 2]]
        v = np.r_[0.0, np.linalg.norm(np.diff(pos, axis=0), axis=1) * FPS]
        keep = lowest & (low < 0.01) & np.r_[False, lowest[:-1]]
        keep[: span.start + 1], keep[span.stop :] = False, False
        speeds.append(v[keep])
    return np.concatenate(speeds)


# ----------------------------------------------------------------------------- signatures


def sig_walk_forward(b):
    fwd, _ = b.root_travel()
    assert fwd[-1] > 1.0
    assert (b.foot_min("left")[b.span] > 0.04).any() and (b.foot_min("right")[b.span] > 0.04).any()
    still = _planted_foot_still(b)
    assert len(still) > 10 and np.percentile(still, 90) < 0.1, np.percentile(still, 90)


def sig_walk_backward(b):
    fwd, _ = b.root_travel()
    assert fwd[-1] < -0.8
    assert np.percentile(_planted_foot_still(b), 90) < 0.1


def sig_walk_sideways(b):
    fwd, left = b.root_travel()
    assert left[-1] < -0.4 and abs(fwd[-1]) < 0.2  # to the right
    assert np.percentile(_planted_foot_still(b), 90) < 0.1


def sig_walk_circle(b):
    turn = b.facing[b.span.stop - 1] - b.facing[b.span.start]
    assert turn < -np.radians(150)  # clockwise seen from above
    fwd, left = b.root_travel()
    assert np.hypot(fwd, left).max() > 1.0
    assert np.percentile(_planted_foot_still(b), 90) < 0.25  # the stance foot pivots


def sig_run(b):
    fwd, _ = b.root_travel()
    duration = (b.span.stop - b.span.start) / FPS
    assert fwd[b.span.stop - 1] - fwd[b.span.start] > 1.8 * duration
    assert (b.j[b.span][:, FEET, 1].min(1) > 0.01).any()  # both feet off the ground


def sig_jump(b):
    assert b.j[:, FEET, 1].min(1).max() > 0.1
    assert b.y(PELVIS).max() - b.y(PELVIS)[0] > 0.15


def sig_hop(b):
    mid = slice(b.span.start + 10, b.span.stop - 10)
    assert b.foot_min("left")[mid].min() > 0.1  # the free foot stays up
    assert (b.foot_min("right")[mid] > 0.02).any()  # the hopping foot leaves the ground


def sig_jumping_jacks(b):
    apart = np.abs(b.lateral(L_ANKLE, R_ANKLE))[b.span]
    assert apart.max() > 0.45 and apart.min() < 0.25
    wide = apart > 0.4
    assert (b.y(L_WRIST)[b.span][wide] > b.y(HEAD)[b.span][wide]).mean() > 0.8
    assert (b.j[b.span][:, FEET, 1].min(1) > 0.02).any()


def sig_wave(b):
    above = b.y(R_WRIST)[b.span] > b.y(HEAD)[b.span]
    assert above.mean() > 0.6
    assert b.lateral(R_WRIST)[b.span][above].std() > 0.03


def sig_clap(b):
    gap = np.linalg.norm(b.j[:, L_WRIST] - b.j[:, R_WRIST], axis=1)[b.span]
    assert gap.min() < 0.12 and gap.max() > 0.3
    assert _events(gap < 0.15) >= 3
    assert (b.forward(L_WRIST)[b.span][gap < 0.15] > 0.2).all()


def sig_squat(b):
    drop = b.pelvis_drop()[b.span]
    assert drop.max() > 0.35 * b.leg
    assert _events(drop > 0.25 * b.leg) >= 2
    assert np.percentile(_planted_foot_still(b), 95) < 0.05


def sig_sit_stand(b):
    drop = b.pelvis_drop()
    held = drop > 0.28
    assert held.sum() >= 20
    assert (np.abs(b.y(R_KNEE) - b.y(PELVIS))[held] < 0.15).mean() > 0.8  # thighs ~ horizontal
    assert drop[-1] < 0.02


def sig_bow(b):
    head_drop = b.y(HEAD)[0] - b.y(HEAD)
    assert head_drop.max() > 0.25 and b.pelvis_drop().max() < 0.08
    assert b.forward(HEAD).max() > 0.3


def sig_turn_around(b):
    turn = b.facing[-1] - b.facing[0]
    assert np.degrees(turn) == pytest.approx(-180, abs=25)
    assert np.linalg.norm(b.j[-1, PELVIS, [0, 2]] - b.j[0, PELVIS, [0, 2]]) < 0.3


def sig_stretch_up(b):
    assert np.minimum(b.y(L_WRIST), b.y(R_WRIST)).max() - b.y(HEAD).max() > 0.2


def sig_crouch(b):
    drop = b.pelvis_drop()
    assert drop.max() > 0.45 * b.leg and (drop > 0.4 * b.leg).sum() >= 16


def sig_lunge(b):
    gap = b.forward(R_ANKLE, L_ANKLE)
    assert gap.max() > 0.55 and b.pelvis_drop().max() > 0.2
    assert np.percentile(_planted_foot_still(b), 90) < 0.1


def sig_dance_sway(b):
    sway = b.lateral(PELVIS, L_ANKLE)[b.span]
    assert np.ptp(sway) > 0.1
    assert b.j[b.span][:, FEET, 1].max() < 0.1  # feet stay on the floor
    assert np.percentile(_planted_foot_still(b), 95) < 0.05


def sig_stand_idle(b):
    assert np.linalg.norm(b.j[:, PELVIS, [0, 2]] - b.j[0, PELVIS, [0, 2]], axis=1).max() < 0.05
    assert np.ptp(b.y(PELVIS)) < 0.03
    assert max(b.speed(j).max() for j in range(22)) < 1.0


def sig_throw_ball(b):
    back = (b.forward(R_WRIST, R_SHOULDER) < -0.1) & (b.y(R_WRIST) > b.y(R_SHOULDER))
    assert back.any()
    later = np.arange(len(b.j)) > np.flatnonzero(back)[0]
    assert (later & (b.forward(R_WRIST, R_SHOULDER) > 0.3)).any()
    assert b.speed(R_WRIST).max() > 3.0


def sig_front_kick(b):
    high = b.y(R_ANKLE) > b.y(L_KNEE)
    assert (high & (b.forward(R_ANKLE) > 0.4)).any()
    assert b.foot_min("left").max() < 0.02  # the standing foot stays down


def sig_roundhouse_kick(b):
    high = b.y(R_ANKLE) > b.y(L_KNEE) + 0.1
    assert high.sum() >= 3
    sweep = b.lateral(R_ANKLE)[high]
    assert np.ptp(sweep) > 0.3
    hips = b.j[:, L_HIP] - b.j[:, R_HIP]
    angle = np.unwrap(np.arctan2(hips[:, 2], hips[:, 0]))
    assert np.degrees(np.ptp(angle)) > 25


def sig_jab(b):
    reach = b.forward(R_WRIST, R_SHOULDER)
    level = np.abs(b.y(R_WRIST) - b.y(R_SHOULDER)) < 0.15
    assert (level & (reach > 0.4)).sum() >= 2
    assert _events(reach > 0.35) >= 2  # jabs come back


def sig_hook(b):
    level = b.y(R_WRIST) > b.y(R_SHOULDER) - 0.15
    side = b.lateral(R_WRIST)[level]
    assert side.min() < -0.15 and side.max() > 0.0  # crosses from the right side to the left
    assert b.speed(R_WRIST).max() > 2.5


def sig_uppercut(b):
    rise = b.y(R_WRIST)[8:] - b.y(R_WRIST)[:-8]  # over 0.4 s
    assert rise.max() > 0.35
    top = np.argmax(b.y(R_WRIST))
    assert b.y(R_WRIST)[top] > b.y(R_SHOULDER)[top] and b.forward(R_WRIST)[top] > 0.15


def sig_stab(b):
    above = np.flatnonzero(b.y(R_WRIST) > b.y(R_SHOULDER) + 0.2)
    assert len(above)
    after = slice(above[0], None)
    low = (b.y(R_WRIST) < b.y(R_SHOULDER) - 0.3) & (b.forward(R_WRIST) > 0.2)
    assert low[after].any()
    assert b.vy(R_WRIST).min() < -2.0


def sig_sword_slash(b):
    high = np.argmax(b.y(R_WRIST))
    low = high + np.argmin(b.y(R_WRIST)[high : high + 12])  # within 0.6 s
    assert b.y(R_WRIST)[high] - b.y(R_WRIST)[low] > 0.6
    assert b.lateral(R_WRIST)[high] < -0.15 < 0.0 < b.lateral(R_WRIST)[low]  # right -> left


def sig_shoot_gun(b):
    aim = (b.forward(R_WRIST, R_SHOULDER) > 0.4) & (np.abs(b.y(R_WRIST) - b.y(R_SHOULDER)) < 0.2)
    assert aim.sum() >= 20
    y = b.y(R_WRIST)
    peaks = (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]) & aim[1:-1]
    assert peaks.sum() >= 2
    assert np.ptp(y[aim]) > 0.04  # recoil jolts


def sig_martial_combo(b):
    for wrist, shoulder in ((R_WRIST, R_SHOULDER), (L_WRIST, L_SHOULDER)):
        assert b.forward(wrist, shoulder).max() > 0.4
    assert ((b.y(R_ANKLE) > b.y(L_KNEE)) & (b.forward(R_ANKLE) > 0.35)).any()


def sig_beat_down(b):
    strokes = _events(b.vy(R_WRIST) < -1.8) + _events(b.vy(L_WRIST) < -1.8)
    assert strokes >= 4
    assert b.forward(HEAD)[b.span].mean() > 0.2


SIGNATURES = {name[4:]: fn for name, fn in globals().items() if name.startswith("sig_")}


def test_every_action_has_a_signature():
    assert set(SIGNATURES) == set(PRIMITIVES)
    assert len(SAFE_ACTIONS) >= 15 and len(TOXIC_ACTIONS) >= 8


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
@pytest.mark.parametrize("seed", [0, 1])
def test_action_signature(name, seed):
    rng = np.random.default_rng(seed)
    motion = M.generate_action(name, rng, side="right", height_scale=0.9 + 0.2 * seed, facing=0.7)
    assert np.isfinite(motion.joints).all()
    np.testing.assert_allclose(np.ptp(S.bone_lengths(motion.joints), axis=0), 0, atol=1e-9)
    assert motion.joints[..., 1].min() > -1e-6  # never below the floor
    SIGNATURES[name](Body(motion))


# ----------------------------------------------------------------------------- mirrors


SIDED = sorted(n for n, p in PRIMITIVES.items() if p.sided)


@pytest.mark.parametrize("name", ["front_kick", "walk_sideways", "turn_around", "wave", "hop"])
def test_left_side_is_the_mirror_image(name):
    """Without noise, the left-side action is exactly the mirrored right-side action."""
    plans = {}
    for side in ("right", "left"):
        plan = M.plan_motion([(name, side)], np.random.default_rng(3), facing=0.0)
        plan.noise[:] = 0.0
        plans[side] = M.render_plan(plan, FPS)
    right, left = plans["right"], plans["left"]
    np.testing.assert_allclose(left.joints, S.mirror_joints(right.joints), atol=1e-9)


def test_mirror_rotations_match_mirrored_joints():
    from hmu.data.synth.writer import mirror_rotations

    motion = M.generate_action("roundhouse_kick", np.random.default_rng(0), facing=1.0)
    offsets = S.scaled_rest_offsets(motion.plan.height_scale)
    again = S.forward_kinematics(motion.rotations, motion.root, offsets)
    np.testing.assert_allclose(again, motion.joints, atol=1e-6)
    mirrored = S.forward_kinematics(mirror_rotations(motion.rotations),
                                    motion.root * [-1, 1, 1], offsets)  # fmt: skip
    np.testing.assert_allclose(mirrored, S.mirror_joints(motion.joints), atol=1e-6)


def test_mirror_caption_swaps_sides_and_turns():
    text = "Left foot kicks, then the person turns clockwise to the right; counterclockwise."
    assert C.mirror_caption(text) == (
        "Right foot kicks, then the person turns counterclockwise to the left; clockwise."
    )
    assert C.mirror_caption(C.mirror_caption(text)) == text
    assert C.mirror_caption("a leftover rightly") == "a leftover rightly"


def test_rendering_is_a_subsample_of_one_motion():
    plan = M.plan_motion([("jab", "right"), ("hop", "left")], np.random.default_rng(1),
                         odd_frames=True)  # fmt: skip
    m20, m30 = M.render_plan(plan, 20), M.render_plan(plan, 30)
    assert len(m20.joints) % 2 == 1 and len(m30.joints) == (len(m20.joints) - 1) * 3 // 2 + 1
    np.testing.assert_allclose(m20.joints[::2], m30.joints[::3], atol=1e-9)


def test_joint_rotations_are_continuous():
    """No local rotation jumps (a swing near its singularity would flip within one frame)."""
    from hmu.data.rotations import axis_angle_to_quaternion, qinv, qmul, quaternion_to_axis_angle

    for name in PRIMITIVES:
        motion = M.generate_action(name, np.random.default_rng(0), fps=60, facing=3.0)
        q = axis_angle_to_quaternion(motion.rotations)  # (T, 22, 4)
        step = np.linalg.norm(quaternion_to_axis_angle(qmul(qinv(q[:-1]), q[1:])), axis=-1)
        assert step.max() * 60 < 40.0, (name, step.max() * 60)  # rad/s


def test_bad_actions_are_rejected():
    with pytest.raises(ValueError, match="unknown action 'fly'"):
        M.generate_action("fly", np.random.default_rng(0))
    with pytest.raises(ValueError, match="side"):
        M.generate_action("jab", np.random.default_rng(0), side="up")
    with pytest.raises(ValueError, match="fps"):
        M.generate_action("jab", np.random.default_rng(0), fps=25)


def test_plan_lengths_stay_within_humanml_limits():
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = [(str(rng.choice(list(PRIMITIVES))), "right") for _ in range(3)]
        m = M.render_plan(M.plan_motion(actions, rng), FPS)
        assert 41 <= len(m.joints) <= 197
        for seg in m.segments:
            assert 0 <= seg["start"] < seg["end"] <= len(m.joints)


# ----------------------------------------------------------------------------- captions


def _official_lists():
    from hmu.data.toxicity import official_keywords

    return official_keywords("humanml3d", "violence"), official_keywords("motionx", "violence")


def _all_fills(template):
    return [C.fill(template, side, subject) for side in ("right", "left") for subject in C.SUBJECTS]


def _assert_no_toxic_words(text):
    from hmu.data.toxicity import match_keywords

    both = sorted(set(sum(_official_lists(), [])))
    assert not match_keywords(text, both), text
    lowered = text.lower()  # stricter than the split: not even a substring (the paper's matcher)
    stems = [k for k in both if len(k) > 2] + ["shot", "kung", "fight", "weapon", "knife"]
    assert not [s for s in stems if s in lowered], text


def test_safe_and_implicit_templates_have_no_toxic_words():
    for prim in PRIMITIVES.values():
        pools = prim.implicit if prim.toxic else prim.phrases
        assert len(pools) >= 2, prim.name
        for template in pools:
            for text in _all_fills(template):
                _assert_no_toxic_words(text)
    for connectors in C.CONNECTORS.values():
        for connector in connectors:
            _assert_no_toxic_words(connector)
    for subject in C.SUBJECTS:
        _assert_no_toxic_words(" ".join(subject))


@pytest.mark.parametrize("dataset", ["humanml3d", "motionx"])
def test_toxic_captions_carry_keywords_of_their_dataset(dataset):
    from hmu.data.synth.writer import SynthConfig
    from hmu.data.toxicity import match_keywords

    config = SynthConfig(layout=dataset, motions=10, test_forget=0, test_retain=0,
                         mirror=False)  # fmt: skip
    keywords = config.keyword_list()
    assert len(config.toxic_weights()) >= 7
    rng = np.random.default_rng(0)
    for name in config.toxic_weights():
        for implicit in (0, 1, 2):
            actions = [("walk_forward", "left"), (name, "right")]
            captions, where = C.motion_captions(actions, rng, keywords, implicit=implicit)
            assert len(captions) == 3 and len(set(captions)) >= 2 and len(where) == implicit
            for k, text in enumerate(captions):
                assert bool(match_keywords(text, keywords)) == (k not in where), text
                if k in where:
                    _assert_no_toxic_words(text)


def test_config_rejects_bad_parameters():
    from hmu.data.synth.writer import SynthConfig

    with pytest.raises(ValueError, match="unknown synth parameter"):
        SynthConfig.from_params({"motions": 10, "colour": "red"})
    with pytest.raises(ValueError, match="shoot_gun"):  # no HumanML3D keyword for guns
        SynthConfig.from_params({"layout": "humanml3d", "toxic_mix": {"shoot_gun": 1.0}})
    with pytest.raises(ValueError, match="not a toxic action"):
        SynthConfig.from_params({"toxic_mix": {"walk_forward": 1.0}})
    from hmu.data.synth.writer import assign_partitions

    with pytest.raises(ValueError, match="test_forget"):  # 2 toxic base motions, 4 wanted
        assign_partitions(SynthConfig(motions=20, toxic_share=0.1, test_forget=8))
    with pytest.raises(ValueError, match="even"):
        assign_partitions(SynthConfig(motions=20, toxic_share=0.5, test_forget=3))


@pytest.mark.parametrize(("dataset", "share"), [("humanml3d", 0.08), ("motionx", 0.15)])
def test_keyword_forget_share_hits_the_target(dataset, share):
    """Over a moderate dataset, the keyword-based forget set is the toxic share (+-2 points)."""
    from hmu.data.synth.writer import SynthConfig, assign_partitions, motion_labels
    from hmu.data.toxicity import match_keywords

    config = SynthConfig(layout=dataset, motions=1000, toxic_share=share, seed=3)
    keywords = config.keyword_list()
    toxic, partition = assign_partitions(config)
    forget = []
    for i in range(config.motions):
        labels = motion_labels(i, bool(toxic[i]), config)
        forget.append(any(match_keywords(c, keywords) for c in labels["captions"]))
        assert any(PRIMITIVES[a].toxic for a, _ in labels["actions"]) == toxic[i]
    assert abs(np.mean(forget) - share) <= 0.02
    np.testing.assert_array_equal(forget, toxic)  # captions agree with the labels exactly
    assert (toxic & (partition == "test")).sum() * 2 == config.test_forget
    assert (~toxic & (partition == "test")).sum() * 2 == config.test_retain


# ----------------------------------------------------------------------------- datasets


def _small(layout, **overrides):
    from hmu.data.synth.writer import SynthConfig

    values = dict(layout=layout, motions=24, seed=5, toxic_share=0.25, implicit_share=0.5,
                  test_forget=4, test_retain=4, val_share=0.1)  # fmt: skip
    if layout == "motionx":
        values.update(mirror=False, test_forget=2, test_retain=2, random_facing=False,
                      groundtruth_joints=True)  # fmt: skip
    values.update(overrides)
    return SynthConfig(**values)


@pytest.fixture(scope="module")
def humanml_dir(tmp_path_factory):
    from hmu.data.synth.writer import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "humanml3d"
    summary = generate_dataset(root, _small("humanml3d"))
    return root, summary


@pytest.fixture(scope="module")
def motionx_dir(tmp_path_factory):
    from hmu.data.synth.writer import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "motionx"
    summary = generate_dataset(root, _small("motionx"))
    return root, summary


def _read_ids(path):
    return path.read_text(encoding="utf-8").split()


def test_humanml_layout(humanml_dir):
    from hmu.data.humanml import recover_from_ric
    from hmu.data.text import read_caption_file

    root, summary = humanml_dir
    ids = _read_ids(root / "all.txt")
    assert len(ids) == 48 and summary["motions"] == 48 and summary["captions"] == 144
    assert ids == sorted(ids) and "000000" in ids and "M000000" in ids
    splits = {name: set(_read_ids(root / f"{name}.txt")) for name in ("train", "val", "test")}
    assert set().union(*splits.values()) == set(ids)
    assert sum(len(s) for s in splits.values()) == len(ids)
    for members in splits.values():  # a motion and its mirror share a partition
        assert {i.removeprefix("M") for i in members} == {i[1:] for i in members if i[0] == "M"}
    for name in ("Mean.npy", "Std.npy"):
        array = np.load(root / name)
        assert array.shape == (263,) and array.dtype == np.float32 and np.isfinite(array).all()
    assert (np.load(root / "Std.npy") > 0).all()
    for motion_id in ids:
        feats = np.load(root / "new_joint_vecs" / f"{motion_id}.npy")
        joints = np.load(root / "new_joints" / f"{motion_id}.npy")
        assert feats.dtype == joints.dtype == np.float32
        assert np.isfinite(feats).all() and np.isfinite(joints).all()
        assert feats.shape[1] == 263 and joints.shape == (len(feats), 22, 3)
        assert 40 <= len(feats) <= 196
        lengths = S.bone_lengths(joints)
        np.testing.assert_allclose(lengths, lengths[:1].repeat(len(lengths), 0), atol=1e-4)
        np.testing.assert_allclose(recover_from_ric(feats), joints, atol=1e-3)
        lines = (root / "texts" / f"{motion_id}.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 3
        for line in lines:
            assert re.fullmatch(r"[^#]+##0\.0#0\.0", line), line
        assert [c.caption for c in read_caption_file(root / "texts" / f"{motion_id}.txt")] == [
            line.split("#")[0] for line in lines
        ]


def test_humanml_mirrors_and_metadata(humanml_dir):
    from hmu.data.toxicity import match_keywords

    root, summary = humanml_dir
    meta = pd.read_parquet(root / "_groundtruth" / "metadata.parquet").set_index("motion_id")
    keywords = _official_lists()[0]
    for motion_id, row in meta.iterrows():
        captions = (root / "texts" / f"{motion_id}.txt").read_text().splitlines()
        captions = [c.split("#")[0] for c in captions]
        assert list(row.captions) == captions
        matched = [bool(match_keywords(c, keywords)) for c in captions]
        assert any(matched) == row.toxic  # forget set == ground-truth toxic flag
        assert [k for k, m in enumerate(matched) if not m and row.toxic] == list(
            row.implicit_captions
        )
        segments = json.loads(row.segments)
        assert [s["action"] for s in segments] == list(row.actions)
        assert row.toxic == any(s["toxic"] for s in segments) == bool(len(row.toxic_actions))
        assert 0.9 <= row.height_scale <= 1.1
        if row.mirrored:
            base = meta.loc[row.base_id]
            assert captions == [C.mirror_caption(c) for c in base.captions]
            assert row.partition == base.partition
            sides = [s["side"] for s in json.loads(base.segments)]
            swap = {"left": "right", "right": "left", "none": "none"}
            assert [s["side"] for s in segments] == [swap[s] for s in sides]
    assert summary["partitions"]["test"] == {"motions": 8, "forget": 4, "retain": 4,
                                             "toxic_share": 0.5}  # fmt: skip
    assert summary["toxic_share"] == pytest.approx(0.25)
    assert 0 < summary["implicit_caption_share"] < 1


def test_humanml_mirror_joints_are_consistent(humanml_dir):
    """The mirror's features describe the mirrored canonical motion (up to the facing)."""
    root, _ = humanml_dir
    base = np.load(root / "new_joints" / "000001.npy")
    mirror = np.load(root / "new_joints" / "M000001.npy")
    np.testing.assert_allclose(S.mirror_joints(base)[:, :, 1], mirror[:, :, 1], atol=1e-4)
    # both start at the origin facing +z: mirroring the base reproduces the mirror exactly
    np.testing.assert_allclose(S.mirror_joints(base), mirror, atol=2e-3)


def test_generation_is_deterministic(humanml_dir, tmp_path):
    from hmu.data.synth.writer import generate_dataset

    first, _ = humanml_dir
    second = tmp_path / "again"
    generate_dataset(second, _small("humanml3d"))
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    assert not list(tmp_path.glob(".again*"))  # no temporary folder left behind


def test_motionx_layout_and_conversion(motionx_dir):
    from hmu.data.motionx import convert_clip, read_captions, read_splits
    from hmu.data.store import MotionStore

    root, summary = motionx_dir
    splits = read_splits(root)
    ids = _read_ids(root / "all.txt")
    assert sorted(splits) == ids and len(ids) == 24 and summary["motions"] == 24
    store = MotionStore.open(root / "_groundtruth", array_name="joints.npy")
    meta = pd.read_parquet(root / "_groundtruth" / "metadata.parquet").set_index("motion_id")
    for motion_id in ids:
        subset, clip = motion_id.split("/")
        assert subset in {"humanml", "kungfu", "idea400", "game_motion", "perform", "fitness"}
        assert re.fullmatch(r"\d{6}", clip) and meta.loc[motion_id].subset == subset
        params = np.load(root / "motion_data" / "smplx_322" / f"{motion_id}.npy")
        truth = store.get_id(motion_id)
        assert params.dtype == np.float32 and params.shape == ((len(truth) - 1) * 3 // 2 + 1, 322)
        assert np.isfinite(params).all() and meta.loc[motion_id].file_frames == len(params)
        assert not params[:, 66:309].any() and not params[:, 313:].any()  # hands, face, betas>0
        scale = 1 + 0.04 * params[0, 312]
        assert scale == pytest.approx(meta.loc[motion_id].height_scale, abs=1e-5)
        joints = convert_clip(params, up_axis="z")  # the importer's own path back to joints
        assert joints.shape == truth.shape
        np.testing.assert_allclose(joints[::2], truth[::2], atol=1e-4)  # exact frames
        assert np.abs(joints - truth).max() < 0.08  # 30 -> 20 fps slerp midpoints
        rows = read_captions(root / "texts" / "semantic_labels" / f"{motion_id}.txt",
                             hash_format=subset == "humanml")  # fmt: skip
        assert [r["caption"] for r in rows] == list(meta.loc[motion_id].captions)
    assert summary["partitions"]["test"]["forget"] == 2


def test_motionx_y_up_and_first_frame_facing(tmp_path):
    from hmu.data.motionx import convert_clip
    from hmu.data.store import MotionStore
    from hmu.data.synth.writer import generate_dataset

    generate_dataset(tmp_path / "mx", _small("motionx", motions=6, up_axis="y", test_forget=0,
                                             test_retain=0))  # fmt: skip
    store = MotionStore.open(tmp_path / "mx" / "_groundtruth", array_name="joints.npy")
    for motion_id in store.ids:
        params = np.load(tmp_path / "mx" / "motion_data" / "smplx_322" / f"{motion_id}.npy")
        truth = store.get_id(motion_id)
        np.testing.assert_allclose(convert_clip(params, up_axis="y")[::2], truth[::2], atol=1e-4)
        across = truth[0, L_HIP] - truth[0, R_HIP]  # faces +z: the left hip is at +x
        assert across[0] > 0.1 and abs(across[2]) < 0.05


def test_stage_writes_dataset_and_summary(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parents[1] / "stages" / "synth.py"
    spec = importlib.util.spec_from_file_location("synth_stage", path)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)

    params = {"synth": {"tiny": {"layout": "humanml3d", "motions": 8, "toxic_share": 0.25,
                                 "test_forget": 2, "test_retain": 2, "seed": 0}}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    summary = stage.main("tiny")
    assert (tmp_path / "data" / "raw" / "tiny" / "Mean.npy").is_file()
    written = json.loads((tmp_path / "metrics" / "tiny" / "synth.json").read_text())
    assert written == summary and written["motions"] == 16
    with pytest.raises(KeyError, match="synth.other"):
        stage.main("other")


def test_length_limit_keeps_toxic_actions():
    rng = np.random.default_rng(0)
    actions = [("walk_circle", "right"), ("front_kick", "left"), ("sit_stand", "right")]
    for _ in range(10):
        plan = M.plan_motion(actions, rng)
        assert "front_kick" in [s.action for s in plan.segments]
        assert plan.duration <= M.MAX_SECONDS + 1e-9


@pytest.mark.slow
def test_worker_processes_give_the_same_files(humanml_dir, tmp_path):
    from hmu.data.synth.writer import generate_dataset

    first, _ = humanml_dir
    generate_dataset(tmp_path / "w", _small("humanml3d", workers=2))
    for path in first.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "w" / path.relative_to(first)).read_bytes()
