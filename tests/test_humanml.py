"""HumanML3D features: round trips, each feature block against a direct computation, quirks."""

import numpy as np
import pytest
import torch

from hmu.data import humanml as H
from hmu.data import rotations as R
from hmu.data import skeleton as S

torch.set_num_threads(1)
TARGET_LENGTHS = np.linalg.norm(H.DEFAULT_TARGET_OFFSETS[1:], axis=-1)  # (21,)


def smooth_motion(seed=0, frames=60, turn=np.pi / 2, scale=1.1, amplitude=0.35):
    """Positions (T, 22, 3) by SMPL forward kinematics from smooth random joint rotations, with
    a root that walks forward while its heading turns by `turn` radians over the clip."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / 20.0  # (T, 1) seconds
    freq = rng.uniform(0.3, 1.0, size=(1, 22 * 3))
    phase = rng.uniform(0, 2 * np.pi, size=(1, 22 * 3))
    amp = rng.uniform(0, amplitude, size=(1, 22 * 3))
    local = (amp * np.sin(2 * np.pi * freq * t + phase)).reshape(frames, 22, 3)
    heading = rng.uniform(-np.pi, np.pi) + turn * np.linspace(0, 1, frames)  # (T,)
    tilt = 0.1 * np.sin(2 * np.pi * 0.5 * t[:, 0])
    global_rot = R.axis_angle_to_matrix(np.stack([0 * tilt, heading, 0 * tilt], -1)) @ (
        R.axis_angle_to_matrix(np.stack([tilt, 0 * tilt, 0 * tilt], -1))
    )
    local_mat = R.axis_angle_to_matrix(local)
    local_mat[:, 0] = global_rot
    step = 0.05 * np.stack([np.sin(heading), 0 * heading, np.cos(heading)], -1)  # (T, 3)
    root = np.cumsum(step, 0) + np.array([1.5, 0.95, -0.7]) + [0, 0.03, 0] * np.sin(4 * t)
    return S.forward_kinematics(local_mat, root, S.REST_OFFSETS * scale)


def chain_fk_from_cont6d(features, root_quat, root_pos, offsets):
    """Independent FK: HumanML3D chain convention, 6D -> matrices, one frame at a time."""
    six = features[:, H.feature_groups()["rotations"]].reshape(-1, 21, 6).astype(np.float64)
    out = np.zeros((len(features), 22, 3))
    for t in range(len(features)):
        mats = [R.quaternion_to_matrix(root_quat[t].astype(np.float64))] + [
            R.cont6d_to_matrix(six[t, j]) for j in range(21)
        ]
        out[t, 0] = root_pos[t]
        for chain in S.KINEMATIC_CHAIN:
            acc = mats[0]
            for parent, child in zip(chain[:-1], chain[1:], strict=True):
                acc = acc @ mats[child]
                out[t, child] = out[t, parent] + acc @ offsets[child]
    return out


@pytest.fixture(scope="module")
def motion():
    joints = smooth_motion()
    features, canon = H.process_joints(joints)
    return joints, features, canon


def test_shapes_dtypes_and_layout(motion):
    joints, features, canon = motion
    assert features.shape == (59, 263) and features.dtype == np.float32
    assert canon.shape == (60, 22, 3) and canon.dtype == np.float32
    single = H.joints_to_features(joints)
    np.testing.assert_array_equal(single, features)
    np.testing.assert_array_equal(H.joints_to_features(torch.from_numpy(joints)), features)
    groups = H.feature_groups()
    sizes = [s.stop - s.start for s in groups.values()]
    assert sizes == [1, 2, 1, 63, 126, 66, 4] and groups["foot_contact"].stop == 263
    assert H.feature_dim() == 263


def test_canonical_joints_are_retargeted_floored_and_facing_z(motion):
    joints, _, canon = motion
    canon = canon.astype(np.float64)
    np.testing.assert_allclose(
        S.bone_lengths(canon), np.broadcast_to(TARGET_LENGTHS, (60, 21)), atol=1e-5
    )
    assert abs(canon[..., 1].min()) < 1e-6
    np.testing.assert_allclose(canon[0, 0, [0, 2]], 0, atol=1e-6)
    across = (canon[0, 2] - canon[0, 1]) + (canon[0, 17] - canon[0, 16])  # right minus left
    facing = np.cross([0, 1, 0], across)
    assert facing[2] > 0 and abs(facing[0]) < 1e-5 * np.linalg.norm(facing)
    # Bone directions are those of the input, turned by one rotation about y.
    bones_in = joints[:, 1:] - joints[:, S.PARENTS[1:]]
    bones_out = canon[:, 1:] - canon[:, S.PARENTS[1:]]
    bones_in /= np.linalg.norm(bones_in, axis=-1, keepdims=True)
    bones_out /= np.linalg.norm(bones_out, axis=-1, keepdims=True)
    yaw = np.arctan2(bones_in[0, 0, 0], bones_in[0, 0, 2]) - np.arctan2(
        bones_out[0, 0, 0], bones_out[0, 0, 2]
    )
    turned = bones_in @ R.rotation_y(np.array(-yaw)).T
    np.testing.assert_allclose(turned, bones_out, atol=1e-5)


def test_root_trajectory_scaled_by_leg_ratio(motion):
    joints, _, canon = motion
    leg_in = np.linalg.norm(joints[0, 5] - joints[0, 2]) + np.linalg.norm(
        joints[0, 8] - joints[0, 5]
    )
    ratio = (TARGET_LENGTHS[4] + TARGET_LENGTHS[7]) / leg_in
    travel_in = np.linalg.norm(np.diff(joints[:, 0, [0, 2]], axis=0), axis=-1)
    travel_out = np.linalg.norm(np.diff(canon[:, 0, [0, 2]], axis=0), axis=-1)
    np.testing.assert_allclose(travel_out, travel_in * ratio, rtol=1e-4)


def test_recover_from_ric_reproduces_canonical_joints(motion):
    _, features, canon = motion
    recovered = H.recover_from_ric(features)
    assert recovered.shape == (59, 22, 3) and recovered.dtype == np.float32
    assert np.abs(recovered - canon[:-1]).max() < 1e-4  # metres; float32 features


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_round_trip_various_and_mirrored(seed):
    joints = smooth_motion(seed, frames=50, turn=np.deg2rad(150), scale=0.9 + 0.1 * seed)
    for clip in (joints, S.mirror_joints(joints)):
        features, canon = H.process_joints(clip)
        assert np.abs(H.recover_from_ric(features) - canon[:-1]).max() < 1e-4
    # Canonicalisation commutes with mirroring (the default target skeleton is symmetric).
    _, canon_mirror = H.process_joints(S.mirror_joints(joints))
    np.testing.assert_allclose(
        canon_mirror, S.mirror_joints(H.process_joints(joints)[1]), atol=1e-5
    )


def test_same_length_input_is_moved_rigidly():
    """A body that already has the target lengths is only floored, centred and turned."""
    joints = smooth_motion(4, frames=40, scale=1.0)
    _, canon = H.process_joints(joints)
    across = (joints[0, 2] - joints[0, 1]) + (joints[0, 17] - joints[0, 16])
    yaw = np.arctan2(across[2], -across[0])  # heading of y x across = (az, 0, -ax)
    moved = (joints - joints[0, 0] * [1, 0, 1]) @ R.rotation_y(np.array(-yaw)).T
    moved[..., 1] -= moved[..., 1].min()
    np.testing.assert_allclose(canon, moved, atol=1e-5)


def test_rotation_and_velocity_blocks_match_direct_computation(motion):
    _, features, canon = motion
    root_quat, root_pos = H.recover_root_rot_pos(features)
    fk = chain_fk_from_cont6d(features, root_quat, root_pos, H.DEFAULT_TARGET_OFFSETS)
    assert np.abs(fk - canon[:-1]).max() < 1e-4
    vel = features[:, H.feature_groups()["local_velocity"]].reshape(-1, 22, 3)
    inv = np.repeat(R.qinv(root_quat)[:, None], 22, axis=1)
    np.testing.assert_allclose(R.qrot(inv, vel), np.diff(canon, axis=0), atol=1e-5)
    np.testing.assert_allclose(features[:, 3], canon[:-1, 0, 1], atol=1e-6)


def test_foot_contacts_standing_and_swinging_foot():
    frames = 40
    t = np.arange(frames) / 20.0
    local = np.zeros((frames, 22, 3))
    local[:, 2, 0] = 0.8 * np.sin(2 * np.pi * t)  # right hip swings about x
    joints = S.forward_kinematics(local, np.tile([0.0, 0.95, 0.0], (frames, 1)))
    features, canon = H.process_joints(joints)
    contacts = features[:, -4:]
    np.testing.assert_array_equal(contacts[:, :2], 1.0)  # the left foot stands
    step = ((canon[1:, [8, 11]] - canon[:-1, [8, 11]]) ** 2).sum(-1)
    np.testing.assert_array_equal(contacts[:, 2:], (step < 0.002).astype(np.float32))
    assert 0 < contacts[:, 2:].mean() < 1  # swinging: moving mid-swing, still at the ends
    still = H.joints_to_features(np.repeat(joints[:1], 10, axis=0))
    np.testing.assert_array_equal(still[:, -4:], 1.0)
    assert H.joints_to_features(joints, feet_thre=0.0)[:, -4:].sum() == 0


def test_turn_past_180_degrees_keeps_upstream_sign_quirk():
    """Upstream takes arcsin of the unsigned relative quaternion (HumanML3D issue 156): the
    frame where the facing crosses -z stores the wrong sign. We reproduce it on purpose."""
    frames = 40
    heading = np.linspace(0, np.deg2rad(270), frames)
    local = np.zeros((frames, 22, 3))
    local[:, 0, 1] = heading
    joints = S.forward_kinematics(local, np.tile([0.0, 0.95, 0.0], (frames, 1)))
    rot_vel = H.joints_to_features(joints)[:, 0]
    flipped = np.sign(rot_vel) != np.sign(np.median(rot_vel))
    assert flipped.sum() == 1  # exactly the crossing frame


def test_batched_process_matches_single_clips():
    clips = np.stack([smooth_motion(s, frames=30) for s in (5, 6)])
    features, canon = H.process_joints(clips)
    for i in range(2):
        single_f, single_c = H.process_joints(clips[i])
        np.testing.assert_allclose(features[i], single_f, atol=1e-6)
        np.testing.assert_allclose(canon[i], single_c, atol=1e-6)


def test_recover_from_ric_torch_numpy_and_batch_agree(motion):
    _, features, _ = motion
    batch = np.stack([features, features[::-1].copy()])
    out_np = H.recover_from_ric(batch)
    out_t = H.recover_from_ric(torch.from_numpy(batch))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), out_np, atol=1e-6)
    np.testing.assert_allclose(out_np[0], H.recover_from_ric(features), atol=1e-6)
    grad_in = torch.from_numpy(features).requires_grad_()
    H.recover_from_ric(grad_in).sum().backward()
    assert grad_in.grad is not None and torch.isfinite(grad_in.grad).all()


def test_bad_input_is_rejected():
    joints = smooth_motion(frames=10)
    nan = joints.copy()
    nan[3, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        H.joints_to_features(nan)
    inf = joints.copy()
    inf[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN/Inf"):
        H.joints_to_features(inf)
    with pytest.raises(ValueError, match="22, 3"):
        H.joints_to_features(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        H.joints_to_features(joints[:1])
    with pytest.raises(ValueError, match="degenerate"):
        H.joints_to_features(np.zeros((10, 22, 3)))
    with pytest.raises(ValueError, match="263"):
        H.recover_from_ric(np.zeros((10, 262)))
    bad = np.zeros((10, 263), dtype=np.float32)
    bad[2, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        H.recover_from_ric(bad)
    with pytest.raises(ValueError, match="target_offsets"):
        H.joints_to_features(joints, target_offsets=np.ones((21, 3)))


def test_target_offsets_helpers():
    pose = S.forward_kinematics(np.zeros((22, 3)), np.zeros(3))
    offsets = H.target_offsets_from_joints(pose)
    np.testing.assert_allclose(offsets, H.DEFAULT_TARGET_OFFSETS, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(offsets[1:], axis=-1), TARGET_LENGTHS)
    custom = H.target_offsets_from_lengths(np.full(21, 0.2))
    _, canon = H.process_joints(smooth_motion(frames=20), target_offsets=custom)
    np.testing.assert_allclose(S.bone_lengths(canon), 0.2, atol=1e-5)
    with pytest.raises(ValueError):
        H.target_offsets_from_lengths(np.zeros(21))


def test_mean_std_one_std_per_group():
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(n, 263)) * rng.uniform(0.1, 3, 263) + 1 for n in (5, 17, 40)]
    mean, std = H.mean_std(clips)
    data = np.concatenate(clips)
    np.testing.assert_allclose(mean, data.mean(0), rtol=1e-6)
    per_dim = data.std(0)
    for group in H.feature_groups().values():
        np.testing.assert_allclose(std[group], per_dim[group].mean(), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32
    mean2, std2 = H.mean_std(data)
    np.testing.assert_allclose(mean2, mean, rtol=1e-6)
    np.testing.assert_allclose(std2, std, rtol=1e-6)
    vq = H.momask_vq_std(std)
    np.testing.assert_allclose(vq[:4], std[:4] / 5)
    np.testing.assert_allclose(vq[-4:], std[-4:] / 5)
    np.testing.assert_array_equal(vq[4:-4], std[4:-4])
    np.testing.assert_allclose(H.momask_vq_std(std, times=2)[:4], std[:4] / 25, rtol=1e-6)
    with pytest.raises(ValueError, match="NaN"):
        H.mean_std([clips[0], np.full((3, 263), np.nan)])
    with pytest.raises(ValueError, match="263"):
        H.mean_std([np.zeros((3, 200))])


def test_root_rotation_follows_smoothed_quirky_facing(motion):
    """[0] equals the half-angle steps of the facing computed as upstream's IK does: across =
    (l_hip - r_hip) + (r_shoulder - l_shoulder), y x across Gaussian-smoothed (sigma 20,
    'nearest') before normalising, first frame's root rotation the identity."""
    from scipy.ndimage import gaussian_filter1d

    _, features, canon = motion
    p = canon.astype(np.float64)
    across = (p[:, 1] - p[:, 2]) + (p[:, 17] - p[:, 16])
    across /= np.linalg.norm(across, axis=-1, keepdims=True)
    forward = gaussian_filter1d(np.cross([0.0, 1.0, 0.0], across), 20, axis=0, mode="nearest")
    angle = -np.arctan2(forward[:, 0], forward[:, 2])  # rotation that turns the facing onto +z
    angle[0] = 0.0
    np.testing.assert_allclose(features[:, 0], np.diff(angle) / 2, atol=1e-6)
