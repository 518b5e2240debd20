"""HumanML3D's 263-dim motion representation: joints -> features and features -> joints.

The computation follows HumanML3D's `motion_representation` (EricGuo5513/HumanML3D 9176e8f),
quirks included, so that features made here match the published data and the official
checkpoints trained on it:

1. Retarget to a fixed target skeleton: inverse kinematics along HumanML3D's kinematic chains
   (the quaternion stored at joint chain[j+1] turns the bone chain[j] -> chain[j+1] from its
   RAW_OFFSETS direction, relative to the *root* rotation for every chain, arms included), then
   forward kinematics with the target offsets (RAW_OFFSETS x target bone lengths). The root
   trajectory is scaled by the ratio of the right-leg lengths (bones 2->5 and 5->8, frame 0).
2. Floor at y = 0: the lowest y of any joint over the whole clip (upstream takes the minimum over
   all joints, not only the feet).
3. Root xz of the first frame at the origin; the whole clip rotated about y so that the first
   frame faces +z (facing = y x across, across = (r_hip - l_hip) + (r_shoulder - l_shoulder)).
4. Inverse kinematics again, with the per-frame facing Gaussian-smoothed over time (sigma 20
   frames, 'nearest' edges) and the upstream quirk that unpacks FACE_JOINT_INDX as
   (l_hip, r_hip, sdr_r, sdr_l), so that across = (l_hip - r_hip) + (r_shoulder - l_shoulder).
   The first frame's root rotation is set to the identity (upstream does this too).
5. Features per frame t < T-1: [0] root angular velocity about y (arcsin of the y component of
   r_rot[t+1] r_rot[t]^-1, i.e. *half* the angle), [1:3] root xz velocity rotated by r_rot[t+1],
   [3] root height, [4:67] root-relative positions (root xz removed, rotated by r_rot[t]),
   [67:193] continuous-6D local rotations of joints 1..21, [193:259] joint velocities rotated by
   r_rot[t], [259:263] foot contacts (left 7, 10 then right 8, 11): squared displacement to the
   next frame (summed over x, y, z) < feet_thre.

Known upstream limitation kept for compatibility (EricGuo5513/HumanML3D issue 156): [0] takes
the arcsin without fixing the quaternion's sign, so a frame where the smoothed facing crosses
the -z direction (a turn past 180 degrees from the start) stores the wrong sign of its angular
velocity, and `recover_from_ric` rotates the rest of the clip by about twice that step.

Target skeleton: HumanML3D took its target bone lengths from the first frame of clip 000021,
which cannot be shipped; HMU's default uses the bone lengths of `skeleton.REST_OFFSETS`. Pass
`target_offsets=target_offsets_from_joints(frame0_of_000021)` to reproduce upstream exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from hmu.data import rotations as rot
from hmu.data.skeleton import (
    FACE_JOINT_INDX,
    FOOT_LEFT,
    FOOT_RIGHT,
    KINEMATIC_CHAIN,
    NUM_JOINTS,
    PARENTS,
    RAW_OFFSETS,
    REST_OFFSETS,
)

FPS = 20
FEATURE_DIM = 263
UNIT = 4  # frames per VQ token, and upstream's unit_length of evaluation crops
MAX_FRAMES = 196  # the longest motion upstream's loaders use (max_motion_length)
LEG_SCALE_JOINTS = (5, 8)  # right knee, right ankle: their bones' lengths scale the root
FACING_SMOOTH_SIGMA = 20.0  # frames, Gaussian smoothing of the facing in the feature IK
_Y = (0.0, 1.0, 0.0)
_Z = (0.0, 0.0, 1.0)


def feature_dim(joints_num: int = NUM_JOINTS) -> int:
    """Width of the feature vector for `joints_num` joints (263 for 22)."""
    return 4 + (joints_num - 1) * 9 + joints_num * 3 + 4


def feature_groups(joints_num: int = NUM_JOINTS) -> dict[str, slice]:
    """The 7 feature groups as slices of the last axis (HumanML3D's layout)."""
    ric_end = 4 + (joints_num - 1) * 3
    rot_end = ric_end + (joints_num - 1) * 6
    vel_end = rot_end + joints_num * 3
    return {
        "root_rot_velocity": slice(0, 1),
        "root_linear_velocity": slice(1, 3),
        "root_height": slice(3, 4),
        "ric": slice(4, ric_end),
        "rotations": slice(ric_end, rot_end),
        "local_velocity": slice(rot_end, vel_end),
        "foot_contact": slice(vel_end, vel_end + 4),
    }


# --------------------------------------------------------------------------- target skeleton


def target_offsets_from_lengths(lengths) -> np.ndarray:
    """Target offsets (22, 3) = RAW_OFFSETS directions x bone lengths.

    `lengths` is (21,) for the bones of joints 1..21 or (22,) with the root entry ignored.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.shape == (NUM_JOINTS - 1,):
        lengths = np.concatenate([[0.0], lengths])
    if lengths.shape != (NUM_JOINTS,) or not np.isfinite(lengths).all() or (lengths[1:] <= 0).any():
        raise ValueError(f"bone lengths must be (21,) or (22,) finite and positive, got {lengths}")
    return RAW_OFFSETS * lengths[:, None]


def target_offsets_from_joints(joints) -> np.ndarray:
    """Target offsets (22, 3) from the bone lengths of one pose (22, 3), as HumanML3D does with
    the first frame of its example clip 000021."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise ValueError(f"pose must be (22, 3), got {joints.shape}")
    lengths = np.linalg.norm(joints[1:] - joints[PARENTS[1:]], axis=-1)
    return target_offsets_from_lengths(lengths)


DEFAULT_TARGET_OFFSETS = target_offsets_from_lengths(
    np.linalg.norm(REST_OFFSETS[1:], axis=-1)
)  # (22, 3)


# --------------------------------------------------------------------------- kinematics


def _facing(joints: torch.Tensor, hips: tuple[int, int], shoulders: tuple[int, int]):
    """Horizontal facing (..., 3) = y x across, across = unit((p[h0]-p[h1]) + (p[s0]-p[s1])).

    Not normalised: its length is the horizontal share of `across`, which weights the frame
    in the temporal smoothing exactly as upstream (normalised only after smoothing).
    """
    across = (joints[..., hips[0], :] - joints[..., hips[1], :]) + (
        joints[..., shoulders[0], :] - joints[..., shoulders[1], :]
    )
    across = across / across.norm(dim=-1, keepdim=True)
    up = torch.tensor(_Y, dtype=joints.dtype).expand_as(across)
    return torch.cross(up, across, dim=-1)


def _inverse_kinematics(joints: torch.Tensor, smooth_forward: bool) -> torch.Tensor:
    """HumanML3D's IK: local quaternions (..., T, 22, 4) from positions (..., T, 22, 3).

    Joint 0 holds the root rotation that turns the facing onto +z (identity in frame 0); joint
    chain[j+1] holds inv(R) * qbetween(RAW_OFFSETS[chain[j+1]], bone), R accumulated from the
    root along the chain (every chain starts from the root rotation, as upstream).
    """
    r_hip, l_hip, sdr_r, sdr_l = FACE_JOINT_INDX
    # Upstream quirk: the IK unpacks the list as (l_hip, r_hip, sdr_r, sdr_l).
    forward = _facing(joints, hips=(l_hip, r_hip), shoulders=(sdr_r, sdr_l))  # (..., T, 3)
    if smooth_forward:
        smoothed = gaussian_filter1d(forward.numpy(), FACING_SMOOTH_SIGMA, axis=-2, mode="nearest")
        forward = torch.from_numpy(smoothed)
    forward = forward / forward.norm(dim=-1, keepdim=True)
    root = rot.qbetween(forward, torch.tensor(_Z, dtype=joints.dtype).expand_as(forward))
    root = root.clone()
    root[..., 0, :] = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=joints.dtype)
    quats = [None] * NUM_JOINTS
    quats[0] = root
    for chain in KINEMATIC_CHAIN:
        acc = root
        for parent, child in pairwise(chain):
            bone = joints[..., child, :] - joints[..., parent, :]  # (..., T, 3)
            raw = torch.as_tensor(RAW_OFFSETS[child], dtype=joints.dtype).expand_as(bone)
            local = rot.qmul(rot.qinv(acc), rot.qbetween(raw, bone))
            quats[child] = local
            acc = rot.qmul(acc, local)
    return torch.stack(quats, -2)


