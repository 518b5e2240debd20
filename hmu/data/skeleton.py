"""The 22-joint SMPL body skeleton used by HumanML3D, and batched forward kinematics.

Coordinates are y-up with the body facing +z in the rest pose, so the body's left side is +x
(SMPL's convention, which HumanML3D inherits). Lengths are metres.
"""

from __future__ import annotations

import numpy as np
import torch

from hmu.data.rotations import axis_angle_to_matrix

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)  # fmt: skip
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19])

# HumanML3D's kinematic chains: right leg, left leg, spine to head, right arm, left arm.
KINEMATIC_CHAIN = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)

# HumanML3D's raw offset directions (t2m_raw_offsets): the bone direction per joint used by
# inverse kinematics when the 6D rotation features are computed.
RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 0, 1],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float64,
)

# An SMPL-like neutral rest pose (T-pose, arms along +-x), offsets from the parent joint.
# It approximates the SMPL neutral model's joint regressor output for an average body of about
# 1.70 m; axis-angle poses written for SMPL/SMPL-X drive it with the same meaning.
REST_OFFSETS = np.array(
    [
        [0.000, 0.000, 0.000],  # pelvis (root; placed by the translation)
        [0.068, -0.091, -0.009],  # left_hip
        [-0.068, -0.091, -0.009],  # right_hip
        [0.000, 0.109, -0.027],  # spine1
        [0.033, -0.375, -0.005],  # left_knee
        [-0.033, -0.375, -0.005],  # right_knee
        [0.000, 0.135, 0.010],  # spine2
        [-0.010, -0.398, -0.040],  # left_ankle
        [0.010, -0.398, -0.040],  # right_ankle
        [0.000, 0.055, 0.002],  # spine3
        [0.030, -0.058, 0.120],  # left_foot
        [-0.030, -0.058, 0.120],  # right_foot
        [0.000, 0.215, -0.030],  # neck
        [0.080, 0.120, -0.020],  # left_collar
        [-0.080, 0.120, -0.020],  # right_collar
        [0.000, 0.090, 0.050],  # head
        [0.120, 0.045, -0.010],  # left_shoulder
        [-0.120, 0.045, -0.010],  # right_shoulder
        [0.260, -0.015, -0.020],  # left_elbow
        [-0.260, -0.015, -0.020],  # right_elbow
        [0.250, 0.010, -0.005],  # left_wrist
        [-0.250, 0.010, -0.005],  # right_wrist
    ]
)

LEFT_JOINTS = (1, 4, 7, 10, 13, 16, 18, 20)
RIGHT_JOINTS = (2, 5, 8, 11, 14, 17, 19, 21)
# Index permutation that swaps every left joint with its right twin (for mirroring).
MIRROR_PERMUTATION = np.arange(NUM_JOINTS)
MIRROR_PERMUTATION[list(LEFT_JOINTS)] = RIGHT_JOINTS
MIRROR_PERMUTATION[list(RIGHT_JOINTS)] = LEFT_JOINTS

FACE_JOINT_INDX = (2, 1, 17, 16)  # r_hip, l_hip, r_shoulder, l_shoulder
FOOT_LEFT = (7, 10)
FOOT_RIGHT = (8, 11)


def bone_lengths(joints):
    """Length of every bone, (..., 22, 3) positions -> (..., 21) (joints 1..21 to their parent)."""
    child = joints[..., 1:, :]
    parent = joints[..., PARENTS[1:], :]
    diff = child - parent
    if isinstance(diff, torch.Tensor):
        return diff.norm(dim=-1)
    return np.linalg.norm(diff, axis=-1)


def scaled_rest_offsets(height_scale: float = 1.0) -> np.ndarray:
    """The rest offsets (22, 3) of a body `height_scale` times the default 1.70 m body."""
    return REST_OFFSETS * height_scale


def forward_kinematics(local_rot, root_pos, offsets=REST_OFFSETS):
    """Joint positions from per-joint local rotations (SMPL convention).

    The rotation of joint j turns every bone below j (its children's offsets); joint 0's rotation
    is the global orientation. Works batched on numpy arrays or torch tensors.

    Args:
        local_rot: (..., 22, 3) axis-angle or (..., 22, 3, 3) rotation matrices.
        root_pos: (..., 3) pelvis position.
        offsets: (22, 3) or (..., 22, 3) rest offsets from each joint's parent.
    Returns:
        (..., 22, 3) joint positions, same array type as `local_rot`.
    """
    is_numpy = isinstance(local_rot, np.ndarray)
    rot = torch.as_tensor(np.asarray(local_rot) if is_numpy else local_rot)
    dtype = rot.dtype if rot.is_floating_point() else torch.float64
    rot = rot.to(dtype)
    if rot.shape[-1] == 3 and rot.shape[-2] == NUM_JOINTS:
        rot = axis_angle_to_matrix(rot)  # (..., 22, 3, 3)
    if rot.shape[-3:] != (NUM_JOINTS, 3, 3):
        raise ValueError(
            f"local_rot must be (..., 22, 3) or (..., 22, 3, 3), got {tuple(rot.shape)}"
        )
    root = torch.as_tensor(np.asarray(root_pos), dtype=dtype) if is_numpy else root_pos.to(dtype)
    offs = torch.as_tensor(np.asarray(offsets), dtype=dtype).to(rot.device)
    batch = rot.shape[:-3]
    offs = offs.expand(*batch, NUM_JOINTS, 3)

    global_rot = [rot[..., 0, :, :]]
    positions = [root.expand(*batch, 3)]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        positions.append(positions[p] + (global_rot[p] @ offs[..., j, :, None])[..., 0])
        global_rot.append(global_rot[p] @ rot[..., j, :, :])
    joints = torch.stack(positions, -2)  # (..., 22, 3)
    return joints.numpy() if is_numpy else joints


def mirror_joints(joints):
    """Mirror positions (..., 22, 3) across the x=0 plane: swap left/right joints, negate x."""
    mirrored = (
        joints[..., MIRROR_PERMUTATION, :].copy()
        if isinstance(joints, np.ndarray)
        else (joints[..., MIRROR_PERMUTATION, :].clone())
    )
    mirrored[..., 0] *= -1
    return mirrored


def check_joints(joints) -> np.ndarray:
    """Joint positions (T, 22, 3) as float64, refusing another shape, no frames or NaN/Inf."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (T, {NUM_JOINTS}, 3), got shape {joints.shape}")
    if len(joints) == 0 or not np.isfinite(joints).all():
        raise ValueError("joints must hold at least one frame and no NaN/Inf")
    return joints