def _forward_kinematics(quats: torch.Tensor, root_pos: torch.Tensor, offsets) -> torch.Tensor:
    """HumanML3D's FK along the chains: positions (..., 22, 3) from (..., 22, 4) quaternions."""
    offsets = torch.as_tensor(np.asarray(offsets), dtype=quats.dtype)
    joints = [None] * NUM_JOINTS
    joints[0] = root_pos
    for chain in KINEMATIC_CHAIN:
        acc = quats[..., 0, :]
        for parent, child in pairwise(chain):
            acc = rot.qmul(acc, quats[..., child, :])
            joints[child] = rot.qrot(acc, offsets[child].expand_as(root_pos)) + joints[parent]
    return torch.stack(joints, -2)


def _leg_length(offsets: torch.Tensor) -> torch.Tensor:
    """Upstream's leg length: max |component| of the offsets of joints 5 and 8, summed."""
    return sum(offsets[..., j, :].abs().amax(-1) for j in LEG_SCALE_JOINTS)


def _retarget(joints: torch.Tensor, target_offsets: np.ndarray) -> torch.Tensor:
    """Uniform skeleton: same bone directions, target bone lengths, root scaled by leg ratio."""
    first = joints[..., 0, :, :]  # (..., 22, 3)
    lengths = (first[..., 1:, :] - first[..., PARENTS[1:], :]).norm(dim=-1)  # (..., 21)
    raw = torch.as_tensor(RAW_OFFSETS, dtype=joints.dtype)
    src_offsets = torch.cat([torch.zeros_like(lengths[..., :1]), lengths], -1)[..., None] * raw
    tgt = torch.as_tensor(target_offsets, dtype=joints.dtype)
    scale = _leg_length(tgt) / _leg_length(src_offsets)  # (...,)
    root = joints[..., 0, :] * scale[..., None, None]  # (..., T, 3)
    quats = _inverse_kinematics(joints, smooth_forward=False)
    return _forward_kinematics(quats, root, target_offsets)


def _canonicalise(joints: torch.Tensor) -> torch.Tensor:
    """Floor at y=0, first-frame root xz at the origin, first frame facing +z."""
    floor = joints[..., 1].amin(dim=(-2, -1))  # (...,) lowest joint over the clip
    first_root = joints[..., 0, 0, :]  # (..., 3)
    shift = torch.stack([first_root[..., 0], floor, first_root[..., 2]], -1)  # (..., 3)
    joints = joints - shift[..., None, None, :]
    r_hip, l_hip, sdr_r, sdr_l = FACE_JOINT_INDX
    forward = _facing(joints[..., 0, :, :], hips=(r_hip, l_hip), shoulders=(sdr_r, sdr_l))
    turn = rot.qbetween(forward, torch.tensor(_Z, dtype=joints.dtype).expand_as(forward))
    return rot.qrot(turn[..., None, None, :].expand(*joints.shape[:-1], 4), joints)


def _foot_contacts(joints: torch.Tensor, feet_thre: float) -> torch.Tensor:
    """(..., T-1, 4) contacts of joints 7, 10, 8, 11: squared step length < feet_thre."""
    feet = joints[..., list(FOOT_LEFT + FOOT_RIGHT), :]  # (..., T, 4, 3)
    step = ((feet[..., 1:, :, :] - feet[..., :-1, :, :]) ** 2).sum(-1)
    return (step < feet_thre).to(joints.dtype)


# --------------------------------------------------------------------------- joints -> features


def _check_joints(joints) -> torch.Tensor:
    """Validate (..., T, 22, 3) positions and return them as a float64 CPU tensor."""
    if isinstance(joints, torch.Tensor):
        joints = joints.detach().cpu().numpy()
    joints = np.asarray(joints)
    if joints.ndim < 3 or joints.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(
            f"joints must be (..., T, 22, 3) (SMPL body joints; slice [:, :22] of SMPL-H "
            f"output), got shape {joints.shape}"
        )
    if joints.shape[-3] < 2:
        raise ValueError(f"joints need at least 2 frames, got {joints.shape[-3]}")
    bad_frames = int((~np.isfinite(joints).all(axis=(-2, -1))).sum())
    if bad_frames:
        raise ValueError(f"joints contain NaN/Inf in {bad_frames} frame(s)")
    return torch.from_numpy(joints.astype(np.float64))


def process_joints(joints, feet_thre: float = 0.002, target_offsets=None):
    """HumanML3D features of equal-length clips, and the canonical joints they describe.

    Args:
        joints: (..., T, 22, 3) positions in metres, y up (numpy or torch), T >= 2.
        feet_thre: squared per-frame foot displacement (m^2) below which a foot is in contact.
        target_offsets: (22, 3) offsets of the target skeleton (RAW_OFFSETS x bone lengths);
            default DEFAULT_TARGET_OFFSETS (bone lengths of skeleton.REST_OFFSETS).
    Returns:
        features (..., T-1, 263) float32 and canonical joints (..., T, 22, 3) float32: the
        retargeted, floored, origin-centred, +z-facing positions that `recover_from_ric`
        reproduces (frames 0..T-2) from the features.
    Raises:
        ValueError on a wrong shape, NaN/Inf, or a degenerate pose (zero-length bone or no
        horizontal facing).
    """
    x = _check_joints(joints)
    offsets = DEFAULT_TARGET_OFFSETS if target_offsets is None else np.asarray(target_offsets)
    if offsets.shape != (NUM_JOINTS, 3) or not np.isfinite(offsets).all():
        raise ValueError(f"target_offsets must be finite (22, 3), got shape {offsets.shape}")

    x = _canonicalise(_retarget(x, offsets))  # (..., T, 22, 3) global positions
    contacts = _foot_contacts(x, feet_thre)  # (..., T-1, 4)

    quats = _inverse_kinematics(x, smooth_forward=True)  # (..., T, 22, 4)
    r_rot = quats[..., 0, :]  # (..., T, 4)
    root = x[..., 0, :]  # (..., T, 3)
    root_vel = rot.qrot(r_rot[..., 1:, :], root[..., 1:, :] - root[..., :-1, :])  # (..., T-1, 3)
    r_vel = rot.qmul(r_rot[..., 1:, :], rot.qinv(r_rot[..., :-1, :]))  # (..., T-1, 4)
    rot_vel = torch.asin(r_vel[..., 2:3].clamp(-1.0, 1.0))  # half-angle about y

    per_joint = r_rot[..., None, :].expand(*x.shape[:-1], 4)  # (..., T, 22, 4)
    centred = x - root[..., None, :] * torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype)
    ric = rot.qrot(per_joint, centred)  # (..., T, 22, 3)
    cont6d = rot.quaternion_to_cont6d(quats[..., 1:, :])  # (..., T, 21, 6)
    local_vel = rot.qrot(per_joint[..., :-1, :, :], x[..., 1:, :, :] - x[..., :-1, :, :])

    flat = lambda a: a.reshape(*a.shape[:-2], -1)  # noqa: E731  (..., J, k) -> (..., J*k)
    features = torch.cat(
        [
            rot_vel,
            root_vel[..., [0, 2]],
            ric[..., :-1, 0, 1:2],
            flat(ric[..., :-1, 1:, :]),
            flat(cont6d[..., :-1, :, :]),
            flat(local_vel),
            contacts,
        ],
        -1,
    )  # (..., T-1, 263)
    if not torch.isfinite(features).all():
        raise ValueError("degenerate pose: a zero-length bone or no horizontal facing direction")
    return features.numpy().astype(np.float32), x.numpy().astype(np.float32)


def joints_to_features(joints, feet_thre: float = 0.002, target_offsets=None) -> np.ndarray:
    """HumanML3D's 263-dim features (T-1, 263) float32 of one clip of positions (T, 22, 3).

    See `process_joints` for the arguments and the canonical joints.
    """
    if np.ndim(joints) != 3:
        raise ValueError(f"joints must be (T, 22, 3), got shape {np.shape(joints)}")
    return process_joints(joints, feet_thre, target_offsets)[0]


# --------------------------------------------------------------------------- features -> joints


def _check_features(features, joints_num: int) -> None:
    """Raise ValueError unless features are (..., T, D) with HumanML3D's width and finite."""
    width = feature_dim(joints_num)
    if features.ndim < 2 or features.shape[-1] != width:
        raise ValueError(
            f"features must be (..., T, {width}) for {joints_num} joints, "
            f"got shape {tuple(features.shape)}"
        )
    finite = (
        torch.isfinite(features).all()
        if isinstance(features, torch.Tensor)
        else (np.isfinite(features).all())
    )
    if not finite:
        raise ValueError("features contain NaN/Inf")


def _to_torch(features):
    """Features as a floating torch tensor, and whether the caller passed numpy."""
    if isinstance(features, torch.Tensor):
        return (features if features.is_floating_point() else features.double()), False
    array = np.asarray(features)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return torch.from_numpy(array), True


def _root_rot_pos(data: torch.Tensor):
    """Root y-rotation quaternions (..., T, 4) and root positions (..., T, 3) from features."""
    rot_vel = data[..., 0]  # (..., T)
    angle = torch.cumsum(torch.cat([torch.zeros_like(rot_vel[..., :1]), rot_vel[..., :-1]], -1), -1)
    zero = torch.zeros_like(angle)
    r_rot = torch.stack([torch.cos(angle), zero, torch.sin(angle), zero], -1)  # (..., T, 4)
    step_xz = torch.cat([torch.zeros_like(data[..., :1, 1:3]), data[..., :-1, 1:3]], -2)
    step = torch.stack([step_xz[..., 0], torch.zeros_like(angle), step_xz[..., 1]], -1)
    pos = torch.cumsum(rot.qrot(rot.qinv(r_rot), step), -2)  # (..., T, 3)
    pos = torch.stack([pos[..., 0], data[..., 3], pos[..., 2]], -1)
    return r_rot, pos


def recover_root_rot_pos(features):
    """Root rotation quaternions (..., T, 4) and root positions (..., T, 3) from features.

    The rotation angle integrates [0] (a cumulative sum shifted by one frame, starting at 0);
    the xz position integrates [1:3] rotated back by the inverse root rotation; y is [3].
    Numpy in, numpy out; torch in, torch out (differentiable).
    """
    data, is_numpy = _to_torch(features)
    if data.ndim < 2 or data.shape[-1] < 4:
        raise ValueError(f"features must be (..., T, >=4), got shape {tuple(data.shape)}")
    r_rot, pos = _root_rot_pos(data)
    return (r_rot.numpy(), pos.numpy()) if is_numpy else (r_rot, pos)


def recover_from_ric(features, joints_num: int = NUM_JOINTS):
    """Joint positions (..., T, J, 3) from HumanML3D features (..., T, 263).

    The root-relative positions [4:4+(J-1)*3] are rotated back by the integrated root rotation
    and shifted by the integrated root xz; the root itself is the integrated root position.
    Numpy in, numpy out; torch in, torch out (same dtype and device, differentiable).
    """
    data, is_numpy = _to_torch(features)
    _check_features(data, joints_num)
    r_rot, root = _root_rot_pos(data)
    ric = data[..., 4 : 4 + (joints_num - 1) * 3]
    ric = ric.reshape(*ric.shape[:-1], joints_num - 1, 3)  # (..., T, J-1, 3)
    inv = rot.qinv(r_rot)[..., None, :].expand(*ric.shape[:-1], 4)
    joints = rot.qrot(inv, ric)
    joints = (
        joints
        + (root * torch.tensor([1.0, 0.0, 1.0], dtype=root.dtype, device=root.device))[..., None, :]
    )
    joints = torch.cat([root[..., None, :], joints], -2)  # (..., T, J, 3)
    return joints.numpy() if is_numpy else joints


# --------------------------------------------------------------------------- normalisation


def _chunks(features) -> Iterable[np.ndarray]:
    """Yield (n, D) float64 blocks of a (N, D) array or of a sequence of (T, D) arrays."""
    if isinstance(features, np.ndarray) and features.ndim == 2:
        for start in range(0, len(features), 65536):
            yield np.asarray(features[start : start + 65536], dtype=np.float64)
    else:
        for item in features:
            yield np.asarray(item, dtype=np.float64)


def mean_std(features: np.ndarray | Sequence[np.ndarray], joints_num: int = NUM_JOINTS):
    """HumanML3D's Mean.npy / Std.npy: per-dim mean, and one std per feature group.

    `features` is a concatenated (N, D) array (a memory-mapped store works) or a sequence of
    (T, D) clips. The std of each of the 7 groups is the mean of its per-dim standard deviations
    (population std, ddof=0), as HumanML3D's cal_mean_variance. Statistics accumulate in float64
    chunk by chunk (Chan's parallel merge), so the data is never concatenated in memory.
    Returns (mean (D,), std (D,)) float32.
    """
    width = feature_dim(joints_num)
    count, mean, m2 = 0, np.zeros(width), np.zeros(width)
    for i, block in enumerate(_chunks(features)):
        if block.ndim != 2 or block.shape[1] != width:
            raise ValueError(f"features item {i} must be (T, {width}), got {block.shape}")
        if not np.isfinite(block).all():
            raise ValueError(f"features item {i} contains NaN/Inf")
        n = len(block)
        if n == 0:
            continue
        block_mean = block.mean(0)
        block_m2 = ((block - block_mean) ** 2).sum(0)
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + block_m2 + delta**2 * count * n / total
        count = total
    if count == 0:
        raise ValueError("mean_std needs at least one frame")
    std = np.sqrt(m2 / count)
    for group in feature_groups(joints_num).values():
        std[group] = std[group].mean()
    return mean.astype(np.float32), std.astype(np.float32)


def momask_vq_std(std, feat_bias: float = 5.0, times: int = 1, joints_num: int = NUM_JOINTS):
    """MoMask's VQ-training std: root [0:4] and foot-contact [-4:] std divided by feat_bias.

    MoMask's MotionDataset divides those groups of the shared std array in place for both its
    train and val datasets, so the meta std it saves was divided twice (times=2, i.e. by 25);
    pass times=2 to reproduce that file. Returns a new float32 array.
    """
    std = np.array(std, dtype=np.float32)
    if std.shape != (feature_dim(joints_num),):
        raise ValueError(f"std must be ({feature_dim(joints_num)},), got {std.shape}")
    groups = feature_groups(joints_num)
    factor = np.float32(feat_bias) ** times
    std[0:4] /= factor
    std[groups["foot_contact"]] /= factor
    return std
